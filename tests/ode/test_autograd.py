"""Differentiating through odeint: backprop (gradcheck in float64) and torch.func.jvp."""

import pytest
import torch
from ode_cases import A_LIN, ADAPTIVE_HIGH

from sonode.ode import DenseLinear, odeint

T = torch.tensor([0.0, 0.3, 0.8], dtype=torch.float64)


def _solve(method, y0, W, options=None):
    def f(t, y):
        return torch.tanh(y @ W.T) - 0.1 * y * torch.cos(t)

    return odeint(f, y0, T, method=method, rtol=1e-8, atol=1e-10, options=options)


@pytest.mark.parametrize(
    "method, options",
    [("rk4", {"step_size": 0.1}), ("euler", None)] + [(m, None) for m in ADAPTIVE_HIGH],
)
def test_backprop_gradcheck(method, options):
    torch.manual_seed(0)
    y0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    W = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    # adaptive: finite differences of eps=1e-6 do not change the accepted steps at rtol=1e-8
    assert torch.autograd.gradcheck(
        lambda y, w: _solve(method, y, w, options), (y0, W), eps=1e-6, atol=1e-6
    )


def test_backprop_through_lawson_including_the_linear_part():
    torch.manual_seed(1)
    A = (0.5 * A_LIN[:2, :2]).clone().requires_grad_(True)
    y0 = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def run(y, a):
        return odeint(
            lambda t, z: 0.3 * torch.sin(z),
            y,
            T,
            method="lawson_rk4",
            options={"step_size": 0.1, "linear": DenseLinear(a)},
        )

    assert torch.autograd.gradcheck(run, (y0, A), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "lawson_rk4"])
def test_torch_func_jvp_through_fixed_step_odeint(method):
    torch.manual_seed(2)
    W = torch.randn(3, 3, dtype=torch.float64)
    options = {"step_size": 0.1}
    if method == "lawson_rk4":
        options["linear"] = DenseLinear(A_LIN)

    def run(y0):
        return odeint(lambda t, y: torch.tanh(y @ W.T), y0, T, method=method, options=options)

    y0, v = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    ys, tangent = torch.func.jvp(run, (y0,), (v,))
    assert torch.equal(ys, run(y0))
    fd = (run(y0 + 1e-6 * v) - run(y0 - 1e-6 * v)) / 2e-6
    assert torch.allclose(tangent, fd, rtol=1e-7, atol=1e-9)
    jac = torch.autograd.functional.jacobian(run, y0)  # (len(T), 3, 3)
    assert torch.allclose(tangent, jac @ v, rtol=1e-10, atol=1e-12)


def test_backprop_through_per_sample_solve_matches_each_sample_alone():
    torch.manual_seed(3)
    W = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    y0 = (
        torch.randn(4, 3, dtype=torch.float64)
        * torch.tensor([0.1, 1.0, 2.0, 4.0], dtype=torch.float64)[:, None]
    )

    def f(t, y):
        return torch.tanh(y @ W.T) * 3.0 - 0.1 * y

    opts = {"per_sample": True}
    ys = odeint(f, y0, T, method="dopri5", rtol=1e-8, atol=1e-10, options=opts)
    (grad_w,) = torch.autograd.grad(ys[-1].pow(2).sum(), W)
    alone = sum(
        torch.autograd.grad(
            odeint(f, y0[b : b + 1], T, method="dopri5", rtol=1e-8, atol=1e-10)[-1].pow(2).sum(), W
        )[0]
        for b in range(4)
    )
    assert torch.allclose(grad_w, alone, rtol=1e-7, atol=1e-10)
