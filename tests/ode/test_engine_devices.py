"""The engine on every device and dtype: solutions and gradients stay on y0's device and in its
dtype, and are right to that dtype's precision (docs/devices.md).

The CUDA cases run where torch sees a GPU and are skipped elsewhere; float32 on the CPU runs
everywhere and is the GPU path's arithmetic checked here. Problem: a damped rotation
y' = A y, A = [[a, -b], [b, a]], whose solution exp(a t)·R(b t)·y0 and whose gradients
(dL/dy0 = exp(a T)·R(b T)ᵀ w, dL/da = T·Σ w·y(T), for L = Σ w·y(T)) are known exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sonode.ode import DenseLinear, odeint, odeint_adjoint

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
DTYPES = [torch.float64, torch.float32]
DECAY, FREQUENCY, END_S = -0.5, 3.0, 1.5
# tolerances asked of the solvers, and the error accepted, per dtype (float32: eps 1.2e-7)
TOLERANCES = {torch.float64: (1e-10, 1e-12, 1e-7), torch.float32: (1e-6, 1e-7, 2e-4)}
METHODS = {
    "dopri5": {},
    "tsit5": {},
    "dopri8": {},
    "rk4": {"step_size": 1e-2},
    "explicit_adams": {"step_size": 1e-3},
    "radauIIA5": {"step_size": 1e-2},
    "reversible_rk4": {"step_size": 1e-2},
}


class Rotation(nn.Module):
    """y' = A y, A = [[a, -b], [b, a]] with a = ``decay`` (a parameter) and b fixed."""

    def __init__(self, device, dtype, nonlinear_part_only: bool = False):
        super().__init__()
        self.decay = nn.Parameter(torch.tensor(DECAY, device=device, dtype=dtype))
        self.linear_only = nonlinear_part_only

    def matrix(self) -> torch.Tensor:
        b = torch.full_like(self.decay, FREQUENCY)
        return torch.stack([torch.stack([self.decay, -b]), torch.stack([b, self.decay])])

    def forward(self, t, y):
        return torch.zeros_like(y) if self.linear_only else y @ self.matrix().T


def exact(y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """exp(a t)·R(b t)·y0 for every t: (n, B, 2)."""
    c, s = torch.cos(FREQUENCY * t), torch.sin(FREQUENCY * t)
    u, v = y0[:, 0], y0[:, 1]
    rotated = torch.stack([c[:, None] * u - s[:, None] * v, s[:, None] * u + c[:, None] * v], -1)
    return torch.exp(DECAY * t)[:, None, None] * rotated


def problem(device, dtype):
    y0 = torch.tensor([[1.0, 0.0], [0.3, -0.7], [-2.0, 0.5]], device=device, dtype=dtype)
    t = torch.linspace(0.0, END_S, 7, device=device, dtype=dtype)
    return y0, t


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_solution_stays_on_its_device_and_dtype_and_is_right(device, dtype, method):
    rtol, atol, accepted = TOLERANCES[dtype]
    y0, t = problem(device, dtype)
    with torch.no_grad():
        ys = odeint(
            Rotation(device, dtype),
            y0,
            t,
            method=method,
            rtol=rtol,
            atol=atol,
            options=METHODS[method],
        )
    assert ys.device == y0.device and ys.dtype == dtype
    truth = exact(y0.double().cpu(), t.double().cpu())
    assert float((ys.double().cpu() - truth).abs().max()) < accepted


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_lawson_with_a_linear_operator_on_the_device(device, dtype):
    # the whole ODE in the linear part (exact exponential): only rounding is left
    y0, t = problem(device, dtype)
    func = Rotation(device, dtype, nonlinear_part_only=True)
    options = {
        "linear": DenseLinear(Rotation(device, dtype).matrix().detach()),
        "step_size": 0.1,
        "grid": "outputs",
    }
    with torch.no_grad():
        ys = odeint(func, y0, t, method="lawson_rk4", options=options)
    assert ys.device == y0.device and ys.dtype == dtype
    truth = exact(y0.double().cpu(), t.double().cpu())
    assert float((ys.double().cpu() - truth).abs().max()) < TOLERANCES[dtype][2]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["backsolve", "checkpoint"])
def test_adjoint_gradients_on_the_device_match_the_exact_ones(device, dtype, mode):
    rtol, atol, accepted = TOLERANCES[dtype]
    y0, t = problem(device, dtype)
    y0.requires_grad_(True)
    func = Rotation(device, dtype)
    ys = odeint_adjoint(
        func, y0, t, method="dopri5", rtol=rtol, atol=atol, adjoint_options={"mode": mode}
    )
    weights = torch.arange(1.0, 7.0, device=device, dtype=dtype).reshape(3, 2)
    (ys[-1] * weights).sum().backward()
    assert y0.grad.device == y0.device and y0.grad.dtype == dtype
    assert func.decay.grad.device == y0.device and func.decay.grad.dtype == dtype
    w = weights.double().cpu()
    end = exact(y0.detach().double().cpu(), torch.tensor([END_S], dtype=torch.float64))[0]
    c, s = math.cos(FREQUENCY * END_S), math.sin(FREQUENCY * END_S)
    grad_y0 = math.exp(DECAY * END_S) * torch.stack(
        [c * w[:, 0] + s * w[:, 1], -s * w[:, 0] + c * w[:, 1]], -1
    )
    grad_decay = END_S * float((w * end).sum())
    assert float((y0.grad.double().cpu() - grad_y0).abs().max()) < accepted * 10
    assert abs(float(func.decay.grad) - grad_decay) < accepted * 10 * abs(grad_decay)


@pytest.mark.parametrize("device", DEVICES)
def test_a_tuple_state_with_tupled_tolerances_stays_on_the_device(device):
    # per-component tolerances become one tensor; made on the CPU it could not meet a GPU state
    y0, t = problem(device, torch.float64)
    func = Rotation(device, torch.float64)
    with torch.no_grad():
        a, b = odeint(
            lambda s, ys: (func(s, ys[0]), -ys[1]),
            (y0, y0[:, :1].clone()),
            t,
            rtol=(1e-9, 1e-8),
            atol=(1e-11, 1e-10),
        )
    assert a.device == b.device == y0.device
    assert float((a.cpu() - exact(y0.cpu(), t.cpu())).abs().max()) < 1e-6
    expected = y0[:, :1].cpu() * torch.exp(-t.cpu())[:, None, None]
    assert float((b.cpu() - expected).abs().max()) < 1e-6
