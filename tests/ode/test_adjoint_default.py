"""odeint_adjoint's default is torchdiffeq's continuous adjoint; the exact discrete adjoint is
asked for by name (adjoint_options={"mode": "checkpoint"}). docs/engine.md, "Which adjoint by default"."""

import pytest
import torch
import torchdiffeq

import sonode.ode as engine
from sonode.ode import METHODS, odeint, odeint_adjoint

A = torch.tensor([[-0.5, 1.0], [-1.0, -0.3]], dtype=torch.float64)


def _solve(lib, **kw):
    """dy/dt = y W on [0, 1] by euler, step 0.1: (f's times on the backward pass, dL/dW, dL/dy0)."""
    W = A.clone().requires_grad_()
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    times, on = [], [False]

    def f(t, y):
        if on[0]:
            times.append(float(t.detach()))
        return y @ W

    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    odeint_kw = dict(method="euler", options={"step_size": 0.1})
    if lib is None:  # backprop through sonode's odeint
        ys = odeint(f, y0, t, **odeint_kw)
    else:
        ys = lib.odeint_adjoint(f, y0, t, adjoint_params=[W], **odeint_kw, **kw)
    on[0] = True
    gw, gy = torch.autograd.grad((ys * torch.tensor([0.3, -0.7])).sum(), [W, y0])
    return times, gw, gy


def test_default_backward_integrates_back_from_the_last_time_as_torchdiffeq():
    times, gw, gy = _solve(engine)
    assert times[0] == 1.0 and 0.5 in times  # a backward solve starts at t[-1]
    ref_times, ref_w, ref_y = _solve(torchdiffeq)
    assert times == ref_times  # the same backward Euler sweep as torchdiffeq's
    torch.testing.assert_close(gw, ref_w, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gy, ref_y, rtol=1e-12, atol=1e-15)


def test_checkpoint_mode_by_name_is_backprops_gradient():
    times, gw, gy = _solve(
        engine,
        adjoint_options={"mode": "checkpoint"},
    )
    assert 1.0 not in times  # Euler's replayed stages sit at the step starts only
    _, bw, by = _solve(None)
    torch.testing.assert_close(gw, bw, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gy, by, rtol=1e-12, atol=1e-15)
    _, cw, _ = _solve(engine)
    assert (cw - bw).abs().max() > 1e-4  # the continuous adjoint is not backprop's gradient


@pytest.mark.parametrize(
    "method,mode",
    [
        ("rk4", "backsolve"),
        ("euler", "backsolve"),
        ("dopri5", "backsolve"),
        ("explicit_adams", "backsolve"),
        ("scipy_solver", "backsolve"),
        ("rk4_classical", "backsolve"),
        ("lawson_rk4", "checkpoint"),  # backsolve has no exponential integrator
        ("implicit_euler", "checkpoint"),  # nor a Newton solve on the augmented state
        ("radauIIA5", "checkpoint"),
        ("reversible_heun", "reversible"),
    ],
)
def test_default_mode_per_method(method, mode):
    assert METHODS[method].default_adjoint_mode == mode


def test_checkpoint_every_without_the_checkpoint_mode_is_an_error():
    with pytest.raises(ValueError, match="mode='checkpoint' only"):
        odeint_adjoint(
            lambda t, y: -y,
            torch.ones(2, dtype=torch.float64, requires_grad=True),
            torch.tensor([0.0, 1.0]),
            method="rk4",
            options={"step_size": 0.1},
            adjoint_params=(),
            adjoint_options={"checkpoint_every": 4},
        )


@pytest.mark.parametrize("tuple_state", [False, True])
def test_a_user_adjoint_norm_sees_the_users_layout(tuple_state):
    """norm((t, *y, *a, *param_grads)) gets each part in its own shape, as torchdiffeq calls it."""
    params = (torch.rand(7, requires_grad=True), torch.rand((), requires_grad=True))
    seen = []

    def norm(parts):
        seen.append(tuple(p.shape for p in parts))
        return max(p.abs().max() for p in parts)

    y0 = (torch.tensor(1.0), torch.ones(2, 2)) if tuple_state else torch.tensor(1.0)

    def f(t, y):
        return tuple(-p * params[1] for p in y) if tuple_state else -y * params[1]

    ys = odeint_adjoint(
        f, y0, torch.tensor([0.0, 1.0]), adjoint_params=params, adjoint_options={"norm": norm}
    )
    (ys[0] if tuple_state else ys).sum().backward()
    state = [(), (2, 2)] if tuple_state else [()]
    assert seen and set(seen) == {tuple(torch.Size(s) for s in [(), *state, *state, (7,), ()])}
