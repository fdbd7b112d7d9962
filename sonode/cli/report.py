"""`sonode report`: a self-contained listening page (DIR/index.html + DIR/media/) for models or clips."""

from __future__ import annotations

import time
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

#: Clips above this rate are fitted at it (as `sonode eval --rate`): the band above is then the
#: upsampling task, with the source file as its truth.
DEFAULT_FIT_RATE_HZ = 16000


def _truth(path: str, source: dict, duration_s: float, fitted_rate: int):
    """The source at its own rate over the fitted span, when that rate is above the fit's (else None)."""
    from sonode.io.clip import read_clip

    if not path or not Path(path).is_file() or int(source.get("source_rate") or 0) <= fitted_rate:
        return None
    clip = read_clip(
        path,
        channel=source.get("channel", "mix"),
        start_s=float(source.get("start_s", 0.0)),
        duration_s=duration_s,
    )
    return clip.samples, clip.sample_rate


def _check_upsampling(n_low: int, low_rate: int, source_rate: int, rate: int | None) -> None:
    """Refuse (LimitError, one line) the page's upsampling section when its output would not fit in
    memory: to the source's own rate when above the fit's, else to --rate or the default."""
    from sonode.evaluation.report_run import default_upsampling_rate
    from sonode.tasks.upsample import check_upsample_size

    high = source_rate if source_rate > low_rate else (rate or default_upsampling_rate(low_rate))
    check_upsample_size(n_low, low_rate, high)


def _check_clip_upsampling(path, fit_rate: int, start_s, duration_s, rate) -> None:
    """`_check_upsampling` of a CLIP from its header (as `_fitted` will fit it), before its fit;
    a file that is not readable audio is refused here, before any fit (`audio_info`)."""
    from sonode.io.checks import audio_info

    info = audio_info(Path(path))
    low_rate = fit_rate if info.samplerate > fit_rate else info.samplerate
    seconds = max(0.0, info.duration - (start_s or 0.0))
    seconds = min(seconds, duration_s) if duration_s else seconds
    _check_upsampling(int(seconds * low_rate), low_rate, info.samplerate, rate)


def _gap_list(ctx, param, value):
    for ms in value:
        if not 1 <= ms <= 500:
            raise click.BadParameter(f"gap lengths must be 1..500 ms, got {ms}")
    return tuple(value)


