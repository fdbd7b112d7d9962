"""`sonode eval`: sonode against the baselines on clips (or the gap-filling task)."""

from __future__ import annotations

from pathlib import Path

import click

from sonode.cli.common import (
    apply_threads,
    command_line,
    fail_cleanly,
    force_option,
    positive_option,
    progress_printer,
    quiet_option,
    threads_option,
)
from sonode.limits import MAX_EVAL_POSITIONS, MAX_TIME_S


@click.command(name="eval")
@click.argument("clips", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--output",
    "report_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for results.json, results.md and the pictures.",
)
@positive_option(
    "--rate",
    "low_rate",
    kind=int,
    limit=192000,
    default=16000,
    help="Input rate of the upsampling task (the clip's own rate is the truth).",
)
@positive_option(
    "--budget",
    "budget_s",
    kind=float,
    limit=MAX_TIME_S,
    default=60.0,
    help="Training budget of each fit (seconds); two fits per clip.",
)
@positive_option(
    "--horizon-s", kind=float, default=0.2, help="Length of the continuation task (seconds)."
)
@positive_option(
    "--duration",
    "duration_s",
    kind=float,
    limit=600,
    default=1.0,
    help="Part of each clip used, from its start (seconds).",
)
@threads_option
@click.option(
    "--scheduler", help="Evaluate the clips on an existing Dask scheduler, e.g. tcp://HOST:8786."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Evaluate the clips on an embedded Dask cluster of "
    "this many worker processes [default: one after another here, as the budgets are wall-clock].",
)
@click.option(
    "--task",
    type=click.Choice(["all", "fill"]),
    default="all",
    show_default=True,
    help="all: upsampling, continuation, reconstruction. fill: gaps of 10/20/40/80 ms punched into "
    "each clip (read at --rate), filled by sonode (--budget per gap), gap-wise Janssen and two-sided Burg.",
)
@click.option(
    "--positions",
    type=click.IntRange(1, MAX_EVAL_POSITIONS),
    default=5,
    show_default=True,
    help="--task fill: gap positions per clip and length, inside the sounding part.",
)
@click.option(
    "--html",
    is_flag=True,
    help="Also write a listening page, index.html with media/ in the folder: "
    "truth, sonode and the baselines side by side (--task all).",
)
@quiet_option
@force_option
@fail_cleanly
def eval_cmd(
    clips,
    report_dir,
    low_rate,
    budget_s,
    horizon_s,
    duration_s,
    threads,
    scheduler,
    workers,
    task,
    positions,
    html,
    quiet,
    force,
):
    """Score sonode against the baselines on CLIPS: upsampling, continuation, reconstruction (or gap filling)."""
    from sonode.evaluation.evaluate import EvalOptions, evaluate, results_markdown

    if task == "fill" and html:
        raise click.UsageError(
            "--html writes the page of --task all (the fill comparison is on it too)"
        )
    if task == "fill":
        from sonode.evaluation.evaluate import check_eval_inputs
        from sonode.evaluation.evaluate_fill import (
            evaluate_fill,
            fill_markdown,
            results_plan,
            write_results,
        )
        from sonode.tasks.fill import FillSettings

        check_eval_inputs(list(clips), low_rate, None)
        results_plan(clips, report_dir, force).check()  # before any work, and again before writing
        apply_threads(threads)
        results = evaluate_fill(
            list(clips),
            low_rate,
            FillSettings(budget_s=budget_s),
            n_positions=positions,
            on_gap=None if quiet else (lambda g: click.echo(f"sonode eval: {g}", err=True)),
        )
        write_results(results, report_dir, clips, force)
        click.echo(fill_markdown(results))
        return

    options = EvalOptions(
        low_rate=low_rate,
        budget_s=budget_s,
        horizon_s=horizon_s,
        duration_s=duration_s,
        threads=threads,
        html=html,
    )
    map_clips = None
    if scheduler or workers:
        from sonode.batch.jobs import eval_many

        map_clips = eval_many(scheduler, workers)
    results = evaluate(
        list(clips),
        report_dir,
        options,
        on_clip=None if quiet else (lambda c: click.echo(f"\nsonode eval: {c}", err=True)),
        on_epoch=progress_printer(quiet, budget_s, None),
        force=force,
        map_clips=map_clips,
        command=command_line(click.get_current_context()),
    )
    click.echo("\n" + results_markdown(results))
    if not quiet:
        page = " and the listening page index.html" if html else ""
        click.echo(
            f"wrote {Path(report_dir) / 'results.json'}, results.md, pictures{page}", err=True
        )
