"""Many clips: independent fits planned here and run on a Dask cluster (`sonode fit CLIP... / DIR`).

The client (the `sonode fit` process) expands the inputs, gives every clip a unique output stem,
checks every output path *before any fit starts* (no output may be an input, two clips may not
share outputs, an existing file is replaced only if sonode wrote it or with ``force``), skips clips
whose outputs are already complete, and submits one task per remaining clip. A task
(`run_fit_job`) runs on a worker: it fits the clip with a resumable checkpoint beside its model,
writes the four outputs atomically exactly as a single `sonode fit` does, and returns one summary
row; a clip that fails returns its message instead of raising, so it fails alone. When a worker
dies mid-fit, the scheduler reruns its task on another worker, which resumes from the checkpoint.

Inputs and outputs are plain paths: on a multi-machine cluster they must be on storage every
worker sees, under the same path. Dask itself is imported only in `fit_many` (sonode.batch.cluster).
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sonode.batch.cluster import SCHEDULER_ENV
from sonode.batch.outputs import (
    OUTPUT_KINDS as OUTPUT_KINDS,  # the names moved to outputs.py and summary.py stay importable here
    FitJob,
    check_fit_outputs,
    clip_fit_output_bytes,
    fit_output_bytes as fit_output_bytes,
    fit_output_paths as fit_output_paths,
    write_fit_outputs,
)
from sonode.batch.summary import (
    SUMMARY_STEM as SUMMARY_STEM,
    skipped_row,
    status_line,
    summary_paths,
    summary_row,
    write_summary,
)
from sonode.errors import OutputPathError, SonodeError
from sonode.io.fileutil import same_file, written_by_sonode

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def expand_inputs(args: Iterable[str | Path]) -> list[Path]:
    """Files given, plus the audio files (.wav/.flac/.ogg) under each folder given (recursively,
    sorted, hidden names skipped). Files inside a folder that sonode wrote (e.g. an earlier
    <stem>.recon.wav when outputs go beside the inputs) are not inputs. Duplicates are dropped.

    Raises:
        SonodeError: a path does not exist, or a folder holds no audio file.
    """
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            clips = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in AUDIO_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and not written_by_sonode(p)
            )
            if not clips:
                raise SonodeError(
                    f"folder {path} holds no audio file ({', '.join(AUDIO_SUFFIXES)})"
                )
            found += clips
        elif path.exists():
            found.append(path)
        else:
            raise SonodeError(f"no such clip or folder: {path}")
    unique: list[Path] = []
    for path in found:
        if not any(same_file(path, seen) for seen in unique):
            unique.append(path)
    return unique


def plan_fit_jobs(clips: list[Path], out_dir: str | Path, force: bool) -> list[FitJob]:
    """Give each clip a unique output stem and check all outputs before any fit starts.

    Clips sharing a stem (e.g. a/take.wav and b/take.wav) get their parent folders prefixed,
    "a__take" and "b__take", as many levels as needed. Names are compared ignoring case, as on
    macOS and Windows file systems.

    Raises:
        OutputPathError: two clips would still share outputs, an output is one of the clips, or an
            output exists and was not written by sonode (unless ``force``).
    """
    stems = {clip: clip.stem for clip in clips}
    for depth in range(1, 64):
        counts: dict[str, int] = {}
        for stem in stems.values():
            counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
        clashing = [c for c, s in stems.items() if counts[s.lower()] > 1]
        if not clashing:
            break
        for clip in clashing:
            parents = clip.resolve().parent.parts[1:][-depth:]
            stems[clip] = "__".join([*parents, clip.stem])
    else:
        raise OutputPathError(
            "refusing to start: several clips would write the same outputs; rename them"
        )
    by_stem: dict[str, Path] = {}
    for clip, stem in stems.items():
        if stem.lower() in by_stem:
            raise OutputPathError(
                f"refusing to start: {by_stem[stem.lower()]} and {clip} would both write "
                f"{stem}.* in {out_dir}; rename one of them"
            )
        by_stem[stem.lower()] = clip
    jobs = [FitJob(str(clip), stem, str(out_dir)) for clip, stem in stems.items()]
    for job in jobs:
        check_fit_outputs(job.paths(), clips, force)
    return jobs


def is_complete(job: FitJob) -> bool:
    """Whether the clip's outputs are all there from a completed fit: a sonode model and report, its
    reconstruction, and no checkpoint (a checkpoint beside the model means the fit did not finish)."""
    paths = job.paths()
    return (
        written_by_sonode(paths["model"])
        and written_by_sonode(paths["report"])
        and written_by_sonode(paths["recon"])
        and not paths["checkpoint"].exists()
    )


def run_fit_job(
    job: FitJob,
    fit_kw: dict[str, Any],
    extra: dict[str, Any],
    force: bool,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fit one clip and write its outputs (runs on a Dask worker; never raises for a bad clip).

    If a checkpoint of this clip is there (its previous worker died), the fit resumes from it; a
    checkpoint of another clip or other options is replaced by a fresh fit.

    Args:
        job: the clip and its outputs.
        fit_kw: keyword arguments of `sonode.api.fit` (options, threads, checkpoint_every_s).
        extra: added to the JSON report (e.g. {"device": "cpu"}).
        force: replace existing files sonode did not write.
        threads: torch threads of this fit.

    Returns:
        A `summary_row` with status "ok", or "failed" and the one-line error.
    """
    from sonode.api import fit
    from sonode.model.checkpoint import CheckpointError

    start = time.perf_counter()
    paths = job.paths()
    _remove_temporaries(paths)  # a worker killed while writing leaves its temporary file behind
    resumed = paths["checkpoint"].exists()
    fit_kw = {**fit_kw, "threads": threads}
    try:
        check_fit_outputs(paths, [job.clip], force)
        try:
            fitted = fit(
                job.clip, checkpoint_path=paths["checkpoint"], **{**fit_kw, "resume": resumed}
            )
        except CheckpointError:
            if not resumed:
                raise
            resumed = False
            fitted = fit(
                job.clip, checkpoint_path=paths["checkpoint"], **{**fit_kw, "resume": False}
            )
        write_fit_outputs(fitted, job.clip, paths, extra, force)
    except Exception as err:  # noqa: BLE001 -- a bad clip fails alone; its message goes in the summary
        message = (
            str(err)
            if isinstance(err, (SonodeError, ValueError, OSError))
            else f"{type(err).__name__}: {err}"
        )
        return summary_row(
            job,
            "failed",
            error=" ".join(message.split()),
            wall_time_s=time.perf_counter() - start,
            resumed=resumed,
        )
    return summary_row(
        job, "ok", fitted.info, wall_time_s=time.perf_counter() - start, resumed=resumed
    )


