"""Does the least-squares step for the segment states move the model? (issue #22, work item 1)

    python benchmarks/bench_state_solve.py data data/more          # 17 clips x 2 fits
    python benchmarks/bench_state_solve.py data --budget 60 --every 25

Fits every clip of the given folders (or files) at 16 kHz twice with the same budget, side by side
in one run, the order alternating from clip to clip: Adam alone (``state_solve_every=0``, before)
and with the states solved by least squares every ``--every`` steps (`sonode.model.linear_step`,
after). The budget counts CPU seconds of the process (budget_clock.py), so both fits get the same
work whatever the machine's load. Prints the linear start, each fit's kept SNR and steps, and the
median gain over the linear start of each. The continuation's training is off (it does not touch
the kept reconstruction and costs the same in both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from budget_clock import use_cpu_clock  # noqa: E402

from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402

RATE_HZ = 16000


def clips(paths: list[Path]) -> list[Path]:
    """The .wav files named or inside the named folders, sorted per folder."""
    out = []
    for path in paths:
        out += sorted(path.glob("*.wav")) if path.is_dir() else [path]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="folders or .wav files")
    parser.add_argument("--budget", type=float, default=60.0, help="CPU seconds per fit")
    parser.add_argument("--every", type=int, default=FitOptions().state_solve_every)
    args = parser.parse_args()
    torch.set_num_threads(1)
    use_cpu_clock()
    print(
        f"load average {os.getloadavg()[0]:.1f} (2 cores); budget {args.budget:.0f} CPU s per fit"
    )
    print(
        f"{'clip':32s} {'linear dB':>9s} {'Adam dB':>8s} {'steps':>5s} {'+LS dB':>8s} {'steps':>5s} "
        f"{'LS - Adam':>9s}"
    )
    gains = {0: [], args.every: []}
    for index, path in enumerate(clips(args.paths)):
        x = read_clip(path, rate=RATE_HZ).samples
        results = {}
        order = (0, args.every) if index % 2 == 0 else (args.every, 0)
        for every in order:
            options = FitOptions(
                max_time_s=args.budget, state_solve_every=every, continuation_training_steps=0
            )
            t0 = time.process_time()
            _, report = fit_samples(x, RATE_HZ, options)
            results[every] = (report, time.process_time() - t0)
        start = results[0][0].initial_snr_db
        before, after = results[0][0], results[args.every][0]
        for every, (report, _) in results.items():
            gains[every].append(report.snr_db - report.initial_snr_db)
        print(
            f"{path.stem[:32]:32s} {start:9.2f} {before.snr_db:8.2f} {before.epochs:5d} "
            f"{after.snr_db:8.2f} {after.epochs:5d} {after.snr_db - before.snr_db:+9.2f}",
            flush=True,
        )
    print(
        f"median gain over the linear start: Adam {statistics.median(gains[0]):+.2f} dB, "
        f"with least squares every {args.every} steps {statistics.median(gains[args.every]):+.2f} dB "
        f"({len(gains[0])} clips; load average now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
