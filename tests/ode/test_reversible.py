"""Reversible Heun and its reversible adjoint: backprop's gradient (y0, θ, t), order, stability region."""

from __future__ import annotations

import math

import pytest
import torch
from ode_cases import linear_exact, linear_f
from torch import nn

from sonode.ode import odeint, odeint_adjoint

D = torch.float64


class Field(nn.Module):
    """A small time-dependent MLP field (reads t, so dL/dt has a term through f's time argument)."""

    def __init__(self, d: int = 3, dtype=D):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(0.5 * torch.randn(d + 1, 16, generator=g, dtype=dtype))
        self.w2 = nn.Parameter(0.5 * torch.randn(16, d, generator=g, dtype=dtype))
        self.b = nn.Parameter(0.1 * torch.randn(16, generator=g, dtype=dtype))

    def forward(self, t, y):
        tt = torch.sin(3 * t).to(y.dtype).expand(*y.shape[:-1], 1)
        return torch.tanh(torch.cat([y, tt], -1) @ self.w1 + self.b) @ self.w2 - 0.1 * y


def _grads(solver, f, y0, t, options, method="reversible_heun"):
    y0 = y0.detach().clone().requires_grad_()
    t = t.detach().clone().requires_grad_()
    ys = solver(f, y0, t, method=method, options=options)
    target = torch.linspace(-1, 1, ys.numel(), dtype=ys.dtype).view_as(ys)
    loss = ((ys - target) ** 2).sum() + ys[-1].sin().sum()
    return ys, torch.autograd.grad(loss, [y0, t, *f.parameters()])


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("method", ["reversible_heun", "reversible_rk4"])
@pytest.mark.parametrize(
    "t,options",
    [
        (
            torch.linspace(0.0, 2.0, 25, dtype=D),
            {"step_size": 0.004},
        ),  # 500 steps, an output every ~21
        (torch.linspace(0.0, 2.0, 25, dtype=D) ** 2, None),  # one step per (uneven) output interval
        (
            torch.linspace(1.0, -1.0, 5, dtype=D),
            {"step_size": 2e-3},
        ),  # backwards in time, 1000 steps
    ],
)
def test_reversible_adjoint_equals_backprop_in_float64(method, t, options):
    f = Field()
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    ys_bp, g_bp = _grads(odeint, f, y0, t, options, method)
    ys_adj, g_adj = _grads(odeint_adjoint, f, y0, t, options, method)
    assert torch.equal(ys_adj, ys_bp)  # the adjoint's forward is the same solve
    for name, a, b in zip(["y0", "t", "w1", "w2", "b"], g_adj, g_bp, strict=False):
        assert _rel(a, b) <= 1e-10, (name, _rel(a, b))


def test_float32_state_float32_gradients():
    f = Field(dtype=torch.float32)
    y0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.0, 1.0, 6)
    ys_bp, g_bp = _grads(odeint, f, y0, t, {"step_size": 0.01})
    ys_adj, g_adj = _grads(odeint_adjoint, f, y0, t, {"step_size": 0.01})
    assert ys_adj.dtype == torch.float32 and torch.equal(ys_adj, ys_bp)
    assert all(a.dtype == b.dtype for a, b in zip(g_adj, g_bp, strict=False))
    assert all(_rel(a, b) < 1e-5 for a, b in zip(g_adj, g_bp, strict=False))


@pytest.mark.parametrize(
    "method,order,steps", [("reversible_heun", 2, (100, 200)), ("reversible_rk4", 4, (20, 40))]
)
def test_convergence_order(method, order, steps):
    t = torch.tensor([0.0, 1.5], dtype=D)
    errs = []
    for n in steps:
        y = odeint(linear_f, linear_exact(t)[0], t, method=method, options={"step_size": 1.5 / n})
        errs.append(float((y[-1] - linear_exact(t)[-1]).abs().max()))
    assert abs(math.log2(errs[0] / errs[1]) - order) < 0.15, errs


def _rotation(omega: float):
    a = torch.tensor([[0.0, omega], [-omega, 0.0]], dtype=D)
    return lambda t, y: y @ a.T


