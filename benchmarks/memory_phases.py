"""Where a long fit's memory peaks: resident memory before and after each phase of `fit_samples`.

    python benchmarks/memory_phases.py 300 2      # 300 s of 16 kHz audio, 2 steps
    python benchmarks/memory_phases.py 60 1 48000 tone   # the 60 s 48 kHz tone of bench_deadline
    SONODE_PROBE_BUDGET=60 python benchmarks/memory_phases.py 600 0 16000   # as `fit -t 60`

With SONODE_PROBE_BUDGET=S (and steps 0) the fit runs as `sonode fit -t S` does, its budget counted
in CPU seconds (`budget_clock.py`), so that the phases a loaded machine reaches are those of an
idle core; SONODE_PROBE_CONTINUATION=0 leaves the continuation's training out.

Wraps the phases `sonode.model.train` and `sonode.model.init` call (identification pieces, the
training step, the kept-model check, the final checks, the cost probes, Adam's step, each
backward, the continuation's training and its pieces) and prints VmRSS and the peak so far in MiB
and the process's CPU seconds around each, and after each phase its own peak ("in": the kernel's
VmHWM is reset at every probe, /proc/self/clear_refs, and folded into every open phase), on the bundled
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
import sonode.model.mode_fit as mode_fit  # noqa: E402
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
    predict: ["fit_glide", "train_field", "level_slope_db_per_s", "identify_continuation"]
    + ["score", "measure_end_decays", "_final_modes", "hold_cycle"],
    glide_fit: ["_stage"],
    mode_fit: ["fit_modes"],
}
CONTINUATION_KEYS = ("skipped", "stopped", "field_kept", "glide_kept", "modes_kept", "end_decays")
OPEN: list[list] = []  # the phases under way, innermost last: [name, peak MiB]
PEAK_MIB = [0]  # the whole run's


def _memory_mib() -> tuple[int, int]:
    """(VmHWM, VmRSS) of this process in MiB; the kernel's peak is then reset to the current
    size, after being folded into every open phase's peak and the run's."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                values[line.split(":")[0]] = int(line.split()[1]) // 1024
    for phase in OPEN:
        phase[1] = max(phase[1], values["VmHWM"])
    PEAK_MIB[0] = max(PEAK_MIB[0], values["VmHWM"])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    return values["VmHWM"], values["VmRSS"]


def status() -> str:
    """VmRSS and the run's peak so far, in MiB."""
    _, rss = _memory_mib()
    return f"RSS {rss:5d} MiB, peak {PEAK_MIB[0]:5d} MiB"


def enter(name: str) -> None:
    print(f"before {name:20s} {status()}  CPU {time.process_time():7.1f} s", flush=True)
    OPEN.append([name, 0])


def leave(name: str) -> None:
    _memory_mib()
    peak = OPEN.pop()[1]
    print(
        f"after  {name:20s} {status()}  CPU {time.process_time():7.1f} s  in {peak:5d} MiB",
        flush=True,
    )


def wrap(module, name: str) -> None:
    inner = getattr(module, name)

    def probed(*args, **kwargs):
        enter(name)
        try:
            return inner(*args, **kwargs)
        finally:
            leave(name)

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
        enter("reconstruct")
        try:
            return whole(self, *args, **kwargs)
        finally:
            leave("reconstruct")

    decoder.SonodeModel.reconstruct = reconstruct
    for name in ("step", "backward"):  # Adam's update; a step's backward (its moments, gradients)
        owner = adam.Adam if name == "step" else torch.Tensor
        inner = getattr(owner, name)

        def probed(self, *args, _inner=inner, _name=name, **kwargs):
            enter(_name)
            try:
                return _inner(self, *args, **kwargs)
            finally:
                leave(_name)

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
    trained = report.continuation_training
    print(f"continuation: { {k: trained.get(k) for k in CONTINUATION_KEYS} }", flush=True)


if __name__ == "__main__":
    main()
