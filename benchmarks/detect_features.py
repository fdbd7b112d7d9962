"""Features of click candidates on clean recordings and on made clicks, for choosing a click rule
on a declared half of the files and checking it on the other (docs/fill_detection.md).

    PYTHONPATH=. python benchmarks/detect_features.py data data/more /work/corpus/short48 \\
        /work/corpus/music44 /work/corpus/speech8k /work/corpus/song -o outputs/detect_features.json

The same files, first channels, seed and made clicks as `bench_fill_song.py detect --trials 6`
(the random draws are replayed in the same order). For every candidate that reaches the click
checks (stage 2) it records: the file, its half (train = even index of the sorted files), its
category (the folder, or short48's category prefix), whether it is a made click ("made") or a
candidate of the clean recording ("clean"), the current decision, and the features:
ratio (isolation), expected (events as isolated expected from the recording), rise and change
(`new_sound`), factor, and ``repeat``: the largest normalised correlation of the residual over
the candidate's span with the residual anywhere within REPEAT_WINDOW_S around it (20 ms or more
away) — a loop, a drum pattern or a repeated pluck makes the same burst again, a click does not;
``excess`` (`new_sound`'s third value, the check of session 8), ``gain_db``/``glrt`` (the same
idea per span sample with the context adjacent to the span) and the band flux across the burst
(``flux_*`` over 20 ms, ``sflux_*`` over 40 ms: an onset rises broadband and stays). A made click
also records its level over the clean signal's RMS within 10 ms (``made_rel_db``). ``point_excess``
is the excess of a one-sample burst at the candidate's peak, measured as for each clean recording's
own events ≥ 1.2× isolated (rows of kind "own_events"): the per-recording calibration tried.
``--dominance`` and ``--max-click-ms`` loosen stage 1 so that a superset of the candidates is
logged and stricter rules can be scored offline on the same draws.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_fill_song import audio_files, make_defect, sounding_starts  # noqa: E402
from sonode.dsp.interpolation import most_likely_fill  # noqa: E402
from sonode.dsp.two_sided_fit import two_sided_predictor  # noqa: E402
from sonode.tasks.click_checks import EventIsolation, judge  # noqa: E402
from sonode.tasks.detect import _Loudness, click_candidates, prediction_residual  # noqa: E402
from sonode.tasks.detect_clicks import distinct  # noqa: E402

REPEAT_WINDOW_S = 2.0
REPEAT_MIN_LAG_S = 0.02


def repeat_similarity(e: np.ndarray, start: int, end: int, rate: int) -> float:
    """Largest normalised correlation of e[start:end] with e elsewhere within REPEAT_WINDOW_S."""
    t = e[start:end]
    lo, hi = (
        max(0, start - int(REPEAT_WINDOW_S * rate)),
        min(e.size, end + int(REPEAT_WINDOW_S * rate)),
    )
    seg = e[lo:hi]
    if t.size < 4 or seg.size <= t.size:
        return 0.0
    num = scipy.signal.correlate(seg, t, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(seg**2)])
    floor = 1e-9 * float(np.max(energy[t.size :] - energy[: -t.size])) + 1e-300  # silence
    den = np.sqrt(np.maximum(energy[t.size :] - energy[: -t.size], floor) * np.sum(t**2))
    corr = num / den
    lags = np.arange(corr.size) + lo - start
    far = np.abs(lags) >= int(REPEAT_MIN_LAG_S * rate)
    return float(np.max(corr[far])) if far.any() else 0.0


def fill_gain(y: np.ndarray, rate: int, start: int, end: int) -> tuple[float, float]:
    """(10·log10 of the prediction-error energy over the rows touching [start, end) as observed
    over the same with the span interpolated from both sides, that reduction in units of the
    innovation variance per span sample): how much an additive burst the span holds beyond what
    an order-32 two-sided model of 10 ms either side explains (a GLRT of "the span is missing")."""
    p, rows = 32, int(0.01 * rate)
    if start - rows - p < 0 or end + rows + p > y.size:
        return float("nan"), float("nan")
    left, right = y[start - rows - p : start], y[end : end + rows + p]
    a, sigma = two_sided_predictor(left, right, p, rows)
    k = end - start
    filled = most_likely_fill(left, right, k, a)
    seg = y[start - p : end + p]
    seg_f = np.concatenate([seg[:p], filled, seg[p + k :]])
    e_obs = np.sum(np.convolve(seg, a, mode="valid") ** 2)
    e_fill = np.sum(np.convolve(seg_f, a, mode="valid") ** 2)
    return float(10 * np.log10((e_obs + 1e-30) / (e_fill + 1e-30))), float(
        (e_obs - e_fill) / max(sigma**2, 1e-30) / k
    )


def band_flux(y: np.ndarray, rate: int, start: int, end: int, win_s: float = 0.02) -> tuple:
    """(fraction of 12 log-spaced bands 100 Hz–Nyquist louder by > 3 dB after the span than
    before it, median band rise dB), windows of ``win_s`` 1 ms away from the span: an onset
    rises broadband and stays, a click leaves the spectrum as it was."""
    w, guard = int(win_s * rate), int(0.001 * rate)
    if start - guard - w < 0 or end + guard + w > y.size:
        return float("nan"), float("nan")
    hann = np.hanning(w)
    before = np.abs(np.fft.rfft(y[start - guard - w : start - guard] * hann)) ** 2
    after = np.abs(np.fft.rfft(y[end + guard : end + guard + w] * hann)) ** 2
    f = np.fft.rfftfreq(w, 1 / rate)
    edges = np.geomspace(100, rate / 2, 13)
    rise = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        band = (f >= lo) & (f < hi)
        if band.any():
            rise.append(10 * np.log10((after[band].sum() + 1e-20) / (before[band].sum() + 1e-20)))
    rise = np.array(rise)
    return float(np.mean(rise > 3)), float(np.median(rise))


def category(path: Path) -> str:
    if path.parent.name == "short48":
        return "short48/" + path.stem.split("_")[0]
    return path.parent.name


def point_excess(y: np.ndarray, rate: int, at: int) -> float:
    """`new_sound`'s excess of a one-sample burst at ``at`` with a candidate's padding (nan where
    the windows do not fit): the same measure for the recording's events and for a candidate."""
    from sonode.tasks.click_checks import new_sound

    lo, hi = at - int(0.0005 * rate), at + 1 + int(0.002 * rate)
    change = new_sound(y, rate, lo, hi, 1) if lo >= 0 and hi <= y.size else None
    return float("nan") if change is None else change[2]


