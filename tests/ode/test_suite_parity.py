"""Behaviours found missing by running torchdiffeq's own test suite against sonode.ode (docs/engine.md):
perturb in the Adams methods, warnings for callbacks a method never calls, the callbacks of the
implicit methods and of the checkpoint adjoint's replay, and adjoint params computed from other
adjoint params or from another adjoint solve (held fixed on the backward pass)."""

import warnings

import pytest
import torch

from sonode.ode import odeint, odeint_adjoint


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
@pytest.mark.parametrize("perturb", [True, False])
def test_adams_perturb_keeps_f_off_the_grid_points(method, perturb):
    times = []

    def f(t, y):
        times.append(float(t))
        return -y

    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    odeint(f, y0, t, method=method, options={"step_size": 0.5, "perturb": perturb})
    on_grid = {0.0, 0.5, 1.0} & set(times)
    assert (not on_grid) if perturb else on_grid == {0.0, 0.5, 1.0}


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(2, 2).double()

    def forward(self, t, y):
        return torch.tanh(self.lin(y))


@pytest.mark.parametrize(
    ("method", "unused"),
    [
        ("rk4", "callback_accept_step"),
        ("euler", "callback_reject_step"),
        ("scipy_solver", "callback_step"),
        ("reversible_heun", "callback_step"),
    ],
)
def test_a_callback_the_method_never_calls_warns(method, unused):
    func = Net()
    setattr(func, unused, lambda t0, y0, dt: None)
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    opts = None if method == "scipy_solver" else {"step_size": 0.1}
    with pytest.warns(UserWarning, match=unused):
        odeint(func, y0, t, method=method, options=opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a called callback is no reason to warn
        odeint(Net(), y0, t, method="dopri5")


@pytest.mark.parametrize("adaptive", [False, True])
def test_implicit_methods_call_the_callbacks(adaptive):
    func = Net()
    calls = {"step": 0, "accept": 0, "reject": 0}
    func.callback_step = lambda t0, y0, dt: calls.__setitem__("step", calls["step"] + 1)
    if adaptive:
        func.callback_accept_step = lambda *a: calls.__setitem__("accept", calls["accept"] + 1)
        func.callback_reject_step = lambda *a: calls.__setitem__("reject", calls["reject"] + 1)
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    opts = {"adaptive": True} if adaptive else {"step_size": 0.1}
    _, stats = odeint(func, y0, t, method="radauIIA3", options=opts, return_stats=True)
    assert calls["step"] == stats.n_steps + stats.n_rejected
    if adaptive:
        assert calls["accept"] == stats.n_steps and calls["reject"] == stats.n_rejected


def test_checkpoint_replay_calls_the_accept_adjoint_callback():
    func = Net()
    counts = {"step": 0, "accept": 0, "reject": 0}
    for name in counts:
        key = name

        def hook(t0, y0, dt, key=key):
            counts[key] += 1

        setattr(
            func,
            f"callback_{name}_step_adjoint" if name != "step" else "callback_step_adjoint",
            hook,
        )
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ys, stats = odeint(func, y0, t, return_stats=True), None
    ys = odeint_adjoint(func, y0, t, adjoint_options={"mode": "checkpoint"})
    ys.sum().backward()
    _, stats = odeint(func, y0.detach(), t, return_stats=True)
    # every replayed step is an accepted step of the forward solve
    assert counts["step"] == counts["accept"] == stats.n_steps and counts["reject"] == 0


W = torch.tensor([[-0.4, 0.9], [-0.8, -0.3]], dtype=torch.float64)


@pytest.mark.parametrize("mode", ["checkpoint", "backsolve"])
@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_adjoint_params_computed_from_another_adjoint_solve(mode, method):
    """Second solve reads e = y1**2 (y1 the end of a first adjoint solve) and W, which e depends on.

    Before: RuntimeError "backward through the graph a second time" on backward (and W's direct
    gradient would have been counted twice); now the gradient is backprop's."""
    opts = {"step_size": 0.05} if method == "rk4" else None
    kw = {"method": method, "options": opts}
    t1 = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)

    def run(solver, extra):
        w = W.clone().requires_grad_()
        y0 = torch.tensor([[0.5, -1.0], [1.5, 0.2]], dtype=torch.float64, requires_grad=True)
        first = solver(lambda t, y: torch.tanh(y @ w), y0, t1, **kw, **extra([w]))
        e = first[-1] ** 2

        class Second(torch.nn.Module):  # e as a module attribute, as the audio model's envelope ODE
            def __init__(self):
                super().__init__()
                self.e = e

            def forward(self, t, g):
                return -self.e * g + torch.tanh(g @ w)

        ones = torch.ones(2, 2, dtype=torch.float64)
        second = solver(Second(), ones, t1, **kw, **extra([w, e]))
        (second.square().sum() + first.sum()).backward()
        return y0.grad, w.grad

    g_y0, g_w = run(
        odeint_adjoint, lambda p: {"adjoint_params": p, "adjoint_options": {"mode": mode}}
    )
    r_y0, r_w = run(odeint, lambda p: {})
    tol = 1e-10 if mode == "checkpoint" else 1e-4  # backsolve: to the solver's accuracy
    assert torch.allclose(g_y0, r_y0, rtol=tol, atol=tol)
    assert torch.allclose(g_w, r_w, rtol=tol, atol=tol)


def test_computed_adjoint_param_hidden_from_func_is_a_clear_error():
    w = W.clone().requires_grad_()
    e = (w.sum(0) ** 2)[None]
    box = [
        e
    ]  # func reads e through a list: it cannot be held fixed, so refuse rather than double count
    y0 = torch.ones(2, 2, dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 3, dtype=torch.float64)
    ys = odeint_adjoint(
        lambda t, g: -box[0] * g + g @ w,
        y0,
        t,
        method="rk4",
        options={"step_size": 0.1},
        adjoint_params=[w, e],
    )
    with pytest.raises(RuntimeError, match="computed from another of the adjoint params"):
        ys.sum().backward()


torchdiffeq = pytest.importorskip("torchdiffeq")  # test-only oracle


def test_float32_rk4_is_torchdiffeqs_to_the_last_bit():
    # rk4 in torchdiffeq's arithmetic (k1 + 3 (k2 + k3) + k4) h / 8: float32 round-off matches too
    # (an event time on a flat float32 solution of torchdiffeq's suite moved 3x with it)
    method = "rk4"

    def f(t, y):
        return -y + torch.sin(3 * t) * y**2

    y0 = torch.tensor([1.3, -0.7], dtype=torch.float32)
    t = torch.linspace(1.0, 3.0, 9)
    opts = {"step_size": 0.01}
    ours = odeint(f, y0, t, method=method, options=opts)
    theirs = torchdiffeq.odeint(f, y0, t, method=method, options=opts)
    assert torch.equal(ours, theirs)
