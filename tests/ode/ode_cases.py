"""Shared test material for sonode.ode: the list of solvers and the reference problems."""

from __future__ import annotations

import numpy as np
import torch

from sonode.ode import METHODS, DenseLinear

FIXED_RK = ("euler", "midpoint", "rk4", "rk4_classical", "heun2", "heun3")
ADAPTIVE = ("adaptive_heun", "fehlberg2", "bosh3", "dopri5", "tsit5", "dopri8")
# The 2(1) pairs need ~1e4 steps at the tight tolerances of the gradient tests; they are covered
# by test_torchdiffeq_parity.py and test_adaptive.py instead.
ADAPTIVE_HIGH = tuple(m for m in ADAPTIVE if m not in ("adaptive_heun", "fehlberg2"))
# Covered by tests/ode/test_implicit.py and tests/ode/test_reversible.py.
IMPLICIT = (
    "implicit_euler",
    "implicit_midpoint",
    "trapezoid",
    "radauIIA3",
    "radauIIA5",
    "gl4",
    "gl6",
    "sdirk2",
    "trbdf2",
)
REVERSIBLE = ("reversible_heun", "reversible_rk4")
# Whole-solve methods (multistep, scipy): test_adams.py, test_torchdiffeq_parity.py.
WHOLE_SOLVE = ("explicit_adams", "implicit_adams", "fixed_adams", "scipy_solver")
ALL_METHODS = FIXED_RK + ADAPTIVE + ("lawson_rk4",) + IMPLICIT + REVERSIBLE + WHOLE_SOLVE
ORDER = {
    name: METHODS[name].order
    for name in FIXED_RK + ADAPTIVE + ("lawson_rk4",) + IMPLICIT + REVERSIBLE
}
assert set(ALL_METHODS) == set(METHODS), "a solver is missing from the shared suite"
# Every explicit Runge–Kutta method of the registry runs through the shared suite (other kinds have their own tests).
_EXPLICIT_RK = {n for n, m in METHODS.items() if not m.implicit and m.solver is None}
assert _EXPLICIT_RK <= set(FIXED_RK + ADAPTIVE + ("lawson_rk4",)), (
    "a solver is missing from the shared suite"
)

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