def test_stability_region_is_the_imaginary_segment():
    """Stable for z = hλ = iω with |ω| < 1; unstable just beyond it and for any dissipative λ (docstring)."""
    y0, n = torch.tensor([1.0, 0.0], dtype=D), 4000
    t = torch.tensor([0.0, float(n)], dtype=D)
    inside = odeint(_rotation(0.9), y0, t, method="reversible_heun", options={"step_size": 1.0})
    outside = odeint(
        _rotation(1.1), y0, t / 50, method="reversible_heun", options={"step_size": 1.0}
    )
    assert 0.2 < float(inside[-1].norm()) < 5.0  # |μ| = 1: bounded over 4000 steps
    assert float(outside[-1].norm()) > 1e10  # |μ| ≈ 1.56: 1.56^80 ≈ 1e15
    decay = odeint(
        lambda t, y: -y,
        torch.ones(1, dtype=D),
        torch.tensor([0.0, 40.0], dtype=D),
        method="reversible_heun",
        options={"step_size": 0.1},
    )
    assert float(decay[-1].abs()) > 1.0  # exact e^-40; the parasitic mode grows like 1.1^400 / 2


def test_mccallum_foster_stability_follows_rk4_on_the_imaginary_axis():
    """Coupling λ = 0.999: stable where RK4 is on the imaginary axis (|hω| < 2.8), but the parasitic
    mode λ e^{-hλ} grows once h Re λ < ln 0.999 (measured in benchmarks/bench_reversible.py)."""
    y0 = torch.tensor([1.0, 0.0], dtype=D)
    t = torch.tensor([0.0, 2000.0], dtype=D)
    inside = odeint(_rotation(2.5), y0, t, method="reversible_rk4", options={"step_size": 1.0})
    assert 0.2 < float(inside[-1].norm()) < 5.0
    decay = odeint(
        lambda t, y: -y,
        torch.ones(1, dtype=D),
        torch.tensor([0.0, 100.0], dtype=D),
        method="reversible_rk4",
        options={"step_size": 0.1},
    )
    assert float(decay[-1].abs()) > 1.0  # exact e^-100; parasitic growth 0.999 e^0.1 per step


def test_adjoint_mode_checks():
    f, y0, t = Field(), torch.zeros(2, 3, dtype=D), torch.tensor([0.0, 1.0], dtype=D)
    with pytest.raises(ValueError, match="needs an algebraically reversible method"):
        odeint_adjoint(f, y0, t, method="rk4", adjoint_options={"mode": "reversible"})
    for mode in ("checkpoint", "backsolve"):
        with pytest.raises(ValueError, match="use adjoint_options=\\{'mode': 'reversible'\\}"):
            odeint_adjoint(f, y0, t, method="reversible_heun", adjoint_options={"mode": mode})
    with pytest.raises(ValueError, match="unknown option"):
        odeint(f, y0, t, method="reversible_heun", options={"first_step": 0.1})
    # no mode given: the reversible adjoint is chosen, and a single output time is y0 itself
    y = torch.ones(2, 3, dtype=D, requires_grad=True)
    out = odeint_adjoint(f, y, t[:1], method="reversible_heun")
    (g,) = torch.autograd.grad(out.sum(), y)
    assert torch.equal(out[0], y.detach()) and torch.equal(g, torch.ones_like(y))


def test_a_reversible_method_cannot_run_the_backsolve_sweep():
    f, y0, t = Field(), torch.zeros(2, 3, dtype=D), torch.tensor([0.0, 1.0], dtype=D)
    with pytest.raises(ValueError, match="cannot run the backsolve sweep"):
        odeint_adjoint(
            f,
            y0,
            t,
            method="rk4",
            adjoint_options={"mode": "backsolve", "method": "reversible_heun"},
        )


@pytest.mark.parametrize("method", ["reversible_heun", "reversible_rk4"])
def test_reversible_grid_is_torchdiffeqs_fixed_grid(method):
    """Steps from t[0] on t[0] + k h (not restarted at outputs), outputs between grid points linearly
    interpolated — the grid of every other fixed-step method."""
    f = Field()
    y0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=D)
    h = 0.125  # binary-exact grid times, so the reference solve's outputs are grid points exactly
    t = torch.tensor([0.0, 0.3125, 0.5, 0.8], dtype=D)
    ys, stats = odeint(f, y0, t, method=method, options={"step_size": h}, return_stats=True)
    _, ref = odeint(f, y0, t, method="euler", options={"step_size": h}, return_stats=True)
    assert stats.n_steps == ref.n_steps == 7  # 0, 0.125, ..., 0.75, 0.8
    grid = torch.tensor([0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.8], dtype=D)
    on_grid = odeint(f, y0, grid, method=method, options={"step_size": h})
    assert torch.equal(ys[1], on_grid[2] + 0.5 * (on_grid[3] - on_grid[2]))
    assert torch.equal(ys[2], on_grid[4])
    assert torch.equal(ys[3], on_grid[7])
