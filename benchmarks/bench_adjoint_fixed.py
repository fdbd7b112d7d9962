"""Benchmark (c) of issue 2 and the audio-shaped case: fixed-step adjoint gradients, time and peak memory.

(c) 64 trajectories, d = 64, f = MLP 64-128-128-64 (tanh, torch.manual_seed(0)), float32, t = [0, 1],
    RK4 with step_size = 1/n_steps (n_steps = 256), loss = mean(y(1)^2). Gradient w.r.t. y0 and all
    weights by: sonode odeint_adjoint (checkpoint mode, classical RK4), plain backprop through
    sonode odeint (classical RK4), torchdiffeq 0.2.5 odeint_adjoint(method="rk4"). torchdiffeq's
    "rk4" is the 3/8-rule variant: also 4 evaluations of f per step, so per-step work is alike
    (different coefficients, not bitwise the same method).
    Peak memory: each configuration in a fresh subprocess; peak resident set size of the process
    during one gradient (Linux VmHWM, reset just before it), and its growth over the resident
    set size just before the gradient (the process baseline: torch, torchdiffeq, the model).
audio: batch 16, d = 32, f = MLP 32-64-32 (tanh), an output at every step, n_out = 4000 outputs on
    [0, 1], loss = MSE on every output; rk4 and lawson_rk4 (L = DenseLinear(A), A trainable);
    sonode adjoint vs backprop through sonode odeint.
Times: median over repeats, torch.set_num_threads(1), methods interleaved in one process.

Run:  /work/venv/bin/python benchmarks/bench_adjoint_fixed.py [--repeats 5] [--skip-memory]
      /work/venv/bin/python benchmarks/bench_adjoint_fixed.py --every-sweep   (choice of checkpoint_every)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchdiffeq
from torch import nn

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
from sonode.ode import DenseLinear, odeint, odeint_adjoint  # noqa: E402


class MLP(nn.Module):
    def __init__(self, sizes: list[int]):
        super().__init__()
        torch.manual_seed(0)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=False):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, t, y):
        return self.net(y)


def case_c(n_steps: int):
    f = MLP([64, 128, 128, 64])
    y0 = torch.randn(64, 64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.0, 1.0])
    return f, y0, t, {"step_size": 1.0 / n_steps}


def grad_c(name: str, n_steps: int, f, y0, t, options) -> float:
    """One forward + backward of the (c) loss; returns seconds."""
    y0 = y0.detach().clone().requires_grad_()
    start = time.perf_counter()
    if name == "sonode-adjoint":
        ys = odeint_adjoint(
            f, y0, t, method="rk4", options=options, adjoint_options={"mode": "checkpoint"}
        )
    elif name == "sonode-backprop":
        ys = odeint(f, y0, t, method="rk4", options=options)
    else:
        ys = torchdiffeq.odeint_adjoint(f, y0, t, method="rk4", options=options)
    (ys[-1] ** 2).mean().backward()
    return time.perf_counter() - start


def timed(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, interleaved so that machine load hits all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: statistics.median(v) for name, v in times.items()}


def _status_kib(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(name: str, n_steps: int) -> None:
    """Subprocess body: print {"before_kib", "peak_kib"} of one (c) gradient as JSON.

    Peak = VmHWM of this process after resetting it just before the gradient (writing 5 to
    /proc/self/clear_refs); ru_maxrss is not used because Linux carries it over fork/exec from
    the parent benchmark process.
    """
    torch.set_num_threads(1)
    f, y0, t, options = case_c(n_steps)
    grad_c(
        name, 4, f, y0, t, {"step_size": 0.25}
    )  # warm-up: lazy init of kernels, not of the graph
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    grad_c(name, n_steps, f, y0, t, options)
    print(json.dumps({"before_kib": before, "peak_kib": _status_kib("VmHWM")}))


def memory(name: str, n_steps: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, str(n_steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def audio_fns(method: str, n_out: int, every_sweep: bool = False):
    f = MLP([32, 64, 32])
    y0 = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.0, 1.0, n_out)
    target = torch.randn(n_out, 16, 32, generator=torch.Generator().manual_seed(2))
    options = {}
    if method == "lawson_rk4":
        A = 0.1 * torch.randn(32, 32, generator=torch.Generator().manual_seed(3))
        options["linear"] = DenseLinear(A.requires_grad_())

    def run(every: int | None):
        """every=None: backprop through odeint; else the adjoint with that checkpoint_every."""

        def go():
            y = y0.detach().clone().requires_grad_()
            start = time.perf_counter()
            if every is None:
                ys = odeint(f, y, t, method=method, options=options)
            else:
                adj = {"mode": "checkpoint", "checkpoint_every": every}
                ys = odeint_adjoint(f, y, t, method=method, options=options, adjoint_options=adj)
            ((ys - target) ** 2).mean().backward()
            return time.perf_counter() - start

        return go

    if every_sweep:
        return {
            "sonode-backprop": run(None),
            **{f"adjoint every={k}": run(k) for k in (8, 32, 128, 512)},
        }
    return {"sonode-adjoint": run(32), "sonode-backprop": run(None)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--every-sweep", action="store_true", help="only: audio rk4 case vs checkpoint_every"
    )
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("NAME", "N_STEPS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return
    torch.set_num_threads(1)
    print("torch threads = 1")
    if args.every_sweep:
        print("audio-shaped rk4 case (4000 outputs), time vs adjoint_options['checkpoint_every']")
        for n, sec in timed(audio_fns("rk4", 4000, every_sweep=True), args.repeats).items():
            print(f"  {n:20s} {sec:.3f} s")
        return

    print("\n(c) RK4, 64 trajectories x 256 steps, d=64, MLP 64-128-128-64, loss on y(1)")
    f, y0, t, options = case_c(256)
    names = ["sonode-adjoint", "sonode-backprop", "torchdiffeq-adjoint"]
    med = timed({n: (lambda n=n: grad_c(n, 256, f, y0, t, options)) for n in names}, args.repeats)
    for n in names:
        print(f"  {n:20s} {med[n]:.3f} s")
    print(
        f"  torchdiffeq adjoint / sonode adjoint = {med['torchdiffeq-adjoint'] / med['sonode-adjoint']:.2f}x"
        f"   sonode adjoint / backprop = {med['sonode-adjoint'] / med['sonode-backprop']:.2f}x"
    )

    if not args.skip_memory:
        print(
            "\n(c) peak memory (fresh subprocess each, VmHWM; growth = peak - RSS before the gradient)"
        )
        for name in ("sonode-adjoint", "sonode-backprop"):
            m = {n: memory(name, n) for n in (256, 4096)}
            for n, v in m.items():
                print(
                    f"  {name:16s} {n:5d} steps: peak {v['peak_kib'] / 1024:8.1f} MiB, "
                    f"growth {(v['peak_kib'] - v['before_kib']) / 1024:8.1f} MiB"
                )
            print(
                f"  {name:16s} peak(4096) / peak(256) = {m[4096]['peak_kib'] / m[256]['peak_kib']:.2f}"
            )

    for method in ("rk4", "lawson_rk4"):
        print(
            f"\naudio-shaped: {method}, batch 16, d=32, MLP 32-64-32, 4000 outputs (one per step), MSE on all"
        )
        med = timed(audio_fns(method, 4000), args.repeats)
        for n, s in med.items():
            print(f"  {n:20s} {s:.3f} s")
        print(
            f"  sonode adjoint / backprop = {med['sonode-adjoint'] / med['sonode-backprop']:.2f}x"
        )


if __name__ == "__main__":
    main()
