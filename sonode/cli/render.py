"""`sonode render`, `upsample` and `extrapolate`: a model read as audio, written as WAV."""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import click

from sonode.cli.common import EXIT_DIVERGED, device_option, fail_cleanly, force_option, out_rate_option, positive
from sonode.cli.fit import fit_options, run_fit


def _write_rendering(rendering, out: str, subtype: str, protect: list[str], quiet: bool, force: bool) -> None:
    from sonode.io.wav import write_wav

    n_clipped = write_wav(out, rendering.samples, rendering.sample_rate, subtype=subtype, protect=protect,
                          force=force)
    if not quiet:
        click.echo(f"wrote {out}: {len(rendering.samples)} samples at {rendering.sample_rate} Hz"
                   + (f" ({n_clipped} clipped)" if n_clipped else ""), err=True)
    if rendering.stopped_at_s is not None:
        click.echo(f"sonode: the free run left ±10× the clip's peak at t = {rendering.stopped_at_s:.4f} s; "
                   "stopped there (the output holds what came before)", err=True)
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


_out_option = click.option("-o", "--output", "out", type=click.Path(), required=True, help="Output WAV file.")
_subtype_option = click.option("--subtype", type=click.Choice(["FLOAT", "PCM_16", "PCM_24"]), default="FLOAT",
                               show_default=True, help="WAV sample format.")


def _model_wav_options(f):
    """The options that `render` and `extrapolate` end with: --subtype, --device, --quiet, --force, --debug."""
    for decorator in reversed([_subtype_option, device_option, click.option("--quiet", is_flag=True), force_option,
                               fail_cleanly]):
        f = decorator(f)
    return f


def _model_to_wav(model: str, out: str, subtype: str, quiet: bool, force: bool, read) -> None:
    """Check OUT before loading MODEL, then write ``read(fitted, progress)`` (a Rendering) to it."""
    from sonode.api import load
    from sonode.io.wav import check_output_path

    check_output_path(out, [model], force=force)
    _write_rendering(read(load(model), _bar(quiet)), out, subtype, [model], quiet, force)


@click.command(name="render")
@click.argument("model", type=click.Path())
@_out_option
@out_rate_option
@click.option("--start", "start_s", type=float, default=0.0, show_default=True, help="Start (seconds of model time).")
@click.option("--end", "end_s", type=float, help="End (seconds; default: end of the fitted span).")
@_model_wav_options
def render_cmd(model, out, rate, start_s, end_s, subtype, device, quiet, force):
    """Write MODEL's trajectory over any span at any rate (default: the reconstruction)."""
    if start_s < 0:
        raise click.BadParameter(f"must be ≥ 0, got {start_s}", param_hint="--start")
    _model_to_wav(model, out, subtype, quiet, force,
                  lambda fitted, progress: fitted.render(rate=rate, start_s=start_s, end_s=end_s, progress=progress))


@click.command()
@click.argument("source", type=click.Path())
@_out_option
@_subtype_option
@click.option("--rate", "out_rate", type=int, callback=positive(int), help="Output rate in Hz (required).")
@click.option("--low-band", type=click.Choice(["input", "model"]), default="input", show_default=True,
              help="Below the input's band edge: band-limited interpolation of the fitted samples, or the "
              "model's rendering.")
@click.option("--high-band", type=click.Choice(["model", "none"]), default="model", show_default=True,
              help="Above the input's band edge: partials and noise floor continued from the clip and the "
              "fitted modes, or nothing.")
@click.option("--clip", "fitted_clip", type=click.Path(),
              help="When SOURCE is a model: the clip it was fitted on (default: the source file recorded in "
              "the model, read with the recorded channel, start and rate).")
@click.option("--model-out", type=click.Path(), help="When SOURCE is a clip: where to save the fitted model.")
@functools.partial(fit_options, rate_flag="--fit-rate")
@fail_cleanly
def upsample(source, out, subtype, out_rate, low_band, high_band, fitted_clip, model_out, quiet, device, **kw):
    """Write the whole fitted span of SOURCE at --rate HZ: the input's band kept, the band above it
    synthesised from the clip's structure and the fitted modes.

    SOURCE is a model file, or a clip (fitted first, with the same options as `sonode fit`; the
    fit's own rate is then the file's, or --fit-rate).
    """
    from sonode.api import load
    from sonode.io.wav import check_output_path
    from sonode.tasks.render import Rendering

    if out_rate is None:
        raise click.BadParameter("is required: the output rate in Hz", param_hint="--rate")
    check_output_path(out, [source], force=kw["force"])
    if _is_model_file(source):
        fitted = load(source)
    else:
        fitted, _ = run_fit(source, model_out, quiet, device, **kw)
    samples = fitted.upsample(out_rate, low_band=low_band, high_band=high_band, clip=fitted_clip)
    _write_rendering(Rendering(samples=samples, sample_rate=out_rate, start_s=0.0), out, subtype,
                     [source] + ([fitted_clip] if fitted_clip else []), quiet, kw["force"])


def _is_model_file(path: str) -> bool:
    """Model files are torch zip archives; audio files never start with the zip magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


@click.command(name="extrapolate")
@click.argument("model", type=click.Path())
@_out_option
@click.option("--seconds", type=float, required=True, callback=positive(float), help="Length of the continuation.")
@out_rate_option
@click.option("--with-context", is_flag=True, help="Write the reconstruction followed by the continuation.")
@_model_wav_options
def extrapolate_cmd(model, out, seconds, rate, with_context, subtype, device, quiet, force):
    """Continue MODEL's sound for --seconds past the end of the fitted span."""
    from sonode.tasks.render import extrapolate

    _model_to_wav(model, out, subtype, quiet, force, lambda fitted, progress: extrapolate(
        fitted.model, seconds, rate=rate, with_context=with_context, progress=progress))
