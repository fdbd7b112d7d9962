"""`sonode upsample`: a model or a clip written at a higher rate, its band above synthesised."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from sonode.cli.common import fail_cleanly, positive_option
from sonode.cli.fit import run_fit
from sonode.cli.fit_options import fit_options
from sonode.cli.render import WAV_BYTES, out_option, subtype_option, write_rendering


@click.command()
@click.argument("source", type=click.Path())
@out_option
@subtype_option
@positive_option("--rate", "out_rate", kind=int, help="Output rate in Hz (required).")
@click.option(
    "--low-band",
    type=click.Choice(["input", "model"]),
    default="input",
    show_default=True,
    help="Below the input's band edge: band-limited interpolation of the fitted samples, or the "
    "model's rendering.",
)
@click.option(
    "--high-band",
    type=click.Choice(["model", "none"]),
    default="model",
    show_default=True,
    help="Above the input's band edge: partials and noise floor continued from the clip and the "
    "fitted modes, or nothing.",
)
@click.option(
    "--clip",
    "fitted_clip",
    type=click.Path(),
    help="When SOURCE is a model: the clip it was fitted on (default: the source file recorded in "
    "the model, read with the recorded channel, start and rate).",
)
@click.option(
    "--model-out", type=click.Path(), help="When SOURCE is a clip: where to save the fitted model."
)
@click.option(
    "--snr-cost",
    default="1.5",
    show_default=True,
    help="Bound (dB) on the band above's SNR cost against band-limited interpolation, or 'none' "
    "(the band at its predicted level).",
)
@click.option(
    "--snr-cost-case",
    type=click.Choice(["worst", "expected", "validated"]),
    default="worst",
    show_default=True,
    help="The cost bounded: if the truth holds nothing above the input's Nyquist frequency (every "
    "clip), the predicted level, or that less the prediction's error on the clip's top octave.",
)
@functools.partial(fit_options, rate_flag="--fit-rate")
@fail_cleanly
def upsample(
    source, out, subtype, out_rate, low_band, high_band, fitted_clip, model_out, quiet, device, **kw
):
    """Write the whole fitted span of SOURCE at --rate HZ: the input's band kept, the band above it
    synthesised from the clip's structure and the fitted modes.

    SOURCE is a model file, or a clip. With a clip and the default --low-band input, the output
    below the input's band edge is the input's band-limited interpolation, and the band above needs
    only the clip's oscillators: they are identified (seconds) and no model is trained, so the
    training options (--max-time, --steps, ...) do not apply. With --low-band model or --model-out
    the clip is fitted first, with the same options as `sonode fit` (the fit's rate is the file's,
    or --fit-rate).
    """
    from sonode.api import load
    from sonode.io.model_file import is_model_file
    from sonode.io.outputs import OutputPlan
    from sonode.tasks.render import Rendering
    from sonode.tasks.upsample import check_upsample_size

    if out_rate is None:
        raise click.BadParameter("is required: the output rate in Hz", param_hint="--rate")
    band = dict(
        max_snr_cost_db=_snr_cost(kw.pop("snr_cost")), snr_cost_case=kw.pop("snr_cost_case")
    )
    is_model = is_model_file(source)
    # a clip whose low band is its own interpolation needs no model: only its oscillators
    analyse_only = not is_model and low_band == "input" and model_out is None
    plan = OutputPlan([source, fitted_clip], kw["force"])
    if is_model:
        fitted = load(
            source
        )  # quick: its recorded source clip is read too, so it must be known first
        plan.protect(_recorded_source(fitted.info))
        seconds = fitted.duration_s
    else:
        if not analyse_only:
            plan.add(model_out or _default_model_path(source))
        rate_in, n_in = _clip_rate_and_length(source, kw)
        seconds = n_in / rate_in
    plan.add(out, WAV_BYTES[subtype] * seconds * out_rate + 4096)
    plan.check()
    if analyse_only:  # long clips go block by block (`upsample_in_blocks`): bounded memory
        samples = _upsample_clip(source, out_rate, high_band, quiet, kw, band)
    else:
        if not is_model:
            check_upsample_size(n_in, rate_in, out_rate)  # before the fit, not after it
            fitted, _ = run_fit(source, model_out, quiet, device, also_writes=[out], **kw)
        check_upsample_size(fitted.model.config.n_samples, fitted.sample_rate, out_rate)
        samples = fitted.upsample(
            out_rate,
            low_band=low_band,
            high_band=high_band,
            clip=fitted_clip,
            device=device,
            **band,
        )
    write_rendering(
        Rendering(samples=samples, sample_rate=out_rate, start_s=0.0),
        out,
        subtype,
        plan.inputs,
        quiet,
        kw["force"],
    )


def _default_model_path(clip: str):
    from sonode.cli.common import OUTPUT_DIR

    return OUTPUT_DIR / f"{Path(clip).stem}.sonode"


def _recorded_source(info: dict) -> str | None:
    """The source path a model records, if it is a plain string (a crafted file may hold anything)."""
    source = info.get("source") if isinstance(info, dict) else None
    path = source.get("path") if isinstance(source, dict) else None
    return path if isinstance(path, str) and path else None


def _clip_rate_and_length(clip: str, kw: dict) -> tuple[int, int]:
    """The fitting rate and an upper bound of the fitted samples of ``clip`` (header only)."""
    from sonode.io.checks import audio_info

    info = audio_info(Path(clip))
    rate = kw.get("rate") or info.samplerate
    seconds = min(info.duration, kw["duration_s"]) if kw.get("duration_s") else info.duration
    return int(rate), int(math.ceil(seconds * rate))


def _snr_cost(text: str) -> float | None:
    """--snr-cost: a bound in dB (finite, ≥ 0) or 'none'."""
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise click.BadParameter(
            f"{text!r} is not a bound in dB (>= 0) or 'none'", param_hint="--snr-cost"
        )
    return value


def _upsample_clip(source: str, out_rate: int, high_band: str, quiet: bool, kw: dict, band: dict):
    """A clip upsampled without a model: its interpolation below the band edge, and above it what
    its identified oscillators and spectrum continue (`sonode.tasks.upsample.clip_modes`).

    A file of several channels read without an explicit --channel comes out with as many
    channels (`sonode.tasks.upsample.upsample_channels`): (n,) or (n, channels)."""
    import numpy as np
    from click.core import ParameterSource

    from sonode.io.checks import audio_info
    from sonode.io.clip import read_clip
    from sonode.tasks.upsample import check_upsample_blocks, clip_modes, upsample_in_blocks

    def read(channel):
        return read_clip(
            source,
            channel=channel,
            start_s=kw["start_s"],
            duration_s=kw["duration_s"],
            rate=kw["rate"],
        )

    ctx = click.get_current_context(silent=True)
    channel_given = ctx is not None and ctx.get_parameter_source("channel") not in (
        ParameterSource.DEFAULT,
        None,
    )
    n_channels = 1 if channel_given else audio_info(Path(source)).channels
    # sized from the header, before reading: the longest clip the reader takes (600 s at 192 kHz)
    # is refused here at once instead of after reading 1 GB (18 CPU s, 1.45 GiB measured)
    rate_in, n_in = _clip_rate_and_length(source, kw)
    check_upsample_blocks(n_in, n_channels, rate_in, out_rate)
    clip = read(kw["channel"])
    modes = None
    if high_band == "model" and out_rate > clip.sample_rate:
        if not quiet:
            click.echo(
                f"sonode: identifying the oscillators of {source} (no model is trained: the band below "
                "its Nyquist frequency is its band-limited interpolation)",
                err=True,
            )
        latent = kw["latent_dim"] or kw["max_latent_dim"]
        modes = clip_modes(
            clip.samples, clip.sample_rate, n_modes=latent // 2, lp_order=kw["lp_order"]
        )
    if n_channels > 1:
        channels = np.stack([read(c).samples for c in range(n_channels)], axis=1)
    else:
        channels = clip.samples[:, None]
    samples = upsample_in_blocks(
        channels, clip.sample_rate, out_rate, modes, seed=kw["seed"], high_band=high_band, **band
    )
    return samples if n_channels > 1 else samples[:, 0]
