"""The continuation's texture (`sonode.model.texture`) against its mean alone, on any clips.

    .venv/bin/python benchmarks/continuation_texture.py data/*.wav data/more/*.wav /work/corpus/short48

Each clip (first 1.5 s or all of a shorter one, 16 kHz) gets the continuation ODE `extrapolate`
runs, identified on its end (`identify_continuation`, the limit cycle chosen by `fit_dynamics` on
the held-back end, no field training), continued (a) as its mean alone (`--texture 0`) and (b)
with the texture added (`extrapolate`'s default). Per clip:

* **5 s** (the issue's sustained goal): the level of each 0.5 s block against the clip's last 0.5 s
  (dB, 20 Hz high-pass) and its largest |level| (goal ≤ 2 dB for held notes; a decaying sound's
  blocks must keep falling), and the LSD of the 5 s average spectrum against the last 0.5 s's
  (goal ≤ 1.0), as benchmarks/sustained_cycle.py measures them.
* **Short horizons**: identified on the first 1.3 s, the SNR over the next 5 / 20 / 50 / 200 ms and
  the LSD over the 200 ms (`log_spectral_distance`), mean and mean + texture (the texture starts at
  the switch, 50 ms, so the first three are the mean's), and the best Burg order's LSD (256-2048,
  picked after seeing the future, as benchmarks/continuation_clips.py).

Medians per category (the name's first word) and over all close the output. ``--onset-s``,
``--ramp-s``, ``--gain`` and ``--seed`` are the texture's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sustained_cycle import measure  # noqa: E402
from sonode.dsp.metrics import snr_db  # noqa: E402
from sonode.dsp.predictor import lpc_continue  # noqa: E402
from sonode.dsp.spectra import log_spectral_distance  # noqa: E402
from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import predict  # noqa: E402
from sonode.model.continuation import identify_continuation  # noqa: E402
from sonode.model.init import normalisation  # noqa: E402
from sonode.model.predict import Tail, fit_dynamics  # noqa: E402
from sonode.model.texture import RAMP_S, TextureModes, texture  # noqa: E402

RATE = 16000
SECONDS = 5.0
HORIZONS_MS = (5, 20, 50, 200)
BURG_ORDERS = (256, 512, 1024, 2048)  # the baseline: the best order after seeing the future
AUDIO = (".wav", ".flac", ".ogg")


def continued(history: np.ndarray, n: int, args) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """(mean, texture) of n samples past ``history``'s end (file amplitude), the cycle's choice
    and the texture's (`texture_choice`, on the history's held-back end)."""
    gain, offset = normalisation(history)
    xn = (history - offset) / gain
    tail = Tail.from_fit(identify_continuation(xn, RATE), RATE)
    report = fit_dynamics(tail, xn, RATE, 0)
    chosen = bool(report.get("texture", {}).get("chosen", False))
    mean = tail.continue_clip(n, RATE) * gain + offset
    modes = TextureModes.from_tail(tail, RATE, xn)
    noise = texture(
        modes,
        (mean - offset) / gain,
        RATE,
        seed=args.seed,
        onset_s=args.onset_s,
        ramp_s=args.ramp_s,
        gain=args.gain,
    )
    return mean, noise * gain, bool(report["cycle"]), chosen


def short_horizons(future: np.ndarray, x: np.ndarray) -> list[float]:
    return [snr_db(future[: RATE * ms // 1000], x[: RATE * ms // 1000]) for ms in HORIZONS_MS] + [
        log_spectral_distance(future, x, RATE)["lsd"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--onset-s", type=float, default=None, help="default: the switch (50 ms)")
    parser.add_argument("--ramp-s", type=float, default=RAMP_S)
    parser.add_argument("--gain", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-short", action="store_true", help="skip the short-horizon scores")
    parser.add_argument("--no-long", action="store_true", help="skip the 5 s scores (nan)")
    parser.add_argument("--skip", default="speech", help="skip names containing this")
    parser.add_argument(
        "--cycle-level",
        choices=("note", "window"),
        default="note",
        help="the cycle holds the note's level over the last 0.5 s (`sonode.model.cycle_level`) "
        "or the state window's (as before it existed)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.cycle_level == "window":
        predict.hold_note_level = lambda tail, x, rate: None
    clips = [
        f
        for p in args.clips
        for f in (
            sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO) if p.is_dir() else [p]
        )
        if not (args.skip and args.skip in f.name)
    ]
    rows: dict[str, list] = {}
    for path in clips:
        clip = read_clip(path, rate=RATE).samples[: int(1.5 * RATE)]  # a shorter file: all of it
        n = int(SECONDS * RATE)
        row, runs, chosen = [np.nan] * 4, (), False
        if not args.no_long:
            mean, noise, cycle, chosen = continued(clip, n, args)
            row, runs = [], (mean, mean + noise)
        for run in runs:
            levels, lsd = measure(clip, run)
            row += [max(abs(v) for v in levels), lsd]
            text = " ".join(f"{v:+5.1f}" for v in levels)
            print(
                f"{path.name:34s} cycle={cycle!s:5s} auto={chosen!s:5s} levels {text} | "
                f"LSD {lsd:.2f}",
                flush=True,
            )
        if not args.no_short:
            h = int(0.2 * RATE)
            m, t, _, short_chosen = continued(clip[:-h], h, args)
            a, b = short_horizons(clip[-h:], m), short_horizons(clip[-h:], m + t)
            burg = min(
                log_spectral_distance(clip[-h:], lpc_continue(clip[:-h], order, h), RATE)["lsd"]
                for order in BURG_ORDERS
            )
            row += a + b + [burg]
            print(
                f"{path.name:34s} 5/20/50/200 ms SNR, LSD: mean {' '.join(f'{v:6.2f}' for v in a)}"
                f" | +texture {' '.join(f'{v:6.2f}' for v in b)} | best Burg LSD {burg:.2f}"
                f" | auto={short_chosen}",
                flush=True,
            )
            # auto: mean + texture where the fit on that history chose it (5 s: on the whole
            # clip's held-back end; 200 ms: on the 1.3 s history's)
            row += [row[2] if chosen else row[0], row[3] if chosen else row[1]]
            row += (b if short_chosen else a) + [float(chosen), float(short_chosen)]
        rows.setdefault(path.name.split("_")[0], []).append(row)
        rows.setdefault("all", []).append(row)
    for name, r in rows.items():
        a = np.array(r)
        line = (
            f"{name} ({len(a)}): 5 s level within ±2 dB {int(np.sum(a[:, 0] <= 2))} → "
            f"{int(np.sum(a[:, 2] <= 2))}, LSD ≤ 1.0 {int(np.sum(a[:, 1] <= 1))} → "
            f"{int(np.sum(a[:, 3] <= 1))}; median max|level| {np.median(a[:, 0]):.1f} → "
            f"{np.median(a[:, 2]):.1f} dB, LSD {np.median(a[:, 1]):.2f} → {np.median(a[:, 3]):.2f}"
        )
        if a.shape[1] > 4:
            line += (
                f"; short SNR/LSD mean {np.round(np.median(a[:, 4:9], 0), 2)} → +texture "
                f"{np.round(np.median(a[:, 9:14], 0), 2)}; 200 ms LSD ≤ best Burg's on "
                f"{int(np.sum(a[:, 8] <= a[:, 14]))} → {int(np.sum(a[:, 13] <= a[:, 14]))} "
                f"(its median {np.median(a[:, 14]):.2f}); 200 ms SNR lower by > 1 dB on "
                f"{int(np.sum(a[:, 12] < a[:, 7] - 1))}, worst {np.min(a[:, 12] - a[:, 7]):+.2f} dB"
            )
        if a.shape[1] > 15:  # auto: columns 15-16 (5 s), 17-21 (short), 22-23 (the choices)
            line += (
                f"\n  auto (chosen on {int(a[:, 22].sum())} for 5 s, {int(a[:, 23].sum())} for "
                f"200 ms): 5 s level within ±2 dB {int(np.sum(a[:, 15] <= 2))}, LSD ≤ 1.0 "
                f"{int(np.sum(a[:, 16] <= 1))}; median max|level| {np.median(a[:, 15]):.1f} dB, "
                f"LSD {np.median(a[:, 16]):.2f}; short SNR/LSD {np.round(np.median(a[:, 17:22], 0), 2)};"
                f" 200 ms SNR change median {np.median(a[:, 20] - a[:, 7]):+.2f}, worst "
                f"{np.min(a[:, 20] - a[:, 7]):+.2f} dB; 200 ms LSD ≤ best Burg's on "
                f"{int(np.sum(a[:, 21] <= a[:, 14]))}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
