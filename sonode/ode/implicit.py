"""One step of an implicit Runge–Kutta method: Newton on the stage equations, differentiable by the IFT.

The stage increments Z (s, n) solve G(Z) = Z − h (A ⊗ I) F(Z) = 0 with F_j = f(t0 + c_j h, y0 + Z_j)
(`implicit_tableaus.py`). Newton's matrix is I − h (A ⊗ J): *simplified* Newton takes J = ∂f/∂y at
(t0, y0) once per step (one LU for all iterations; what stiff codes do), *full* Newton takes each
stage's own Jacobian at the current iterate (quadratic convergence; the fixed-step fallback). J comes
from ``torch.func.jacrev`` (vectorised), or ``torch.autograd.functional.jacobian`` when f is not
vmap-able. The iterations run without a graph and stop when the scaled RMS of the update is at most
``newton_tol`` (scale atol + rtol |y0|, the tolerances of the solve).

Gradients: the converged Z* is a function of (y0, θ) defined implicitly by G = 0, so by the implicit
function theorem dZ = −(∂G/∂Z)⁻¹ ∂G/∂(y0, θ). When autograd is recording we attach exactly that:
u = −M*⁻¹ G(Z*) with M* = ∂G/∂Z at Z* (the stages' exact Jacobians) and G evaluated with a graph,
and return Z* + (u − u.detach()). Its value is Z* bit for bit (so a replayed step equals the forward
one) and its derivative is the IFT one: backprop through the solver and the checkpointed adjoint
both get the derivative of the exact stage solution, not of the unrolled iterations.
"""

from __future__ import annotations

import math

import torch

from .implicit_tableaus import IMPLICIT_TABLEAUS, ImplicitTableau
from .records import time_arg
from .rk import coeffs


