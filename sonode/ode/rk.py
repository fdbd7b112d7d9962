"""One explicit Runge–Kutta step, its local error estimate and its dense-output interpolant.

Everything here is functional (no in-place updates of the state), so the same code serves the
forward solve, backprop through the solver, ``torch.func.jvp`` and the adjoint's replay of a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .tableaus import ButcherTableau

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_COEFF_CACHE: dict = {}


def coeffs(values: Sequence, like: torch.Tensor) -> torch.Tensor:
    """``values`` (nested tuples of floats) as a tensor in ``like``'s dtype/device, cached."""
    key = (values, like.dtype, like.device)
    out = _COEFF_CACHE.get(key)
    if out is None:
        out = torch.tensor(values, dtype=like.dtype, device=like.device)
        _COEFF_CACHE[key] = out
    return out


def lincomb(
    y: torch.Tensor, h, weights: Sequence[float], ks: Sequence[torch.Tensor]
) -> torch.Tensor:
    """y + h Σ_j weights[j] ks[j], skipping zero weights.

    ``h`` is a python float (shared step: folded into each fused add, one op per term) or a
    tensor broadcastable to y (per-sample steps).
    """
    terms = [(w, k) for w, k in zip(weights, ks, strict=False) if w != 0.0]
    if isinstance(h, float):
        out = y
        for w, k in terms:
            out = torch.add(out, k, alpha=h * w)
        return out
    acc = terms[0][1] * terms[0][0]
    for w, k in terms[1:]:
        acc = torch.add(acc, k, alpha=w)
    return y + h * acc


def rk_stages(
    func: Func,
    tab: ButcherTableau,
    y0: torch.Tensor,
    h,
    times: Sequence,
    k1: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the stages of one step.

    Args:
        func: f(t, y) -> dy/dt, same shape as y.
        tab: the method.
        y0: state at the step start, any shape.
        h: step (units of t): python float, or tensor broadcastable to y0 (per-sample).
        times: ``times[i]`` is the time argument passed to f for stage i (t0 + c_i h).
        k1: f(t0, y0) if already known (FSAL reuse); computed otherwise.

    Returns:
        (y1, ks): the propagated solution y0 + h Σ b_i k_i and the list of the s stage
        derivatives. For FSAL methods the last stage is f(t0 + h, y1), reusable as the next k1.
    """
    ks = [func(times[0], y0) if k1 is None else k1]
    y1 = None
    for i in range(1, tab.n_stages):
        yi = lincomb(y0, h, tab.a[i], ks)
        if tab.fsal and i == tab.n_stages - 1:
            y1 = yi  # FSAL: the last stage's input is the propagated solution itself
        ks.append(func(times[i], yi))
    if y1 is None:
        y1 = lincomb(y0, h, tab.b, ks)
    return y1, ks


@torch.no_grad()
def error_ratio(
    tab: ButcherTableau,
    h,
    ks: Sequence[torch.Tensor],
    y0: torch.Tensor,
    y1: torch.Tensor,
    rtol,
    atol,
    per_sample: bool,
    norm=None,
) -> torch.Tensor:
    """RMS of the local error estimate over the tolerance scale; <= 1 means accept.

    err = h Σ (b_i - b̂_i) k_i,  scale = atol + rtol max(|y0|, |y1|)  (Hairer's norm).
    Returns a 0-d tensor, or (B,) with ``per_sample`` (RMS over all but dim 0). Computed on
    detached values: the step-size decision is control flow, not part of the solution's graph.
    """
    k = torch.stack([k.detach() for k in ks])
    w = coeffs(tab.b_err, k)
    err = torch.tensordot(w, k, dims=1)
    scale = torch.maximum(y0.detach().abs(), y1.detach().abs()).mul_(rtol).add_(atol)
    ratio = err.div_(scale).mul_(h)
    if norm is not None:
        return torch.as_tensor(norm(ratio)).abs()
    if per_sample:
        ratio = ratio.reshape(ratio.shape[0], -1)
        return torch.linalg.vector_norm(ratio, dim=1).div_(math.sqrt(ratio.shape[1]))
    return torch.linalg.vector_norm(ratio) / math.sqrt(ratio.numel())


def dense_weights(tab: ButcherTableau, theta: torch.Tensor) -> torch.Tensor:
    """b_i(θ) for every θ: (..., s) from θ of shape (...), θ ∈ [0, 1] as fractions of the step."""
    deg = len(tab.dense[0])
    powers = theta.unsqueeze(-1) ** torch.arange(1, deg + 1, device=theta.device, dtype=theta.dtype)
    return powers @ coeffs(tab.dense, theta).T


def step_outputs(
    tab: ButcherTableau | None,
    t0: float,
    h: float,
    y0: torch.Tensor,
    y1: torch.Tensor,
    ks: Sequence[torch.Tensor] | None,
    t_out: Sequence[float],
) -> torch.Tensor:
    """States at the output times ``t_out`` (python floats in the step's closed interval): (m, *y0.shape).

    θ = (t - t0) / h is clipped to [0, 1]; θ = 0 gives y0 and θ = 1 gives y1 exactly, other θ
    use the method's interpolant (no f evaluations), all in one batched product so that many
    outputs in one step cost one autograd node, not one each. Without an interpolant (fixed-step
    methods, whose outputs fall on step ends by construction) the nearer end point is returned.
    """
    if not t_out:
        return y0.new_empty((0, *y0.shape))
    thetas = [min(max((t - t0) / h, 0.0), 1.0) for t in t_out]
    if tab is None or tab.dense is None or all(th in (0.0, 1.0) for th in thetas):
        return torch.stack([y0 if th < 0.5 else y1 for th in thetas])
    k = torch.stack(list(ks))
    theta = torch.tensor(thetas, dtype=torch.float64, device=y0.device)
    w = dense_weights(tab, theta).to(k.dtype)  # (m, s)
    ys = y0 + h * torch.tensordot(w, k, dims=1)  # (m, *y0.shape); θ = 0 rows are y0 exactly
    at_end = theta == 1.0
    if bool(at_end.any()):
        ys = torch.where(at_end.reshape((-1,) + (1,) * y0.ndim), y1, ys)
    return ys
