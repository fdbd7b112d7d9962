"""Observed order of convergence of the fixed-step methods (slope of log error vs log h).

Reference: the linear system y' = A y solved exactly by the matrix exponential; for Lawson RK4
with a nonlinear part, scipy's DOP853 at rtol = atol = 1e-13.
"""

import math

import numpy as np
import pytest
import torch
from ode_cases import A_LIN, FIXED_RK, ORDER, Y0_LIN, linear_exact, linear_f
from scipy.integrate import solve_ivp

from sonode.ode import DenseLinear, odeint

T_END = 2.0


def _observed_order(errors, steps):
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    return slope


@pytest.mark.parametrize("method", FIXED_RK)
def test_observed_order_on_linear_system(method):
    t = torch.tensor([0.0, 0.5, T_END], dtype=torch.float64)
    exact = linear_exact(t)
    hs = [T_END / n for n in (20, 40, 80, 160)]
    errors = [
        float(
            (odeint(linear_f, Y0_LIN, t, method=method, options={"step_size": h}) - exact)
            .abs()
            .max()
        )
        for h in hs
    ]
    assert _observed_order(errors, hs) == pytest.approx(ORDER[method], abs=0.15)


def _nonlinear(t, y):
    return 0.5 * torch.sin(y) + 0.2 * torch.cos(3.0 * t)


def test_lawson_rk4_observed_order_with_nonlinear_part():
    t = torch.tensor([0.0, T_END], dtype=torch.float64)
    ref = solve_ivp(
        lambda s, y: A_LIN.numpy() @ y + 0.5 * np.sin(y) + 0.2 * np.cos(3.0 * s),
        (0.0, T_END),
        Y0_LIN.numpy(),
        method="DOP853",
        rtol=1e-13,
        atol=1e-13,
    ).y[:, -1]
    hs = [
        T_END / n for n in (80, 160, 320, 640)
    ]  # asymptotic regime (error cancellation near n≈60)
    errors = []
    for h in hs:
        ys = odeint(
            _nonlinear,
            Y0_LIN,
            t,
            method="lawson_rk4",
            options={"step_size": h, "linear": DenseLinear(A_LIN)},
        )
        errors.append(float(np.abs(ys[-1].numpy() - ref).max()))
    assert _observed_order(errors, hs) == pytest.approx(4.0, abs=0.2)


def test_lawson_rk4_is_exact_for_linear_problems_in_one_huge_step():
    t = torch.tensor([0.0, 10.0], dtype=torch.float64)  # |λ| h = 20: plain RK4 explodes here
    ys = odeint(
        lambda t, y: torch.zeros_like(y),
        Y0_LIN,
        t,
        method="lawson_rk4",
        options={"linear": DenseLinear(A_LIN)},
    )
    exact = linear_exact(t)[-1]
    assert torch.allclose(ys[-1], exact, rtol=1e-12, atol=1e-15)
    rk4 = odeint(linear_f, Y0_LIN, t, method="rk4")
    assert float((rk4[-1] - exact).abs().max()) > 1.0  # the contrast that makes the test meaningful


def test_outputs_grid_lands_on_every_output_time():
    # grid="outputs": step_size does not divide the intervals, the last sub-step of each is shortened
    t = torch.tensor([0.0, 0.35, 1.0], dtype=torch.float64)
    ys, stats = odeint(
        linear_f,
        Y0_LIN,
        t,
        method="rk4",
        options={"step_size": 0.1, "grid": "outputs"},
        return_stats=True,
    )
    assert stats.n_steps == math.ceil(0.35 / 0.1) + math.ceil(0.65 / 0.1)
    # the same steps written out as output times, one step per interval
    grid = torch.tensor(
        [0.0, 0.1, 0.2, 0.3, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0], dtype=torch.float64
    )
    on_grid = odeint(linear_f, Y0_LIN, grid, method="rk4")
    assert torch.allclose(ys, on_grid[[0, 4, -1]], rtol=1e-13, atol=1e-15)
