"""Adams methods on dy/dt = −y + sin 3t, y(0) = 1, whose solution is
y(t) = (y0 + 3/10) e^{−t} + (sin 3t − 3 cos 3t)/10: the analytic value, the observed order as the
step halves, and torchdiffeq (test-only oracle) to the last bit, in float64 and float32."""

import math
import warnings

import pytest
import torch
import torchdiffeq

from sonode.ode import odeint

T_END, Y0 = 2.0, 1.0


def field(t, y):
    return -y + torch.sin(3 * t)


def exact(t: float) -> float:
    return (Y0 + 0.3) * math.exp(-t) + (math.sin(3 * t) - 3 * math.cos(3 * t)) / 10


def error_at_end(method: str, step: float, max_order: int) -> float:
    t = torch.tensor([0.0, T_END], dtype=torch.float64)
    y0 = torch.tensor([Y0], dtype=torch.float64)
    opts = {"step_size": step, "max_order": max_order}
    return abs(float(odeint(field, y0, t, method=method, options=opts)[-1, 0]) - exact(T_END))


@pytest.mark.parametrize(
    "method,max_order,steps,order",
    [
        # max_order counts torchdiffeq's way: max_order − 1 history entries, so 4 is AB3 (order 3)
        ("explicit_adams", 4, (0.02, 0.01, 0.005), 3),
        ("explicit_adams", 5, (0.02, 0.01, 0.005), 4),
        # AB11 is stable on the real axis only down to h·λ ≈ −0.0035: small steps; the single
        # AB3 step of the start-up dominates, so order 4
        ("explicit_adams", 12, (0.002, 0.001), 4),
        ("implicit_adams", 4, (0.04, 0.02, 0.01), 4),
        ("fixed_adams", 4, (0.04, 0.02, 0.01), 4),
    ],
)
def test_adams_converges_to_the_analytic_solution_at_its_order(method, max_order, steps, order):
    errors = [error_at_end(method, h, max_order) for h in steps]
    observed = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(abs(p - order) < 0.4 for p in observed), (errors, observed)
    assert errors[-1] < 1e-7


def test_explicit_adams_default_order_is_unstable_at_step_0_01_as_in_torchdiffeq():
    # AB11 (max_order 12, the default) at h·λ = −0.01 lies outside its stability interval: both
    # libraries blow up identically, it is the method, not the code
    t = torch.tensor([0.0, T_END], dtype=torch.float64)
    y0 = torch.tensor([Y0], dtype=torch.float64)
    ours = odeint(field, y0, t, method="explicit_adams", options={"step_size": 0.01})
    ref = torchdiffeq.odeint(field, y0, t, method="explicit_adams", options={"step_size": 0.01})
    assert abs(float(ours[-1, 0])) > 1e6
    assert torch.equal(ours, ref)
    assert error_at_end("explicit_adams", 0.0025, 12) < 1e-9  # stable below h ≈ 0.0035


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams", "fixed_adams"])
@pytest.mark.parametrize("max_order", [4, 7, 12])
def test_adams_equals_torchdiffeq_bit_for_bit(method, max_order, dtype):
    # float32 t: the grid must be built in float32 as torchdiffeq does (it was float64, and the
    # last-bit differences grew to 45 % under AB11's instability at t = 1)
    t = torch.linspace(0.0, 1.0, 7, dtype=dtype)
    y0 = torch.tensor([Y0, -0.5], dtype=dtype)
    opts = {"step_size": 0.01, "max_order": max_order}
    ours = odeint(field, y0, t, method=method, options=opts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchdiffeq warns on implicit non-convergence too
        ref = torchdiffeq.odeint(field, y0, t, method=method, options=opts)
    assert ours.dtype == dtype
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_adams_start_up_reuses_f0_and_counts_torchdiffeq_evaluations(method):
    # the RK4 start-up steps take f(t0, y0) from the history (it evaluated it twice before: 58 vs 56)
    calls = [0, 0]

    def counting(i):
        def f(t, y):
            calls[i] += 1
            return field(t, y)

        return f

    t = torch.tensor([0.0, 0.5], dtype=torch.float64)
    y0 = torch.tensor([Y0], dtype=torch.float64)
    ours = odeint(counting(0), y0, t, method=method, options={"step_size": 0.01})
    ref = torchdiffeq.odeint(counting(1), y0, t, method=method, options={"step_size": 0.01})
    assert calls[0] == calls[1]
    assert torch.equal(ours, ref)
