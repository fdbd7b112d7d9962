"""Implicit Runge–Kutta methods: convergence orders, a stiff problem against scipy, gradients."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from ode_cases import IMPLICIT, ORDER, linear_exact, linear_f

from sonode.ode import odeint, odeint_adjoint

D = torch.float64
T_LIN = torch.tensor([0.0, 1.5], dtype=D)


def _lin_error(method: str, n: int) -> float:
    y = odeint(
        linear_f,
        linear_exact(T_LIN)[0],
        T_LIN,
        method=method,
        rtol=1e-13,
        atol=1e-15,
        options={"step_size": 1.5 / n},
    )
    return float((y[-1] - linear_exact(T_LIN)[-1]).abs().max())


# Steps per run: the error must be well above round-off at the finest grid and in the asymptotic range.
_STEPS = {
    1: (32, 64, 128),
    2: (16, 32, 64),
    3: (8, 16, 32),
    4: (8, 16, 32),
    5: (4, 8, 16),
    6: (3, 6, 12),
}


@pytest.mark.parametrize("method", IMPLICIT)
def test_convergence_order_on_a_linear_system(method):
    """Observed order log2(e(h)/e(h/2)) on y' = A y (rotation + decay) is the method's order."""
    p = ORDER[method]
    errs = [_lin_error(method, n) for n in _STEPS[p]]
    orders = [math.log2(a / b) for a, b in itertools.pairwise(errs)]
    assert abs(orders[-1] - p) < 0.15, (errs, orders)


def robertson(k: torch.Tensor):
    """Robertson's chemical kinetics (stiffness ratio ~1e11); k = (0.04, 1e4, 3e7) the rate constants."""

    def f(t, y):
        y1, y2, y3 = y.unbind(-1)
        r1, r2, r3 = k[0] * y1, k[1] * y2 * y3, k[2] * y2**2
        return torch.stack([-r1 + r2, r1 - r2 - r3, r3], -1)

    return f


K_ROB = torch.tensor([0.04, 1e4, 3e7], dtype=D)
Y0_ROB = torch.tensor([1.0, 0.0, 0.0], dtype=D)
T_ROB = torch.tensor([0.0, 1e-2, 1.0, 1e2, 1e4], dtype=D)


def _scipy_robertson(t: torch.Tensor) -> np.ndarray:
    from scipy.integrate import solve_ivp

    def f(ti, y):  # numpy twin of robertson(K_ROB): an independent implementation, and fast
        r1, r2, r3 = 0.04 * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
        return np.array([-r1 + r2, r1 - r2 - r3, r3])

    sol = solve_ivp(
        f,
        (float(t[0]), float(t[-1])),
        Y0_ROB.numpy(),
        method="Radau",
        rtol=1e-11,
        atol=1e-16,
        t_eval=t.numpy(),
    )
    assert sol.success
    return sol.y.T


@pytest.mark.parametrize("method", ["radauIIA5", "radauIIA3"])
def test_robertson_adaptive_matches_scipy_where_dopri5_gives_up(method):
    f = robertson(K_ROB)
    with pytest.raises(RuntimeError, match="max_steps=1000 reached"):
        odeint(
            f, Y0_ROB, T_ROB, method="dopri5", rtol=1e-6, atol=1e-12, options={"max_steps": 1000}
        )
    ys, stats = odeint(
        f,
        Y0_ROB,
        T_ROB,
        method=method,
        rtol=1e-6,
        atol=1e-12,
        options={"adaptive": True},
        return_stats=True,
    )
    ref = _scipy_robertson(T_ROB)
    scale = np.abs(ref).max(axis=0)  # per component: y2 lives at ~1e-5, y1 and y3 at ~1
    rel = np.abs(ys.numpy() - ref).max(axis=0) / scale
    assert rel.max() < 1e-5, rel
    assert stats.n_steps < 200, stats  # dopri5 spent 1000 attempts and got to t ~ 1