def _remove_temporaries(paths: dict[str, Path]) -> None:
    """Delete leftover temporaries of `sonode.io.fileutil.atomic_write` (".<name>.<random><suffix>")."""
    for path in paths.values():
        for tmp in path.parent.glob(f".{path.name}.*"):
            tmp.unlink(missing_ok=True)


def fit_many(
    jobs: list[FitJob],
    fit_kw: dict[str, Any],
    extra: dict[str, Any],
    force: bool,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run `run_fit_job` for every job on a Dask cluster; rows in the order of ``jobs``.

    See `sonode.batch.cluster.map_on_cluster` for ``scheduler`` and ``workers``; ``fit_kw["threads"]``
    (torch threads per fit; None: the cores per concurrent fit) is passed to it as ``threads``.
    """
    from sonode.batch.cluster import map_on_cluster

    def failed(job: FitJob, message: str) -> dict[str, Any]:
        return summary_row(job, "failed", error=message)

    fit_kw = dict(fit_kw)
    threads = fit_kw.pop("threads", None)
    return map_on_cluster(
        run_fit_job,
        jobs,
        fit_kw,
        extra,
        force,
        scheduler=scheduler,
        workers=workers,
        threads=threads,
        on_failure=failed,
        on_result=on_row,
    )


def fit_batch(
    inputs: list[str],
    out_dir: str | Path,
    fit_kw: dict[str, Any],
    extra: dict[str, Any],
    *,
    force: bool,
    scheduler: str | None,
    workers: int | None,
    quiet: bool,
) -> int:
    """`sonode fit CLIP... / DIR`: plan, skip complete clips, fit the rest on the cluster, write the
    summary; progress (a bar over clips and one status line per clip) goes to stderr.

    Returns:
        The number of clips that failed.
    """
    import click

    clips = expand_inputs(inputs)
    jobs = plan_fit_jobs(clips, out_dir, force)
    from sonode.io.outputs import OutputPlan

    rows: dict[FitJob, dict[str, Any]] = {}
    if not force:
        rows = {job: skipped_row(job) for job in jobs if is_complete(job)}
    todo = [job for job in jobs if job not in rows]
    # Before any fit: a summary that cannot be written, or outputs the disk has no room for
    plan = OutputPlan(clips, force)
    for path in summary_paths(out_dir):
        plan.add(path, 1 << 20)
    from sonode.model.fit_size import fit_span

    # each clip's header read once: (samples, fitting rate) for the output sizes and the workers
    spans = [fit_span(job.clip, fit_kw.get("rate"), fit_kw.get("duration_s")) for job in todo]
    for job, (n_samples, _) in zip(todo, spans, strict=True):
        for kind, size in clip_fit_output_bytes(job.clip, fit_kw, n_samples).items():
            plan.add(job.paths()[kind], size)
    plan.check()
    if scheduler:
        from sonode.batch.cluster import check_scheduler

        check_scheduler(scheduler)
    echo = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    echo(
        f"sonode: {len(jobs)} clip(s): {len(rows)} already complete (--force refits them), {len(todo)} to fit; "
        f"outputs in {out_dir}"
    )
    if todo and not (scheduler or os.environ.get(SCHEDULER_ENV)):
        from sonode.batch.memory import fit_workers

        workers, note = fit_workers(spans, fit_kw, workers)
        if note:
            click.echo(note, err=True)  # also with --quiet: it changes how long the batch takes
    for index, job in enumerate(rows, 1):
        echo(status_line(index, len(jobs), rows[job]))
    if todo:
        with click.progressbar(
            length=len(todo), label="clips", file=io.StringIO() if quiet else sys.stderr
        ) as bar:
            done = [len(rows)]

            def show(row: dict[str, Any]) -> None:
                done[0] += 1
                # On a terminal, clear the bar's line first; the bar redraws below the status line.
                echo(
                    ("\r\033[K" if sys.stderr.isatty() else "")
                    + status_line(done[0], len(jobs), row)
                )
                bar.update(1)

            for job, row in zip(
                todo,
                fit_many(
                    todo, fit_kw, extra, force, scheduler=scheduler, workers=workers, on_row=show
                ),
                strict=False,
            ):
                rows[job] = row
    ordered = [rows[job] for job in jobs]
    csv_path, json_path = write_summary(ordered, out_dir, force)
    failed = sum(row["status"] == "failed" for row in ordered)
    echo(
        f"sonode: {len(jobs) - failed} of {len(jobs)} clip(s) done, {failed} failed; summary in {csv_path} "
        f"and {json_path}"
    )
    return failed


def eval_many(scheduler: str | None, workers: int | None) -> Callable[..., list[dict[str, Any]]]:
    """A ``map_clips`` for `sonode.evaluation.evaluate.evaluate` that evaluates the clips on a Dask cluster.

    Unlike a batch of fits, an evaluation needs every clip: the first failure raises SonodeError.
    """
    from sonode.batch.cluster import map_on_cluster

    def map_clips(evaluate_clip, paths, options, folder):
        def failed(path, message: str):
            raise SonodeError(f"evaluating {path} failed: {message}")

        return map_on_cluster(
            _eval_job,
            list(paths),
            evaluate_clip,
            options,
            folder,
            scheduler=scheduler,
            workers=workers,
            threads=options.threads,
            on_failure=failed,
        )

    return map_clips


def _eval_job(path, evaluate_clip, options, folder, threads: int | None = None) -> dict[str, Any]:
    from dataclasses import replace

    return evaluate_clip(path, replace(options, threads=threads), folder)
