"""Gap filling on the bundled clips: sonode vs gap-wise Janssen vs two-sided Burg, and fill timing.

    PYTHONPATH=. python benchmarks/bench_fill.py --rate 16000 --rate 48000 --positions 5 -o outputs/bench_fill
    PYTHONPATH=. python benchmarks/bench_fill.py --rate 48000 --method sonode --reuse outputs/bench_fill48 -o DIR
    PYTHONPATH=. python benchmarks/bench_fill.py --rate 16000 --with-fit --sonode-positions 1 --budget 10
    PYTHONPATH=. python benchmarks/bench_fill.py --timing --budget 10 -o outputs/bench_fill
    PYTHONPATH=. python benchmarks/bench_fill.py --detect --trials 20

The first form punches gaps of 10/20/40/80 ms at `--positions` places inside the sounding part of
every clip in data/ (read at each `--rate`; 48000 is their own rate) and writes results.json and
results.md (per-rate-and-length medians, then per clip). `--with-fit` adds the earlier method,
sonode_fit (two model fits per gap, minutes each under load), scored on the first
`--sonode-positions` positions only (the table says how many gaps each median covers).

`--candidates none` scores sonode's orders alone (no `reestimate`/`janssen` candidates).
`--method` runs only the named methods; `--reuse DIR` adds the other methods' records from an
earlier run's results.json (same rates and clips), so a change to sonode needs only sonode re-run.

`--detect` inserts synthetic dropouts and clicks into the bundled clips and counts what
`sonode fill --detect` finds, and its false alarms on the clean clips.

`--timing` builds a 10 s, 48 kHz clip by looping the five bundled clips (GPL-2 / GPL-2+ data from
Debian's freepats and alsa-utils, see data/README.md), punches a 40 ms gap at 5 s and times
`sonode fill` on it (2 threads), end to end: read, identify and fill, write.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from sonode.dsp.interpolation import RESIDUALS
from sonode.evaluation.evaluate_fill import evaluate_fill, fill_markdown, medians, write_results
from sonode.tasks.fill import FillSettings
from sonode.tasks.fill_file import fill_file
from sonode.tasks.fill_methods import EVALUATED_FILL_METHODS, FILL_METHODS

DATA = Path(__file__).resolve().parent.parent / "data"


def quality(args) -> None:
    settings = FillSettings(
        budget_s=args.budget,
        steps=args.steps,
        context_s=args.context,
        orders=args.orders,
        residual=args.residual,
        candidates=args.candidates,
    )
    methods = tuple(FILL_METHODS) if args.with_fit else EVALUATED_FILL_METHODS
    methods = tuple(args.method) if args.method else methods
    paths = sorted(DATA.glob("*.wav")) if not args.clip else [DATA / c for c in args.clip]
    records = reused(args.reuse, methods, args.rate, [p.name for p in paths]) if args.reuse else []
    args.output.mkdir(parents=True, exist_ok=True)
    for rate in args.rate:
        for (
            path
        ) in paths:  # results are rewritten after every clip, so a cut-short run keeps its part
            result = evaluate_fill(
                [path],
                rate,
                settings,
                n_positions=args.positions,
                methods=methods,
                sonode_positions=args.sonode_positions,
                on_gap=lambda s: print(s, file=sys.stderr, flush=True),
            )
            records += result["gaps"]
            results = {
                "settings": result["settings"],
                "gaps": records,
                "median": medians(records),
                "paired": paired_medians(records),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            write_results(results, args.output)
            with open(args.output / "results.md", "a") as f:
                if args.with_fit:
                    f.write(
                        "\nOn the gaps sonode_fit was scored on (paired):\n\n"
                        + fill_markdown({"median": results["paired"]})
                    )
                f.write("\n" + per_clip_markdown(records))
    print((args.output / "results.md").read_text())


def reused(
    folder: Path, methods: tuple[str, ...], rates: list[int], clips: list[str]
) -> list[dict]:
    """The gap records of an earlier run (``folder``/results.json) for the methods not run now, at
    these rates and clips: the classical fillers need not be re-run when only sonode changed."""
    old = json.loads((folder / "results.json").read_text())["gaps"]
    return [
        r for r in old if r["method"] not in methods and r["rate"] in rates and r["clip"] in clips
    ]


def per_clip_markdown(records: list[dict]) -> str:
    """Median SNR over the gap per clip, rate and length: one cell per length, methods separated by /."""
    methods = [m for m in FILL_METHODS if any(r["method"] == m for r in records)]
    lengths = sorted({r["length_ms"] for r in records})
    lines = [
        f"Median SNR over the gap (dB), {' / '.join(methods)}:",
        "",
        "| clip, rate | " + " | ".join(f"{n} ms" for n in lengths) + " |",
        "|---" * (len(lengths) + 1) + "|",
    ]
    for clip, rate in sorted({(r["clip"], r["rate"]) for r in records}):
        cells = []
        for n in lengths:
            meds = []
            for m in methods:
                v = [
                    r["snr_db"]
                    for r in records
                    if (r["clip"], r["rate"], r["length_ms"], r["method"]) == (clip, rate, n, m)
                ]
                meds.append(f"{np.median(v):.1f}" if v else "–")
            cells.append(" / ".join(meds))
        lines.append(f"| {clip} {rate} Hz | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_medians(records: list[dict]) -> dict:
    """Medians over only the (clip, rate, length, position) gaps that sonode_fit was scored on."""
    scored = {
        (r["clip"], r["rate"], r["length_ms"], r["position"])
        for r in records
        if r["method"] == "sonode_fit"
    }
    return medians(
        [r for r in records if (r["clip"], r["rate"], r["length_ms"], r["position"]) in scored]
    )


def timing(args) -> None:
    parts = [sf.read(p)[0] for p in sorted(DATA.glob("*.wav"))]
    rate = 48000
    x = np.tile(np.concatenate(parts), 2)[: 10 * rate]
    truth = x.copy()
    start = 5 * rate
    x[start : start + int(0.04 * rate)] = 0.0
    args.output.mkdir(parents=True, exist_ok=True)
    clip = args.output / "loop10s_gap.wav"
    sf.write(clip, x, rate, subtype="PCM_16")
    torch.set_num_threads(2)
    begin = time.perf_counter()
    report = fill_file(
        clip,
        args.output / "loop10s_filled.wav",
        [(5.0, 5.04)],
        FillSettings(budget_s=args.budget, steps=args.steps, context_s=args.context),
    )
    seconds = time.perf_counter() - begin
    filled = sf.read(args.output / "loop10s_filled.wav")[0]
    gap = slice(start, start + int(0.04 * rate))
    err = np.sum((filled[gap] - truth[gap]) ** 2)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "goal_s": 30,
                "gap_snr_db": 10 * np.log10(np.sum(truth[gap] ** 2) / err),
                "report": report,
            },
            indent=2,
        )
    )


def detection(args) -> None:
    """Insert one synthetic defect at a time into each bundled clip (16 kHz and 48 kHz) and count
    how many `detect_defects` finds; count its detections on the clean clips (false alarms).

    Dropouts: 1-50 ms of zeros. Clicks: 0.1-2 ms bursts, random signs, exponentially decaying,
    peak 0.1-0.5 × the clip's peak. Positions: where the 20 ms RMS is ≥ −20 dB re its loudest.
    """
    from sonode.io.clip import read_clip
    from sonode.tasks.detect import detect_defects

    rng = np.random.default_rng(1)
    counts = {"dropout": [0, 0], "click": [0, 0]}
    false_alarms, clean_s, misses = [], 0.0, []
    for rate in (16000, None):
        for path in sorted(DATA.glob("*.wav")):
            clip = read_clip(path, rate=rate)
            x, sr = clip.samples, clip.sample_rate
            false_alarms += [(path.name, sr, d.start / sr, d.kind) for d in detect_defects(x, sr)]
            clean_s += x.size / sr
            w = int(0.02 * sr)
            env = np.sqrt(np.convolve(x**2, np.ones(w) / w, "same"))
            sounding = np.flatnonzero(env > 0.1 * env.max())
            sounding = sounding[(sounding > int(0.06 * sr)) & (sounding < x.size - int(0.12 * sr))]
            for trial in range(args.trials):
                kind = "dropout" if trial % 2 == 0 else "click"
                start, y = int(rng.choice(sounding)), x.copy()
                if kind == "dropout":
                    n = int(rng.uniform(0.001, 0.05) * sr)
                    y[start : start + n] = 0.0
                else:
                    n = max(1, int(rng.uniform(0.0001, 0.002) * sr))
                    burst = np.exp(-np.arange(n) / (n / 3 + 1)) * rng.choice([-1.0, 1.0], n)
                    y[start : start + n] += rng.uniform(0.1, 0.5) * np.abs(x).max() * burst
                hit = any(d.start < start + n and start < d.end for d in detect_defects(y, sr))
                counts[kind][0] += hit
                counts[kind][1] += 1
                if not hit:
                    misses.append((path.name, sr, kind, start / sr, n))
    print(
        json.dumps(
            {
                "found": {k: f"{h}/{t}" for k, (h, t) in counts.items()},
                "false_alarms": false_alarms,
                "clean_audio_s": clean_s,
                "misses": misses,
            },
            indent=2,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=int, action="append", help="Rate(s) to read the clips at (Hz)."
    )
    parser.add_argument("--clip", action="append", help="Only these files of data/ (default: all).")
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--sonode-positions", type=int, default=1)
    parser.add_argument("--budget", type=float, default=10.0, help="sonode_fit budget per gap (s).")
    parser.add_argument(
        "--method",
        action="append",
        choices=list(FILL_METHODS),
        help=f"Only these methods (default: {', '.join(EVALUATED_FILL_METHODS)}).",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="Take the other methods' gap records from this earlier output folder.",
    )
    parser.add_argument(
        "--with-fit", action="store_true", help="Also score sonode_fit (model fits per gap)."
    )
    parser.add_argument(
        "--context",
        type=float,
        default=FillSettings().context_s,
        help="sonode context per side (s).",
    )
    parser.add_argument(
        "--orders",
        type=lambda v: tuple(int(o) for o in v.split(",")),
        help="sonode's candidate orders, comma-separated (default: scaled to the rate).",
    )
    parser.add_argument(
        "--residual",
        default=FillSettings().residual,
        choices=RESIDUALS,
        help="sonode: what is added to the most likely trajectory (default: FillSettings').",
    )
    parser.add_argument(
        "--candidates",
        type=lambda v: () if v == "none" else tuple(v.split(",")),
        help="sonode: the estimators weighed against the orders, comma-separated, or 'none' for "
        "the orders alone (default: FillSettings', reestimate,janssen).",
    )
    parser.add_argument("--steps", type=int, default=None, help="Cap on optimiser steps per fit.")
    parser.add_argument("--timing", action="store_true")
    parser.add_argument(
        "--detect", action="store_true", help="Measure --detect on synthetic defects."
    )
    parser.add_argument(
        "--trials", type=int, default=20, help="Defects inserted per clip and rate (--detect)."
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_fill"))
    args = parser.parse_args()
    if args.timing:
        timing(args)
    elif args.detect:
        detection(args)
    else:
        torch.set_num_threads(1)
        args.rate = args.rate or [16000, 48000]
        quality(args)


if __name__ == "__main__":
    main()
