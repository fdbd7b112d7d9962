"""Where a long fit's memory peaks: resident memory before and after each phase of `fit_samples`.

    python benchmarks/memory_phases.py 300 2      # 300 s of 16 kHz audio, 2 steps

Wraps the phases `sonode.model.train` and `sonode.model.init` call (identification pieces, the
training step, the kept-model check, the final checks, the continuation's training) and prints
VmHWM (peak so far) and VmRSS in MiB and the process's CPU seconds around each, on the bundled
clips concatenated and repeated to the given length (as `bench_fit.py --memory-only`), 1 thread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sonode.model.init as init  # noqa: E402
import sonode.model.train as train  # noqa: E402
from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402

PHASES = {
    train: ["initial_from_options", "step_loss", "solve_states", "consider", "coarse_and_fine"]
    + ["train_continuation", "trajectory_snr"],
    init: ["identify_modes", "segment_states", "identify_continuation"],
}


def status() -> str:
    """VmHWM and VmRSS of this process in MiB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                values[line.split(":")[0]] = int(line.split()[1]) // 1024
    return f"HWM {values['VmHWM']:5d} MiB, RSS {values['VmRSS']:5d} MiB"


def wrap(module, name: str) -> None:
    inner = getattr(module, name)

    def probed(*args, **kwargs):
        print(f"before {name:20s} {status()}  CPU {time.process_time():7.1f} s", flush=True)
        out = inner(*args, **kwargs)
        print(f"after  {name:20s} {status()}  CPU {time.process_time():7.1f} s", flush=True)
        return out

    setattr(module, name, probed)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(1)
    for module, names in PHASES.items():
        for name in names:
            wrap(module, name)
    pieces = [read_clip(p, rate=16000).samples for p in sorted((ROOT / "data").glob("*.wav"))]
    n = int(seconds * 16000)
    x = np.tile(np.concatenate(pieces), 1 + n // sum(len(p) for p in pieces))[:n]
    print(f"audio read          {status()}", flush=True)
    fit_samples(x, 16000, FitOptions(steps=steps, max_time_s=None))
    print(f"done                {status()}", flush=True)


if __name__ == "__main__":
    main()
