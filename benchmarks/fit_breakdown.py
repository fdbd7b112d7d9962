"""Where a budgeted fit's time goes: identification, steps, checks, solves, the final check and the
continuation's training (issue #22, the README quickstart's `sonode fit CLIP -r 16000 -t 60`).

    python benchmarks/fit_breakdown.py [CLIP ...] [--budget 60] [--rate 16000] [--wall]

Fits each clip with default options and the given budget, counted in CPU seconds of the process
(budget_clock.py; --wall for wall-clock seconds), 1 thread, and prints the steps taken, the linear
start's and the kept model's SNR, and the seconds spent in each phase, measured by wrapping the
functions `sonode.model.train.fit_samples` calls (so the phases add up to the fit's time up to the
loop's own overhead, shown as "other").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from budget_clock import time_calls, use_cpu_clock  # noqa: E402

import sonode.model.train as train  # noqa: E402
from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402

PHASES = {  # name in sonode.model.train -> what the report calls it
    "initial_from_options": "identification",
    "step_loss": "steps (forward)",
    "consider": "checks of the kept model",
    "solve_run_states": "least-squares state solves",
    "fast_vs_reference_db": "solver check (start)",
    "stoppable_check_db": "final solver check",
    "train_continuation": "continuation training",
    "whole_solve_estimate_s": "state-solve cost probes",
    "reconstruction_estimate_s": "check cost probe",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "clips", nargs="*", type=Path, default=[ROOT / "data/decaying_steelguitar_C4.wav"]
    )
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per fit")
    parser.add_argument("--rate", type=int, default=16000, help="fit rate (Hz)")
    parser.add_argument("--wall", action="store_true", help="budget in wall-clock seconds")
    parser.add_argument(
        "--continuation-steps", type=int, default=30, help="--continuation-training-steps"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.wall:
        use_cpu_clock()
    clock = time.perf_counter if args.wall else time.process_time
    spent: dict[str, float] = {}
    time_calls(train, {name: name for name in PHASES}, clock, spent)
    unit = "wall" if args.wall else "CPU"
    print(
        f"load average {os.getloadavg()[0]:.1f} (2 cores); budget {args.budget:g} {unit} s, 1 thread"
    )
    for path in args.clips:
        spent.clear()
        clip = read_clip(path, rate=args.rate)
        start = clock()
        _, report = fit_samples(
            clip.samples,
            args.rate,
            FitOptions(max_time_s=args.budget, continuation_training_steps=args.continuation_steps),
        )
        total = clock() - start
        print(
            f"{path.name}: {report.epochs} steps, linear start {report.initial_snr_db:.2f} dB, kept "
            f"{report.snr_db:.2f} dB ({report.snr_db - report.initial_snr_db:+.2f}), {total:.1f} {unit} s"
        )
        # the backward pass and the optimiser are in the loop, outside step_loss
        inner = sum(v for k, v in spent.items() if k != "train_continuation")
        for name, label in PHASES.items():
            print(f"  {label:30s} {spent.get(name, 0.0):6.2f} s")
        print(
            f"  {'other (backward, Adam, loop)':30s} {total - inner - spent.get('train_continuation', 0.0):6.2f} s"
        )
        print(f"  {'unused of the budget':30s} {args.budget - total:6.2f} s")
        with open("/proc/self/status") as f:  # the process's peak so far (Linux)
            peak = next((int(line.split()[1]) >> 10 for line in f if line.startswith("VmHWM")), 0)
        print(f"  {'peak resident memory':30s} {peak:6d} MiB (process so far)")
        print(
            f"  {'per step (forward+backward)':30s} {report.seconds_per_epoch:6.3f} s (loop time / steps)"
        )


if __name__ == "__main__":
    main()
