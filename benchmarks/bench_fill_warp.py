"""Oracle: does filling on the series' own clock (pitch held constant) help on tonal recordings?

    PYTHONPATH=. python benchmarks/bench_fill_warp.py data data/more /work/corpus/short48 \\
        --categories sustained decaying bell glide --rate 16000 -o outputs/warp16

For each clip whose top octave is harmonic (`harmonic_series`), the ratio track f₀(t)/f₀ is
measured on the *clean* clip, the gap included (`ratio_track`: the oracle — the true pitch across
the gap, which a real filler would have to guess from both sides). Gaps of ``--lengths`` ms at
``--positions`` seeded sounding places per clip (`bench_fill_wide.random_positions`, 4096 samples
of margin). Each gap is filled three ways, each from the damaged clip (the gap zeroed):

- ``sonode``: `fill_one` with the default settings on the clip's own clock;
- ``warped``: the damaged clip read on the series' clock (`dewarped`), the gap there — widened by
  WIDEN samples each side, since the band-limited reading of the zeroed gap spills that far — is
  filled by the same `fill_one`, and the fill is read back at the gap's own times;
- ``janssen20``: the issue's reference.

Printed per length: median SNR over the gap, the paired median of warped − sonode and of each
against janssen20, and the track's depth (cents) over ±0.5 s of each gap. A drifting-partials
candidate is worth building only if ``warped`` gains over ``sonode`` with the true track.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks.bench_fill_song import audio_files
from benchmarks.bench_fill_wide import _janssen20, random_positions
from sonode.dsp.ar_fill import JANSSEN_CONTEXT_SAMPLES
from sonode.dsp.harmonics import harmonic_series
from sonode.dsp.metrics import snr_db
from sonode.dsp.pitch_track import (
    dewarped,
    ratio_track,
    read_at,
    track_depth_cents,
    warped_time,
)
from sonode.io.clip import read_clip
from sonode.tasks.fill import FillSettings, fill_one

WIDEN = 8  # samples: the sinc reading's 6 zero crossings and the cubic's 2, rounded up


def warped_fill(
    damaged: np.ndarray, rate: int, track, start: int, n_gap: int, settings: FillSettings
) -> np.ndarray:
    """The gap [start, start + n_gap) of ``damaged`` filled on the track's clock; (n_gap,)."""
    tau = warped_time(*track, damaged.size, rate) * rate  # (n,) dewarped sample positions
    y = dewarped(damaged, rate, track)
    lo = int(np.floor(tau[max(start - WIDEN, 0)]))
    hi = int(np.ceil(tau[min(start + n_gap + WIDEN, damaged.size - 1)])) + 1
    context = int(settings.context_s * rate)
    left, right = y[max(0, lo - context) : lo], y[hi : hi + context]
    filled = y.copy()
    filled[lo:hi] = fill_one(left, right, hi - lo, rate, settings)
    seg_lo, seg_hi = max(0, lo - 64), min(filled.size, hi + 64)
    return read_at(filled[seg_lo:seg_hi], rate, tau[start : start + n_gap] - seg_lo)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--categories", nargs="+", default=["sustained", "decaying", "bell"])
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--lengths", type=int, nargs="+", default=[20, 40, 80])
    parser.add_argument("--positions", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/warp"))
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    settings = FillSettings()
    records = []
    for path in audio_files(args.folders):
        if path.stem.split("_")[0] not in args.categories:
            continue
        clip = read_clip(path, rate=args.rate)
        x, rate = clip.samples[: int(args.max_seconds * clip.sample_rate)], clip.sample_rate
        partials = harmonic_series(x, rate, (rate / 4, 0.45 * rate))
        if partials is None:
            print(f"{path.name}: top octave not harmonic, skipped", flush=True)
            continue
        track = ratio_track(x, rate, partials, 0.45 * rate)
        rng = np.random.default_rng([args.seed, rate, sum(path.name.encode())])
        for ms in args.lengths:
            n_gap = int(ms / 1000 * rate)
            for start in random_positions(x, rate, n_gap, args.positions, 4096, rng):
                truth = x[start : start + n_gap]
                damaged = x.copy()
                damaged[start : start + n_gap] = 0.0
                ctx = int(settings.context_s * rate)
                left, right = damaged[max(0, start - ctx) : start], damaged[start + n_gap :][:ctx]
                fills = {
                    "sonode": fill_one(left, right, n_gap, rate, settings),
                    "warped": warped_fill(damaged, rate, track, start, n_gap, settings),
                    "janssen20": _janssen20(
                        left[-JANSSEN_CONTEXT_SAMPLES:],
                        right[:JANSSEN_CONTEXT_SAMPLES],
                        n_gap,
                        rate,
                    ),
                }
                near = np.abs(track[0] - start / rate) < 0.5
                records.append(
                    {
                        "clip": path.name,
                        "ms": ms,
                        "start": start,
                        "depth_cents": track_depth_cents(track[1][near]),
                    }
                    | {k: snr_db(truth, f) for k, f in fills.items()}
                )
                print(json.dumps(records[-1]), flush=True)
        (args.output / "results.json").write_text(json.dumps(records, indent=1))
    for ms in args.lengths:
        rs = [r for r in records if r["ms"] == ms]
        if not rs:
            continue

        def med(f, rs=rs):
            return statistics.median(f(r) for r in rs)

        print(
            f"{ms} ms, {len(rs)} gaps: sonode {med(lambda r: r['sonode']):.2f}, warped "
            f"{med(lambda r: r['warped']):.2f}, janssen20 {med(lambda r: r['janssen20']):.2f} dB; "
            f"paired warped−sonode {med(lambda r: r['warped'] - r['sonode']):+.2f}, "
            f"sonode−janssen {med(lambda r: r['sonode'] - r['janssen20']):+.2f}, "
            f"warped−janssen {med(lambda r: r['warped'] - r['janssen20']):+.2f}"
        )


if __name__ == "__main__":
    main()
