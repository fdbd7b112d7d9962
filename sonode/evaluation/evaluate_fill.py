"""Gap-filling evaluation: punch gaps into clips, fill them with sonode and the classical fillers.

Gaps of several lengths are placed at evenly spaced positions inside the sounding part of each
clip (see `gap_positions`); each method sees the same clip with the same gap and is scored on
- SNR over the gap (dB),
- LSD over the gap: log-spectral distance of one Hann-windowed frame covering the gap,
- seam step: the largest |sample-to-sample step| at the two seams of the filled signal, divided
  by the clip's 99th-percentile |step| (≤ 1: no seam is a step the clip does not already have).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sonode.dsp.ar_fill import JANSSEN_CONTEXT_SAMPLES
from sonode.dsp.metrics import POWER_FLOOR, snr_db
from sonode.io.clip import read_clip
from sonode.io.fileutil import atomic_write, markdown_marker, write_json
from sonode.tasks.detect_parts import loudest_mean_square
from sonode.tasks.fill import FillSettings, Gap, fill_one
from sonode.tasks.fill_methods import EVALUATED_FILL_METHODS, FILL_METHODS

GAP_LENGTHS_MS = (10, 20, 40, 80)
METHOD_ORDER = tuple(FILL_METHODS)
DEFAULT_METHODS = EVALUATED_FILL_METHODS  # sonode_fit (two model fits per gap) on request
# A position is "sounding" when the RMS over the gap is at least this fraction of the clip's
# loudest 20 ms RMS (−20 dB): gaps in pauses or fade-outs score noise, not the method.
SOUNDING_FRACTION = 0.1


def gap_lsd(reference: np.ndarray, estimate: np.ndarray) -> float:
    """LSD (log10 power, bels) between two gap signals (n,) from one Hann-windowed frame each,
    zero-padded to the next power of two ≥ n; powers floored at POWER_FLOOR."""
    n = reference.size
    n_fft = 1 << max(1, (n - 1).bit_length())
    window = np.hanning(n + 2)[1:-1]
    p_ref = np.abs(np.fft.rfft(reference * window, n_fft)) ** 2 / n
    p_est = np.abs(np.fft.rfft(estimate * window, n_fft)) ** 2 / n
    diff = np.log10(np.maximum(p_ref, POWER_FLOOR)) - np.log10(np.maximum(p_est, POWER_FLOOR))
    return float(np.sqrt(np.mean(diff**2)))


def seam_step_ratio(filled: np.ndarray, gap: Gap, typical_step: float) -> float:
    """Largest |step| entering and leaving the gap in ``filled`` over ``typical_step``."""
    steps = [
        abs(filled[gap.start] - filled[gap.start - 1]),
        abs(filled[gap.end] - filled[gap.end - 1]),
    ]
    return float(max(steps) / typical_step)


def sounding_starts(x: np.ndarray, rate: int, n_gap: int, margin_samples: int) -> np.ndarray:
    """Gap starts (hop n_gap/2) whose ``n_gap`` samples are sounding (RMS ≥ SOUNDING_FRACTION of
    the loudest 20 ms) and leave ``margin_samples`` of context on both sides; increasing."""
    loudest = np.sqrt(loudest_mean_square(x, rate))
    candidates = np.arange(margin_samples, x.size - margin_samples - n_gap, max(1, n_gap // 2))
    energy = np.concatenate([[0.0], np.cumsum(x**2)])
    rms = np.sqrt((energy[candidates + n_gap] - energy[candidates]) / n_gap)
    return candidates[rms >= SOUNDING_FRACTION * loudest]


def gap_positions(
    x: np.ndarray, rate: int, n_gap: int, count: int, margin_samples: int
) -> list[int]:
    """``count`` gap starts evenly spread over the sounding part of ``x`` with ``margin_samples``
    of context on both sides (fewer if the clip has fewer sounding places)."""
    sounding = sounding_starts(x, rate, n_gap, margin_samples)
    if sounding.size <= count:
        return sounding.tolist()
    return sounding[np.round(np.linspace(0, sounding.size - 1, count)).astype(int)].tolist()


def evaluate_fill(
    paths: list[str | Path],
    rate: int | None,
    settings: FillSettings,
    lengths_ms: tuple[int, ...] = GAP_LENGTHS_MS,
    n_positions: int = 5,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    sonode_positions: int | None = None,
    on_gap: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``methods`` on gaps punched into each clip (read at ``rate``, None = its own).

    Args:
        sonode_positions: score sonode_fit on only the first this-many positions per length and
            clip (its fits cost seconds each); None = all.

    Returns:
        {"gaps": [per-gap records], "median": {method: {length_ms: {metric: median}}}, ...}.
    """
    records = []
    for path in paths:
        clip = read_clip(path, rate=rate)
        x, sr = clip.samples, clip.sample_rate
        typical_step = float(np.quantile(np.abs(np.diff(x)), 0.99))
        for length_ms in lengths_ms:
            n_gap = int(round(length_ms * sr / 1000))
            for k, start in enumerate(
                gap_positions(x, sr, n_gap, n_positions, JANSSEN_CONTEXT_SAMPLES)
            ):
                gap = Gap(start, start + n_gap)
                left = x[max(0, start - int(round(settings.context_s * sr))) : start]
                right = x[gap.end : gap.end + int(round(settings.context_s * sr))]
                for method in methods:
                    if (
                        method == "sonode_fit"
                        and sonode_positions is not None
                        and k >= sonode_positions
                    ):
                        continue
                    if on_gap is not None:
                        on_gap(f"{Path(path).name} {sr} Hz {length_ms} ms #{k} {method}")
                    begin = time.perf_counter()
                    if method.startswith("sonode"):  # its own context (settings.context_s per side)
                        estimate = fill_one(
                            left, right, n_gap, sr, replace(settings, method=method)
                        )
                    else:  # the classical fillers get their own 4096-sample context
                        wide = x[
                            max(0, start - JANSSEN_CONTEXT_SAMPLES) : gap.end
                            + JANSSEN_CONTEXT_SAMPLES
                        ]
                        offset = start - max(0, start - JANSSEN_CONTEXT_SAMPLES)
                        estimate = fill_one(
                            wide[:offset],
                            wide[offset + n_gap :],
                            n_gap,
                            sr,
                            FillSettings(method=method),
                        )
                    seconds = time.perf_counter() - begin
                    filled = x.copy()
                    filled[gap.start : gap.end] = estimate
                    truth = x[gap.start : gap.end]
                    records.append(
                        {
                            "clip": Path(path).name,
                            "rate": sr,
                            "length_ms": length_ms,
                            "position": k,
                            "start_s": start / sr,
                            "method": method,
                            "snr_db": snr_db(truth, estimate),
                            "lsd": gap_lsd(truth, estimate),
                            "seam_step": seam_step_ratio(filled, gap, typical_step),
                            "time_s": seconds,
                        }
                    )
    return {
        "settings": {
            "context_s": settings.context_s,
            "budget_s": settings.budget_s,
            "steps": settings.steps,
            "orders": settings.orders,
            "residual": settings.residual,
            "fit_options": settings.fit_options,
        },
        "gaps": records,
        "median": medians(records),
    }


