"""Benchmark (a) of issue 2: forward dopri5 solve of a 4-32-4 tanh MLP vector field, sonode vs torchdiffeq.

Problem: batch 16, y0 ~ N(0, 1), t = 101 equally spaced outputs on [0, 10] (units of t),
rtol = atol = 1e-6, torch.manual_seed(0) for the weights. Both solvers run in the same process,
single-threaded, interleaved; time = median over repeats. Accuracy = max |y - y_ref| over all
outputs with y_ref from torchdiffeq dopri5 in float64 at rtol = atol = 1e-12. Memory = peak CPU
tensor memory during one solve with autograd recording (the training case), from torch.profiler.

Run:  /work/venv/bin/python benchmarks/bench_forward.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchdiffeq
from torch.profiler import ProfilerActivity, profile

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from counted_mlp import CountedMLP  # noqa: E402

from sonode.ode import odeint  # noqa: E402

BATCH, DIM, HIDDEN, N_OUT, T_END, TOL = 16, 4, 32, 101, 10.0, 1e-6


def Counted() -> CountedMLP:
    """The benchmark's MLP field (dims DIM-HIDDEN-DIM)."""
    return CountedMLP(DIM, HIDDEN)


def problem():
    f = Counted()
    y0 = torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.0, T_END, N_OUT)
    return f, y0, t


SOLVERS = {
    "sonode": lambda f, y0, t: odeint(f, y0, t, method="dopri5", rtol=TOL, atol=TOL),
    "torchdiffeq": lambda f, y0, t: torchdiffeq.odeint(
        f, y0, t, method="dopri5", rtol=TOL, atol=TOL
    ),
}


def peak_tensor_kib(name: str) -> float:
    """Peak CPU tensor memory (KiB) during one grad-recording solve, from torch.profiler.

    Running sum of every allocation and free the profiler records (in time order), relative to
    the start of the solve; the graph kept for backward is the bulk of it.
    """
    f, y0, t = problem()
    y0.requires_grad_(True)
    SOLVERS[name](f, y0, t[:3]).sum().backward()  # warm-up outside the measurement
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        ys = SOLVERS[name](f, y0, t)
    running = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    del ys
    return peak / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)

    f, y0, t = problem()
    f64 = Counted().double()
    with torch.no_grad():
        ref = torchdiffeq.odeint(
            f64, y0.double(), t.double(), method="dopri5", rtol=1e-12, atol=1e-12
        ).float()
    rows = {}
    for grad in (False, True):
        times = {name: [] for name in SOLVERS}
        for _ in range(args.repeats):
            for name, solve in SOLVERS.items():
                f.nfev = 0
                with torch.set_grad_enabled(grad):
                    start = time.perf_counter()
                    ys = solve(f, y0, t)
                    times[name].append(time.perf_counter() - start)
        for name, solve in SOLVERS.items():
            f.nfev = 0
            with torch.no_grad():
                ys = solve(f, y0, t)
            rows[(name, grad)] = (
                statistics.median(times[name]),
                f.nfev,
                float((ys - ref).abs().max()),
                ys,
            )
    diff = float((rows[("sonode", False)][3] - rows[("torchdiffeq", False)][3]).abs().max())
    mem = {name: peak_tensor_kib(name) for name in SOLVERS}

    print(
        f"forward dopri5, 4-{HIDDEN}-4 tanh MLP, batch {BATCH}, {N_OUT} outputs on [0, {T_END}], "
        f"rtol=atol={TOL}, float32, 1 thread, median of {args.repeats}"
    )
    print(f"{'':14}{'sonode':>12}{'torchdiffeq':>14}{'ratio s/t':>12}")
    for grad in (False, True):
        s, d = rows[("sonode", grad)], rows[("torchdiffeq", grad)]
        label = "time grad [ms]" if grad else "time [ms]"
        print(f"{label:14}{s[0] * 1e3:12.2f}{d[0] * 1e3:14.2f}{s[0] / d[0]:12.2f}")
    s, d = rows[("sonode", False)], rows[("torchdiffeq", False)]
    print(f"{'f evals':14}{s[1]:12d}{d[1]:14d}{s[1] / d[1]:12.2f}")
    print(f"{'max err vs ref':14}{s[2]:12.2e}{d[2]:14.2e}{s[2] / d[2]:12.2f}")
    print(
        f"{'peak mem [KiB]':14}{mem['sonode']:12.0f}{mem['torchdiffeq']:14.0f}"
        f"{mem['sonode'] / mem['torchdiffeq']:12.2f}"
    )
    print(f"max |sonode - torchdiffeq| = {diff:.2e}")


if __name__ == "__main__":
    main()
