"""Identification time and linear-start quality: this tree against an earlier commit, side by side.

    python benchmarks/bench_identify.py                       # data/ and data/more, 2 threads
    python benchmarks/bench_identify.py --baseline d8155b1 --threads 2 data/*.wav

For every clip (whole file at 16 kHz, default `sonode fit` options) the identification
(`initial_model`: the order-1024 predictor and its roots, the mode ranking, the continuation's
predictors, the segment and trajectory states) runs in a fresh process with this tree's code and
with the baseline commit's (extracted by `git archive`, never checked out), one after the other so
that both see the same machine load. Prints both wall times, their ratio, both processes' CPU times
(all threads: the work done,
less dependent on the machine's load than the wall time), the linear start's SNR from
each and the difference, and this tree's breakdown (the fit report's
``identification.time_breakdown_s``). The machine's load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "d8155b1"  # main before the identification was made fast (issue #22)

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
torch.set_num_threads({threads})
try:
    from sonode.io.clip import read_clip
except ImportError:  # a baseline from before the package restructure
    from sonode.audio_io import read_clip
from sonode.model import FitOptions
from sonode.model.init import initial_from_options as _initial
clip = read_clip({path!r}, rate=16000)
start, cpu = time.perf_counter(), time.process_time()
model, summary = _initial(clip.samples, 16000, FitOptions())
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
with torch.no_grad():
    x = model.denormalise(model.reconstruct()[0])
snr = 10 * np.log10(np.sum(clip.samples ** 2) / np.sum((clip.samples - x) ** 2))
print(json.dumps({{"seconds": seconds, "cpu_s": cpu, "snr_db": float(snr),
                  "breakdown": summary.get("time_breakdown_s", {{}})}}))
"""


def run(root: Path, path: Path, threads: int) -> dict:
    code = CHILD.format(root=str(root), path=str(path), threads=threads)
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def extract(commit: str, into: Path, repo: Path = ROOT) -> Path:
    """The baseline's `sonode` package, unpacked from ``git archive`` of ``repo`` (no checkout)."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit, "sonode"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit to compare with")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repo",
        type=Path,
        default=ROOT,
        help="git repository holding the baseline commit "
        "(default: this tree's; e.g. the repository when this tree is an exported copy)",
    )
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=1,
        help="torch threads of the baseline (at 2 its MKL batched solve hung here: "
        "'DLASWP parameter 6' errors, no progress in 10 minutes)",
    )
    args = parser.parse_args()
    clips = args.clips or sorted((ROOT / "data").glob("*.wav")) + sorted(
        (ROOT / "data" / "more").glob("*.wav")
    )
    print(
        f"load average at start: {os.getloadavg()[0]:.1f} (2 cores); torch threads: {args.threads} "
        f"(baseline {args.baseline_threads})"
    )
    print(
        f"{'clip':32s} {'base s':>7s} {'now s':>7s} {'ratio':>6s} {'base cpu':>8s} {'now cpu':>8s} {'base dB':>8s} "
        f"{'now dB':>8s} {'diff':>6s}  breakdown (wall s)"
    )
    ratios, diffs, times, cpus = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        base_root = extract(args.baseline, Path(tmp), args.repo)
        for path in clips:
            base, now = run(base_root, path, args.baseline_threads), run(ROOT, path, args.threads)
            ratios.append(base["seconds"] / now["seconds"])
            diffs.append(now["snr_db"] - base["snr_db"])
            times.append(now["seconds"])
            cpus.append(now["cpu_s"])
            parts = " ".join(f"{k}={v:.2f}" for k, v in now["breakdown"].items())
            print(
                f"{path.stem:32s} {base['seconds']:7.2f} {now['seconds']:7.2f} {ratios[-1]:6.1f} "
                f"{base['cpu_s']:8.2f} {now['cpu_s']:8.2f} "
                f"{base['snr_db']:8.2f} {now['snr_db']:8.2f} {diffs[-1]:+6.2f}  {parts}",
                flush=True,
            )
    print(
        f"median speed-up {statistics.median(ratios):.1f}x; now median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s (goal ≤ 3 s), CPU median {statistics.median(cpus):.2f} s; "
        f"SNR change min {min(diffs):+.2f} max {max(diffs):+.2f} dB "
        f"(goal within ±0.2); load average at end: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
