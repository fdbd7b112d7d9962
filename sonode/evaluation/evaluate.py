"""Evaluation harness: sonode next to the baselines a practitioner would use, on the same audio.

For each clip (its own rate is the truth, e.g. 48 kHz):
- **upsampling**: band-limit it to ``low_rate`` (the input), fit on that, render back at the clip's
  rate, and score sonode and every upsampler of `sonode.evaluation.baselines` against the truth (SNR, LSD,
  LSD below/above the input's Nyquist);
- **continuation**: fit on all but the last ``horizon_s`` of the input, continue for ``horizon_s``
  and score SNR over the first 5/20/50 ms and LSD over the whole horizon, for sonode and the LPC
  continuations;
- **reconstruction**: SNR of the full fit, its time, and its discretisation check.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sonode.api import Fitted, fit
from sonode.dsp.resample import output_length
from sonode.errors import OutputPathError
from sonode.evaluation.baselines import CONTINUATIONS, UPSAMPLERS
from sonode.evaluation.horizon import clip_horizon, write_horizon
from sonode.evaluation.results import medians, results_markdown as results_markdown
from sonode.evaluation.scores import (
    SNR_WINDOWS_MS as SNR_WINDOWS_MS,  # the scores and tables moved out stay importable here
    continuation_scores,
    trajectory_scores,
    upsampling_scores,
)
from sonode.io.checks import audio_info
from sonode.io.clip import Clip, read_clip, resample
from sonode.io.fileutil import atomic_write, markdown_marker, sonode_marker
from sonode.io.wav import check_output_path
from sonode.limits import LimitError
from sonode.plot.figures import save_band_png, save_comparison_png

#: The pictures written per clip: <stem>.<kind>.png.
PICTURES = ("upsampling", "continuation", "fit", "horizon")


@dataclass(frozen=True)
class EvalOptions:
    """Options of `evaluate_clip`: rates in Hz, times in seconds."""

    low_rate: int = 16000
    budget_s: float = 60.0  # training budget of each fit
    horizon_s: float = 0.2  # continuation length
    duration_s: float | None = 1.0  # part of each clip used (from its start); None = whole clip
    threads: int | None = None
    fit_options: tuple[
        tuple[str, Any], ...
    ] = ()  # extra `sonode.fit` options, e.g. (("latent_dim", 32),)
    html: bool = (
        False  # also write the listening page index.html with media/ (sonode.evaluation.report_run)
    )


def _fit(clip: Clip, options: EvalOptions, on_epoch) -> tuple[Fitted, float]:
    start = time.perf_counter()
    fitted = fit(
        clip,
        max_time_s=options.budget_s,
        threads=options.threads,
        on_epoch=on_epoch,
        **dict(options.fit_options),
    )
    return fitted, time.perf_counter() - start


def _low_clip(truth: Clip, samples: np.ndarray, rate: int) -> Clip:
    return replace(truth, samples=samples, sample_rate=rate)


def evaluate_clip(
    path: str | Path,
    options: EvalOptions = EvalOptions(),
    report_dir: Path | None = None,
    on_epoch: Callable | None = None,
) -> dict[str, Any]:
    """Run the three tasks on one clip; write its pictures into ``report_dir`` if given.

    Returns:
        A JSON-ready dict: {"clip", "rate", "low_rate", "upsampling": {method: scores},
        "continuation": {method: scores}, "reconstruction": {...}}.
    """
    info = audio_info(Path(path))  # before soundfile opens it: a FIFO would block
    duration_s = options.duration_s
    if duration_s is not None:  # a clip shorter than duration_s is used whole
        duration_s = min(duration_s, info.duration)
    truth = read_clip(path, duration_s=duration_s)
    high, low_rate = truth.sample_rate, options.low_rate
    if low_rate >= high:
        raise ValueError(
            f"--rate ({low_rate} Hz) must be below the clip's own rate ({high} Hz) for the "
            "upsampling task"
        )
    low = _low_clip(truth, resample(truth.samples, high, low_rate), low_rate)
    n_high = output_length(low.n_samples, low_rate, high)
    reference = np.zeros(n_high)
    reference[: min(n_high, truth.n_samples)] = truth.samples[:n_high]
    nyquist = low_rate / 2

    full, full_time = _fit(low, options, on_epoch)
    candidates = upsampling_candidates(full, low, high)
    upsampling = {
        name: upsampling_scores(reference, x, high, nyquist) for name, x in candidates.items()
    }

    horizon = int(round(options.horizon_s * low_rate))
    if horizon >= low.n_samples // 2:
        raise ValueError(f"horizon ({options.horizon_s} s) must be shorter than half the clip")
    history = _low_clip(truth, low.samples[:-horizon], low_rate)
    future = low.samples[-horizon:]
    part, _ = _fit(history, options, on_epoch)
    continuation_signals = {"sonode": part.extrapolate(horizon / low_rate)[:horizon]}
    continuation_signals.update(
        {name: f(history.samples, horizon) for name, f in CONTINUATIONS.items()}
    )
    continuation = {
        name: continuation_scores(future, x, low_rate) for name, x in continuation_signals.items()
    }

    # trained, untrained start and Burg side by side over 1 ms - 2 s (sonode.evaluation.horizon)
    horizon_curves = clip_horizon(path, part.model, history.samples, low_rate, report_dir)
    report = full.info["fit"]
    fitted_span = low.samples[: full.model.config.n_samples]
    result = {
        "clip": Path(path).name,
        "rate": high,
        "low_rate": low_rate,
        "duration_s": truth.duration_s,
        "upsampling": upsampling,
        "continuation": continuation,
        "horizon": horizon_curves,
        "trajectory": trajectory_scores(fitted_span, full.free_run(), low_rate),
        "reconstruction": {
            "snr_db": report["snr_db"],
            "fine_snr_db": report["fine_snr_db"],
            "discretisation_snr_db": report["discretisation_snr_db"],
            "fit_time_s": full_time,
            "epochs": report["epochs"],
            "initial_snr_db": report["initial_snr_db"],
        },
    }
    if report_dir is not None:
        _pictures(
            Path(report_dir),
            Path(path).stem,
            reference,
            candidates,
            high,
            nyquist,
            history.samples,
            future,
            continuation_signals,
            low_rate,
            full,
        )
    if report_dir is not None and options.html:
        from sonode.evaluation.report_media import MediaWriter
        from sonode.evaluation.report_run import eval_section

        # evaluate() checked the folder before the first fit (check_report_folder honours --force)
        writer = MediaWriter(Path(report_dir), protect=(str(path),), force=True)
        result["page"] = eval_section(
            writer,
            Path(path).stem,
            reference=reference,
            candidates=candidates,
            high=high,
            low=low.samples,
            low_rate=low_rate,
            history=history.samples,
            future=future,
            continuations=continuation_signals,
            full=full,
            part=part,
            fit_time_s=full_time,
        )
    return result


def upsampling_candidates(fitted: Fitted, low: Clip, rate: int) -> dict[str, np.ndarray]:
    """Every upsampler's output at ``rate`` for the fitted clip ``low``: "sonode" (the default
    options: input band kept, band above synthesised), "sonode_model_low" (the model's own band
    below), "sonode_render" (the raw trajectory read at ``rate``), then `sonode.evaluation.baselines.UPSAMPLERS`."""
    candidates = {
        "sonode": fitted.upsample(rate, clip=low),
        "sonode_model_low": fitted.upsample(rate, low_band="model", clip=low),
        "sonode_render": fitted.render(rate=rate).samples,
    }
    candidates.update(
        {name: f(low.samples, low.sample_rate, rate) for name, f in UPSAMPLERS.items()}
    )
    return candidates


def _pictures(
    folder: Path,
    stem: str,
    reference,
    candidates,
    high,
    nyquist,
    history,
    future,
    continuations,
    low_rate,
    full: Fitted,
) -> None:
    shown = {k: candidates[k] for k in ("sonode", "sinc", "sinc_noise")}
    save_comparison_png(
        folder / f"{stem}.upsampling.png",
        reference,
        shown,
        high,
        zoom_centers_s=[0.1, 0.5 * reference.shape[0] / high],
        title=f"{stem}: upsampling",
        dynamic_range_db=120.0,
        freq_marker_hz=nyquist,
    )
    save_band_png(
        folder / f"{stem}.above_nyquist.png",
        reference,
        shown,
        high,
        nyquist,
        title=f"{stem}: above the input's Nyquist frequency ({nyquist / 1000:g} kHz)",
    )
    joined = {
        k: np.concatenate([history, continuations[k]])
        for k in ("sonode", "lpc32_burg", "lpc256_burg")
    }
    start_s = history.shape[0] / low_rate
    save_comparison_png(
        folder / f"{stem}.continuation.png",
        np.concatenate([history, future]),
        joined,
        low_rate,
        zoom_centers_s=[start_s, start_s + 0.02],
        marker_s=start_s,
        running_snr_window_s=0.005,
        title=f"{stem}: continuation",
    )
    full.save_training_curve(folder / f"{stem}.fit.png", title=f"{stem}: training")


def evaluate(
    paths: list[str | Path],
    report_dir: str | Path,
    options: EvalOptions = EvalOptions(),
    on_clip: Callable[[str], None] | None = None,
    on_epoch: Callable | None = None,
    *,
    force: bool = False,
    map_clips: Callable[..., list[dict[str, Any]]] | None = None,
    command: str = "sonode eval",
) -> dict[str, Any]:
    """`evaluate_clip` over several clips; writes results.json, results.md and the pictures.

    Every output path is checked before the first fit: two clips may not share a stem, and an
    existing file that sonode did not write is only replaced with ``force``.

    Args:
        map_clips: ``map_clips(evaluate_clip, paths, options, folder) -> [per-clip results]`` runs
            the clips elsewhere (e.g. `sonode.batch.jobs.eval_many` on a Dask cluster); default: here,
            one after another (``on_clip``/``on_epoch`` report progress only then).

        command: the command line shown on the listening page (``options.html``).

    Returns:
        {"options": ..., "clips": [per-clip results], "median": {task: {method: {metric: median}}}}.
    """
    began = time.perf_counter()
    folder = Path(report_dir)
    check_eval_inputs(paths, options.low_rate, options.duration_s, options.horizon_s)
    _check_outputs(paths, folder, force)
    if options.html:
        from sonode.evaluation.report_media import check_report_folder

        check_report_folder(folder, paths, force)
    folder.mkdir(parents=True, exist_ok=True)
    if map_clips is not None:
        clips = map_clips(evaluate_clip, paths, options, folder)
    else:
        clips = []
        for path in paths:
            if on_clip is not None:
                on_clip(str(path))
            clips.append(evaluate_clip(path, options, folder, on_epoch))
    pages = [c.pop("page") for c in clips if "page" in c]
    write_horizon(folder, clips)  # horizon.json and horizon.png; results.json stays as it was
    results = {
        "options": {k: v for k, v in options.__dict__.items()},
        "clips": clips,
        "median": {
            task: medians([c[task] for c in clips]) for task in ("upsampling", "continuation")
        },
    }
    results["median"]["reconstruction"] = {
        k: statistics.median(c["reconstruction"][k] for c in clips)
        for k in clips[0]["reconstruction"]
    }
    with atomic_write(folder / "results.json") as tmp:
        tmp.write_text(json.dumps({**results, "written_by": sonode_marker()}, indent=2) + "\n")
    with atomic_write(folder / "results.md") as tmp:
        tmp.write_text(markdown_marker() + results_markdown(results))
    if pages:
        from sonode.evaluation.report_run import run_info, write_page

        run = run_info(command, results["options"], pages, time.perf_counter() - began)
        write_page(
            folder,
            "sonode evaluation: " + ", ".join(p["title"] for p in pages),
            pages,
            run,
            protect=tuple(str(p) for p in paths),
            force=force,
        )
    return results


def check_eval_inputs(
    paths: list[str | Path], low_rate: int, duration_s: float | None, horizon_s: float | None = None
) -> None:
    """Check every clip before the first fit, from its header: a regular audio file, a rate above
    ``low_rate`` with a ratio that can be filtered, a length the fits can hold, and room for the
    continuation's horizon (half the clip at most).

    Raises:
        AudioInputError / LimitError / ValueError: one line naming the clip, value and limit.
    """
    from sonode.io.clip import RESAMPLE_KW
    from sonode.model.fit_size import max_fit_samples
    from sonode.sinc import check_resample_cost
    from sonode.tasks.upsample import check_upsample_size

    for path in paths:
        file = Path(path)
        info = audio_info(file)
        if low_rate >= info.samplerate and horizon_s is not None:
            raise ValueError(
                f"--rate ({low_rate} Hz) must be below the clip's own rate ({info.samplerate} Hz, {file}) for the "
                "upsampling task"
            )
        check_resample_cost(info.samplerate, low_rate, RESAMPLE_KW)
        seconds = info.duration if duration_s is None else min(duration_s, info.duration)
        n_low = int(seconds * low_rate)
        if n_low > max_fit_samples(low_rate):
            raise LimitError(
                f"{file}: {n_low} samples at {low_rate} Hz are over the limit of {max_fit_samples(low_rate)} "
                "a fit can hold; lower --duration"
            )
        if horizon_s is not None:  # the upsampling task reads the model at the clip's own rate
            # (found after the fit before: 45 s, and the fit's peak was 2.07 GiB beside the truth)
            check_upsample_size(n_low, low_rate, info.samplerate)
        if horizon_s is not None and round(horizon_s * low_rate) >= n_low // 2:
            raise ValueError(
                f"--horizon-s {horizon_s:g} must be shorter than half of the part of {file} used "
                f"({seconds:.3f} s at most; see --duration)"
            )


def _check_outputs(paths: list[str | Path], folder: Path, force: bool) -> None:
    stems: dict[str, str | Path] = {}
    for path in paths:
        stem = Path(path).stem
        if stem.lower() in stems:
            raise OutputPathError(
                f"{stems[stem.lower()]} and {path} would both write {stem}.*.png in {folder}; "
                "rename one of them"
            )
        stems[stem.lower()] = path
    names = ["results.json", "results.md", "horizon.json", "horizon.png"] + [
        f"{Path(p).stem}.{kind}.png" for p in paths for kind in PICTURES
    ]
    for name in names:
        check_output_path(folder / name, paths, force=force)
