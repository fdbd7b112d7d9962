"""Rendering speed: a fitted 1 s model read at 48 and 44.1 kHz, and free-running continuations.

    python benchmarks/bench_render.py          # ~2 minutes
    python benchmarks/bench_render.py --cpu --fast-only    # CPU seconds; no sequential reference

Fits the steel-guitar clip (16 kHz, first 1.0 s, 40 steps), then, with 1 thread, times the median
of 5 renders of each kind through the fast modal solver that `sonode render/upsample/extrapolate`
use, and one render through the engine's sequential Lawson RK4 reference (step 1/output rate),
side by side: real-time factor (audio seconds per second of wall time; > 1 is faster than real
time), speed-up, and the SNR between the two outputs. Whether the fit learned a non-zero field
is printed: a zero field makes the ODE linear, and its render needs no envelope solve at all.
With --cpu the times are CPU seconds of the process (1 thread: the work done, which a loaded
machine changes far less than the wall time); the real-time factors are then per CPU second.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402

CLOCK = time.perf_counter  # time.process_time with --cpu


def timed(fn, repeats: int = 5):
    times, out = [], None
    for _ in range(repeats):
        start = CLOCK()
        out = fn()
        times.append(CLOCK() - start)
    return statistics.median(times), out


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    err = float(torch.sum((reference - estimate) ** 2))
    return math.inf if err == 0 else 10 * math.log10(float(torch.sum(reference**2)) / err)


def main() -> None:
    global CLOCK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="time in CPU seconds of the process")
    parser.add_argument("--fast-only", action="store_true", help="skip the sequential reference")
    args = parser.parse_args()
    CLOCK = time.process_time if args.cpu else time.perf_counter
    torch.set_num_threads(1)
    clip = read_clip(ROOT / "data" / "decaying_steelguitar_C4.wav", rate=16000, duration_s=1.0)
    model, _ = fit_samples(clip.samples, 16000, FitOptions(steps=40, max_time_s=None))
    span = model.config.duration_s
    # the continuation ODE is linear (exact for any step); the segments' free run is what the
    # sequential reference integrates step by step: compare the last segment's free run
    cases = [
        ("upsample 1.0 s to 48 kHz", 0.0, span, 48000),
        ("upsample 1.0 s to 44.1 kHz", 0.0, span, 44100),
        ("extrapolate 0.2 s at 48 kHz", span, span + 0.2, 48000),
        ("extrapolate 2.0 s at 48 kHz (fast only)", span, span + 2.0, 48000),
    ]
    k = model.config.n_modes
    with torch.no_grad():
        growth, shift = model.field.rates(model.states[:, :k] ** 2 + model.states[:, k:] ** 2)
    field = (
        "zero (linear ODE)"
        if model.field.is_zero()
        else f"max |Re γ| {float(growth.abs().max()):.3g}/s, "
        f"|Im γ| {float(shift.abs().max()):.3g} rad/s at segment starts"
    )
    print(
        f"model: d={model.config.latent_dim}, {model.config.layout.n_segments} segments, "
        f"continuation {model.config.tail_modes} modes, field {field}, 1 thread; "
        f"{'CPU' if args.cpu else 'wall'} seconds; load average {os.getloadavg()[0]:.1f} (2 cores)"
    )
    print(
        f"{'case':42s} {'fast s':>7s} {'x real time':>11s} {'sequential s':>13s} {'speed-up':>9s} {'SNR dB':>7s}"
    )
    for name, start_s, end_s, rate in cases:
        times = (
            start_s + torch.arange(int(round((end_s - start_s) * rate)), dtype=torch.float64) / rate
        )
        fast_s, fast = timed(lambda times=times: model.render_normalised(times))
        line = f"{name:42s} {fast_s:7.3f} {(end_s - start_s) / fast_s:11.1f}"
        if "fast only" not in name and not args.fast_only:
            seq_s, seq = timed(
                lambda times=times, rate=rate: model.render_normalised(
                    times, max_step_s=1.0 / rate
                ),
                repeats=1,
            )
            line += f" {seq_s:13.3f} {seq_s / fast_s:9.1f} {snr_db(seq, fast):7.1f}"
        print(line)


if __name__ == "__main__":
    main()
