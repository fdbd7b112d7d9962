"""Audio-model speed of this tree against another checkout (default /work/main), side by side in one run.

    python benchmarks/compare_trees.py [--other /work/main] [--rounds 3]

Each round runs one fresh process per tree (order alternating between rounds, so both see the same
machine load) that times, on the first 1.0 s of one bundled clip at 16 kHz, 1 thread:
  fit step      one training step of `sonode fit` (`step_loss` + backward: modal solver, dopri5
                envelope with the checkpointed adjoint), median of 5;
  seq step      the reference reconstruction step through the engine's Lawson RK4 at one step per
                sample with the checkpointed adjoint (`model.reconstruct(gradient="adjoint")`), 1 run;
  render        `render_normalised` of the clip at 48 kHz (fast modal solver), median of 3;
  seq render    the same through the engine's Lawson RK4 (`max_step_s = 1/48000`), 1 run.
Reported: the median over rounds per tree and the ratio this / other (goal: within 1.05).
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
CLIP = "decaying_steelguitar_C4.wav"

HARNESS = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
torch.manual_seed(0)  # the same initial model in both trees
from sonode.io.clip import read_clip
from sonode.model import FitOptions
from sonode.model.train import _initial
try:  # the objective moved out of train.py; the other tree may predate that
    from sonode.model.objective import step_loss as _step_loss
except ImportError:
    from sonode.model.train import _step_loss
clip = read_clip(sys.argv[1], rate=16000, duration_s=1.0)
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

def timed(fn, n):
    out, ts = None, []
    for _ in range(n):
        t0 = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out

# cheap measurements first: a big backward pass leaves the allocator in a state that slows what follows
times = torch.arange(48000, dtype=torch.float64) / 48000 * model.config.duration_s
with torch.no_grad():
    model.render_normalised(times)
    render_s, fast = timed(lambda: model.render_normalised(times), 3)
fit_step(0)
fit_s, _ = timed(lambda: fit_step(1), 5)
with torch.no_grad():
    seq_render_s, slow = timed(lambda: model.render_normalised(times, max_step_s=1.0 / 48000), 1)
seq_s, signal = timed(seq_step, 1)
print(json.dumps({"fit step": fit_s, "seq step": seq_s, "render": render_s, "seq render": seq_render_s,
                  "_signal": signal[::97].tolist(), "_fast": fast[::97].tolist(), "_slow": slow[::97].tolist()}))
"""


def run(tree: Path) -> dict:
    env = {
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", HARNESS, str(ROOT / "data" / CLIP)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, default=Path("/work/main"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"this": ROOT, "other": args.other}
    results = {"this": [], "other": []}
    for r in range(args.rounds):
        for name in ("this", "other") if r % 2 == 0 else ("other", "this"):
            results[name].append(run(trees[name]))
    keys = ["fit step", "seq step", "render", "seq render"]
    print(
        f"this = {ROOT}, other = {args.other}; {CLIP}, 1.0 s at 16 kHz, 1 thread, {args.rounds} rounds"
    )
    print(f"{'':12s} {'this s':>9s} {'other s':>9s} {'this/other':>11s}")
    for key in keys:
        a = statistics.median(r[key] for r in results["this"])
        b = statistics.median(r[key] for r in results["other"])
        print(f"{key:12s} {a:9.4f} {b:9.4f} {a / b:11.3f}")
    for key in ("_signal", "_fast", "_slow"):
        diff = max(
            abs(x - y)
            for x, y in zip(results["this"][0][key], results["other"][0][key], strict=False)
        )
        print(f"max |this - other| of {key[1:]} output (every 97th sample): {diff:.3g}")


if __name__ == "__main__":
    main()
