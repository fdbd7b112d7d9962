"""The same call gives torchdiffeq's numbers (torchdiffeq 0.2.5, a test-only dependency, as oracle):
fixed-step methods to round-off on the same grid, adaptive ones to their tolerance; every public
argument and option is accepted; unknown options are errors (torchdiffeq only warns)."""

import warnings

import pytest
import torch

torchdiffeq = pytest.importorskip("torchdiffeq")

from sonode.ode import METHODS, odeint, odeint_adjoint, odeint_dense, odeint_event  # noqa: E402

F64 = torch.float64


def field(t, y):
    return -0.5 * y + torch.sin(3 * t) * torch.roll(y, 1, dims=-1)


Y0 = torch.tensor([1.0, -0.5, 0.25], dtype=F64)


def test_defaults_are_torchdiffeqs():
    t = torch.tensor([0.0, 2.0], dtype=F64)
    assert torch.equal(
        odeint(field, Y0, t), odeint(field, Y0, t, method="dopri5", rtol=1e-7, atol=1e-9)
    )
    assert not torch.equal(odeint(field, Y0, t), odeint(field, Y0, t, rtol=1e-6, atol=1e-8))


def test_issue_example_uniform_grid():
    """euler, step 0.1, t = [0, 0.25, 0.5]: the grid runs from t[0] regardless of the outputs."""
    t = torch.tensor([0.0, 0.25, 0.5], dtype=F64)
    ys = odeint(
        lambda t, y: -y, torch.tensor(1.0, dtype=F64), t, method="euler", options={"step_size": 0.1}
    )
    assert float(ys[-1]) == pytest.approx(
        0.9**5, abs=1e-12
    )  # 0.59049; the old cut grid gave 0.59213
    old = odeint(
        lambda t, y: -y,
        torch.tensor(1.0, dtype=F64),
        t,
        method="euler",
        options={"step_size": 0.1, "grid": "outputs"},
    )
    assert float(old[-1]) == pytest.approx(0.59213, abs=1e-5)


FIXED = ["euler", "midpoint", "rk4", "heun2", "heun3"]


@pytest.mark.parametrize("method", FIXED)
@pytest.mark.parametrize(
    "options",
    [
        {"step_size": 0.07},
        {"step_size": 0.07, "interp": "cubic"},
        {"step_size": 0.05, "perturb": True},
        {},
        {
            "grid_constructor": lambda f, y0, t: torch.linspace(
                float(t[0]), float(t[-1]), 23, dtype=t.dtype
            )
        },
    ],
    ids=["step", "cubic", "perturb", "grid=t", "constructor"],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_fixed_grid_matches_to_round_off(method, options, reverse):
    t = torch.tensor([0.0, 0.33, 0.5, 1.21], dtype=F64)
    if reverse:
        t = t.flip(0)
    ours = odeint(field, Y0, t, method=method, options=options)
    ref = torchdiffeq.odeint(field, Y0, t, method=method, options=options)
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-13)


def test_rk4_is_the_3_8_rule_and_rk4_classical_differs():
    t = torch.tensor([0.0, 1.0], dtype=F64)
    ref = torchdiffeq.odeint(field, Y0, t, method="rk4", options={"step_size": 0.25})
    assert torch.allclose(
        odeint(field, Y0, t, method="rk4", options={"step_size": 0.25}), ref, rtol=1e-14
    )
    classical = odeint(field, Y0, t, method="rk4_classical", options={"step_size": 0.25})
    assert not torch.allclose(classical, ref, rtol=1e-10, atol=0)
    assert torch.allclose(classical, ref, atol=1e-3)  # both 4th order


