"""Does a long clip learn as much as a short one? (issue #13: budgets on long clips)

    python benchmarks/bench_long_gain.py            # ~2.5 minutes (two 60 s fits)
    python benchmarks/bench_long_gain.py --budget 30 --long 30
    python benchmarks/bench_long_gain.py --cpu-clock --batch-segments 256 64 [--folder DIR]

Fits 1 s and a longer stretch (default 10 s) of 16 kHz audio — the bundled clips concatenated and
repeated, the same audio `bench_fit.py --memory-only` uses — each with the same wall-clock budget
and default options, side by side in one run, 1 thread. Prints the linear start's SNR, the kept
model's SNR, the gain, the optimiser steps taken and steps per second: a step trains on a sample of
at most 256 segments, so steps per second should not depend on the clip's length, and the gain
over the linear start should be at least as large on the long clip; the last two columns are the
seconds spent in least-squares state solves and in checks of the kept model (issue #22: on a long
clip both cover the whole clip, a step only its sample). ``--cpu-clock`` counts the
budget in CPU seconds of the process (see budget_clock.py: comparable under any machine load);
``--batch-segments`` fits every clip with each of the given batch sizes, side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from budget_clock import time_calls, use_cpu_clock  # noqa: E402

import sonode.model.train as train  # noqa: E402
from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402
from sonode.model.objective import run_segments  # noqa: E402

RATE_HZ = 16000
#: what a fit's budget goes to besides the steps: `sonode.model.train`'s calls, timed (CPU s with
#: --cpu-clock): the least-squares state solves (and their cost probes), and the kept-model checks
OVERHEADS = {
    "solve_run_states": "solves",
    "whole_solve_estimate_s": "solves",
    "consider": "checks",
    "reconstruction_estimate_s": "checks",
}
spent: dict[str, float] = {}


def concatenated(seconds: float, folder: Path = ROOT / "data") -> np.ndarray:
    """The folder's clips at 16 kHz, concatenated and repeated to ``seconds``: shape (n,)."""
    pieces = [read_clip(p, rate=RATE_HZ).samples for p in sorted(folder.glob("*.wav"))]
    whole = np.concatenate(pieces)
    n = int(seconds * RATE_HZ)
    return np.tile(whole, 1 + n // len(whole))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per fit")
    parser.add_argument("--long", type=float, default=10.0, help="length of the long clip (s)")
    parser.add_argument("--folder", type=Path, default=ROOT / "data", help="clips to concatenate")
    parser.add_argument("--cpu-clock", action="store_true", help="budget in CPU seconds")
    parser.add_argument(
        "--batch-segments",
        type=int,
        nargs="+",
        default=[0],
        help="segments per step, each fitted side by side; 0: the default rule (run_segments)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.cpu_clock:
        use_cpu_clock()
    time_calls(train, OVERHEADS, time.process_time if args.cpu_clock else time.perf_counter, spent)
    clock = "CPU" if args.cpu_clock else "wall"
    print(
        f"load average {os.getloadavg()[0]:.1f} (2 cores); budget {args.budget:.0f} {clock} s; "
        "identification time per clip in the last column"
    )
    print(
        f"{'batch':>5s} {'clip s':>7s} {'linear dB':>10s} {'kept dB':>8s} {'gain dB':>8s} {'steps':>6s} "
        f"{'steps/s':>8s} {'segments/step':>14s} {'ident s':>8s} {'solves s':>9s} {'checks s':>9s}"
    )
    for batch in args.batch_segments:
        rates = _compare(args, batch)
        print(
            f"batch {batch}: steps per second, short / long: {rates[0] / rates[1]:.2f} (goal ≤ 1.5)"
        )


def _compare(args, batch: int) -> list[float]:
    rates = []
    for seconds in (1.0, args.long):
        x = concatenated(seconds, args.folder)
        spent.clear()
        options = FitOptions(max_time_s=args.budget, batch_segments=batch or None)
        model, report = fit_samples(x, RATE_HZ, options)
        layout = model.config.layout
        run = run_segments(layout, model.config.n_modes, options.batch_segments)
        # the step rate between the first and the last step: identification (longer on a longer
        # clip) is inside the budget but is not a step
        first, last = report.history[0], report.history[-1]
        span_s = (
            last.elapsed_s - first.elapsed_s
        )  # 0 when the budget allowed one step (a loaded machine)
        rates.append((last.epoch - first.epoch) / span_s if span_s > 0 else float("nan"))
        print(
            f"{batch:5d} {seconds:7.1f} {report.initial_snr_db:10.2f} {report.snr_db:8.2f} "
            f"{report.snr_db - report.initial_snr_db:8.2f} {report.epochs:6d} {rates[-1]:8.2f} "
            f"{min(layout.n_segments, run):14d} "
            f"{report.identification['time_breakdown_s']['identification']:8.2f} "
            f"{spent.get('solves', 0.0):9.2f} {spent.get('checks', 0.0):9.2f}",
            flush=True,
        )
    return rates


if __name__ == "__main__":
    main()
