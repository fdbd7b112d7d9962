"""Assembling listening reports: one section per clip, for `sonode report` and `sonode eval --html`.

`report_section` reads a fitted model's outputs (no truth beyond the clip itself, and the source
file when it has a higher rate than the fit); `eval_section` reuses what `sonode.evaluate`
computed, with the held-back truth. `write_page` writes DIR/index.html (`report_page`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonode.evaluation.report import (
    field_zeroed,
    fill_group,
    listen_group,
    model_figures,
    upsampling_group,
)
from sonode.evaluation.report_continuation import best_burg, continuation_group
from sonode.evaluation.report_media import DEFAULT_EXCERPT_S, MediaWriter, safe_name

#: Gaps made in each clip for the fill comparison (ms): a short and a long one, as `sonode eval --task fill`.
DEFAULT_GAPS_MS = (20, 80)


@dataclass(frozen=True)
class ReportOptions:
    """What a report shows: rates in Hz, times in seconds.

    Attributes:
        rate: upsampling output rate; default the source file's rate when it is above the fit's
            (then the source is the truth), else 48 kHz (twice the fit's rate from 24 kHz up).
        horizon_s: continuation length.
        context_s: the clip's end heard before a continuation.
        gaps_ms: gaps made for the fill comparison (empty: none).
        audio_format: "flac" or "wav".
        excerpt_s: longer versions are heard as an excerpt of this length, full files linked.
    """

    rate: int | None = None
    horizon_s: float = 0.5
    context_s: float = 0.5
    gaps_ms: tuple[int, ...] = DEFAULT_GAPS_MS
    audio_format: str = "flac"
    excerpt_s: float = DEFAULT_EXCERPT_S


def default_upsampling_rate(rate: int) -> int:
    """48 kHz, or twice ``rate`` (Hz) when that is higher: a target above the fitted band."""
    return max(48000, 2 * rate)


def _facts(fitted, clip_name: str) -> list[tuple[str, str]]:
    config, report = fitted.model.config, fitted.info.get("fit", {})
    facts = [
        ("clip", clip_name),
        ("fitted", f"{config.n_samples / config.sample_rate:.3f} s at {config.sample_rate} Hz"),
        ("model", f"{config.n_modes} modes, MLP {config.layers}×{config.hidden}"),
    ]
    if report:
        facts.append(
            ("training", f"{report.get('epochs')} steps, stopped by {report.get('stop_reason')}")
        )
    return facts


def report_section(
    w: MediaWriter,
    stem: str,
    fitted,
    options: ReportOptions,
    truth: tuple[np.ndarray, int] | None = None,
    fit_time_s: float | None = None,
    fit_cpu_s: float | None = None,
) -> dict[str, Any]:
    """Write one fitted model's media and return its section of the page.

    Args:
        w: where media go.
        stem: the clip's name without suffix (file-name prefix of its media).
        fitted: a `sonode.api.Fitted` whose fitted samples can be read (this session's, or the
            source recorded in the model).
        truth: the source at a higher rate than the fit (samples (n,), rate): the upsampling truth.
        fit_time_s, fit_cpu_s: wall and CPU time of the fit, when it ran in this command.
    """
    from sonode.dsp.resample import output_length
    from sonode.evaluation.baselines import UPSAMPLERS
    from sonode.tasks.render import extrapolate, render

    begin, begin_cpu = time.perf_counter(), time.process_time()
    clip = fitted.fitted_samples()
    x, rate = clip.samples, fitted.sample_rate
    recon = fitted.render().samples
    zeroed_model = field_zeroed(fitted.model)
    groups, rows = [], []
    group, found = listen_group(w, stem, x, recon, render(zeroed_model).samples, rate)
    groups.append(group), rows.extend(found)

    high = truth[1] if truth is not None else (options.rate or default_upsampling_rate(rate))
    outputs = {"sonode": fitted.upsample(high, clip=clip)}
    outputs.update({k: UPSAMPLERS[k](x, rate, high) for k in ("sinc", "sinc_noise")})
    reference = None
    if truth is not None:
        n_high = output_length(x.size, rate, high)
        reference = np.pad(truth[0], (0, max(0, n_high - truth[0].size)))[:n_high]
    group, found = upsampling_group(w, stem, rate, high, outputs, reference)
    groups.append(group), rows.extend(found)

    n_out = int(round(options.horizon_s * rate))
    burg_label, burg = best_burg(x, rate, n_out)
    continuations = {
        "sonode": fitted.extrapolate(n_out / rate)[:n_out],
        burg_label: burg,
        "untrained start": extrapolate(zeroed_model, n_out / rate).samples[:n_out],
    }
    group, found = continuation_group(w, stem, x, rate, options.context_s, continuations, None)
    groups.append(group), rows.extend(found)

    facts = _facts(fitted, Path(clip.source_path).name)
    timing = (begin, begin_cpu, fit_time_s, fit_cpu_s)
    return _section(w, stem, groups, rows, fitted, x, rate, recon, options.gaps_ms, facts, timing)


def eval_section(
    w: MediaWriter,
    stem: str,
    *,
    reference: np.ndarray,
    candidates: Mapping[str, np.ndarray],
    high: int,
    low: np.ndarray,
    low_rate: int,
    history: np.ndarray,
    future: np.ndarray,
    continuations: Mapping[str, np.ndarray],
    full,
    part,
    gaps_ms: tuple[int, ...] = DEFAULT_GAPS_MS,
    context_s: float = 0.5,
    fit_time_s: float | None = None,
) -> dict[str, Any]:
    """One clip of `sonode eval` as a page section (the truths are the held-back audio).

    Args:
        reference: the clip at its own rate ``high`` (upsampling truth, (n_high,)).
        candidates: every upsampler's output at ``high`` (`sonode.evaluate.upsampling_candidates`).
        low: the band-limited input at ``low_rate`` that ``full`` was fitted on.
        history, future: the continuation task's split of ``low``; ``part`` was fitted on history.
        continuations: name -> continuation of history ("sonode" and the LPC baselines).
    """
    from sonode.tasks.render import extrapolate, render

    begin, begin_cpu = time.perf_counter(), time.process_time()
    groups, rows = [], []
    recon = full.render().samples
    group, found = listen_group(
        w, stem, low, recon, render(field_zeroed(full.model)).samples, low_rate
    )
    groups.append(group), rows.extend(found)
    group, found = upsampling_group(w, stem, low_rate, high, candidates, reference)
    groups.append(group), rows.extend(found)
    n_out = future.size
    burg_label, burg = best_burg(history, low_rate, n_out, future, continuations)
    shown = {
        "sonode": continuations["sonode"][:n_out],
        burg_label: burg[:n_out],
        "untrained start": extrapolate(field_zeroed(part.model), n_out / low_rate).samples[:n_out],
    }
    group, found = continuation_group(w, stem, history, low_rate, context_s, shown, future)
    groups.append(group), rows.extend(found)
    timing = (begin, begin_cpu, fit_time_s, None)
    return _section(
        w, stem, groups, rows, full, low, low_rate, recon, gaps_ms, _facts(full, stem), timing
    )


def _section(
    w: MediaWriter,
    stem: str,
    groups: list,
    rows: list,
    fitted,
    x: np.ndarray,
    rate: int,
    recon: np.ndarray,
    gaps_ms,
    facts: list,
    timing: tuple[float, float, float | None, float | None],
) -> dict[str, Any]:
    """The end both sections share: the fill group (when ``gaps_ms``), the model's figures, the
    timings ``timing`` = (perf_counter and process_time at the start, fit wall and CPU seconds or
    None) and the section dict."""
    if gaps_ms:
        made = fill_group(w, stem, x, rate, tuple(gaps_ms))
        if made is not None:
            groups.append(made[0]), rows.extend(made[1])
    figures = model_figures(w, stem, fitted, x, recon)
    begin, begin_cpu, fit_time_s, fit_cpu_s = timing
    # wall and CPU seconds: on a shared machine the wall time of a fit is its budget, the report's stretches
    timings = {
        "report_s": time.perf_counter() - begin,
        "report_cpu_s": time.process_time() - begin_cpu,
    }
    if fit_time_s is not None:
        timings["fit_s"] = fit_time_s
    if fit_cpu_s is not None:
        timings["fit_cpu_s"] = fit_cpu_s
    return {
        "id": safe_name(stem),
        "title": stem,
        "facts": facts,
        "groups": groups,
        "figures": figures,
        "numbers": rows,
        "timings": timings,
    }


def run_info(
    command: str, options: Mapping[str, Any], sections: list[dict[str, Any]], total_s: float
) -> dict[str, Any]:
    """What was run, for the page: the command line, versions, options and wall times."""
    import platform

    import torch

    from sonode._version import __version__

    times = {s["title"]: s["timings"] for s in sections}
    return {
        "command": command,
        "versions": {
            "sonode": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
        "wall_times": times,
        "total_s": total_s,
    }


def write_page(
    folder: Path,
    title: str,
    sections: list[dict[str, Any]],
    run: dict[str, Any],
    protect: tuple[str, ...] = (),
    force: bool = False,
) -> Path:
    """Write ``folder``/index.html atomically (marked as sonode's, like its Markdown); returns its path."""
    from sonode.evaluation.report_page import render_page
    from sonode.io.fileutil import atomic_write
    from sonode.io.wav import check_output_path

    out = check_output_path(Path(folder) / "index.html", protect, force=force)
    with atomic_write(out) as tmp:
        tmp.write_text(render_page(title, sections, run), encoding="utf-8")
    return out
