"""Benchmark (b) of issue 2: gradient of an MSE loss on 4000 output times, sonode vs torchdiffeq adjoint.

Problem: dy/dt = MLP(y), an 8-64-8 tanh MLP (torch.manual_seed(0)), batch 16, y0 ~ N(0, 1), float32,
t = 4000 equally spaced outputs on [0, 10] (units of t), dopri5, rtol = 1e-5, atol = 1e-7 (forward
and backward), loss = mean((y(t_i) - target_i)^2) over every output, target_i = sin(t_i).
Measured: wall time of forward + backward (median over repeats, single-threaded), evaluations of
f (forward + backward), and the relative error of the gradient (y0 and all weights, one vector)
against a tight reference: sonode checkpoint adjoint in float64 at rtol = 1e-10, atol = 1e-12.
torchdiffeq's odeint_adjoint restarts a solve per output interval and takes minutes on 4000
outputs; ``--td-outputs N`` times it on the first N outputs instead and says so.

Run:  /work/venv/bin/python benchmarks/bench_adjoint_dense.py [--repeats 3] [--td-outputs 4000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torchdiffeq

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))
from counted_mlp import CountedMLP  # noqa: E402

from sonode.ode import odeint_adjoint  # noqa: E402

BATCH, DIM, HIDDEN, N_OUT, T_END, RTOL, ATOL = 16, 8, 64, 4000, 10.0, 1e-5, 1e-7


def Counted() -> CountedMLP:
    """The benchmark's MLP field (dims DIM-HIDDEN-DIM)."""
    return CountedMLP(DIM, HIDDEN)


def gradient(name: str, f: CountedMLP, y0: torch.Tensor, t: torch.Tensor, rtol=RTOL, atol=ATOL):
    """(flat gradient of the loss w.r.t. [y0, weights], seconds, evaluations) for one solver."""
    y0 = y0.detach().clone().requires_grad_()
    params = [y0, *f.parameters()]
    f.nfev = 0
    start = time.perf_counter()
    if name == "torchdiffeq":
        ys = torchdiffeq.odeint_adjoint(f, y0, t, method="dopri5", rtol=rtol, atol=atol)
    else:
        mode = "backsolve" if name == "sonode-backsolve" else "checkpoint"
        ys = odeint_adjoint(
            f, y0, t, method="dopri5", rtol=rtol, atol=atol, adjoint_options={"mode": mode}
        )
    target = torch.sin(t).to(ys.dtype).reshape(-1, 1, 1)
    loss = ((ys - target) ** 2).mean()
    grads = torch.autograd.grad(loss, params)
    seconds = time.perf_counter() - start
    return torch.cat([g.reshape(-1) for g in grads]).double(), seconds, f.nfev


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--td-outputs", type=int, default=N_OUT, help="output times used for torchdiffeq"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    f = Counted()
    y0 = torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.0, T_END, N_OUT)
    print(
        f"problem: {DIM}-{HIDDEN}-{DIM} tanh MLP, batch {BATCH}, {N_OUT} outputs on [0, {T_END}], dopri5 "
        f"rtol={RTOL} atol={ATOL}, float32, torch threads = 1"
    )

    f64 = copy.deepcopy(f).double()
    refs = {}
    for n in sorted({N_OUT, args.td_outputs}):
        refs[n] = gradient("sonode", f64, y0.double(), t[:n].double(), rtol=1e-10, atol=1e-12)[0]

    rows = {}
    for name, n in [
        ("sonode", N_OUT),
        ("sonode-backsolve", N_OUT),
        ("torchdiffeq", args.td_outputs),
    ]:
        repeats = args.repeats if name != "torchdiffeq" or n < N_OUT else 1
        runs = [gradient(name, f, y0, t[:n]) for _ in range(repeats)]
        grad, _, nfev = runs[0]
        err = float((grad - refs[n]).norm() / refs[n].norm())
        seconds = statistics.median(r[1] for r in runs)
        rows[name] = (n, seconds, nfev, err)
        print(
            f"{name:17s} outputs={n:5d}  time={seconds:8.3f} s  nfev={nfev:7d}  grad rel. error={err:.2e}"
            f"  (median of {repeats})",
            flush=True,
        )

    n_td, s_td = rows["torchdiffeq"][0], rows["torchdiffeq"][1]
    for name in ("sonode", "sonode-backsolve"):
        s = rows[name][1]
        if n_td == N_OUT:
            print(f"speed-up of {name} over torchdiffeq (both on {N_OUT} outputs): {s_td / s:.1f}x")
        else:
            # torchdiffeq's adjoint cost is ~linear in the number of intervals (one restart each);
            # the reduced run's per-interval cost scaled to N_OUT is stated as an estimate.
            est = s_td * (N_OUT - 1) / (n_td - 1)
            print(
                f"speed-up of {name} over torchdiffeq: ESTIMATE {est / s:.1f}x (torchdiffeq timed on {n_td} "
                f"outputs = {s_td:.2f} s, scaled linearly to {N_OUT}: {est:.1f} s)"
            )


if __name__ == "__main__":
    main()
