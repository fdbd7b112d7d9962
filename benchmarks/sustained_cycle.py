"""Five-second continuations of held notes: the limit cycle against the identified linear continuation.

    .venv/bin/python benchmarks/sustained_cycle.py data/sustained_*.wav data/more/sustained_*.wav   # ~3 min

Each clip (first 1.5 s, 16 kHz) is continued for 5 s by its continuation ODE, identified on the
whole clip, (a) untrained: the linear ODE, (b) with the limit cycle when `fit_dynamics` chooses it
(validation on the clip's held-back end; no field training, --steps 0 by default). Printed per clip:
whether the cycle was chosen, the level of each 0.5 s of the continuation relative to the clip's
last 0.5 s (dB, audible band: 20 Hz high-pass), the largest |level| (goal ≤ 2 dB), and the LSD (bels,
as `sonode.metrics.log_spectral_distance`) between the continuation's average power spectrum over
the 5 s and the clip's last 0.5 s's (goal ≤ 1.0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, sosfilt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.dsp.metrics import POWER_FLOOR
from sonode.dsp.spectra import power_spectrogram
from sonode.io.clip import read_clip
from sonode.model.continuation import identify_continuation
from sonode.model.init import normalisation
from sonode.model.predict import Tail, fit_dynamics

RATE = 16000
SECONDS = 5.0
BLOCK_S = 0.5


def audible(x: np.ndarray) -> np.ndarray:
    return sosfilt(butter(4, 20.0, "highpass", fs=RATE, output="sos"), x)


def average_spectrum(x: np.ndarray) -> np.ndarray:
    n_fft = round(2048 * RATE / 48000)
    return np.maximum(
        power_spectrogram(x, RATE, n_fft, round(0.01 * RATE))[2].mean(axis=-1), POWER_FLOOR
    )


def measure(clip: np.ndarray, continuation: np.ndarray) -> tuple[list[float], float]:
    both = audible(np.concatenate([clip, continuation]))
    last, cont = both[clip.shape[0] - int(BLOCK_S * RATE) : clip.shape[0]], both[clip.shape[0] :]
    ref = 10 * np.log10(np.mean(last**2))
    block = int(BLOCK_S * RATE)
    levels = [
        10 * np.log10(np.mean(cont[i : i + block] ** 2) + 1e-30) - ref
        for i in range(0, cont.shape[0] - block + 1, block)
    ]
    lsd = float(
        np.sqrt(np.mean((np.log10(average_spectrum(cont)) - np.log10(average_spectrum(last))) ** 2))
    )
    return levels, lsd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument(
        "--steps", type=int, default=0, help="field training steps (default 0: the cycle only)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    worst = {"linear": [], "cycle": []}
    for path in args.clips:
        clip = read_clip(path, duration_s=1.5, rate=RATE).samples
        gain, offset = normalisation(clip)
        xn = (clip - offset) / gain
        tail = Tail.from_fit(identify_continuation(xn, RATE), RATE)
        n = int(SECONDS * RATE)
        linear = tail.continue_clip(n, RATE) * gain + offset
        report = fit_dynamics(tail, xn, RATE, args.steps)
        chosen = tail.continue_clip(n, RATE) * gain + offset
        for name, run in (("linear", linear), ("cycle", chosen)):
            levels, lsd = measure(clip, run)
            worst[name].append((max(abs(v) for v in levels), lsd))
            print(
                f"{path.name:32s} {name:6s} cycle={report['cycle']!s:5s} levels "
                f"{' '.join(f'{v:+5.1f}' for v in levels)} dB | max {max(abs(v) for v in levels):4.1f} dB | "
                f"LSD {lsd:.2f}",
                flush=True,
            )
    for name, rows in worst.items():
        a = np.array(rows)
        print(
            f"{name}: level within ±2 dB on {int(np.sum(a[:, 0] <= 2))} of {len(rows)}, LSD ≤ 1.0 on "
            f"{int(np.sum(a[:, 1] <= 1.0))}; median max |level| {np.median(a[:, 0]):.1f} dB, median LSD "
            f"{np.median(a[:, 1]):.2f}"
        )


if __name__ == "__main__":
    main()
