"""Writing a model's rendering as a WAV file: the options and the checks `render` and `extrapolate`
share (the output's room is checked before the model is loaded and again once its size is known)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from sonode.cli.common import EXIT_DIVERGED, device_option, fail_cleanly, force_option


def write_rendering(
    rendering, out: str, subtype: str, protect: list[str], quiet: bool, force: bool
) -> None:
    """Write ``rendering`` (a `sonode.tasks.render.Rendering`) to ``out`` atomically, never over
    ``protect``; say so unless ``quiet``; exit EXIT_DIVERGED after writing a cut free run."""
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


def progress_bar(quiet: bool):
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


def model_wav_options(f):
    """The options that `render` and `extrapolate` end with: --subtype, --device, --quiet, --force, --debug."""
    for decorator in reversed(
        [
            subtype_option,
            device_option,
            click.option("--quiet", is_flag=True),
            force_option,
            fail_cleanly,
        ]
    ):
        f = decorator(f)
    return f


def model_to_wav(model: str, out: str, subtype: str, quiet: bool, force: bool, read, span) -> None:
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
    write_rendering(read(fitted, progress_bar(quiet)), out, subtype, [model], quiet, force)


WAV_BYTES = {"FLOAT": 4, "PCM_16": 2, "PCM_24": 3}
