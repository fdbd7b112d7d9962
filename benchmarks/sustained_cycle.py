"""Held notes: the one trajectory over the clip and a five-second continuation, with and without their limit cycles.

    .venv/bin/python benchmarks/sustained_cycle.py data/sustained_*.wav data/more/sustained_*.wav
    .venv/bin/python benchmarks/sustained_cycle.py /work/corpus/short48/sustained_*.wav   # any folder

Each clip (first 1.5 s, 16 kHz) is identified as `sonode fit` does before training (default
`FitOptions`: modes, trajectory state, continuation; no training). Printed per clip:

* **one trajectory** (`SonodeModel.trajectory`, the free run from the trajectory state over the
  clip), (a) linear: its cycle off, (b) as chosen (`sonode.model.trajectory_cycle`): its SNR over
  the first 200 ms (goal ≥ 15 dB), and the largest |level difference| of its 100 ms blocks against
  the clip's (goal ≤ 2 dB); and the CPU seconds of the cycle's choice.
* **periodicity bound**: the SNR of the clip against itself one period (and 16 periods) earlier,
  best gain, period to a quarter sample: what any trajectory that repeats the note's waveform
  can expect (an upper-bound indication, not a proof).
* **5 s continuation** of the continuation ODE (a) untrained: the linear ODE, (b) with the limit
  cycle when `fit_dynamics` chooses it (validation on the clip's held-back end; no field training,
  --steps 0 by default): the level of each 0.5 s relative to the clip's last 0.5 s (dB, audible
  band: 20 Hz high-pass), the largest |level| (goal ≤ 2 dB), and the LSD (bels, as
  `sonode.metrics.log_spectral_distance`) between the continuation's average power spectrum over
  the 5 s and the clip's last 0.5 s's (goal ≤ 1.0).

Medians over the clips close the output.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, sosfilt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.dsp.metrics import POWER_FLOOR
from sonode.dsp.resample import upsample_sinc
from sonode.dsp.spectra import power_spectrogram
from sonode.io.clip import read_clip
from sonode.model.init import TRAJECTORY_S, initial_from_options
from sonode.model.options import FitOptions
from sonode.model.predict import Tail, fit_dynamics
from sonode.model.trajectory_cycle import choose_trajectory_cycle, least_squares_state

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


def block_levels_db(x: np.ndarray, block: int) -> np.ndarray:
    m = x.shape[0] // block
    return 10 * np.log10(np.mean(x[: m * block].reshape(m, block) ** 2, axis=1) + 1e-30)


def snr_db(truth: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(truth**2) / max(np.sum((truth - estimate) ** 2), 1e-300)))


def periodicity_db(x: np.ndarray, periods: int) -> tuple[float, float]:
    """(SNR of x against ``periods`` of its best period earlier with the best gain, f0 Hz): the
    period searched over 1-25 ms on a 4× upsampled copy (a quarter-sample lag grid)."""
    fine = upsample_sinc(x - x.mean(), RATE, 4 * RATE)
    best, best_lag = -np.inf, 4
    for lag in range(4 * RATE // 1000, 4 * RATE // 40):
        a, b = fine[lag:], fine[:-lag]
        gain = (a @ b) / (b @ b)
        s = snr_db(a, gain * b)
        if s > best:
            best, best_lag = s, lag
    lag = best_lag * periods
    if lag >= fine.shape[0] // 2:
        return math.nan, 4 * RATE / best_lag
    a, b = fine[lag:], fine[:-lag]
    return snr_db(a, (a @ b) / (b @ b) * b), 4 * RATE / best_lag


def one_trajectory(model, clip: np.ndarray) -> tuple[float, float]:
    """(SNR over the first 200 ms, largest |level difference| of 100 ms blocks) of the free run."""
    n = min(clip.shape[0], int(TRAJECTORY_S * RATE))
    with torch.no_grad():
        run = model.denormalise(model.trajectory(n))
    first = int(0.2 * RATE)
    block = int(0.1 * RATE)
    levels = block_levels_db(run, block) - block_levels_db(clip[:n], block)
    return snr_db(clip[:first], run[:first]), float(np.max(np.abs(levels)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument(
        "--steps", type=int, default=0, help="field training steps (default 0: the cycle only)"
    )
    parser.add_argument(
        "--trajectory-only",
        action="store_true",
        help="measure the one trajectory only (no 5 s run)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list] = {"linear": [], "cycle": [], "traj_linear": [], "traj_cycle": []}
    bounds = []
    for path in args.clips:
        clip = read_clip(path, duration_s=1.5, rate=RATE).samples
        model, ident = initial_from_options(clip, RATE, FitOptions())
        xn = (clip - model.config.offset) / model.config.gain
        chosen_traj = model.trajectory_cycle.active
        traj_cycle = one_trajectory(model, clip)
        # the linear free run: the cycle off and the state as `initial_model` fits it without one
        n_traj = min(xn.shape[0], int(TRAJECTORY_S * RATE))
        bank = model.bank
        poles = np.exp((bank.decay_per_s + 1j * bank.omega_rad_per_s).detach().numpy() / RATE)
        model.trajectory_cycle.release()
        with torch.no_grad():
            model.trajectory_state.copy_(
                torch.from_numpy(least_squares_state(poles, xn[:n_traj], 1e-6))[None]
            )
        traj_linear = one_trajectory(model, clip)
        cpu = time.process_time()
        choose_trajectory_cycle(model, xn, n_traj, 1e-6)
        choice_cpu_s = time.process_time() - cpu
        one, f0 = periodicity_db(clip, 1)
        sixteen, _ = periodicity_db(clip, 16)
        bounds.append((one, sixteen))
        info = ident["trajectory_cycle"]
        print(
            f"{path.name:32s} trajectory cycle={chosen_traj!s:5s} (held-back level error "
            f"{' '.join(f'{k} {e:.2f}' for k, e in info.get('level_error_db', {}).items())} dB, "
            f"members ≤ {info.get('member_db_per_s', '-')} dB/s, choice {choice_cpu_s:.2f} CPU s) "
            f"| linear "
            f"{traj_linear[0]:5.1f} dB over 200 ms, level max {traj_linear[1]:4.1f} dB | chosen "
            f"{traj_cycle[0]:5.1f} dB, max {traj_cycle[1]:4.1f} dB | periodicity (f0 {f0:.1f} Hz) "
            f"1 period {one:5.1f} dB, 16 periods {sixteen:5.1f} dB",
            flush=True,
        )
        rows["traj_linear"].append(traj_linear)
        rows["traj_cycle"].append(traj_cycle)
        if args.trajectory_only:
            continue
        if model.config.tail_modes == 0:
            print(f"{path.name:32s} no continuation ODE", flush=True)
            continue
        tail = Tail.from_model(model)
        n = int(SECONDS * RATE)
        linear = tail.continue_clip(n, RATE) * model.config.gain + model.config.offset
        report = fit_dynamics(tail, xn, RATE, args.steps)
        chosen = tail.continue_clip(n, RATE) * model.config.gain + model.config.offset
        for name, run in (("linear", linear), ("cycle", chosen)):
            levels, lsd = measure(clip, run)
            rows[name].append((max(abs(v) for v in levels), lsd))
            print(
                f"{path.name:32s} {name:6s} cycle={report['cycle']!s:5s} levels "
                f"{' '.join(f'{v:+5.1f}' for v in levels)} dB | max {max(abs(v) for v in levels):4.1f} dB | "
                f"LSD {lsd:.2f}",
                flush=True,
            )
    for name in ("traj_linear", "traj_cycle"):
        a = np.array(rows[name])
        print(
            f"one trajectory, {name[5:]}: ≥ 15 dB over 200 ms on {int(np.sum(a[:, 0] >= 15))} of "
            f"{len(a)}, level within ±2 dB on {int(np.sum(a[:, 1] <= 2))}; median "
            f"{np.median(a[:, 0]):.1f} dB, median max |level| {np.median(a[:, 1]):.1f} dB"
        )
    b = np.array(bounds)
    print(
        f"periodicity: median {np.nanmedian(b[:, 0]):.1f} dB against 1 period earlier, "
        f"{np.nanmedian(b[:, 1]):.1f} dB against 16"
    )
    for name in ("linear", "cycle"):
        a = np.array(rows[name])
        if a.size:
            print(
                f"continuation, {name}: level within ±2 dB on {int(np.sum(a[:, 0] <= 2))} of "
                f"{len(a)}, LSD ≤ 1.0 on {int(np.sum(a[:, 1] <= 1.0))}; median max |level| "
                f"{np.median(a[:, 0]):.1f} dB, median LSD {np.median(a[:, 1]):.2f}"
            )


if __name__ == "__main__":
    main()
