"""Reversible Heun's adjoint against the other adjoints: time, peak memory and gradient error vs steps.

Problem: 8 trajectories, d = 8, f = MLP 9-64-64-8 (tanh; reads t), float64, torch.manual_seed(0);
t = 11 output times on [0, 1]; n steps of 1/n; loss = sum of squared errors against a fixed target
at every output. For each n, each configuration runs ONE gradient (after a 10-step warm-up) in a
fresh subprocess:
  reversible      sonode odeint_adjoint(method="reversible_heun")      (mode "reversible")
  backprop-rh     sonode odeint(method="reversible_heun"), backprop    (reference of the row above)
  reversible-rk4  sonode odeint_adjoint(method="reversible_rk4")       (McCallum–Foster, mode "reversible")
  backprop-rrk4   sonode odeint(method="reversible_rk4"), backprop     (reference of the row above)
  checkpoint-rk4  sonode odeint_adjoint(method="rk4")                  (mode "checkpoint", every 32)
  backprop-rk4    sonode odeint(method="rk4"), backprop                (reference of the row above)
  tdq-adjoint     torchdiffeq odeint_adjoint(method="rk4")             (continuous adjoint)
  tdq-backprop    torchdiffeq odeint(method="rk4"), backprop           (reference of the row above)
and sonode dopri5 with the checkpoint adjoint at rtol = atol = 1e-3 ... 1e-9 for the cost at a given
accuracy. Columns: seconds of the gradient (forward + backward), peak resident memory growth during it
(Linux VmHWM reset just before it, minus VmRSS just before; MiB), ‖g − g_ref‖/‖g_ref‖ over y0 and
all weights against backprop through the same solver, and the error of y(1) against dopri5 at 1e-12.

Part 2 measures the stability regions: the eigenvalues of each reversible method's one-step map on
y' = λy, taken from its own step function (`heun_step`, `mf_step`) on the basis of its 2-vector state.

Run:  /work/venv/bin/python benchmarks/bench_reversible.py [--steps 10 100 1000 10000] [--configs NAME ...]
"""

from __future__ import annotations

import argparse
import cmath
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
from bench_adjoint_fixed import _status_kib  # noqa: E402  (VmRSS / VmHWM of this process)

from sonode.ode import odeint, odeint_adjoint  # noqa: E402

CHECKPOINT = {
    "mode": "checkpoint"
}  # sonode's discrete adjoint, named: the default is torchdiffeq's backsolve
from sonode.ode.reversible import heun_step, mf_step  # noqa: E402
from sonode.ode.tableaus import TABLEAUS  # noqa: E402

D = 8
CONFIGS = (
    "reversible",
    "backprop-rh",
    "reversible-rk4",
    "backprop-rrk4",
    "checkpoint-rk4",
    "backprop-rk4",
    "tdq-adjoint",
    "tdq-backprop",
)
REFERENCE = {
    "reversible": "backprop-rh",
    "reversible-rk4": "backprop-rrk4",
    "checkpoint-rk4": "backprop-rk4",
    "tdq-adjoint": "tdq-backprop",
}
DOPRI_TOLS = (1e-3, 1e-5, 1e-7, 1e-9)


class Field(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(D + 1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, D)
        )
        self.net.double()

    def forward(self, t, y):
        return self.net(torch.cat([y, torch.sin(t).to(y.dtype).expand(y.shape[0], 1)], 1))