def test_implicit_methods_are_stable_far_beyond_the_explicit_limit():
    """y' = -1e6 (y - cos t): h = 0.1 is 5e4 times dopri5's stability limit; L-stable methods track cos t."""

    def f(t, y):
        return -1e6 * (y - torch.cos(t))

    t = torch.linspace(0.0, 2.0, 21, dtype=D)
    for method in ("implicit_euler", "radauIIA3", "radauIIA5", "sdirk2", "trbdf2"):
        ys = odeint(f, torch.zeros(1, dtype=D), t, method=method)
        # after the first step's transient, y = cos t + O(1e-6) (the quasi-steady lag sin(t) / 1e6)
        assert float((ys[2:, 0] - torch.cos(t[2:])).abs().max()) < 1e-5, method


def _param_problem(k: torch.Tensor, method: str, options: dict, adjoint: bool = False):
    f = robertson(k)
    t = torch.tensor([0.0, 0.5, 2.0], dtype=D)
    kw = {"method": method, "rtol": 1e-9, "atol": 1e-13, "options": options}
    ys = (
        odeint_adjoint(f, Y0_ROB, t, adjoint_params=[k], **kw)
        if adjoint
        else odeint(f, Y0_ROB, t, **kw)
    )
    return (ys[1:] * torch.tensor([1.0, 1e4, 2.0], dtype=D)).sum()


@pytest.mark.parametrize(
    "method,options",
    [
        ("radauIIA3", {"step_size": 0.1}),
        ("radauIIA5", {"adaptive": True}),
        ("trbdf2", {"step_size": 0.1}),
    ],
)
def test_gradient_matches_finite_differences_and_the_adjoint_equals_backprop(method, options):
    k = K_ROB.clone().requires_grad_()
    g_bp = torch.autograd.grad(_param_problem(k, method, options), k)[0]
    g_adj = torch.autograd.grad(_param_problem(k, method, options, adjoint=True), k)[0]
    assert torch.allclose(g_adj, g_bp, rtol=1e-12, atol=0), (g_adj, g_bp)
    with torch.no_grad():
        for i in range(3):
            e = 1e-6 * float(K_ROB[i])
            kp, km = K_ROB.clone(), K_ROB.clone()
            kp[i] += e
            km[i] -= e
            fd = (
                float(_param_problem(kp, method, options))
                - float(_param_problem(km, method, options))
            ) / (2 * e)
            assert fd == pytest.approx(float(g_bp[i]), rel=1e-5), (i, fd, float(g_bp[i]))


def test_gradient_with_respect_to_y0_matches_finite_differences():
    y0 = torch.tensor([1.0, -0.5, 0.25], dtype=D, requires_grad=True)
    t = torch.tensor([0.0, 0.7, 1.5], dtype=D)

    def loss(y):
        return (odeint(linear_f, y, t, method="gl4", options={"step_size": 0.1})[1:] ** 3).sum()

    g = torch.autograd.grad(loss(y0), y0)[0]
    for i in range(3):
        e = torch.zeros(3, dtype=D)
        e[i] = 1e-6
        fd = (loss(y0.detach() + e) - loss(y0.detach() - e)) / 2e-6
        assert float(fd) == pytest.approx(float(g[i]), rel=1e-7)


def test_newton_failure_and_bad_options_give_one_line_errors():
    def f(t, y):
        return y**2  # blows up at t = 1: no stage solution for a step across it

    with pytest.raises(RuntimeError, match="Newton's method did not converge"):
        odeint(
            f,
            torch.ones(1, dtype=D),
            torch.tensor([0.0, 3.0], dtype=D),
            method="radauIIA5",
            options={"max_iters": 5},
        )
    y0, t = torch.ones(1, dtype=D), torch.tensor([0.0, 1.0], dtype=D)
    with pytest.raises(ValueError, match="exclude each other"):
        odeint(f, y0, t, method="gl4", options={"adaptive": True, "step_size": 0.1})
    with pytest.raises(ValueError, match="max_iters"):
        odeint(f, y0, t, method="gl4", options={"max_iters": 0})
    with pytest.raises(ValueError, match="unknown option"):
        odeint(f, y0, t, method="gl4", options={"linear": None})
    with pytest.raises(ValueError, match="does not support the implicit methods"):
        odeint_adjoint(
            f, y0, t, method="gl4", adjoint_params=(), adjoint_options={"mode": "backsolve"}
        )
