"""Where a long fit's memory peaks: resident memory before and after each phase of `fit_samples`.

    python benchmarks/memory_phases.py 300 2      # 300 s of 16 kHz audio, 2 steps
    python benchmarks/memory_phases.py 60 1 48000 tone   # the 60 s 48 kHz tone of bench_deadline
    SONODE_PROBE_BUDGET=60 python benchmarks/memory_phases.py 600 0 16000   # as `fit -t 60`

With SONODE_PROBE_BUDGET=S (and steps 0) the fit runs as `sonode fit -t S` does, its budget counted
in CPU seconds (`budget_clock.py`), so that the phases a loaded machine reaches are those of an
idle core; SONODE_PROBE_CONTINUATION=0 leaves the continuation's training out.

Wraps the phases `sonode.model.train` and `sonode.model.init` call (identification pieces, the
training step, the kept-model check, the final checks, the cost probes, Adam's step, each
backward, the continuation's training) and prints
VmHWM (peak so far) and VmRSS in MiB and the process's CPU seconds around each, on the bundled
clips concatenated and repeated to the given length (as `bench_fit.py --memory-only`) or on the
synthetic tone of `bench_deadline.py --synthetic` ("tone"), at the given rate, 1 thread. The
continuation's pieces (the glide's L-BFGS, the field's steps, the trend check) are probed too: a
trained continuation's trend check once took a 60 s 48 kHz fit to 3.8 GB (#30).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sonode.model.adam as adam  # noqa: E402
import sonode.model.decoder as decoder  # noqa: E402
import sonode.model.glide_fit as glide_fit  # noqa: E402
import sonode.model.init as init  # noqa: E402
import sonode.model.predict as predict  # noqa: E402
import sonode.model.train as train  # noqa: E402
from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402
from sonode.model.fit_size import EVALUATION_SEGMENTS  # noqa: E402

PHASES = {
    train: ["initial_from_options", "step_loss", "solve_run_states", "consider", "coarse_and_fine"]
    + ["train_continuation", "trajectory_snr", "fast_vs_reference_db", "stoppable_check_db"]
    + ["whole_solve_estimate_s", "reconstruction_estimate_s"],
    init: ["identify_modes", "segment_states", "identify_continuation"],
    predict: ["fit_glide", "train_field", "level_slope_db_per_s"],
    glide_fit: ["_stage"],
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
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 16000
    synthetic = len(sys.argv) > 4 and sys.argv[4] == "tone"
    torch.set_num_threads(1)
    for module, names in PHASES.items():
        for name in names:
            wrap(module, name)
    whole = decoder.SonodeModel.reconstruct  # the whole clip's (graph-free) reconstructions

    def reconstruct(self, *args, **kwargs):
        segments = kwargs.get("segments")
        if segments is not None and len(segments) <= EVALUATION_SEGMENTS:
            return whole(self, *args, **kwargs)
        print(f"before reconstruct           {status()}", flush=True)
        out = whole(self, *args, **kwargs)
        print(f"after  reconstruct           {status()}", flush=True)
        return out

    decoder.SonodeModel.reconstruct = reconstruct
    for name in ("step", "backward"):  # Adam's update; a step's backward (its moments, gradients)
        owner = adam.Adam if name == "step" else torch.Tensor
        inner = getattr(owner, name)

        def probed(self, *args, _inner=inner, _name=name, **kwargs):
            print(f"before {_name:20s} {status()}", flush=True)
            out = _inner(self, *args, **kwargs)
            print(f"after  {_name:20s} {status()}", flush=True)
            return out

        setattr(owner, name, probed)
    n = int(seconds * rate)
    if synthetic:
        from tests.hostile_support import tone

        x = tone(seconds, rate)
    else:
        pieces = [read_clip(p, rate=rate).samples for p in sorted((ROOT / "data").glob("*.wav"))]
        x = np.tile(np.concatenate(pieces), 1 + n // sum(len(p) for p in pieces))[:n]
    print(f"audio read          {status()}", flush=True)
    budget_s = os.environ.get("SONODE_PROBE_BUDGET")
    options = FitOptions(steps=steps or None, max_time_s=float(budget_s) if budget_s else None)
    if budget_s:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from budget_clock import use_cpu_clock

        use_cpu_clock()
    if os.environ.get("SONODE_PROBE_CONTINUATION") == "0":
        options = dataclasses.replace(options, continuation_training_steps=0)
    _, report = fit_samples(x, rate, options)
    print(f"done                {status()}  steps {report.epochs}", flush=True)


if __name__ == "__main__":
    main()
