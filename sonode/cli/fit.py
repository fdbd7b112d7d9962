"""`sonode fit`: one clip here (progress, Ctrl-C keeps the best model), several on Dask."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import click

from sonode.cli.common import (
    EXIT_INTERRUPTED,
    OUTPUT_DIR,
    Interrupted,
    OutOfTime,
    db,
    db_text,
    fail_cleanly,
    progress_printer,
)
from sonode.cli.fit_options import fit_options
from sonode.cli.stop_flag import StopFlag


def run_fit(
    clip: str, model_out: Path | None, quiet: bool, device: str, force: bool, also_writes=(), **kw
) -> tuple[Any, Path]:
    """Fit ``clip`` and write model, reconstruction, report and loss curve. Returns (fitted, model path).

    Every output (and ``also_writes``, what the caller will write afterwards) is checked before the
    clip is read (`sonode.io.outputs.OutputPlan`).

    A checkpoint <model>.ckpt is written while fitting (--checkpoint-every) and deleted once the
    outputs of a completed fit are written; an interrupted fit keeps it for --resume.
    """
    from sonode.api import fit
    from sonode.batch.outputs import check_fit_outputs, clip_fit_output_bytes, fit_output_paths

    model_path = Path(model_out) if model_out else OUTPUT_DIR / f"{Path(clip).stem}.sonode"
    paths = fit_output_paths(model_path)
    _check_fit_shape(kw)
    check_fit_outputs(paths, [clip], force, also_writes, clip_fit_output_bytes(clip, kw))
    if device == "cuda" and kw.get("modes", "global") != "global" and not quiet:
        click.echo(
            f"sonode: the local model trains on the CPU (--modes {kw['modes']}); "
            "--device cuda applies to the global model",
            err=True,
        )
    checkpoint_path = paths["checkpoint"]
    if not quiet:
        action = f"resuming {checkpoint_path}" if kw["resume"] else f"fitting {clip}"
        if not kw["resume"] and checkpoint_path.exists():
            action += f" (replacing the checkpoint of an earlier fit, {checkpoint_path}; --resume continues it)"
        click.echo(
            f"sonode: {action} (budget {kw['max_time_s']:.0f} s; the model is checked against the "
            f"reference solver every 25 steps and only checked parameters are kept; Ctrl-C stops and "
            "keeps them)",
            err=True,
        )
    # matplotlib's import took 2.2 s of the curve's 4.3 s at load ~6: done beside the fit instead
    threading.Thread(target=_import_plotting, daemon=True).start()
    # The flag covers the writing of the outputs too, so a signal then cannot leave them half done.
    with StopFlag(kw["max_time_s"], f"reading, identifying and checking {clip}") as stop:
        fitted = fit(
            clip,
            on_epoch=progress_printer(quiet, kw["max_time_s"], kw["steps"]),
            should_stop=stop,
            checkpoint_path=checkpoint_path,
            device=device,
            **kw,
        )
        stop.defer()
        if not quiet:
            click.echo("", err=True)
        report = fitted.info["fit"]
        unwritten, why = _write_outputs(stop, fitted, clip, paths, {"device": device}, force)
    if not quiet:
        click.echo(
            f"  SNR {db(report['snr_db'], 2)} dB (initial {db(report['initial_snr_db'], 2)} dB, "
            f"discretisation check {db(report['discretisation_snr_db'], 1)} dB) after {report['epochs']} steps "
            f"in {report['wall_time_s']:.1f} s; gradient: {report['gradient']}; energy above "
            f"Nyquist {_energy_text(report)}",
            err=True,
        )
        written = [
            p
            for p in (model_path, paths["recon"], paths["report"], paths["curve"])
            if p not in unwritten
        ]
        click.echo(f"  wrote {', '.join(map(str, written))}", err=True)
    _warn_discretisation(report)
    if unwritten:
        click.echo(
            f"sonode: note: {' and '.join(map(str, unwritten))} not written ({why}; no earlier "
            f"fit's left in their place); `sonode render {model_path}` makes the reconstruction, "
            "`sonode plot` the loss curve",
            err=True,
        )
    if stop.signal is not None:
        resume = (
            f"; to continue, rerun the same command with --resume (checkpoint {checkpoint_path})"
            if checkpoint_path.exists()
            else ""
        )
        click.echo(
            f"sonode: interrupted by {stop.name}; the best model so far is saved in {model_path}{resume}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    return fitted, model_path


def _write_outputs(stop: StopFlag, fitted, clip: str, paths: dict, extra: dict, force: bool):
    """Write the model and its report, then, unless a signal came, the reconstruction and the loss
    curve (seconds: a render, matplotlib), which a signal or the end of --max-time's grace
    abandons. Returns (the paths not written, why).

    Before, a signal waited for all four: 2-15 s from Ctrl-C to the exit (#30)."""
    from sonode.batch.outputs import ESSENTIAL_OUTPUTS, check_fit_outputs, fit_output_writers

    check_fit_outputs(paths, [clip], force)
    writers = fit_output_writers(fitted, clip, paths, extra, force)
    for _, write in writers[:ESSENTIAL_OUTPUTS]:
        write()
    extras, written, why = writers[ESSENTIAL_OUTPUTS:], 0, "stopped"
    try:
        if stop.signal is None:
            stop.abort()
            for _, write in extras:
                write()
                written += 1
        stop.settle()
    except Interrupted as err:  # the atomic writer removed its temporary file
        stop.signal = err.signum
    except OutOfTime as err:
        why = str(err)
    stop.settle()
    unwritten = [path for path, _ in extras[written:]]
    for path in unwritten:  # an earlier fit's (the check allowed replacing it): not this one's
        path.unlink(missing_ok=True)
    return unwritten, why


def _energy_text(report: dict) -> str:
    seconds = str(report.get("time_breakdown_s", {}).get("energy_above_nyquist"))
    if seconds.startswith("skipped"):  # "skipped (stopped)" or "(--max-time)"
        return "not measured" + seconds[len("skipped") :]
    return db_text(report.get("energy_above_nyquist_db"))


def _import_plotting() -> None:
    import sonode.plot.figures  # noqa: F401


def _check_fit_shape(kw: dict) -> None:
    if kw["overlap_samples"] > kw["hop_samples"]:
        raise click.BadParameter(
            f"--overlap ({kw['overlap_samples']}) must not exceed --hop ({kw['hop_samples']})",
            param_hint="--overlap",
        )
    if kw["max_latent_dim"] % 2:
        raise click.BadParameter(
            f"must be even, got {kw['max_latent_dim']}", param_hint="--max-latent-dim"
        )
    if kw["continuation_steps"]:
        click.echo(
            "sonode: note: --continuation-steps no longer has an effect (the continuation state is "
            "fitted in closed form) and will be removed",
            err=True,
        )
        kw["continuation_steps"] = 0


def _warn_discretisation(report: dict) -> None:
    from sonode.model.train import DISCRETISATION_GOAL_DB

    if report.get("discretisation_fallback"):
        click.echo(
            "sonode: WARNING: the trained model changed when solved more finely (it had learned its "
            "discretisation); the identified linear model was kept instead",
            err=True,
        )
    if (
        report["discretisation_snr_db"] is not None
        and report["discretisation_snr_db"] < DISCRETISATION_GOAL_DB
    ):
        click.echo(
            f"sonode: WARNING: the training solve and a fine solve differ (agreement "
            f"{db(report['discretisation_snr_db'], 1)} dB < {DISCRETISATION_GOAL_DB:.0f} dB): the model has "
            "learned its discretisation, so upsampling it is not meaningful",
            err=True,
        )


@click.command()
@click.argument("clips", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option(
    "-o",
    "--output",
    "model_out",
    type=click.Path(),
    help="Model file (default outputs/<stem>.sonode).",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Several clips: output folder [default: outputs/]; it may be the clips' own folder.",
)
@click.option(
    "--scheduler",
    help="Several clips: address of an existing Dask scheduler, e.g. tcp://HOST:8786 "
    "[default: $DASK_SCHEDULER_ADDRESS, else an embedded cluster on this machine].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Several clips: fits side by side on the embedded cluster [default: one per core, at most "
    "one per clip (with --threads T, cores / T), fewer when that many of the largest clips would "
    "not fit in the memory budget, SONODE_MEMORY_BUDGET (2 GiB); one fit at a time runs in a child "
    "process, without a cluster].",
)
@fit_options
@fail_cleanly
def fit(clips, model_out, out_dir, scheduler, workers, quiet, device, **kw):
    """Fit a neural ODE decoder to CLIP (WAV/FLAC/OGG), or to several clips / folders of clips.

    Writes the model, the reconstruction <stem>.recon.wav, the report <stem>.fit.json and the loss
    curve <stem>.fit.png next to the model (default folder: outputs/).

    Several clips (or a folder, searched recursively, or --scheduler/--out-dir/--workers) run as
    independent fits on a Dask cluster, writing the same files per clip in --out-dir plus the
    summary sonode-batch.csv / .json; clips already complete are skipped (--force refits them),
    and the exit code is the number of clips that failed. See docs/batch.md.
    """
    if len(clips) == 1 and not Path(clips[0]).is_dir() and not (out_dir or scheduler or workers):
        run_fit(clips[0], model_out, quiet, device, **kw)
        return
    _fit_batch(clips, model_out, out_dir, scheduler, workers, quiet, device, **kw)


def _fit_batch(clips, model_out, out_dir, scheduler, workers, quiet, device, force, **kw) -> None:
    from sonode.batch.jobs import fit_batch

    if model_out:
        raise click.UsageError(
            "-o names one model file; with several clips give the output folder with --out-dir"
        )
    _check_fit_shape(kw)
    kw.pop("resume")  # a batch always resumes a clip whose checkpoint is there
    try:
        failed = fit_batch(
            list(clips),
            out_dir or OUTPUT_DIR,
            {**kw, "device": device},
            {"device": device},
            force=force,
            scheduler=scheduler,
            workers=workers,
            quiet=quiet,
        )
    except KeyboardInterrupt:
        click.echo(
            "\nsonode: interrupted; rerun the same command to continue (finished clips are skipped, "
            "unfinished ones resume from their checkpoints)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(min(failed, 100))
