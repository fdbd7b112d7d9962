"""Event handling: event_t's gradient from odeint / odeint_adjoint, and the fixed-step event search
in the state's own dtype, equal to torchdiffeq's (test-only oracle) to the last bit in float32."""

import math

import pytest
import torch
import torchdiffeq

from sonode.ode import odeint, odeint_adjoint, odeint_event

K, Y0 = 1.5, 2.0  # y' = −k y from y0 reaches 1 at τ = ln(y0) / k


class Decay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(K, dtype=torch.float64))

    def forward(self, t, y):
        return -self.k * y


def _event_gradient(solve, **kw):
    """(τ, dτ/dk, dτ/dy0) of y' = −k y reaching y = 1."""
    func = Decay()
    y0 = torch.tensor([Y0], dtype=torch.float64, requires_grad=True)
    tol = dict(rtol=1e-10, atol=1e-12)
    if solve is odeint_event:
        t0 = torch.tensor(0.0, dtype=torch.float64)
        event_t, _ = odeint_event(func, y0, t0, event_fn=lambda t, y: y[0] - 1.0, **tol, **kw)
    else:
        t = torch.tensor([0.0, 1.0], dtype=torch.float64)
        event_t, _ = solve(func, y0, t, event_fn=lambda t, y: y[0] - 1.0, **tol, **kw)
    dk, dy0 = torch.autograd.grad(event_t, [func.k, y0])
    return float(event_t.detach()), float(dk), float(dy0)


@pytest.mark.parametrize(
    "solve,kw",
    [
        (odeint, {}),
        (odeint_adjoint, {}),  # the default, backsolve
        (odeint_adjoint, {"adjoint_options": {"mode": "checkpoint"}}),
        (odeint_event, {}),  # re-routes event_t itself: must not count the gradient twice
        (odeint_event, {"odeint_interface": odeint_adjoint}),
    ],
)
def test_event_time_carries_its_implicit_function_gradient(solve, kw):
    tau, dk, dy0 = _event_gradient(solve, **kw)
    assert tau == pytest.approx(math.log(Y0) / K, rel=1e-9)
    assert dk == pytest.approx(-math.log(Y0) / K**2, rel=1e-6)
    assert dy0 == pytest.approx(1 / (K * Y0), rel=1e-6)


def forced(t, y):
    """A forced, slowly varying scalar ODE: its solution flattens near the event level below."""
    return torch.cos(2 * t) * t - 0.3 * y / t


# (rk4's and the Adams methods' arithmetic is torchdiffeq's; the other fixed-step methods agree to
# round-off, not bit for bit)
@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams", "rk4"])
@pytest.mark.parametrize("interp", ["linear", "cubic"])
@pytest.mark.parametrize("shape", [(), (2,)])
@pytest.mark.parametrize("reverse", [False, True])
def test_float32_fixed_step_event_equals_torchdiffeq_to_the_last_bit(
    method, interp, shape, reverse
):
    y0 = torch.full(shape, 0.2, dtype=torch.float32)
    t = torch.tensor([1.0, 0.0] if reverse else [1.0, 2.0], dtype=torch.float64)
    level = 0.25 if reverse else 0.5

    def event_fn(t, y):
        return y.sum() / y.numel() - level

    opts = {"step_size": 0.01, "interp": interp}
    ours = odeint(forced, y0, t, event_fn=event_fn, method=method, options=opts)
    ref = torchdiffeq.odeint(forced, y0, t, event_fn=event_fn, method=method, options=opts)
    assert float(ref[0]) != float(t[0])  # an event was found
    assert float(ours[0]) == float(ref[0])
    assert torch.equal(ours[1], ref[1])


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_float32_adams_with_a_scalar_state_equals_torchdiffeq_to_the_last_bit(method):
    # a 0-d state: torchdiffeq's float64 coefficients promote the products and sum to float64
    y0 = torch.tensor(0.2, dtype=torch.float32)
    t = torch.linspace(1.0, 3.0, 5, dtype=torch.float32)
    opts = {"step_size": 0.01}
    ours = odeint(forced, y0, t, method=method, options=opts)
    assert torch.equal(ours, torchdiffeq.odeint(forced, y0, t, method=method, options=opts))
