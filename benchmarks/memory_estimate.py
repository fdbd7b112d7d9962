"""The fit's memory estimate against the measured peak (issue #22): `sonode fit CLIP -r RATE -t BUDGET`
under `/usr/bin/time -v`, beside `sonode.model.fit_size.fit_peak_bytes` of the same clip.

    nice -n 10 python benchmarks/memory_estimate.py                       # the default cases
    python benchmarks/memory_estimate.py --cases 1.5:48000 600:16000 --budget 60 [TREE]
    python benchmarks/memory_estimate.py --cases 1.5:48000 --steps 2     # continuation trained

Each case is the bundled clips (data/*.wav) concatenated and repeated to SECONDS, written as a
16-bit WAV at RATE in a scratch folder (as `bench_fit.py --memory-only` and `memory_phases.py`
build their audio), then fitted by the CLI in a fresh process (the tree's sonode first on the
path, 1 thread), its budget counted in CPU seconds (`budget_clock.py`) so that a loaded machine
reaches the same phases as an idle one. The peak is `/usr/bin/time -v`'s "Maximum resident set
size"; the estimate is the tree's own (an older tree's `fit_peak_bytes(n_samples)` is called
with the samples alone). Prints both in MiB and their ratio (goal: within ±15 %, never far under).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ["1.5:16000", "1.5:48000", "60:16000", "60:48000", "300:16000", "600:16000"]

CHILD = """
import sys
tree, wav, rate, stop, out = sys.argv[1:6]
sys.path[:0] = [tree, tree + "/benchmarks"]
from budget_clock import use_cpu_clock
use_cpu_clock()
from sonode.cli import main
how = ["--steps", stop[6:]] if stop.startswith("steps=") else ["-t", stop]
try:
    main(["fit", wav, "-r", rate, *how, "-o", out + "/m.sonode", "--quiet", "--force"],
         standalone_mode=False)
except SystemExit:
    pass
"""

ESTIMATE = """
import inspect, sys
sys.path.insert(0, sys.argv[1])
from sonode.model.fit_size import fit_peak_bytes
n, rate = int(sys.argv[2]), int(sys.argv[3])
takes_rate = len(inspect.signature(fit_peak_bytes).parameters) > 1
print(fit_peak_bytes(n, rate) if takes_rate else fit_peak_bytes(n))
"""


def write_case(folder: Path, seconds: float, rate: int) -> Path:
    """The bundled clips at ``rate``, concatenated and repeated to ``seconds``, as 16-bit WAV."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT))
    from sonode.io.clip import read_clip

    path = folder / f"case_{seconds:g}s_{rate}.wav"
    if not path.exists():
        pieces = [read_clip(p, rate=rate).samples for p in sorted((ROOT / "data").glob("*.wav"))]
        whole = np.concatenate(pieces)
        n = int(seconds * rate)
        x = np.tile(whole, 1 + n // len(whole))[:n]
        sf.write(path, x / max(1.0, float(np.max(np.abs(x)))), rate, subtype="PCM_16")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", default=str(ROOT), help="the sonode tree to measure")
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="SECONDS:RATE each")
    parser.add_argument("--budget", default="60", help="-t of each fit (CPU seconds)")
    parser.add_argument(
        "--steps",
        type=int,
        help="--steps N instead of a budget: the continuation is then always trained (a budget "
        "skips it when it would not finish), the peak of short high-rate clips",
    )
    args = parser.parse_args()
    stop = f"steps={args.steps}" if args.steps else args.budget
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": args.tree}
    what = f"--steps {args.steps}" if args.steps else f"budget {args.budget} CPU s"
    print(f"tree {args.tree}; {what}; load {os.getloadavg()[0]:.1f}", flush=True)
    print(
        f"{'clip':>14s} {'samples':>9s} {'measured MiB':>13s} {'estimate MiB':>13s} {'ratio':>6s}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for case in args.cases:
            seconds, rate = float(case.split(":")[0]), int(case.split(":")[1])
            wav = write_case(folder, seconds, rate)
            n = int(seconds * rate)
            done = subprocess.run(
                ["/usr/bin/time", "-v", sys.executable, "-c", CHILD, args.tree, str(wav)]
                + [str(rate), stop, scratch],
                env=env,
                cwd=scratch,
                capture_output=True,
                text=True,
            )
            found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
            if found is None:
                print(f"{case:>14s} failed: {done.stderr[-1500:]}", flush=True)
                continue
            measured = int(found.group(1)) / 1024
            estimate = subprocess.run(
                [sys.executable, "-c", ESTIMATE, args.tree, str(n), str(rate)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            estimated = int(estimate.stdout.strip()) / (1 << 20)
            print(
                f"{case:>14s} {n:9d} {measured:13.0f} {estimated:13.0f} "
                f"{estimated / measured:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
