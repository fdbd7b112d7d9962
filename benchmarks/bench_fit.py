"""Training cost of `sonode fit`: the fast modal solver against the sequential reference, and memory.

    python benchmarks/bench_fit.py                 # ~5 minutes
    python benchmarks/bench_fit.py --memory-only

1. Optimiser steps per second on each bundled clip (first 1.0 s at 16 kHz, default model, every
   segment in each step), measured side by side in one run with 1 and 2 threads: the training
   step of `sonode fit` (fast modal solver, adjoint; the one-trajectory term included at its
   cadence) against the same model's reconstruction step through the engine's sequential
   Lawson RK4 at one step per sample with the checkpointed adjoint — what every step cost before
   the fast solver (0.92 s on 1 thread in the earlier README, d = 128). Ratio = speed-up.
2. Peak resident memory (Linux VmHWM, fresh process each) of `fit_samples(..., steps=20)` on 10,
   60 and 300 s of 16 kHz audio (the bundled clips concatenated and repeated), and its step time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions  # noqa: E402
from sonode.model.init import initial_from_options as _initial  # noqa: E402
from sonode.model.objective import step_loss as _step_loss  # noqa: E402

CLIPS = sorted((ROOT / "data").glob("*.wav"))


def _fast_step(model, target, step: int) -> None:
    """One training step's gradient computation, exactly as `fit_samples` does it (default options,
    a clip short enough for every segment to be in each step)."""
    model.zero_grad(set_to_none=True)
    log_objective, _, _ = _step_loss(
        model, target, FitOptions(), step, None, target.shape[0], float(torch.mean(target**2))
    )
    log_objective.backward()


def _sequential_step(model, target) -> None:
    model.zero_grad(set_to_none=True)
    signal, _ = model.reconstruct(gradient="adjoint", substeps=1)
    torch.mean((signal - target) ** 2).backward()


def step_rates(threads: int, fast_steps: int = 8, sequential_steps: int = 2) -> None:
    torch.set_num_threads(threads)
    print(
        f"\n1. optimiser steps per second, {threads} thread(s) (1.0 s at 16 kHz, all segments per step)"
    )
    print(
        f"   {'clip':26s} {'d':>4s} {'fast s/step':>12s} {'sequential s/step':>18s} {'speed-up':>9s}"
    )
    ratios = []
    for path in CLIPS:
        clip = read_clip(path, rate=16000, duration_s=1.0)
        model, _ = _initial(clip.samples, 16000, FitOptions(continuation_samples=0))
        with (
            torch.no_grad()
        ):  # a trained-looking field: the zero field of a fresh model would be cheaper
            model.field.mlp[-1].weight.normal_(
                0.0, 0.05, generator=torch.Generator().manual_seed(0)
            )
        target = torch.from_numpy((clip.samples - model.config.offset) / model.config.gain)
        _fast_step(model, target, 1)  # warm-up
        fast, sequential = [], []
        for i in range(fast_steps):
            start = time.perf_counter()
            _fast_step(model, target, i)
            fast.append(time.perf_counter() - start)
            if i < sequential_steps:  # interleaved, so both see the same machine load
                start = time.perf_counter()
                _sequential_step(model, target)
                sequential.append(time.perf_counter() - start)
        f, s = statistics.mean(fast), statistics.median(sequential)
        ratios.append(s / f)
        print(f"   {path.stem:26s} {model.config.latent_dim:4d} {f:12.3f} {s:18.3f} {s / f:9.1f}")
    print(f"   median speed-up {statistics.median(ratios):.1f}x (goal ≥ 10x)")


CHILD = """
import sys, time, numpy as np, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from sonode.io.clip import read_clip
from sonode.model import FitOptions, fit_samples
pieces = [read_clip(p, rate=16000).samples for p in {paths!r}]
x = np.tile(np.concatenate(pieces), 1 + int({seconds} * 16000) // sum(len(p) for p in pieces))[: int({seconds} * 16000)]
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) / 1024
model, report = fit_samples(x, 16000, FitOptions(steps=20, max_time_s=None))
print(hwm(), report.seconds_per_epoch, report.wall_time_s, report.identification["time_breakdown_s"]["identification"])
"""


def peak_memory(durations=(10.0, 60.0, 300.0)) -> None:
    print("\n2. peak RSS of `fit_samples(steps=20)` (fresh process each, 1 thread)")
    print(f"   load average {os.getloadavg()[0]:.1f} (2 cores)")
    print(
        f"   {'audio s':>8s} {'peak MiB':>9s} {'s/step':>8s} {'wall s':>8s} {'ident s':>8s} {'wall/audio':>10s}"
    )
    peaks = []
    for seconds in durations:
        code = CHILD.format(root=str(ROOT), paths=[str(p) for p in CLIPS], seconds=seconds)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        peak, per_step, wall, ident = (
            float(v) for v in out.stdout.strip().splitlines()[-1].split()
        )
        peaks.append(peak)
        print(
            f"   {seconds:8.0f} {peak:9.1f} {per_step:8.3f} {wall:8.1f} {ident:8.1f} {wall / seconds:8.3f}",
            flush=True,
        )
    print(
        f"   peak ratio {durations[-1]:.0f} s / {durations[0]:.0f} s: {peaks[-1] / peaks[0]:.2f} (goal ≤ 1.3, "
        f"and ≤ 1536 MiB)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument(
        "--seconds",
        type=float,
        nargs="+",
        default=[10.0, 60.0, 300.0],
        help="clip lengths of the memory measurement",
    )
    args = parser.parse_args()
    if not args.memory_only:
        step_rates(1)
        step_rates(2)
    peak_memory(tuple(args.seconds))
