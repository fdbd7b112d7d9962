"""Audio-model speed of this tree against another checkout (default /work/main), side by side in one run.

    python benchmarks/compare_trees.py [--other /work/main] [--rounds 15] [--clip CLIP.wav]

One long-lived worker process per tree (1 thread) loads its tree and the clip (first --duration-s,
default 0.5 s, at 16 kHz) once; the runner then asks the two workers in turn to run one measurement, alternating
which goes first, so every pair of timings is taken back to back under the same machine load:
  fit step      one training step of `sonode fit` (`step_loss` + backward: modal solver, dopri5
                envelope with the checkpointed adjoint);
  seq step      the reference reconstruction step through the engine's Lawson RK4 at one step per
                sample with the checkpointed adjoint (`model.reconstruct(gradient="adjoint")`);
  render        `render_normalised` of that span at 48 kHz (fast modal solver);
  seq render    the same through the engine's Lawson RK4 (`max_step_s = 1/48000`).
Each timing is the worker's CPU time (time.process_time: time spent waiting for a core shared
with other jobs is not counted), and for every round the ratio this / other of the pair. Reported:
per measurement, the median CPU seconds per tree, the MEDIAN OF THE PER-ROUND RATIOS with its
interquartile range (goal: median within 1.05), the ratio of the two trees' fastest timings
(least disturbed by other jobs), and the wall-clock median ratio for comparison.
The harness only uses APIs both trees have; it prints the two trees' outputs' max difference too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "data" / "decaying_steelguitar_C4.wav"

HARNESS = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
torch.manual_seed(0)  # the same initial model in both trees
from sonode.io.clip import read_clip
from sonode.model import FitOptions
try:  # the start moved to init.py; the other tree may predate that
    from sonode.model.init import initial_from_options as _initial
except ImportError:
    from sonode.model.train import _initial
try:  # the objective moved out of train.py; the other tree may predate that
    from sonode.model.objective import step_loss as _step_loss
except ImportError:
    from sonode.model.train import _step_loss
clip = read_clip(sys.argv[1], rate=16000, duration_s=float(sys.argv[2]))
model, _ = _initial(clip.samples, 16000, FitOptions(continuation_samples=0))
with torch.no_grad():  # a trained-looking field (a fresh model's zero field is cheaper)
    model.field.mlp[-1].weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(0))
target = torch.from_numpy((clip.samples - model.config.offset) / model.config.gain)
energy = float(torch.mean(target ** 2))

def fit_step(i):
    model.zero_grad(set_to_none=True)
    loss, _, _ = _step_loss(model, target, FitOptions(), i, None, target.shape[0], energy)
    loss.backward()

def seq_step():
    model.zero_grad(set_to_none=True)
    signal, _ = model.reconstruct(gradient="adjoint", substeps=1)
    torch.mean((signal - target) ** 2).backward()
    return signal.detach()

def seq_render():
    with torch.no_grad():
        return model.render_normalised(times, max_step_s=1.0 / 48000)

def render():
    with torch.no_grad():
        return model.render_normalised(times)

times = torch.arange(round(48000 * model.config.duration_s), dtype=torch.float64) / 48000
render()  # warm-up: first calls pay for lazy initialisation
fit_step(0)
OPS = {"fit step": lambda: fit_step(1), "seq step": seq_step, "render": render, "seq render": seq_render}
first = {"_signal": seq_step()[::97].tolist(), "_fast": render()[::97].tolist(),
         "_slow": seq_render()[::97].tolist()}
print(json.dumps(first), flush=True)
for line in sys.stdin:  # one measurement name per line; an empty line ends the worker
    name = line.strip()
    if not name:
        break
    c0, w0 = time.process_time(), time.perf_counter()
    OPS[name]()
    print(json.dumps({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}), flush=True)
"""


KEYS = ("fit step", "seq step", "render", "seq render")


class Worker:
    """A process of one tree that times one measurement per request (see the module docstring)."""

    def __init__(self, tree: Path, clip: Path, duration_s: float):
        env = {
            "PYTHONPATH": str(tree),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HARNESS, str(clip), str(duration_s)],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.outputs = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return json.loads(line)

    def time(self, key: str) -> dict:
        self.proc.stdin.write(key + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.wait()


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, default=Path("/work/main"))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--clip", type=Path, default=CLIP, help="a WAV file")
    parser.add_argument("--duration-s", type=float, default=0.5, help="seconds of the clip used")
    args = parser.parse_args()
    workers = {
        "this": Worker(ROOT, args.clip, args.duration_s),
        "other": Worker(args.other, args.clip, args.duration_s),
    }
    cpu = {name: {k: [] for k in KEYS} for name in workers}
    wall = {name: {k: [] for k in KEYS} for name in workers}
    for r in range(args.rounds):
        for i, key in enumerate(KEYS):
            order = ("this", "other") if (r + i) % 2 == 0 else ("other", "this")
            for name in order:
                timing = workers[name].time(key)
                cpu[name][key].append(timing["cpu"])
                wall[name][key].append(timing["wall"])
    for worker in workers.values():
        worker.close()
    print(
        f"this = {ROOT}, other = {args.other}; {args.clip.name}, {args.duration_s} s at 16 kHz, 1 thread, "
        f"{args.rounds} interleaved rounds, CPU time"
    )
    print(
        f"{'':12s} {'this s':>9s} {'other s':>9s} {'median this/other':>18s} {'IQR':>15s} "
        f"{'min/min':>8s} {'wall ratio':>11s}"
    )
    for key in KEYS:
        ratios = [a / b for a, b in zip(cpu["this"][key], cpu["other"][key], strict=True)]
        wall_ratios = [a / b for a, b in zip(wall["this"][key], wall["other"][key], strict=True)]
        lo, hi = quartiles(ratios)
        print(
            f"{key:12s} {statistics.median(cpu['this'][key]):9.4f} "
            f"{statistics.median(cpu['other'][key]):9.4f} {statistics.median(ratios):18.3f} "
            f"{f'{lo:.3f}-{hi:.3f}':>15s} {min(cpu['this'][key]) / min(cpu['other'][key]):8.3f} "
            f"{statistics.median(wall_ratios):11.3f}"
        )
    for key in ("_signal", "_fast", "_slow"):
        this, other = workers["this"].outputs[key], workers["other"].outputs[key]
        diff = max(abs(x - y) for x, y in zip(this, other, strict=True))
        print(f"max |this - other| of {key[1:]} output (every 97th sample): {diff:.3g}")


if __name__ == "__main__":
    main()