def problem():
    f = Field()
    g = torch.Generator().manual_seed(1)
    y0 = torch.randn(8, D, generator=g, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    target = torch.randn(11, 8, D, generator=g, dtype=torch.float64)
    return f, y0, t, target


def gradient(name: str, n_steps: int, f, y0, t, target):
    """One forward + backward; returns (seconds, ys, flat gradient over y0 and the weights, nfev)."""
    import torchdiffeq

    y0 = y0.detach().clone().requires_grad_()
    opts = {"step_size": 1.0 / max(n_steps, 1)}  # (unused by the dopri5 rows)
    count = {"n": 0}

    def fc(tt, y):
        count["n"] += 1
        return f(tt, y)

    params = list(f.parameters())
    start = time.perf_counter()
    if name == "reversible":
        ys = odeint_adjoint(
            fc, y0, t, method="reversible_heun", options=opts, adjoint_params=params
        )
    elif name == "backprop-rh":
        ys = odeint(fc, y0, t, method="reversible_heun", options=opts)
    elif name == "reversible-rk4":
        ys = odeint_adjoint(fc, y0, t, method="reversible_rk4", options=opts, adjoint_params=params)
    elif name == "backprop-rrk4":
        ys = odeint(fc, y0, t, method="reversible_rk4", options=opts)
    elif name == "checkpoint-rk4":
        ys = odeint_adjoint(
            fc, y0, t, method="rk4", options=opts, adjoint_params=params, adjoint_options=CHECKPOINT
        )
    elif name == "backprop-rk4":
        ys = odeint(fc, y0, t, method="rk4", options=opts)
    elif name == "tdq-adjoint":
        ys = torchdiffeq.odeint_adjoint(
            fc, y0, t, method="rk4", options=opts, adjoint_params=params
        )
    elif name == "tdq-backprop":
        ys = torchdiffeq.odeint(fc, y0, t, method="rk4", options=opts)
    elif name.startswith("dopri5-"):  # n_steps unused: rtol = atol from the name
        tol = float(name.split("-", 1)[1])
        ys = odeint_adjoint(
            fc,
            y0,
            t,
            method="dopri5",
            rtol=tol,
            atol=tol,
            adjoint_params=params,
            adjoint_options=CHECKPOINT,
        )
    else:
        raise ValueError(name)
    grads = torch.autograd.grad(((ys - target) ** 2).sum(), [y0, *params])
    seconds = time.perf_counter() - start
    return seconds, ys.detach(), torch.cat([g.reshape(-1) for g in grads]), count["n"]


def child(name: str, n_steps: int, out_path: str) -> None:
    """Subprocess body: one gradient; writes ys and the gradient to out_path, prints time and memory."""
    torch.set_num_threads(1)
    f, y0, t, target = problem()
    gradient(name, 10, f, y0, t, target)  # warm-up: kernels and lazy initialisation, not the graph
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    seconds, ys, grad, nfev = gradient(name, n_steps, f, y0, t, target)
    peak = _status_kib("VmHWM")
    torch.save({"ys": ys, "grad": grad}, out_path)
    print(json.dumps({"seconds": seconds, "growth_mib": (peak - before) / 1024, "nfev": nfev}))


def run_child(name: str, n_steps: int, tmp: Path) -> dict:
    out = tmp / f"{name}-{n_steps}.pt"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, str(n_steps), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} n={n_steps} failed:\n{proc.stderr[-2000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(torch.load(out))
    return row


def reference_end_state() -> torch.Tensor:
    f, y0, t, _ = problem()
    with torch.no_grad():
        return odeint(f, y0, t, method="dopri5", rtol=1e-12, atol=1e-12)[-1]


def _step_matrix(method: str, z: complex) -> torch.Tensor:
    """The 2x2 one-step map of a reversible method on y' = λy (h = 1, λ = z), column by column."""
    lam = torch.tensor(complex(z), dtype=torch.complex128)
    h, t0 = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    cols = []
    for y, w in ((1.0, 0.0), (0.0, 1.0)):
        y_t, w_t = (
            torch.tensor([y], dtype=torch.complex128),
            torch.tensor([w], dtype=torch.complex128),
        )
        if method == "reversible_heun":  # state (y, ŷ); f_n = λ ŷ_n
            y1, w1, _ = heun_step(lambda tt, v, lam=lam: lam * v, h, h, y_t, w_t, lam * w_t)
        else:  # state (y, z)
            y1, w1 = mf_step(lambda tt, v, lam=lam: lam * v, TABLEAUS["rk4"], t0, h, y_t, w_t)
        cols.append(torch.cat([y1, w1]))
    return torch.stack(cols, 1)


def stability_table() -> list[str]:
    """Largest |eigenvalue| of each reversible method's step map on y' = λy, z = hλ, against |e^z|."""
    lines = [
        "| z = hλ | reversible_heun | reversible_rk4 (λ_c = 0.999) | exact abs(e^z) |",
        "|---|---|---|---|",
    ]
    for z in (
        0.5j,
        0.99j,
        1.0j,
        1.01j,
        1.5j,
        2.5j,
        2.8j,
        3.0j,
        -0.001,
        -0.01,
        -0.1,
        -1.0,
        -0.1 + 0.5j,
        0.01,
    ):
        mus = [
            float(torch.linalg.eigvals(_step_matrix(m, z)).abs().max())
            for m in ("reversible_heun", "reversible_rk4")
        ]
        lines.append(f"| {z} | {mus[0]:.6f} | {mus[1]:.6f} | {abs(cmath.exp(z)):.6f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="the rows to run (each gradient error needs its reference row too)",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "N_STEPS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    y_ref = reference_end_state()
    print(
        f"torch {torch.__version__}, float64, 1 thread; 8 x d={D}, MLP {D + 1}-64-64-{D}, 11 outputs on [0, 1]\n"
    )
    print(
        "| steps | method | s / gradient | memory growth MiB | grad rel. error vs backprop (same solver) "
        "| y(1) error | f evals |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(name, n) for n in args.steps for name in args.configs] + [
            (f"dopri5-{tol:g}", 0) for tol in DOPRI_TOLS
        ]
        rows = {}
        for name, n in runs:
            rows[(name, n)] = row = run_child(name, n, Path(tmp))
        for name, n in runs:
            row = rows[(name, n)]
            ref = rows.get((REFERENCE.get(name), n))
            if name.startswith("dopri5-"):
                ref = None
            err = (
                "–"
                if ref is None
                else f"{float((row['grad'] - ref['grad']).norm() / ref['grad'].norm()):.2e}"
            )
            y_err = float((row["ys"][-1] - y_ref).abs().max())
            label = "adaptive" if n == 0 else str(n)
            print(
                f"| {label} | {name} | {row['seconds']:.3f} | {row['growth_mib']:.1f} | {err} | {y_err:.2e} "
                f"| {row['nfev']} |"
            )
    print("\nStability: largest abs eigenvalue of the step map on y' = λy (stable where <= 1):\n")
    print("\n".join(stability_table()))


if __name__ == "__main__":
    main()