@pytest.mark.parametrize(
    "method", ["dopri5", "bosh3", "adaptive_heun", "fehlberg2", "dopri8", "tsit5"]
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_adaptive_agrees_to_tolerance(method, dtype):
    t = torch.linspace(0.0, 2.0, 9, dtype=F64)
    rtol, atol = (1e-5, 1e-7) if dtype == torch.float32 else (1e-8, 1e-10)
    ours = odeint(field, Y0.to(dtype), t, method=method, rtol=rtol, atol=atol)
    ref = torchdiffeq.odeint(field, Y0, t, method="dopri5", rtol=1e-12, atol=1e-14)
    assert ours.dtype == dtype
    # low-order pairs control their 1st-order solution: a looser multiple of the tolerance
    factor = 2000 if method in ("adaptive_heun", "fehlberg2") else 100
    assert float(((ours.double() - ref).abs() / (atol + rtol * ref.abs())).max()) < factor


@pytest.mark.parametrize(
    "method,options",
    [
        ("explicit_adams", {"step_size": 0.01, "max_order": 4}),
        ("implicit_adams", {"step_size": 0.05}),
        ("fixed_adams", {"step_size": 0.05}),
    ],
)
def test_adams_matches_torchdiffeq(method, options):
    t = torch.linspace(0.0, 1.5, 5, dtype=F64)
    ours = odeint(field, Y0, t, method=method, options=options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torchdiffeq.odeint(field, Y0, t, method=method, options=options)
    assert torch.allclose(ours, ref, rtol=1e-9, atol=1e-10)


def test_scipy_solver():
    t = torch.linspace(0.0, 1.5, 5, dtype=F64)
    for solver in ("RK45", "Radau", "LSODA"):
        ours = odeint(field, Y0, t, method="scipy_solver", options={"solver": solver})
        ref = torchdiffeq.odeint(field, Y0, t, method="scipy_solver", options={"solver": solver})
        # scipy's LSODA keeps state between calls (its Fortran core), so only its tolerance is shared
        assert (
            torch.allclose(ours, ref, rtol=1e-12, atol=1e-14)
            if solver != "LSODA"
            else torch.allclose(ours, ref, rtol=1e-6, atol=1e-7)
        )


def test_method_none_is_dopri5_and_every_torchdiffeq_method_is_registered():
    t = torch.tensor([0.0, 1.0], dtype=F64)
    assert torch.equal(odeint(field, Y0, t, method=None), odeint(field, Y0, t, method="dopri5"))
    from torchdiffeq._impl.odeint import SOLVERS

    assert set(SOLVERS) <= set(METHODS)


def test_tuple_state_and_tupled_tolerances():
    def f(t, y):
        a, b = y
        return (-a * b.sum(), torch.cos(t) * b - a.mean())

    y0 = (torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([[0.2, -0.1], [0.3, 0.0]], dtype=F64))
    t = torch.linspace(0.0, 1.0, 4, dtype=F64)
    kw = {"rtol": (1e-7, 1e-6), "atol": (1e-9, 1e-8)}
    ours = odeint(f, y0, t, **kw)
    ref = torchdiffeq.odeint(f, y0, t, **kw)
    assert isinstance(ours, tuple) and [o.shape for o in ours] == [r.shape for r in ref]
    for o, r in zip(ours, ref, strict=False):
        assert torch.allclose(o, r, rtol=1e-5, atol=1e-7)
    fixed = odeint(f, y0, t, method="rk4", options={"step_size": 0.1})
    for o, r in zip(
        fixed, torchdiffeq.odeint(f, y0, t, method="rk4", options={"step_size": 0.1}), strict=False
    ):
        assert torch.allclose(o, r, rtol=1e-12, atol=1e-13)


def test_per_component_tensor_tolerances():
    t = torch.tensor([0.0, 2.0], dtype=F64)
    rtol = torch.tensor([1e-9, 1e-4, 1e-4], dtype=F64)
    ours = odeint(field, Y0, t, rtol=rtol, atol=1e-12)
    ref = torchdiffeq.odeint(field, Y0, t, method="dopri5", rtol=1e-12, atol=1e-14)
    assert abs(float(ours[-1, 0] - ref[-1, 0])) < 1e-7
    loose = odeint(field, Y0, t, rtol=1e-4, atol=1e-12)
    assert abs(float(ours[-1, 0] - ref[-1, 0])) < abs(float(loose[-1, 0] - ref[-1, 0]))


@pytest.mark.parametrize(
    "options",
    [
        {"step_t": torch.tensor([0.5, 1.0])},
        {"jump_t": torch.tensor([0.7])},
        {"max_step": 0.2},
        {"max_num_steps": 1000},
        {"norm": lambda x: x.abs().max()},
        {"dtype": torch.float64, "first_step": 0.01, "safety": 0.8, "ifactor": 5.0, "dfactor": 0.3},
    ],
    ids=["step_t", "jump_t", "min_max_step", "max_num_steps", "norm", "misc"],
)
def test_adaptive_options_match_to_tolerance(options):
    def g(t, y):  # a jump in f at t = 0.7
        return -y * (1.0 + (t > 0.7).to(y.dtype))

    t = torch.linspace(0.0, 1.5, 6, dtype=F64)
    ours = odeint(g, Y0, t, options=options, rtol=1e-9, atol=1e-11)
    ref = torchdiffeq.odeint(g, Y0, t, options=options, rtol=1e-9, atol=1e-11)
    assert torch.allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_step_t_and_jump_t_are_landed_on():
    seen = []

    class F(torch.nn.Module):
        def forward(self, t, y):
            return -y

        def callback_accept_step(self, t0, y0, dt):
            seen.append(float(t0 + dt))

    odeint(F(), Y0, torch.tensor([0.0, 2.0], dtype=F64), options={"step_t": [0.3], "jump_t": [1.1]})
    assert any(abs(v - 0.3) < 1e-15 for v in seen) and any(abs(v - 1.1) < 1e-15 for v in seen)


def test_min_step_bounds_the_step_count():
    _, stats = odeint(
        field,
        Y0,
        torch.tensor([0.0, 2.0], dtype=F64),
        rtol=1e-12,
        atol=1e-14,
        options={"min_step": 0.1, "first_step": 0.1},
        return_stats=True,
    )
    assert (
        stats.n_steps <= 20 and stats.n_rejected == 0
    )  # steps of min_step are accepted whatever the error


def test_max_num_steps_is_enforced():
    with pytest.raises(RuntimeError, match="max_steps=5"):
        odeint(field, Y0, torch.tensor([0.0, 50.0], dtype=F64), options={"max_num_steps": 5})


def test_unknown_options_are_errors():
    with pytest.raises(ValueError, match="valid options"):
        odeint(field, Y0, torch.tensor([0.0, 1.0]), method="dopri5", options={"step_size": 0.1})
    with pytest.raises(ValueError, match="unknown method"):
        odeint(field, Y0, torch.tensor([0.0, 1.0]), method="rk45")


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)
        ).double()

    def forward(self, t, y):
        return self.net(y) * torch.cos(t)


