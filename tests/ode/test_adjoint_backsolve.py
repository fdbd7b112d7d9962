"""odeint_adjoint, backsolve mode (the continuous adjoint, docs/design.md "Adjoints").

Properties checked: agreement with backprop through the solver within the solver tolerance, and
convergence to it as the tolerance / step shrinks (the documented error is a discretisation error,
not a bug); finite differences (gradcheck at tight tolerance); torchdiffeq's adjoint; one sweep
(about one step per output interval, no per-interval initial-step search).
"""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from adjoint_cases import MLPField, adjoint_gradcheck, backprop_grads, max_rel_err, weighted_loss

from sonode.ode import odeint_adjoint

BACKSOLVE = {"mode": "backsolve"}


def _setup(n_out=9, t_end=1.5):
    func = MLPField()
    y0 = torch.randn(
        2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    ).requires_grad_()
    t = torch.linspace(0.0, t_end, n_out, dtype=torch.float64)
    return func, y0, t, [y0, *func.parameters()]


def _backsolve_error(method, options, rtol=1e-6, atol=1e-8, adjoint_extra=None):
    func, y0, t, inputs = _setup()
    _, g_ref = backprop_grads(func, y0, t, inputs, method, options, rtol=rtol, atol=atol)
    ys = odeint_adjoint(
        func,
        y0,
        t,
        method=method,
        rtol=rtol,
        atol=atol,
        options=options,
        adjoint_options={**BACKSOLVE, **(adjoint_extra or {})},
    )
    return max_rel_err(torch.autograd.grad(weighted_loss(ys), inputs), g_ref)


@pytest.mark.parametrize("method", ["bosh3", "dopri5", "tsit5"])
def test_adaptive_backsolve_within_tolerance_and_converges(method):
    loose = _backsolve_error(method, {}, rtol=1e-5, atol=1e-7)
    tight = _backsolve_error(method, {}, rtol=1e-9, atol=1e-11)
    assert loose < 1e-3
    assert tight < 1e-6
    assert tight < loose / 10


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_fixed_step_backsolve_error_shrinks_with_the_step(method, order):
    """The continuous adjoint of a fixed-step solve is off by O(h^p): halving h shrinks it ~2^p.

    grid="outputs" puts the outputs on step ends; on the default uniform grid the outputs are
    linearly interpolated, and backprop through that O(h²) interpolant would dominate."""
    coarse = _backsolve_error(method, {"step_size": 0.04, "grid": "outputs"})
    fine = _backsolve_error(method, {"step_size": 0.02, "grid": "outputs"})
    assert fine < {1: 0.05, 2: 1e-3, 4: 1e-7}[order]
    assert coarse / fine > 2**order * 0.6


def test_backsolve_method_override_is_used():
    """A tight forward with a loose (overridden) backward sweep: the sweep's own error shows."""
    default = _backsolve_error("dopri5", {}, rtol=1e-10, atol=1e-12)
    loose = {"method": "bosh3", "rtol": 1e-4, "atol": 1e-6}
    loose_back = _backsolve_error("dopri5", {}, rtol=1e-10, atol=1e-12, adjoint_extra=loose)
    assert loose_back > 10 * default


@pytest.mark.parametrize(
    "method,options", [("rk4", {"step_size": 0.005}), ("dopri5", {})], ids=["rk4", "dopri5"]
)
def test_backsolve_gradcheck(method, options):
    """Finite differences of the whole map (y0, W) -> ys; backsolve's own error is far below gradcheck's."""
    t = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    assert adjoint_gradcheck(method, options, BACKSOLVE, t)


def test_backsolve_agrees_with_torchdiffeq():
    func, y0, t, inputs = _setup()
    ours = torch.autograd.grad(
        weighted_loss(
            odeint_adjoint(func, y0, t, rtol=1e-10, atol=1e-12, adjoint_options=BACKSOLVE)
        ),
        inputs,
    )
    ref = torch.autograd.grad(
        weighted_loss(
            torchdiffeq.odeint_adjoint(func, y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
        ),
        inputs,
    )
    assert max_rel_err(ours, ref) <= 1e-6


def test_backsolve_is_one_sweep_over_dense_outputs():
    """200 closely spaced outputs: each interval costs one dopri5 step (6 evals) + the stage at its
    start (a jumped there) — no per-interval initial-step search (2 more) and no extra steps."""
    calls = []

    class Counting(MLPField):
        def forward(self, t, y):
            calls.append(torch.is_grad_enabled())
            return super().forward(t, y)

    torch.manual_seed(
        0
    )  # the step count depends on the field and state: fixed, whatever ran before
    func = Counting()
    y0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
    ys = odeint_adjoint(func, y0, t, rtol=1e-6, atol=1e-8, adjoint_options=BACKSOLVE)
    calls.clear()
    weighted_loss(ys).backward()
    assert len(calls) <= 7 * 200 + 2


def test_lawson_is_refused_in_backsolve():
    from adjoint_cases import lawson_linear

    with pytest.raises(ValueError, match="lawson_rk4"):
        odeint_adjoint(
            MLPField(),
            torch.zeros(2, 3, dtype=torch.float64),
            torch.tensor([0.0, 1.0]),
            method="lawson_rk4",
            options={"linear": lawson_linear()},
            adjoint_options=BACKSOLVE,
        )


@pytest.mark.parametrize("options", [{}, {"per_sample": True}], ids=["shared", "per_sample"])
def test_backsolve_backwards_in_time_and_per_sample(options):
    """t decreasing; per_sample forward (the backward sweep uses shared steps): within tolerance."""
    func, y0, _, inputs = _setup()
    t = torch.linspace(2.0, 0.0, 7, dtype=torch.float64)
    _, g_ref = backprop_grads(func, y0, t, inputs, "dopri5", options, rtol=1e-9, atol=1e-11)
    ys = odeint_adjoint(
        func, y0, t, rtol=1e-9, atol=1e-11, options=options, adjoint_options=BACKSOLVE
    )
    assert max_rel_err(torch.autograd.grad(weighted_loss(ys), inputs), g_ref) < 1e-6
