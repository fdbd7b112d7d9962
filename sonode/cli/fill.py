"""`sonode fill`: repair gaps, dropouts and clicks in a file."""

from __future__ import annotations

import json

import click

from sonode.cli.common import (
    apply_threads,
    fail_cleanly,
    force_option,
    positive_option,
    quiet_option,
    threads_option,
)
from sonode.limits import MAX_FILL_CONTEXT_S, MAX_TIME_S
from sonode.tasks.fill_methods import DEFAULT_FILL_METHOD, FILL_METHODS, fill_methods_help


@click.command(name="fill")
@click.argument("clip", type=click.Path())
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(),
    help="Output audio file: .wav, .flac or .ogg (the container "
    "follows the extension; rate, channels and, when lossless, subtype are CLIP's: samples outside the gaps "
    "are then copied bit for bit; a lossy CLIP is written losslessly, never re-encoded lossily); the JSON "
    "report goes next to it as <OUT stem>.fill.json.",
)
@click.option(
    "--gap",
    "gaps",
    type=(float, float),
    multiple=True,
    metavar="START END",
    help="A gap to fill, in seconds (repeatable).",
)
@click.option(
    "--detect",
    is_flag=True,
    help="Also find dropouts (runs of identical samples, exact repeats) and "
    "isolated clicks inside sounding passages, and fill them. Detection reads one channel at a time "
    "in 20 s blocks (about 128 B per sample of a block: ~130 MB at 48 kHz), so its memory does not "
    "grow with the file's length.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only list the gaps (given and detected), each with the reason it would be filled, as "
    "JSON on stdout (and one line per gap on stderr); write nothing.",
)
@click.option(
    "--method",
    type=click.Choice(list(FILL_METHODS)),
    default=DEFAULT_FILL_METHOD,
    show_default=True,
    help=fill_methods_help(),
)
@positive_option(
    "--context",
    "context_s",
    kind=float,
    limit=MAX_FILL_CONTEXT_S,
    default=0.5,
    help=f"Audio used on each side of a gap (seconds, at most {MAX_FILL_CONTEXT_S:g}; nothing else of the "
    "clip is read by the filler).",
)
@positive_option(
    "--budget-s",
    kind=float,
    limit=MAX_TIME_S,
    default=10.0,
    help="sonode_fit: fit time per gap (seconds, shared by the two sides).",
)
@click.option(
    "--steps", type=click.IntRange(min=0), help="sonode_fit: cap on optimiser steps per fit."
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed: of the residual drawn into each gap (sonode), of the fits (sonode_fit).",
)
@click.option(
    "--residual-gain",
    type=click.FloatRange(min=0.0, max=1.0),
    default=None,
    help="sonode: scale of the residual added to the most likely trajectory, 0-1 (0: the "
    "trajectory alone; 1, the default: the gap's quiet bins restored to their expected level, "
    "the loud ones left to the trajectory; docs/fill.md).",
)
@threads_option
@quiet_option
@force_option
@fail_cleanly
def fill_cmd(
    clip,
    out,
    gaps,
    detect,
    dry_run,
    method,
    context_s,
    budget_s,
    steps,
    seed,
    residual_gain,
    threads,
    quiet,
    force,
):
    """Repair gaps, dropouts and clicks in CLIP from the audio on both sides.

    Only the samples inside the gaps change. The file is processed block by block (memory does not
    grow with its length, up to 3600 s). A gap at the very start or end of CLIP is filled from
    the one side it has (the report says so).
    """
    from sonode.tasks.fill import FillSettings
    from sonode.tasks.fill_file import fill_file, report_path_for

    if not gaps and not detect:
        raise click.UsageError("give at least one --gap START END, or --detect")
    if out is None and not dry_run:
        raise click.BadParameter("is required (or use --dry-run)", param_hint="-o/--output")
    apply_threads(threads)
    settings = FillSettings(
        method=method, context_s=context_s, budget_s=budget_s, steps=steps, seed=seed
    )
    if residual_gain is not None:
        settings.residual_gain = residual_gain
    report = fill_file(
        clip,
        out,
        list(gaps),
        settings,
        detect=detect,
        dry_run=dry_run,
        force=force,
        on_gap=None if quiet else (lambda line: click.echo(f"sonode fill: {line}", err=True)),
    )
    one_sided = [g for g in report["gaps"] if g["sides"] != "both"]
    for g in one_sided:
        click.echo(
            f"sonode: note: gap {g['start_s']:.4f}-{g['end_s']:.4f} s is at the clip's edge (or next to "
            f"another gap): filled from the {g['sides']} side only",
            err=True,
        )
    if dry_run:
        if not quiet:  # one line per gap on stderr; the JSON on stdout stays machine-readable
            for i, g in enumerate(report["gaps"], 1):
                click.echo(
                    f"gap {i}: {g['start_s']:.4f}-{g['end_s']:.4f} s ({g['samples']} samples, "
                    f"{g['kind']}): {g['reason']}",
                    err=True,
                )
        click.echo(json.dumps(report, indent=2))
    elif not quiet:
        click.echo(
            f"wrote {out} ({len(report['gaps'])} gap(s) filled) and {report_path_for(out)}",
            err=True,
        )