@pytest.mark.parametrize(
    "adjoint_kw",
    [
        {},
        {"adjoint_options": {"norm": "seminorm"}},
        {
            "adjoint_rtol": 1e-10,
            "adjoint_atol": 1e-12,
            "adjoint_method": "dopri8",
            "adjoint_options": {},
        },
        {
            "adjoint_options": {
                "norm": lambda s: torch.stack([x.abs().max() for x in s if x.numel()]).max()
            }
        },
    ],
    ids=["default", "seminorm", "adjoint_method", "callable_norm"],
)
def test_adjoint_arguments_give_torchdiffeqs_gradient(adjoint_kw):
    y0 = torch.tensor([[0.3, -0.2, 0.5]], dtype=F64, requires_grad=True)
    t = torch.linspace(0.0, 1.0, 4, dtype=F64, requires_grad=True)
    grads = []
    for lib, mode in ((torchdiffeq, None), (None, "backsolve"), (None, "checkpoint")):
        func = MLP()
        kw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in adjoint_kw.items()}
        if lib is None:
            kw.setdefault("adjoint_options", {})["mode"] = mode
            ys = odeint_adjoint(func, y0, t, rtol=1e-10, atol=1e-12, **kw)
        else:
            ys = lib.odeint_adjoint(func, y0, t, rtol=1e-10, atol=1e-12, **kw)
        grads.append(torch.autograd.grad(ys.pow(2).sum(), [y0, t, *func.parameters()]))
    for ours in grads[1:]:
        for a, b in zip(ours, grads[0], strict=False):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_odeint_event_time_and_gradient_match():
    """A ball thrown up: y = (height, velocity), event at height 0."""

    def ballistic(t, y):
        return torch.stack([y[1], torch.full_like(y[1], -9.81)])

    def event_fn(t, y):
        return y[0]

    results = []
    for lib in (torchdiffeq, None):
        y0 = torch.tensor([1.0, 3.0], dtype=F64, requires_grad=True)
        t0 = torch.tensor(0.0, dtype=F64)
        if lib is None:
            event_t, ys = odeint_event(ballistic, y0, t0, event_fn=event_fn)
        else:
            event_t, ys = lib.odeint_event(ballistic, y0, t0, event_fn=event_fn)
        (g,) = torch.autograd.grad(event_t + ys[-1, 1], [y0])
        results.append((event_t.detach(), ys.detach(), g))
    (te, ye, ge), (tr, yr, gr) = results[1], results[0]
    v, h = 3.0, 1.0
    exact = (v + (v * v + 2 * 9.81 * h) ** 0.5) / 9.81
    assert float(te) == pytest.approx(exact, abs=1e-7) and float(tr) == pytest.approx(
        exact, abs=1e-7
    )
    assert torch.allclose(ye, yr, atol=1e-6)
    assert torch.allclose(ge, gr, rtol=1e-5, atol=1e-7)


def test_odeint_event_with_fixed_step_and_adjoint():
    def decay(t, y):
        return -y

    y0 = torch.tensor([2.0], dtype=F64, requires_grad=True)
    event_fn = lambda t, y: y[0] - 1.0  # noqa: E731  (y = 2 exp(-t) reaches 1 at t = ln 2)
    t0 = torch.tensor(0.0, dtype=F64)
    te, _ = odeint_event(
        decay, y0, t0, event_fn=event_fn, method="rk4", options={"step_size": 0.01}
    )
    tr, _ = torchdiffeq.odeint_event(
        decay, y0, t0, event_fn=event_fn, method="rk4", options={"step_size": 0.01}
    )
    assert float(te) == pytest.approx(float(tr), abs=1e-8)
    ta, _ = odeint_event(
        decay, y0, t0, event_fn=event_fn, odeint_interface=odeint_adjoint, adjoint_params=()
    )
    (g,) = torch.autograd.grad(ta, [y0])
    assert float(ta) == pytest.approx(0.6931471805599453, abs=1e-7)
    assert float(g) == pytest.approx(0.5, rel=1e-5)  # τ = ln(y0), dτ/dy0 = 1/y0


def test_odeint_dense():
    dense = odeint_dense(field, Y0, torch.tensor(0.0, dtype=F64), torch.tensor(2.0, dtype=F64))
    t_eval = torch.tensor([0.0, 0.3, 1.7, 2.0], dtype=F64)
    ref = torchdiffeq.odeint(field, Y0, t_eval, rtol=1e-12, atol=1e-14)
    assert torch.allclose(dense(t_eval), ref, rtol=1e-6, atol=1e-8)