def jacobian(func, t_arg: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂f/∂y at (t, y) as an (n, n) matrix of the flattened state, without a graph."""
    flat = y.detach().reshape(-1)

    def f_flat(v):
        return func(t_arg, v.view(y.shape)).reshape(-1)

    with torch.no_grad():
        try:
            jac = torch.func.jacrev(f_flat)(flat)
        except (RuntimeError, NotImplementedError):  # f not vmap-able (in-place ops, .item(), ...)
            with torch.enable_grad():
                jac = torch.autograd.functional.jacobian(f_flat, flat)
    return jac.detach().to(y.dtype)


def _stage_values(func, times, y0f: torch.Tensor, Z: torch.Tensor, shape) -> torch.Tensor:
    """F (s, n): f at every stage value y0 + Z_j."""
    return torch.stack(
        [func(times[j], (y0f + Z[j]).view(shape)).reshape(-1) for j in range(Z.shape[0])]
    )


def _newton_matrix(tab_a: torch.Tensor, h: float, jacs) -> torch.Tensor:
    """I − h [a_ij J_j] (sn, sn); ``jacs`` is one (n, n) J shared by all stages, or a list of s."""
    s = tab_a.shape[0]
    if isinstance(jacs, torch.Tensor):
        blocks = torch.kron(tab_a, jacs)
    else:
        n = jacs[0].shape[0]
        stacked = torch.stack(jacs)  # (s, n, n): block (i, j) is a_ij J_j
        blocks = (tab_a[:, :, None, None] * stacked[None]).permute(0, 2, 1, 3).reshape(s * n, s * n)
    return torch.eye(blocks.shape[0], dtype=blocks.dtype, device=blocks.device) - h * blocks


@torch.no_grad()
def newton_stages(
    func, tab: ImplicitTableau, t0: float, h: float, y0: torch.Tensor, jac, opts, full: bool = False
):
    """Solve the stage equations; return Z* (s, n), or None if Newton diverged or ran out of iterations.

    jac: ∂f/∂y at (t0, y0) for simplified Newton (ignored with ``full``).
    opts: SolveOptions (rtol, atol, newton_tol, max_iters).
    """
    shape, y0f = y0.shape, y0.detach().reshape(-1)
    times = [time_arg(t0 + c * h, y0) for c in tab.c]
    a = coeffs(tab.a, y0f)
    scale = y0f.abs() * opts.rtol + opts.atol
    Z = y0f.new_zeros((tab.n_stages, y0f.numel()))
    F = _stage_values(func, times, y0f, Z, shape)
    lu = None if full else torch.linalg.lu_factor(_newton_matrix(a, h, jac))
    roundoff, prev = 16 * torch.finfo(y0f.dtype).eps, None
    for _ in range(opts.max_iters):
        if full:
            jacs = [jacobian(func, times[j], (y0f + Z[j]).view(shape)) for j in range(tab.n_stages)]
            lu = torch.linalg.lu_factor(_newton_matrix(a, h, jacs))
        G = Z - h * (a @ F)
        dZ = -torch.linalg.lu_solve(*lu, G.reshape(-1, 1)).view_as(Z)
        Z = Z + dZ
        F = _stage_values(func, times, y0f, Z, shape)
        norm = float(torch.linalg.vector_norm(dZ / scale) / math.sqrt(dZ.numel()))
        if not (math.isfinite(norm) and bool(torch.isfinite(F).all())):
            return None
        if norm <= opts.newton_tol or bool((dZ.abs() <= roundoff * (y0f.abs() + Z.abs())).all()):
            return Z  # converged, or the updates are round-off (tight tolerances in float32)
        if (
            prev is not None and norm >= prev
        ):  # not contracting: a smaller step (or full Newton) is needed
            return None
        prev = norm
    return None


def finish_step(
    func, tab: ImplicitTableau, t0: float, h: float, y0: torch.Tensor, Z: torch.Tensor
) -> torch.Tensor:
    """y1 = y0 + Σ d_j Z_j, carrying the implicit-function-theorem derivative of Z* when recording a graph."""
    shape, d = y0.shape, coeffs(tab.d, Z)
    if torch.is_grad_enabled():
        times = [time_arg(t0 + c * h, y0) for c in tab.c]
        y0f = y0.reshape(-1)
        F = _stage_values(func, times, y0f, Z, shape)  # graph through y0 and f's parameters
        if F.requires_grad:
            a = coeffs(tab.a, Z)
            G = Z - h * (a @ F)  # ≈ 0 in value; its derivative is ∂G/∂(y0, θ)
            jacs = [jacobian(func, times[j], (y0f + Z[j]).view(shape)) for j in range(tab.n_stages)]
            lu = torch.linalg.lu_factor(_newton_matrix(a, h, jacs))
            u = -torch.linalg.lu_solve(*lu, G.reshape(-1, 1)).view_as(Z)
            Z = Z + (u - u.detach())  # value: Z* exactly; derivative: −M*⁻¹ ∂G
    return y0 + (d @ Z).view(shape)


def implicit_fixed_step(func, opts, t0: float, h: float, y0: torch.Tensor) -> torch.Tensor:
    """One fixed-grid step: simplified Newton, then full Newton; RuntimeError if both fail."""
    tab = IMPLICIT_TABLEAUS[opts.method]
    Z = newton_stages(func, tab, t0, h, y0, jacobian(func, time_arg(t0, y0), y0), opts)
    if Z is None:
        Z = newton_stages(func, tab, t0, h, y0, None, opts, full=True)
    if Z is None:
        raise RuntimeError(
            f"{opts.method}: Newton's method did not converge in the step from t={t0!r} with h={h!r} "
            f"(max_iters={opts.max_iters}, newton_tol={opts.newton_tol}); use a smaller step_size or "
            "options={'adaptive': True}"
        )
    return finish_step(func, tab, t0, h, y0, Z)


def half_steps(func, opts, t0: float, h: float, y0: torch.Tensor, jac):
    """Two steps of h/2 with simplified Newton on ∂f/∂y(t0, y0) (the accepted step of the adaptive
    solver and its replay, bit for bit). Returns y(t0 + h), or None if Newton failed."""
    tab = IMPLICIT_TABLEAUS[opts.method]
    y = y0
    for k in range(2):
        tk = t0 + 0.5 * h * k
        Z = newton_stages(func, tab, tk, 0.5 * h, y, jac, opts)
        if Z is None:
            return None
        y = finish_step(func, tab, tk, 0.5 * h, y, Z)
    return y
