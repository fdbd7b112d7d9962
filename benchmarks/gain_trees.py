"""Linear start and kept SNR of clips fitted by this tree and by another checkout, side by side.

    python benchmarks/gain_trees.py --other /work/main --seconds 1 10 --budget 60 CLIP.wav ...
    python benchmarks/gain_trees.py --other /work/main --seconds 1 --budget 0 data/*.wav

Each clip is read at 16 kHz (mono mix) and tiled to each ``--seconds`` length (its first second,
or the clip repeated to 10 s as `bench_long_gain.py` builds its long clip); each (clip, length)
is fitted with default options by this tree's sonode and by ``--other``'s, one after the other,
each in its own process (1 thread, PYTHONPATH = the tree), with a budget of ``--budget`` CPU
seconds (`budget_clock.use_cpu_clock`; 0: the linear start only, no training). Prints per fit the
linear start, the kept SNR, the gain, the steps and the process's CPU seconds, then per clip and
tree the long lengths' gain over the 1 s gain (issue #22: a 10 s clip gains in 60 s what a 1 s clip
gains). Both trees' fits use the same seed, so a difference is the trees' code, not chance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATE_HZ = 16000

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])  # this tree's benchmarks/: budget_clock
import numpy as np, torch
torch.set_num_threads(1)
torch.manual_seed(0)
from sonode.io.clip import read_clip
from sonode.model import FitOptions, fit_samples
from sonode.model.init import initial_from_options
path, seconds, budget = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
x = read_clip(path, rate=16000).samples
n = int(seconds * 16000)
x = np.tile(x, 1 + n // len(x))[:n]
c0 = time.process_time()
if budget > 0:
    from budget_clock import use_cpu_clock
    use_cpu_clock()
    _, report = fit_samples(x, 16000, FitOptions(max_time_s=budget))
    out = {"start": report.initial_snr_db, "kept": report.snr_db, "steps": report.epochs}
else:
    model, _ = initial_from_options(x, 16000, FitOptions(), continuation=False)
    xn = (x - model.config.offset) / model.config.gain
    with torch.no_grad():
        error = xn - model.reconstruct()[0].numpy()
    snr = float(10 * np.log10(np.sum(xn**2) / np.sum(error**2)))
    out = {"start": snr, "kept": snr, "steps": 0}
out["cpu_s"] = time.process_time() - c0
print(json.dumps(out), flush=True)
"""


def fit(tree: Path, clip: Path, seconds: float, budget: float) -> dict:
    """One fit in a process of ``tree`` (see the module docstring): its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    args = [str(clip.resolve()), str(seconds), str(budget), str(ROOT / "benchmarks")]
    done = subprocess.run(
        [sys.executable, "-c", WORKER, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree} on {clip}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, nargs="+", help="WAV/FLAC files")
    parser.add_argument("--other", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--budget", type=float, default=60.0, help="CPU s per fit; 0: start only")
    args = parser.parse_args()
    trees = {"this": ROOT, "other": args.other.resolve()}
    print(
        f"load average {os.getloadavg()[0]:.1f}; this = {ROOT}, other = {trees['other']}; "
        f"budget {args.budget:g} CPU s"
    )
    print(
        f"{'clip':32s} {'s':>4s} {'tree':>5s} {'start':>7s} {'kept':>7s} {'gain':>6s} {'steps':>5s}"
    )
    gains: dict[tuple[str, str], dict[float, float]] = {}
    for clip in args.clips:
        for seconds in args.seconds:
            for name, tree in trees.items():
                r = fit(tree, clip, seconds, args.budget)
                gain = r["kept"] - r["start"]
                gains.setdefault((clip.stem, name), {})[seconds] = gain
                print(
                    f"{clip.stem[:32]:32s} {seconds:4g} {name:>5s} {r['start']:7.2f} "
                    f"{r['kept']:7.2f} {gain:+6.2f} {r['steps']:5d}   ({r['cpu_s']:.0f} CPU s, "
                    f"load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    if args.budget > 0 and len(args.seconds) > 1:
        short = min(args.seconds)
        for (stem, name), by_length in gains.items():
            for seconds in args.seconds:
                if seconds != short:
                    print(
                        f"{stem[:32]:32s} {name:>5s}: gain at {seconds:g} s {by_length[seconds]:+.2f}"
                        f" dB, at {short:g} s {by_length[short]:+.2f} dB"
                        f" (goal: the former ≥ the latter)"
                    )


if __name__ == "__main__":
    main()