def own_events_excess(y: np.ndarray, rate: int, min_ratio: float = 1.2) -> list[float]:
    """`point_excess` at every sounding event of ``y`` at least ``min_ratio`` isolated."""
    loud = _Loudness(y, rate)
    _, (at, log_iso) = click_candidates(y, rate, loud)
    keep = at[np.exp(log_iso) >= min_ratio]
    return [point_excess(y, rate, int(q)) for q in keep if loud.sounding_around(int(q), int(q) + 1)]


def features(y: np.ndarray, rate: int, label: str, made: tuple[int, int] | None) -> list[dict]:
    loud = _Loudness(y, rate)
    candidates, (_, log_iso) = click_candidates(y, rate, loud)
    candidates = distinct(candidates)  # as judge_candidates takes them
    events = EventIsolation(log_iso)
    e = prediction_residual(y, rate)
    rows = []
    for c in candidates:
        if made is not None and not (c.start < made[1] and made[0] < c.end):
            continue
        is_click, why = judge(c.change, c.ratio, events, c.singled_out)
        rise, change, excess = c.change if c.change is not None else (np.nan,) * 3
        gain_db, glrt = fill_gain(y, rate, c.start, c.end)
        flux_frac, flux_med = band_flux(y, rate, c.start, c.end)
        sflux_frac, sflux_med = band_flux(y, rate, c.start, c.end, 0.04)
        rows.append(
            {
                "kind": label,
                "start_s": c.start / rate,
                "found": bool(is_click),
                "why": why,
                "ratio": c.ratio,
                "expected": events.expected(c.ratio),
                "rise": rise,
                "change": change,
                "factor": c.factor,
                "repeat": repeat_similarity(e, c.start, c.end, rate),
                "span": c.end - c.start,
                "window": c.window,
                "singled_out": c.singled_out,
                "excess": excess,
                "point_excess": point_excess(
                    y, rate, c.start + int(np.argmax(np.abs(e[c.start : c.end])))
                ),
                "gain_db": gain_db,
                "glrt": glrt,
                "flux_frac": flux_frac,
                "flux_med": flux_med,
                "sflux_frac": sflux_frac,
                "sflux_med": sflux_med,
            }
        )
    return rows


