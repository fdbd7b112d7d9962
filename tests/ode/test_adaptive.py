"""Adaptive methods: tolerance met against scipy (tight tol), dense output, directions, dtypes, per_sample."""

import math

import pytest
import torch
from ode_cases import ADAPTIVE, PROBLEMS, numpy_rhs
from scipy.integrate import solve_ivp

from sonode.ode import odeint

RTOL, ATOL = 1e-6, 1e-9
# The 2(1) pairs control the error of their 1st-order solution, so their global error is not a small
# multiple of the local tolerance; they are checked against torchdiffeq (test_torchdiffeq_parity.py).
HIGH_ORDER = tuple(m for m in ADAPTIVE if m not in ("adaptive_heun", "fehlberg2"))


def _reference(f, y0, t):
    sol = solve_ivp(
        numpy_rhs(f),
        (float(t[0]), float(t[-1])),
        y0.numpy(),
        method="DOP853",
        t_eval=t.numpy(),
        rtol=1e-12,
        atol=1e-14,
    )
    return torch.from_numpy(sol.y.T)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("method", HIGH_ORDER)
def test_meets_tolerance_against_scipy(method, problem):
    f, y0, t_end = PROBLEMS[problem]
    t = torch.linspace(0.0, t_end, 7, dtype=torch.float64)
    ref = _reference(f, y0, t)
    errs = {}
    for rtol in (RTOL, RTOL / 100):
        ys = odeint(f, y0, t, method=method, rtol=rtol, atol=ATOL)
        errs[rtol] = float(((ys - ref).abs() / (ATOL + rtol * ref.abs().amax(0))).max())
    # global error stays within a small multiple of the local tolerance ...
    assert errs[RTOL] < 30.0, errs
    # ... and follows it: 100x tighter tolerance gives a much smaller absolute error
    assert errs[RTOL / 100] < 30.0, errs


@pytest.mark.parametrize(
    "method", [m for m in HIGH_ORDER if m != "dopri8"]
)  # dopri8 lands on outputs
def test_dense_output_is_accurate_and_costs_no_evaluations(method):
    f, y0, t_end = PROBLEMS["van_der_pol"]
    t_dense = torch.linspace(0.0, t_end, 1201, dtype=torch.float64)
    ys, stats = odeint(f, y0, t_dense, method=method, rtol=RTOL, atol=ATOL, return_stats=True)
    _, stats_ends = odeint(
        f, y0, t_dense[[0, -1]], method=method, rtol=RTOL, atol=ATOL, return_stats=True
    )
    assert stats.n_steps < 600  # most outputs fall strictly inside steps: the interpolant is used
    assert stats.nfev == stats_ends.nfev  # 1201 outputs cost exactly what 2 outputs cost
    ref = _reference(f, y0, t_dense)
    assert float(((ys - ref).abs() / (ATOL + RTOL * ref.abs().amax(0))).max()) < 30.0


@pytest.mark.parametrize("method", HIGH_ORDER)
def test_decreasing_time_integrates_backwards(method):
    f, y0, _ = PROBLEMS["oscillator"]
    t = torch.linspace(2.0, -1.0, 9, dtype=torch.float64)
    ys = odeint(f, y0, t, method=method, rtol=1e-8, atol=1e-10)
    s = t - t[0]  # x(s) = cos(2 s), v = -2 sin(2 s) with x(t0) = 1, v(t0) = 0
    exact = torch.stack([torch.cos(2 * s), -2 * torch.sin(2 * s)], dim=-1)
    assert torch.allclose(ys, exact, atol=1e-6)


@pytest.mark.parametrize("method", ADAPTIVE + ("rk4",))
def test_float32_state_gets_float32_time(method):
    """torchdiffeq's convention: f receives t in the state's dtype (a float32 net can concatenate
    it); the solver keeps time in float64 itself, so steps do not accumulate float32 round-off."""
    t = torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)
    seen = []

    def f(tt, y):
        seen.append(tt.dtype)
        return -y * torch.cos(tt - 1.0)

    y0 = torch.tensor([1.0, -2.0], dtype=torch.float32)
    ys = odeint(
        f,
        y0,
        t,
        method=method,
        rtol=1e-5,
        atol=1e-7,
        options={"step_size": 0.01} if method == "rk4" else None,
    )
    assert ys.dtype == torch.float32 and set(seen) == {torch.float32}
    exact = y0.double() * torch.exp(-torch.sin(t - 1.0))[:, None]
    loose = method in ("adaptive_heun", "fehlberg2")  # 2(1) pairs: global error well above rtol
    assert torch.allclose(ys.double(), exact, rtol=1e-3 if loose else 1e-4, atol=1e-5)


# dopri8 has no per_sample; the 2(1) pairs (non-FSAL: their own branch) at a tolerance they reach quickly
PER_SAMPLE = [
    ("adaptive_heun", 1e-4),
    ("fehlberg2", 1e-4),
    ("bosh3", 1e-7),
    ("dopri5", 1e-7),
    ("tsit5", 1e-7),
]


@pytest.mark.parametrize("method,rtol", PER_SAMPLE)
def test_per_sample_matches_solving_each_sample_alone(method, rtol):
    rates = torch.tensor([0.5, 1.0, 4.0, 12.0], dtype=torch.float64)
    y0 = torch.stack(
        [
            torch.tensor([1.0, 0.0]),
            torch.tensor([0.5, 0.3]),
            torch.tensor([2.0, -1.0]),
            torch.tensor([0.0, 1.0]),
        ]
    ).double()

    def f(t, y):  # damped oscillators with very different speeds; rate broadcast per sample
        r = rates[: y.shape[0]] if y.shape[0] == len(rates) else rates[f.sample : f.sample + 1]
        return torch.stack([y[:, 1] * r, -r * y[:, 0] - 0.1 * y[:, 1]], dim=-1)

    t = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    ys, stats = odeint(
        f,
        y0,
        t,
        method=method,
        rtol=rtol,
        atol=rtol / 100,
        options={"per_sample": True},
        return_stats=True,
    )
    for b in range(len(rates)):
        f.sample = b
        alone, alone_stats = odeint(
            f, y0[b : b + 1], t, method=method, rtol=rtol, atol=rtol / 100, return_stats=True
        )
        assert torch.allclose(ys[:, b], alone[:, 0], rtol=1e-9, atol=1e-12)
        assert int(stats.n_steps[b]) == alone_stats.n_steps
    assert len(set(stats.n_steps.tolist())) == len(
        rates
    )  # every sample took its own number of steps
    assert stats.n_calls == int(stats.nfev.max())


def test_per_sample_passes_each_sample_its_own_time():
    seen = []

    def f(t, y):
        seen.append(t.clone())
        return torch.cos(t)[:, None] * torch.ones_like(y)  # y = sin(t) regardless of steps

    t = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    y0 = torch.zeros(3, 1, dtype=torch.float64)
    ys = odeint(f, y0, t, options={"per_sample": True, "first_step": 0.01}, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ys[..., 0], torch.sin(t)[:, None].expand(5, 3), atol=1e-8)
    assert all(s.shape == (3,) for s in seen)


def test_max_step_bounds_the_step():
    f, y0, t_end = PROBLEMS["decay"]
    t = torch.tensor([0.0, t_end], dtype=torch.float64)
    _, stats = odeint(f, y0, t, options={"max_step": 0.1}, return_stats=True)
    assert stats.n_steps >= math.ceil(t_end / 0.1)
