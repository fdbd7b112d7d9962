"""Shared test material for sonode.ode: the list of solvers and the reference problems."""

from __future__ import annotations

import numpy as np
import torch

from sonode.ode import SOLVERS, DenseLinear

FIXED_RK = ("euler", "midpoint", "rk4")
ADAPTIVE = ("bosh3", "dopri5", "tsit5")
ORDER = {"euler": 1, "midpoint": 2, "rk4": 4, "lawson_rk4": 4, "bosh3": 3, "dopri5": 5, "tsit5": 5}
# Covered by tests/ode/test_implicit.py and tests/ode/test_reversible.py.
IMPLICIT = ("implicit_euler", "implicit_midpoint", "trapezoid", "radauIIA3", "radauIIA5", "gl4", "gl6", "sdirk2", "trbdf2")
REVERSIBLE = ("reversible_heun", "reversible_rk4")
ORDER.update(implicit_euler=1, implicit_midpoint=2, trapezoid=2, radauIIA3=3, radauIIA5=5, gl4=4, gl6=6, sdirk2=2, trbdf2=2)
ORDER.update(reversible_heun=2, reversible_rk4=4)
assert set(FIXED_RK + ADAPTIVE + ("lawson_rk4",) + IMPLICIT + REVERSIBLE) == set(SOLVERS), "a solver is missing from the shared suite"

# A linear system y' = A y with rotation and decay (complex eigenvalues), solved exactly by exp(A t).
A_LIN = torch.tensor([[-0.3, 2.0, 0.0], [-2.0, -0.3, 0.5], [0.0, -0.5, -0.8]], dtype=torch.float64)
Y0_LIN = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)


def linear_exact(t: torch.Tensor) -> torch.Tensor:
    """(len(t), 3) exact solution of y' = A_LIN y, y(t[0]) = Y0_LIN."""
    return torch.stack([torch.linalg.matrix_exp(A_LIN * (ti - t[0])) @ Y0_LIN for ti in t])


def linear_f(t, y):
    return y @ A_LIN.to(y.dtype).T


def decay_f(t, y):
    return -y


def oscillator_f(t, y):
    """Harmonic oscillator x'' = -ω² x, ω = 2, as (x, v); y (..., 2)."""
    return torch.stack([y[..., 1], -4.0 * y[..., 0]], dim=-1)


def van_der_pol_f(t, y, mu: float = 1.0):
    x, v = y[..., 0], y[..., 1]
    return torch.stack([v, mu * (1 - x**2) * v - x], dim=-1)


def numpy_rhs(f):
    """Wrap a torch vector field for scipy.integrate.solve_ivp (float64)."""

    def rhs(t, y):
        return f(torch.tensor(t), torch.from_numpy(np.asarray(y, dtype=np.float64))).numpy()

    return rhs


PROBLEMS = {
    # name: (f, y0, t_end)
    "decay": (decay_f, torch.tensor([1.0, 2.0], dtype=torch.float64), 3.0),
    "oscillator": (oscillator_f, torch.tensor([1.0, 0.0], dtype=torch.float64), 5.0),
    "van_der_pol": (van_der_pol_f, torch.tensor([2.0, 0.0], dtype=torch.float64), 6.0),
}


def method_options(method: str, **kw) -> dict:
    """Options that make ``method`` runnable on the linear test system (Lawson: N = f - A y)."""
    if method == "lawson_rk4":
        kw.setdefault("linear", DenseLinear(A_LIN))
    return kw
