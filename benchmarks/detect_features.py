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
away) — a loop, a drum pattern or a repeated pluck makes the same burst again, a click does not.
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
from sonode.tasks.click_checks import EventIsolation, judge  # noqa: E402
from sonode.tasks.detect import _Loudness, click_candidates, prediction_residual  # noqa: E402

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


def category(path: Path) -> str:
    if path.parent.name == "short48":
        return "short48/" + path.stem.split("_")[0]
    return path.parent.name


def features(y: np.ndarray, rate: int, label: str, made: tuple[int, int] | None) -> list[dict]:
    loud = _Loudness(y, rate)
    candidates, (_, log_iso) = click_candidates(y, rate, loud)
    events = EventIsolation(log_iso)
    e = prediction_residual(y, rate)
    rows = []
    for c in candidates:
        if made is not None and not (c.start < made[1] and made[0] < c.end):
            continue
        is_click, why = judge(c.change, c.ratio, events)
        rise, change = c.change if c.change is not None else (np.nan, np.nan)
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
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows, made_total = [], {"train": 0, "test": 0}
    for i, path in enumerate(audio_files(args.folders)):
        half = "train" if i % 2 == 0 else "test"
        x, rate = sf.read(path, always_2d=True)
        x = x[:, 0]
        meta = {"file": str(path), "half": half, "category": category(path), "rate": rate}
        rows += [meta | r for r in features(x, rate, "clean", None)]
        places = sounding_starts(x, rate)
        if places.size == 0:
            continue
        for trial in range(args.trials):  # the benchmark's draws, in its order
            kind = "dropout" if trial % 2 == 0 else "click"
            start = int(rng.choice(places))
            y, n = make_defect(x.copy(), rate, kind, start, rng)
            if kind == "click":
                made_total[half] += 1
                found = features(y, rate, "made", (start, start + n))
                rows += [meta | {"trial": trial} | r for r in found] or [
                    meta
                    | {"trial": trial, "kind": "made", "found": False, "why": "not a candidate"}
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
