"""The horizon curve: how far each continuation stays right, and whether its level holds.

For one clip `sonode eval` fits the history (the clip minus its continuation horizon) and continues
it. Here three systems continue that history for LEVEL_SPAN_S seconds side by side:

* **trained**: the fitted model's own continuation ODE, as `sonode extrapolate` renders it;
* **untrained start**: the same model with its learned fields zeroed and its limit cycle off
  (the identified continuation, what the model is before any training);
* **Burg p** for p in BURG_ORDERS: high-order linear prediction of the history.

The truth is the file itself after the history, read as far as it goes (up to LEVEL_SPAN_S), so
a clip longer than the evaluated part scores horizons past ``--horizon-s``. Two curves per system:

* SNR over [0, h] against h, for HORIZONS_S (1 ms to 1 s, log-spaced; the horizons the truth
  covers);
* level (dB RMS over LEVEL_FRAME_S frames) against time over LEVEL_SPAN_S, beside the truth's
  and the history's last LEVEL_REFERENCE_S (the level a held note should keep).

`horizon_median` takes the median over clips at each horizon (of the clips that reach it) and of
the level relative to each clip's reference level.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonode.dsp.lpc import lpc_continue
from sonode.dsp.metrics import frame_levels_db, snr_db
from sonode.plot.panels import new_figure, save_figure

#: Horizons of the SNR curve (s): 1 ms to 1 s, 25 log-spaced points.
HORIZONS_S = tuple(float(h) for h in np.geomspace(0.001, 1.0, 25))
#: Length of every continuation and of the level curve (s).
LEVEL_SPAN_S = 2.0
LEVEL_FRAME_S = 0.02
#: The history's end whose level is the reference a continuation is compared with (s).
LEVEL_REFERENCE_S = 0.5
#: Burg orders beside the model (as `sonode eval`'s continuation baselines).
BURG_ORDERS = (256, 512, 1024, 2048)
TRAINED, UNTRAINED = "trained", "untrained start"


def untrained_start(model):
    """A copy of ``model`` with every learned field zeroed and the continuation's limit cycle off:
    the identified model before training (the trained states and readout stay)."""
    from sonode.evaluation.report import field_zeroed  # report imports plotting: import on use

    zeroed = field_zeroed(model)
    for module in zeroed.modules():
        if hasattr(module, "release") and hasattr(module, "active"):
            module.release()
    return zeroed


def continuations(model, history: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    """Every system's continuation of ``history`` (n,) at ``rate`` Hz: label -> (LEVEL_SPAN_S·rate,).

    ``model`` is the `SonodeModel` fitted on exactly ``history`` (file amplitude)."""
    from sonode.tasks.render import extrapolate

    n = int(round(LEVEL_SPAN_S * rate))
    with torch.no_grad():
        out = {
            TRAINED: extrapolate(model, n / rate).samples[:n],
            UNTRAINED: extrapolate(untrained_start(model), n / rate).samples[:n],
        }
    for order in BURG_ORDERS:
        if history.size > 2 * order:
            out[f"Burg {order}"] = lpc_continue(history, order, n)
    return out


def horizon_curves(
    systems: dict[str, np.ndarray], history: np.ndarray, truth: np.ndarray, rate: int
) -> dict[str, Any]:
    """The curves of one clip (plain JSON): horizons_s, snr_db[label] (one per horizon the truth
    covers), level_times_s, level_db[label] (the truth's as "truth", as far as it goes), and
    reference_level_db (the history's last LEVEL_REFERENCE_S)."""
    horizons = [h for h in HORIZONS_S if int(round(h * rate)) <= truth.size]
    snr = {
        label: [_finite(snr_db(truth[: round(h * rate)], x[: round(h * rate)])) for h in horizons]
        for label, x in systems.items()
    }
    frame = max(1, int(round(LEVEL_FRAME_S * rate)))  # level (dB RMS) per whole frame
    levels = {label: frame_levels_db(x, 0, frame).tolist() for label, x in systems.items()}
    levels["truth"] = frame_levels_db(truth, 0, frame).tolist()
    n_frames = max(len(v) for v in levels.values())
    reference = history[-int(round(LEVEL_REFERENCE_S * rate)) :]
    return {
        "horizons_s": horizons,
        "snr_db": snr,
        "level_times_s": ((np.arange(n_frames) + 0.5) * LEVEL_FRAME_S).tolist(),
        "level_db": levels,
        "reference_level_db": float(10 * np.log10(np.mean(reference**2) + 1e-20)),
    }


def clip_horizon(
    path: str | Path, model, history: np.ndarray, rate: int, folder: Path | None = None
) -> dict[str, Any]:
    """`horizon_curves` of one evaluated clip: ``model`` was fitted on ``history`` (n,), the first
    n samples of the file at ``path`` (its channel mix) resampled to ``rate``; the truth is read
    from the file after them. Writes <stem>.horizon.png into ``folder`` if given."""
    import soundfile

    from sonode.io.clip import read_clip, resample

    span_s = history.size / rate + LEVEL_SPAN_S
    clip = read_clip(path, duration_s=min(span_s, soundfile.info(str(path)).duration))
    full = resample(clip.samples, clip.sample_rate, rate)
    truth = full[history.size : history.size + int(round(LEVEL_SPAN_S * rate))]
    curves = horizon_curves(continuations(model, history, rate), history, truth, rate)
    if folder is not None:
        stem = Path(path).stem
        save_horizon_png(folder / f"{stem}.horizon.png", curves, f"{stem}: continuations")
    return curves


def write_horizon(folder: Path, clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Move each clip's "horizon" out of ``clips`` into folder/horizon.json with their median, and
    draw the median in folder/horizon.png. Returns what was written."""
    from sonode.io.fileutil import atomic_write, sonode_marker

    per_clip = {c["clip"]: c.pop("horizon") for c in clips if "horizon" in c}
    if not per_clip:
        return {}
    out = {"clips": per_clip, "median": horizon_median(list(per_clip.values()))}
    with atomic_write(folder / "horizon.json") as tmp:
        tmp.write_text(json.dumps({**out, "written_by": sonode_marker()}) + "\n")
    title = f"median over {len(per_clip)} clip(s); level relative to each history's end"
    save_horizon_png(folder / "horizon.png", out["median"], title)
    return out


def horizon_median(per_clip: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over clips of the SNR at each horizon (over the clips that reach it, counted in
    "clips_per_horizon") and of the level relative to each clip's reference level."""
    labels = [k for k in per_clip[0]["snr_db"] if all(k in c["snr_db"] for c in per_clip)]
    horizons = [h for h in HORIZONS_S if any(h in c["horizons_s"] for c in per_clip)]
    snr = {}
    for label in labels:
        snr[label] = [
            _median(
                c["snr_db"][label][c["horizons_s"].index(h)]
                for c in per_clip
                if h in c["horizons_s"]
            )
            for h in horizons
        ]
    level_labels = labels + ["truth"]
    n_frames = min(len(c["level_db"][k]) for c in per_clip for k in labels)
    level = {}
    for label in level_labels:
        rel = [
            [v - c["reference_level_db"] for v in c["level_db"][label][:n_frames]] for c in per_clip
        ]
        length = max(len(r) for r in rel)
        level[label] = [
            statistics.median(r[i] for r in rel if i < len(r))
            for i in range(length)
            if any(i < len(r) for r in rel)
        ]
    return {
        "horizons_s": horizons,
        "clips_per_horizon": [sum(h in c["horizons_s"] for c in per_clip) for h in horizons],
        "snr_db": snr,
        "level_times_s": per_clip[0]["level_times_s"][:n_frames],
        "level_db": level,
        "reference_level_db": 0.0,
    }


def save_horizon_png(path: str | Path, curves: dict[str, Any], title: str) -> None:
    """Two panels: SNR against horizon (log axis) and level against time, one line per system."""
    figure = new_figure(11.0, 4.2)
    left, right = figure.subplots(1, 2)
    styles = _styles(list(curves["snr_db"]))
    for label, values in curves["snr_db"].items():
        snr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        left.plot(curves["horizons_s"], snr, label=label, **styles[label])
    left.set_xscale("log")
    left.set_xlabel("horizon h (s)")
    left.set_ylabel("SNR over [0, h] (dB)")
    left.set_title("SNR against horizon")
    left.axhline(0.0, color="grey", linewidth=0.8)
    left.grid(alpha=0.3, which="both")
    times = np.asarray(curves["level_times_s"])
    for label, values in curves["level_db"].items():
        style = (
            {"color": "black", "linewidth": 2.5, "alpha": 0.5}
            if label == "truth"
            else styles[label]
        )
        right.plot(times[: len(values)], values, label=label, **style)
    reference = curves["reference_level_db"]
    right.axhspan(reference - 2, reference + 2, color="grey", alpha=0.15, label="history end ±2 dB")
    right.set_xlabel("time after the history's end (s)")
    right.set_ylabel(f"level (dB, {1000 * LEVEL_FRAME_S:.0f} ms RMS)")
    right.set_title(f"level over {LEVEL_SPAN_S:g} s")
    right.grid(alpha=0.3)
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.suptitle(title)
    save_figure(figure, Path(path))


def _styles(labels: list[str]) -> dict[str, dict]:
    burg = iter(("#9ecae1", "#6baed6", "#3182bd", "#08519c"))
    out = {}
    for label in labels:
        if label == TRAINED:
            out[label] = {"color": "tab:orange", "linewidth": 2.0}
        elif label == UNTRAINED:
            out[label] = {"color": "tab:red", "linewidth": 1.5, "linestyle": "--"}
        else:
            out[label] = {"color": next(burg, "tab:blue"), "linewidth": 1.0}
    return out


def _median(values) -> float | None:
    """Median of the values that are not None (an exact prediction), None if there are none."""
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _finite(value: float) -> float | None:
    """JSON has no inf: an exact prediction's SNR is None (left out of the plot)."""
    return value if math.isfinite(value) else None