@click.command(name="report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    "folder",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder for index.html, report.json, media/ and the models of CLIP inputs (open index.html "
    "in a browser).",
)
@positive_option(
    "--budget",
    "budget_s",
    kind=float,
    default=60.0,
    help="CLIP inputs: training budget of the fit (seconds).",
)
@click.option(
    "--steps", type=click.IntRange(min=0), help="CLIP inputs: stop the fit after this many steps."
)
@positive_option(
    "--fit-rate",
    kind=int,
    default=DEFAULT_FIT_RATE_HZ,
    help="CLIP inputs: fit at this rate when the clip's is higher (the clip is then the upsampling truth).",
)
@click.option(
    "--start", "start_s", type=float, default=0.0, show_default=True, help="CLIP inputs: start (s)."
)
@positive_option(
    "--duration",
    "duration_s",
    kind=float,
    help="CLIP inputs: length to fit (s) [default: to the end of the file].",
)
@positive_option(
    "--rate",
    kind=int,
    help="Upsampling output rate in Hz [default: the source "
    "file's when above the fit's (with it as the truth), else 48000 or twice the fit's rate].",
)
@positive_option(
    "--horizon-s", kind=float, default=0.5, help="Length of the continuation (seconds)."
)
@positive_option(
    "--context-s",
    kind=float,
    default=0.5,
    help="Seconds of the clip's end heard before the continuation.",
)
@click.option(
    "--gap-ms",
    "gaps_ms",
    type=int,
    multiple=True,
    default=(20, 80),
    show_default=True,
    callback=_gap_list,
    help="Gaps made for the fill comparison (repeatable).",
)
@click.option("--no-fill", is_flag=True, help="Leave out the fill comparison.")
@click.option(
    "--audio",
    "audio_format",
    type=click.Choice(["flac", "wav"]),
    default="flac",
    show_default=True,
    help="Audio format of the page (16-bit; wav for browsers without FLAC).",
)
@positive_option(
    "--excerpt-s",
    kind=float,
    default=4.0,
    help="Longer versions are heard as their loudest excerpt of this length; full files are linked.",
)
@threads_option
@quiet_option
@force_option
@fail_cleanly
def report_cmd(
    inputs,
    folder,
    budget_s,
    steps,
    fit_rate,
    start_s,
    duration_s,
    rate,
    horizon_s,
    context_s,
    gaps_ms,
    no_fill,
    audio_format,
    excerpt_s,
    threads,
    quiet,
    force,
):
    """Write a listening page for each MODEL or CLIP (fitted first): DIR/index.html (-o DIR) with its media.

    A CLIP's model is saved as DIR/<stem>.sonode.

    Per clip: the input, reconstruction and untrained start; upsampling beside sinc and shaped
    noise; the continuation beside the best Burg order; made gaps filled beside Janssen; the
    training curve, the model picture and a numbers table. The page works offline from DIR: no server, no network.
    """
    from sonode.evaluation.report_media import MediaWriter, check_report_folder
    from sonode.evaluation.report_run import (
        ReportOptions,
        report_section,
        run_info,
        write_page,
    )
    from sonode.io.fileutil import write_json
    from sonode.io.model_file import is_model_file
    from sonode.io.wav import check_output_path

    began = time.perf_counter()
    stems: dict[str, str] = {}
    for path in inputs:
        stem = Path(path).stem
        if stem.lower() in stems:
            raise click.UsageError(
                f"{stems[stem.lower()]} and {path} have the same name; their media would collide"
            )
        stems[stem.lower()] = path
    out = check_report_folder(folder, inputs, force)
    for path in (
        inputs
    ):  # a clip's fit is kept beside the page, for `sonode report MODEL` and the other commands
        if not is_model_file(path):
            check_output_path(out / f"{Path(path).stem}.sonode", inputs, force=force)
    check_output_path(out / "report.json", inputs, force=force)
    apply_threads(threads)
    options = ReportOptions(
        rate=rate,
        horizon_s=horizon_s,
        context_s=context_s,
        gaps_ms=() if no_fill else gaps_ms,
        audio_format=audio_format,
        excerpt_s=excerpt_s,
    )
    writer = MediaWriter(
        out, audio_format=audio_format, excerpt_s=excerpt_s, protect=tuple(inputs), force=force
    )
    for path in inputs:  # before any fit: a page too large to make is refused now (#30)
        if not is_model_file(path):
            _check_clip_upsampling(path, fit_rate, start_s, duration_s, rate)
    sections = []
    for path in inputs:
        cpu = time.process_time()
        fitted, fit_time_s = _fitted(path, budget_s, steps, fit_rate, start_s, duration_s, quiet)
        fit_cpu_s = None if fit_time_s is None else time.process_time() - cpu
        if fit_time_s is not None:
            fitted.save(out / f"{Path(path).stem}.sonode")
        source = fitted.info.get("source", {})
        if fit_time_s is None:  # a model: sized before its source is read at the source's rate
            source_path = source.get("path")
            _check_upsampling(
                fitted.model.config.n_samples,
                fitted.sample_rate,
                int(source.get("source_rate") or 0)
                if source_path and Path(source_path).is_file()
                else 0,
                rate,
            )
        truth = _truth(
            path if fit_time_s is not None else source.get("path"),
            source,
            fitted.duration_s,
            fitted.sample_rate,
        )
        if not quiet:
            click.echo(f"sonode report: {path}: writing the page's media", err=True)
        sections.append(
            report_section(writer, Path(path).stem, fitted, options, truth, fit_time_s, fit_cpu_s)
        )
    run = run_info(
        command_line(click.get_current_context()),
        {
            "budget_s": budget_s,
            "steps": steps,
            "fit_rate": fit_rate,
            "start_s": start_s,
            "duration_s": duration_s,
            **options.__dict__,
        },
        sections,
        time.perf_counter() - began,
    )
    title = "sonode listening report: " + ", ".join(s["title"] for s in sections)
    page = write_page(out, title, sections, run, protect=tuple(inputs), force=force)
    write_json(
        out / "report.json",
        {
            "run": run,
            "clips": [
                {"clip": s["title"], "numbers": s["numbers"], "timings": s["timings"]}
                for s in sections
            ],
        },
    )
    if not quiet:
        click.echo(
            f"wrote {page} ({len(writer.written)} media files in {out / 'media'}); open it in a browser",
            err=True,
        )


def _fitted(
    path: str,
    budget_s: float,
    steps: int | None,
    fit_rate: int,
    start_s: float,
    duration_s: float | None,
    quiet: bool,
):
    """(Fitted, fit wall time in s) for a clip, fitted here; (Fitted, None) for a model file."""
    from sonode.api import fit, load
    from sonode.io.checks import audio_info
    from sonode.io.model_file import is_model_file

    if is_model_file(path):
        return load(path), None
    native = audio_info(Path(path)).samplerate
    if not quiet:
        click.echo(f"sonode report: fitting {path} (budget {budget_s:g} s)", err=True)
    begin = time.perf_counter()
    options = (
        {"max_time_s": budget_s} if steps is None else {"max_time_s": budget_s, "steps": steps}
    )
    fitted = fit(
        path,
        rate=fit_rate if native and native > fit_rate else None,
        start_s=start_s,
        duration_s=duration_s,
        on_epoch=progress_printer(quiet, budget_s, steps),
        **options,
    )
    if not quiet:
        click.echo("", err=True)
    return fitted, time.perf_counter() - begin
