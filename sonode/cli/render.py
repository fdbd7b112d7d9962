"""`sonode render` and `extrapolate`: a model read as audio, written as WAV (and what `upsample`
shares with them: the output options and the WAV writing)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import click

from sonode.cli.common import (
    EXIT_DIVERGED,
    device_option,
    fail_cleanly,
    force_option,
    out_rate_option,
    positive_option,
    quiet_option,
)


def write_rendering(
    rendering, out: str, subtype: str, protect: list[str], quiet: bool, force: bool
) -> None:
    """Write a `sonode.tasks.render.Rendering` to the WAV ``out`` (``protect``: inputs it must not
    be); a free run stopped for diverging exits EXIT_DIVERGED after writing what came before."""
    from sonode.io.wav import write_wav

    n_clipped = write_wav(
        out, rendering.samples, rendering.sample_rate, subtype=subtype, protect=protect, force=force
    )
    if not quiet:
        click.echo(
            f"wrote {out}: {len(rendering.samples)} samples at {rendering.sample_rate} Hz"
            + (f" ({n_clipped} clipped)" if n_clipped else ""),
            err=True,
        )
    if rendering.stopped_at_s is not None:
        click.echo(
            f"sonode: the free run left ±10× the clip's peak at t = {rendering.stopped_at_s:.4f} s; "
            "stopped there (the output holds what came before)",
            err=True,
        )
        sys.exit(EXIT_DIVERGED)


def _bar(quiet: bool):
    """A click progress bar over segments, shown only for renders taking more than a second."""
    state: dict[str, Any] = {"start": time.perf_counter(), "bar": None}

    def update(done: int, total: int) -> None:
        if quiet:
            return
        if state["bar"] is None and time.perf_counter() - state["start"] > 1.0:
            state["bar"] = click.progressbar(length=total, label="rendering", file=sys.stderr)
            state["bar"].__enter__()
            state["shown"] = 0
        if state["bar"] is not None:
            state["bar"].update(done - state["shown"])
            state["shown"] = done
            if done >= total:
                state["bar"].__exit__(None, None, None)

    return update


out_option = click.option(
    "-o", "--output", "out", type=click.Path(), required=True, help="Output WAV file."
)
subtype_option = click.option(
    "--subtype",
    type=click.Choice(["FLOAT", "PCM_16", "PCM_24"]),
    default="FLOAT",
    show_default=True,
    help="WAV sample format.",
)


def _model_wav_options(f):
    """The options that `render` and `extrapolate` end with: --subtype, --device, --quiet, --force, --debug."""
    for decorator in reversed(
        [
            subtype_option,
            device_option,
            quiet_option,
            force_option,
            fail_cleanly,
        ]
    ):
        f = decorator(f)
    return f


def _model_to_wav(model: str, out: str, subtype: str, quiet: bool, force: bool, read, span) -> None:
    """Check OUT before loading MODEL, and its room once ``span(fitted)`` = (seconds, rate) gives the
    size; then write ``read(fitted, progress)`` (a Rendering) to it."""
    from sonode.api import load
    from sonode.io.outputs import OutputPlan

    plan = OutputPlan([model], force)
    plan.add(out)
    plan.check()
    fitted = load(model)
    seconds, rate = span(fitted)
    plan = OutputPlan([model], force)
    plan.add(out, WAV_BYTES[subtype] * seconds * (rate or fitted.sample_rate) + 4096)
    plan.check()
    write_rendering(read(fitted, _bar(quiet)), out, subtype, [model], quiet, force)


WAV_BYTES = {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3}  # per sample: sizes an output before writing

#: `extrapolate`'s and `render`'s --texture default: the mean alone, as the API and `eval` score it.
#: `auto` (the fit's held-back choice) still costs 200 ms SNR where it is chosen (docs/
#: continuation_texture.md: up to 2.5 dB on decaying and noise clips, a median 0.5 dB on held
#: notes), so a user asks for it (auto, or 1 for held notes, drones and applause)
TEXTURE_DEFAULT = 0.0


class TextureParam(click.ParamType):
    """--texture: an amplitude in [0, 4], or "auto" (the amplitude the fit chose and stored)."""

    name = "AMPLITUDE|auto"

    def convert(self, value, param, ctx):
        from sonode.model.config import MAX_TEXTURE

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif str(value).strip().lower() == "auto":
            return "auto"
        else:
            try:
                number = float(value)
            except ValueError:
                self.fail(f'must be a number in [0, 4] or "auto", got {value!r}', param, ctx)
        if not (math.isfinite(number) and 0.0 <= number <= MAX_TEXTURE):
            self.fail(f'must be a number in [0, 4] or "auto", got {value}', param, ctx)
        return number


def _texture_options(f):
    """--texture and --seed: the continuation's stochastic part past the fitted span."""
    f = click.option(
        "--seed",
        type=click.IntRange(0, 2**63 - 1),
        default=0,
        show_default=True,
        help="Seed of the texture's noise (the same seed writes the same samples).",
    )(f)
    return click.option(
        "--texture",
        type=TextureParam(),
        default=TEXTURE_DEFAULT,
        show_default=True,
        help="Past the fitted span, add the noise the continuation's mean loses, at this "
        "amplitude: 1 keeps the clip's level and spectrum (held notes, drones, applause), 0 "
        "writes the mean alone (the best prediction in SNR); auto: what the fit chose for this "
        "clip on its held-back end (1 or 0, stored in the model).",
    )(f)


