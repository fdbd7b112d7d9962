"""Regression tests of the four defects of issue 27 (each failed before the fix; see the commit).

1. checkpoint adjoint crash when only parameters require grad and the first output is more than
   checkpoint_every steps away; 2. odeint gave no gradient w.r.t. t; 3. a float32 state of shape ()
   came back float64 and f received t in float64; 4. the func.callback_* hooks were never called.
"""

import math

import pytest
import torch

from sonode.ode import odeint, odeint_adjoint


class Decay(torch.nn.Module):
    """dy/dt = -k y."""

    def __init__(self, k=0.7, dtype=torch.float64):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k, dtype=dtype))

    def forward(self, t, y):
        return -self.k * y


@pytest.mark.parametrize("n_steps", [32, 33, 100])
def test_checkpoint_adjoint_with_only_parameters_requiring_grad(n_steps):
    func = Decay()
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)  # no grad: only k does
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    opts = {"step_size": 1.0 / n_steps}
    ys = odeint_adjoint(
        func, y0, t, method="rk4", options=opts, adjoint_options={"mode": "checkpoint"}
    )
    (g_adj,) = torch.autograd.grad(ys[-1].sum(), [func.k])
    (g_ref,) = torch.autograd.grad(
        odeint(func, y0, t, method="rk4", options=opts)[-1].sum(), [func.k]
    )
    assert torch.allclose(g_adj, g_ref, rtol=1e-12)
    assert float(g_adj) == pytest.approx(-3.0 * math.exp(-0.7), rel=1e-7)  # d/dk of 3 exp(-k)


@pytest.mark.parametrize(
    "method,options", [("dopri5", {}), ("rk4", {"step_size": 0.01}), ("bosh3", {})]
)
def test_odeint_gradient_with_respect_to_t(method, options):
    """y(t_i) = y0 exp(-k (t_i - t_0)): dL/dt_i = -k y(t_i) for i >= 1 and dL/dt_0 = k Σ y(t_i)."""
    func = Decay()
    y0 = torch.tensor(1.5, dtype=torch.float64)
    t = torch.tensor([0.2, 0.7, 1.3], dtype=torch.float64, requires_grad=True)
    ys = odeint(func, y0, t, method=method, options=options, rtol=1e-10, atol=1e-12)
    (ys[1] + ys[2]).backward()
    exact = 1.5 * torch.exp(-0.7 * (t.detach() - 0.2))
    expected = torch.stack([0.7 * (exact[1] + exact[2]), -0.7 * exact[1], -0.7 * exact[2]])
    assert t.grad is not None
    assert torch.allclose(t.grad, expected, rtol=1e-6)
    t2 = t.detach().clone().requires_grad_()
    ya = odeint_adjoint(func, y0, t2, method=method, options=options, rtol=1e-10, atol=1e-12)
    (ya[1] + ya[2]).backward()
    assert torch.allclose(t.grad, t2.grad, rtol=1e-6)  # the same gradient as the adjoint's


def test_time_gradient_does_not_change_the_values():
    func = Decay()
    y0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    plain = odeint(func, y0, t)
    moved = odeint(func, y0, t.clone().requires_grad_())
    assert torch.equal(plain, moved.detach())


@pytest.mark.parametrize("method", ["dopri5", "rk4", "euler", "tsit5"])
def test_float32_scalar_state_stays_float32(method):
    y0 = torch.tensor(1.0, dtype=torch.float32)
    t = torch.tensor([0.0, 0.5, 1.0])  # float32 times, as in a typical float32 model
    seen = set()

    def f(tt, y):
        seen.add(tt.dtype)
        return -y

    ys = odeint(
        f, y0, t, method=method, options={"step_size": 0.1} if method in ("rk4", "euler") else None
    )
    assert ys.dtype == torch.float32 and ys.shape == (3,)
    assert seen == {torch.float32}


def test_float32_net_concatenating_t():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def f(t, y):
        return net(torch.cat([y, t.expand(*y.shape[:-1], 1)], dim=-1))

    y0 = torch.randn(4, 2)
    ys = odeint(f, y0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert ys.dtype == torch.float32
    ya = odeint_adjoint(_Wrap(net), y0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(ys, ya.detach())


class _Wrap(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, t, y):
        return self.net(torch.cat([y, t.expand(*y.shape[:-1], 1)], dim=-1))


class Recording(Decay):
    def __init__(self):
        super().__init__()
        self.calls = {name: 0 for name in ("step", "accept", "reject", "step_adjoint")}

    def callback_step(self, t0, y0, dt):
        assert t0.ndim == 0 and dt.ndim == 0
        self.calls["step"] += 1

    def callback_accept_step(self, t0, y0, dt):
        self.calls["accept"] += 1

    def callback_reject_step(self, t0, y0, dt):
        self.calls["reject"] += 1

    def callback_step_adjoint(self, t0, y0, dt):
        self.calls["step_adjoint"] += 1


def test_callbacks_fixed_step():
    func = Recording()
    _, stats = odeint(
        func,
        torch.ones(2, dtype=torch.float64),
        torch.tensor([0.0, 1.0]),
        method="rk4",
        options={"step_size": 0.1},
        return_stats=True,
    )
    assert func.calls["step"] == stats.n_steps == 10
    assert func.calls["accept"] == func.calls["reject"] == 0


def test_callbacks_adaptive_count_every_attempt():
    func = Recording()
    y0 = torch.ones(2, dtype=torch.float64)
    _, stats = odeint(
        func, y0, torch.tensor([0.0, 5.0]), options={"first_step": 1.0}, return_stats=True
    )
    assert stats.n_rejected > 0  # the large first step is rejected: both callbacks are exercised
    assert func.calls["accept"] == stats.n_steps and func.calls["reject"] == stats.n_rejected
    assert func.calls["step"] == stats.n_steps + stats.n_rejected


@pytest.mark.parametrize("mode", ["checkpoint", "backsolve"])
def test_adjoint_callbacks_are_called_on_the_backward_pass(mode):
    func = Recording()
    y0 = torch.ones(2, dtype=torch.float64, requires_grad=True)
    ys = odeint_adjoint(
        func,
        y0,
        torch.tensor([0.0, 1.0]),
        method="rk4",
        options={"step_size": 0.1},
        adjoint_options={"mode": mode},
    )
    assert func.calls["step_adjoint"] == 0
    ys[-1].sum().backward()
    assert func.calls["step_adjoint"] >= 10
