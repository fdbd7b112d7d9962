"""odeint_jvp (forward-mode sensitivities) and finite_time_lyapunov.

Properties checked: tangents agree with central finite differences (state and parameter
perturbations, fixed-step and adaptive, Lawson); the JVP is the transpose of the VJP,
<u, J v> = <Jᵀu, v>, to round-off for fixed-step methods (an RK method applied to the variational
equation is the derivative of the RK map); torch.func.jvp through odeint gives the same tangent;
the Lyapunov exponent of y' = λ y is λ.
"""

from __future__ import annotations

import math

import pytest
import torch
from adjoint_cases import MLPField, case_options
from torch.func import functional_call

from sonode.ode import finite_time_lyapunov, odeint, odeint_jvp

T = torch.linspace(0.0, 1.5, 7, dtype=torch.float64)
GEN = torch.Generator().manual_seed(11)
Y0 = torch.randn(2, 3, generator=GEN, dtype=torch.float64)
V0 = torch.randn(2, 3, generator=GEN, dtype=torch.float64)

CASES = [("rk4", {"step_size": 0.05}), ("lawson_rk4", {"step_size": 0.05}), ("dopri5", {})]


def _solve(func, y0, method, opts):
    return odeint(func, y0, T, method=method, rtol=1e-10, atol=1e-12, options=opts)


@pytest.mark.parametrize("method,options", CASES, ids=[m for m, _ in CASES])
def test_state_tangent_matches_finite_differences(method, options):
    func, opts = MLPField(), case_options(method, **options)
    ys, vs = odeint_jvp(func, Y0, T, V0, method=method, rtol=1e-10, atol=1e-12, options=opts)
    # dopri5's steps differ from a solve of y alone (error control covers v too): equal to tolerance.
    assert torch.allclose(
        ys, _solve(func, Y0, method, opts), rtol=1e-8 if method == "dopri5" else 1e-13, atol=0
    )
    eps = 1e-6
    with torch.no_grad():
        fd = (
            _solve(func, Y0 + eps * V0, method, opts) - _solve(func, Y0 - eps * V0, method, opts)
        ) / (2 * eps)
    assert torch.allclose(vs, fd, rtol=1e-6, atol=1e-8)


def test_parameter_tangent_matches_finite_differences():
    func = MLPField()
    named = [(n, p) for n, p in func.named_parameters() if n != "b2"]  # b2 keeps a zero tangent
    w = {name: torch.randn(p.shape, generator=GEN, dtype=p.dtype) for name, p in named}
    ys, vs = odeint_jvp(
        func,
        Y0,
        T,
        torch.zeros_like(Y0),
        params_tangent=w,
        method="rk4",
        options={"step_size": 0.05},
    )
    eps = 1e-6
    params = dict(func.named_parameters())

    def shifted(sign):
        moved = {n: params[n].detach() + sign * eps * w[n] for n in w}

        def field(t, y):
            return functional_call(func, moved, (t, y))

        return odeint(field, Y0, T, method="rk4", options={"step_size": 0.05})

    with torch.no_grad():
        fd = (shifted(1) - shifted(-1)) / (2 * eps)
    assert vs.abs().max() > 1e-3  # the perturbation does move the trajectory
    assert torch.allclose(vs, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "method,options,tol", [("rk4", {"step_size": 0.1}, 1e-12), ("dopri5", {}, 1e-6)]
)
def test_jvp_is_transpose_of_vjp(method, options, tol):
    func = MLPField()
    u = torch.randn(len(T), 2, 3, generator=GEN, dtype=torch.float64)
    _, vs = odeint_jvp(func, Y0, T, V0, method=method, rtol=1e-9, atol=1e-11, options=options)
    y0 = Y0.clone().requires_grad_()
    ys = odeint(func, y0, T, method=method, rtol=1e-9, atol=1e-11, options=options)
    (jt_u,) = torch.autograd.grad((u * ys).sum(), [y0])
    lhs, rhs = float((u * vs.detach()).sum()), float((jt_u * V0).sum())
    assert abs(lhs - rhs) <= tol * abs(rhs)


def test_matches_torch_func_jvp_through_odeint():
    func = MLPField()
    _, vs = odeint_jvp(func, Y0, T, V0, method="rk4", options={"step_size": 0.1})
    _, vs_ref = torch.func.jvp(
        lambda y: odeint(func, y, T, method="rk4", options={"step_size": 0.1}), (Y0,), (V0,)
    )
    assert torch.allclose(vs, vs_ref, rtol=1e-12, atol=1e-14)


def test_bad_tangents_raise_value_error():
    func = MLPField()
    with pytest.raises(ValueError, match="shape"):
        odeint_jvp(func, Y0, T, V0[:1])
    with pytest.raises(ValueError, match="valid names"):
        odeint_jvp(func, Y0, T, V0, params_tangent={"w3": torch.zeros(1)})
    with pytest.raises(ValueError, match="nn.Module"):
        odeint_jvp(lambda t, y: -y, Y0, T, V0, params_tangent={"w1": torch.zeros(1)})


def test_lyapunov_exponent_of_linear_decay_and_growth():
    """y' = λ y per sample (λ = -0.7 and 0.4): exponent λ, growth exp(λ Δt) on every interval."""
    lam = torch.tensor([[-0.7], [0.4]], dtype=torch.float64)
    t = torch.linspace(0.0, 5.0, 11, dtype=torch.float64)
    est = finite_time_lyapunov(
        lambda t, y: lam * y, torch.ones(2, 1, dtype=torch.float64), t, rtol=1e-10, atol=1e-12
    )
    assert torch.allclose(est.exponent, lam.squeeze(1), rtol=1e-7)
    assert torch.allclose(est.growth, torch.exp(0.5 * lam.squeeze(1)).expand(10, 2), rtol=1e-7)
    assert est.ys.shape == (11, 2, 1)


def test_lyapunov_finds_the_most_expanding_direction():
    """y' = A y with eigenvalues 0.3 ± 2i and -1: exponent → 0.3 with a generic start direction."""
    A = torch.tensor([[0.3, 2.0, 0.0], [-2.0, 0.3, 0.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    t = torch.linspace(0.0, 60.0, 61, dtype=torch.float64)
    y0 = torch.ones(3, dtype=torch.float64)
    est = finite_time_lyapunov(
        lambda t, y: y @ A.T, y0, t, method="rk4", options={"step_size": 0.02}
    )
    assert est.exponent.shape == ()
    assert abs(float(est.exponent) - 0.3) < 2.0 / 60  # transient ~ log|v0 component| / T
    assert math.isclose(float(est.growth[-1]), math.exp(0.3), rel_tol=1e-3)  # aligned by the end