@click.command(name="render")
@click.argument("model", type=click.Path())
@out_option
@out_rate_option
@click.option(
    "--start",
    "start_s",
    type=float,
    default=0.0,
    show_default=True,
    help="Start (seconds of model time).",
)
@click.option("--end", "end_s", type=float, help="End (seconds; default: end of the fitted span).")
@_texture_options
@_model_wav_options
def render_cmd(model, out, rate, start_s, end_s, texture, seed, subtype, device, quiet, force):
    """Write MODEL's trajectory over any span at any rate (default: the reconstruction)."""
    if not (0 <= start_s < math.inf):
        raise click.BadParameter(
            f"must be a finite number ≥ 0, got {start_s}", param_hint="--start"
        )
    if end_s is not None and not (start_s < end_s < math.inf):
        raise click.BadParameter(
            f"must be a finite number after --start ({start_s:g}), got {end_s}", param_hint="--end"
        )
    _model_to_wav(
        model,
        out,
        subtype,
        quiet,
        force,
        lambda fitted, progress: fitted.render(
            rate=rate,
            start_s=start_s,
            end_s=end_s,
            progress=progress,
            texture=texture,
            seed=seed,
            device=device,
        ),
        lambda fitted: ((end_s if end_s is not None else fitted.duration_s) - start_s, rate),
    )


@click.command(name="extrapolate")
@click.argument("model", type=click.Path())
@out_option
@positive_option("--seconds", kind=float, required=True, help="Length of the continuation.")
@out_rate_option
@click.option(
    "--with-context", is_flag=True, help="Write the reconstruction followed by the continuation."
)
@_texture_options
@_model_wav_options
def extrapolate_cmd(
    model, out, seconds, rate, with_context, texture, seed, subtype, device, quiet, force
):
    """Continue MODEL's sound for --seconds past the end of the fitted span."""
    from sonode.tasks.render import extrapolate

    _model_to_wav(
        model,
        out,
        subtype,
        quiet,
        force,
        lambda fitted, progress: extrapolate(
            fitted.model,
            seconds,
            rate=rate,
            with_context=with_context,
            progress=progress,
            texture=texture,
            seed=seed,
            device=device,
        ),
        lambda fitted: (seconds + (fitted.duration_s if with_context else 0.0), rate),
    )