def results_plan(clips: list[str | Path], folder: str | Path, force: bool):
    """The outputs of the fill evaluation, results.json and results.md, as an `OutputPlan`."""
    from sonode.io.outputs import OutputPlan

    plan = OutputPlan(clips, force)
    for name in ("results.json", "results.md"):
        plan.add(Path(folder) / name, 1 << 20)
    return plan


def write_results(
    results: dict[str, Any], folder: str | Path, clips: list[str | Path] = (), force: bool = False
) -> None:
    """Write results.json and results.md (the `fill_markdown` table) into ``folder``, atomically,
    with sonode's marker; an existing file sonode did not write is replaced only with ``force``."""
    folder = Path(folder)
    results_plan(list(clips), folder, force).check()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results)
    with atomic_write(folder / "results.md") as tmp:
        tmp.write_text(markdown_marker() + fill_markdown(results))


def medians(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {"<rate> Hz <length> ms": {metric: median, "n": count}}} over the records."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["method"], f"{r['rate']} Hz {r['length_ms']} ms"), []).append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (method, key), rows in groups.items():
        out.setdefault(method, {})[key] = {
            m: statistics.median(r[m] for r in rows)
            for m in ("snr_db", "lsd", "seam_step", "time_s")
        } | {"n": len(rows)}
    return out


def fill_markdown(results: dict[str, Any]) -> str:
    """One table: a row per rate and gap length, median SNR / LSD / seam step per method."""
    med = results["median"]
    methods = [m for m in METHOD_ORDER if m in med]
    keys = sorted(
        {k for m in methods for k in med[m]}, key=lambda k: (int(k.split()[0]), int(k.split()[2]))
    )
    lines = [
        "| rate, gap | " + " | ".join(f"{m} SNR dB / LSD / seam (n)" for m in methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for key in keys:
        cells = []
        for m in methods:
            s = med[m].get(key)
            cells.append(
                "–"
                if s is None
                else f"{s['snr_db']:.2f} / {s['lsd']:.2f} / {s['seam_step']:.2f} ({s['n']})"
            )
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