def several_at_once(
    x: np.ndarray, rate: int, places: np.ndarray, k: int, seed: int, dropouts: int = 0
) -> list[dict]:
    """``dropouts`` made dropouts, then ``k`` made clicks, at once (≥ 50 ms apart) in ``x``: one
    row per defect, found or not by `detect_defects` (kind "made_at_once")."""
    from sonode.tasks.detect import detect_defects

    rng = np.random.default_rng(1000 + seed)
    y, made = x.copy(), []
    for kind in ["dropout"] * dropouts + ["click"] * k:
        far = np.ones(places.size, dtype=bool)
        for m, _, _ in made:
            far &= np.abs(places - m) > 0.05 * rate
        free = places[far]
        if free.size == 0:
            break
        start = int(rng.choice(free))
        y, n = make_defect(y, rate, kind, start, rng)
        made.append((start, n, kind))
    found = detect_defects(y, rate)
    return [
        {
            "kind": "made_at_once",
            "defect": kind,
            "start_s": s / rate,
            "found": any(d.start < s + n and s < d.end for d in found),
        }
        for s, n, kind in made
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--at-once", type=int, default=0, help="also K made clicks at once per file"
    )
    parser.add_argument("--dropouts", type=int, default=0, help="and D dropouts with them")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument(
        "--dominance", type=float, help="a looser stage 1: log the candidates this isolated too"
    )
    parser.add_argument("--max-click-ms", type=float, help="and bursts up to this long")
    args = parser.parse_args()
    import sonode.tasks.detect_clicks as parts

    if args.dominance is not None:  # a superset of today's candidates: rules simulated offline
        parts.DOMINANCE = args.dominance
    if args.max_click_ms is not None:
        parts.MAX_CLICK_S = args.max_click_ms / 1000
    rng = np.random.default_rng(args.seed)
    rows, made_total = [], {"train": 0, "test": 0}
    for i, path in enumerate(audio_files(args.folders)):
        half = "train" if i % 2 == 0 else "test"
        x, rate = sf.read(path, always_2d=True)
        x = x[:, 0]
        meta = {"file": str(path), "half": half, "category": category(path), "rate": rate}
        rows += [meta | r for r in features(x, rate, "clean", None)]
        rows.append(meta | {"kind": "own_events", "excess": own_events_excess(x, rate)})
        places = sounding_starts(x, rate)
        if places.size == 0:
            continue
        for trial in range(args.trials):  # the benchmark's draws, in its order
            kind = "dropout" if trial % 2 == 0 else "click"
            start = int(rng.choice(places))
            y, n = make_defect(x.copy(), rate, kind, start, rng)
            if kind == "click":
                made_total[half] += 1
                w = int(0.01 * rate)
                local = np.sqrt(np.mean(x[max(0, start - w) : start + w] ** 2)) + 1e-12
                made_info = {
                    "trial": trial,
                    "made_start_s": start / rate,
                    "made_n": n,
                    "made_rel_db": float(20 * np.log10(np.max(np.abs(y - x)) / local)),
                }
                found = features(y, rate, "made", (start, start + n))
                rows += [meta | made_info | r for r in found] or [
                    meta | made_info | {"kind": "made", "found": False, "why": "not a candidate"}
                ]
        if x.size >= 8 * rate:  # replay the draws of the benchmark's several-at-once part
            y, made = x.copy(), []
            for kind in ("dropout", "dropout", "click", "click", "click"):
                far = np.ones(places.size, dtype=bool)
                for m, _ in made:
                    far &= np.abs(places - m) > 0.5 * rate
                start = int(rng.choice(places[far]))
                y, n = make_defect(y, rate, kind, start, rng)
                made.append((start, n))
        if (
            args.at_once
        ):  # several clicks in one recording (its own generator: the draws above kept)
            rows += [
                meta | r for r in several_at_once(x, rate, places, args.at_once, i, args.dropouts)
            ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"made_total": made_total, "rows": rows}, indent=0, default=float)
    )
    clean = [r for r in rows if r["kind"] == "clean" and r["found"]]
    made = [r for r in rows if r["kind"] == "made" and r["found"]]
    print(f"false alarms {len(clean)}; made clicks found {len(made)} of {sum(made_total.values())}")


if __name__ == "__main__":
    main()
