"""The implicit methods on Robertson's stiff kinetics, against scipy's Radau and sonode's dopri5.

Robertson: y1' = -0.04 y1 + 1e4 y2 y3, y2' = 0.04 y1 - 1e4 y2 y3 - 3e7 y2², y3' = 3e7 y2²,
y(0) = (1, 0, 0), outputs at t = 0, 1e-2, 1, 1e2, 1e4; float64, rtol = 1e-6, atol = 1e-12.
Reference: scipy.integrate.solve_ivp(method="Radau", rtol=1e-11, atol=1e-16) on a numpy twin of f.
Error: max over outputs of |y_i - ref_i| / max_t |ref_i|, worst component (y2 lives at ~1e-5).
dopri5 gets max_steps = 20000 attempts; the row reports where it stopped.

Run:  /work/venv/bin/python benchmarks/bench_implicit.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
from sonode.ode import odeint  # noqa: E402

T = torch.tensor([0.0, 1e-2, 1.0, 1e2, 1e4], dtype=torch.float64)
Y0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)


def f(t, y):
    y1, y2, y3 = y.unbind(-1)
    r1, r2, r3 = 0.04 * y1, 1e4 * y2 * y3, 3e7 * y2**2
    return torch.stack([-r1 + r2, r1 - r2 - r3, r3], -1)


def f_np(t, y):
    r1, r2, r3 = 0.04 * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
    return np.array([-r1 + r2, r1 - r2 - r3, r3])


def main() -> None:
    torch.set_num_threads(1)
    ref = solve_ivp(
        f_np,
        (0.0, float(T[-1])),
        Y0.numpy(),
        method="Radau",
        rtol=1e-11,
        atol=1e-16,
        t_eval=T.numpy(),
    ).y.T
    scale = np.abs(ref).max(axis=0)
    odeint(
        f, Y0, T[:3], method="radauIIA5", options={"adaptive": True}
    )  # warm-up: torch.func's first jacrev
    print(
        "| method | accepted steps | rejected | f calls | seconds | max rel. error vs scipy Radau |"
    )
    print("|---|---|---|---|---|---|")
    for method in ("radauIIA5", "radauIIA3", "gl6", "gl4", "sdirk2", "trbdf2", "implicit_euler"):
        start = time.perf_counter()
        ys, st = odeint(
            f,
            Y0,
            T,
            method=method,
            rtol=1e-6,
            atol=1e-12,
            options={"adaptive": True},
            return_stats=True,
        )
        sec = time.perf_counter() - start
        err = float((np.abs(ys.numpy() - ref).max(axis=0) / scale).max())
        print(
            f"| {method} (adaptive) | {st.n_steps} | {st.n_rejected} | {st.nfev} | {sec:.2f} | {err:.2e} |"
        )
    start = time.perf_counter()
    try:
        odeint(f, Y0, T, method="dopri5", rtol=1e-6, atol=1e-12, options={"max_steps": 20000})
        print("| dopri5 | finished |")
    except RuntimeError as exc:
        print(
            f"| dopri5 | – | – | – | {time.perf_counter() - start:.2f} | {str(exc).split(';')[0]} |"
        )


if __name__ == "__main__":
    main()
