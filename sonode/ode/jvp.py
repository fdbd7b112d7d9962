"""Forward-mode sensitivities of ODE solutions (docs/design.md) and finite-time Lyapunov exponents.

The tangent v(t) = dy(t)·(v0, w) of the solution along an initial-state tangent v0 and a parameter
tangent w solves

    dv/dt = ∂f/∂y (t, y) v + ∂f/∂θ (t, y) w,     v(t0) = v0,

so y and v are solved together as one ODE whose vector field evaluates f and its Jacobian–vector
product in one `torch.func.jvp` call. The pair is stacked along a new dimension just before the
last (state) dimension: (*B, d) -> (*B, 2, d). Leading batch dimensions stay first (so
``per_sample`` still sees the batch in dim 0) and the last dimension stays the state, which is what
``lawson_rk4``'s linear operator acts on: for y' = L y + N(t, y) the tangent obeys
v' = L v + ∂N/∂y v + ∂N/∂θ w, so the same L propagates both halves.

Error control: adaptive methods measure the local error of y *and* v together, so the steps are
also accurate for the tangent. When v grows much faster than y (chaotic dynamics) this takes more
steps than the solve of y alone would; normalise v0 (or renormalise, as `finite_time_lyapunov` does)
to keep it comparable in size to y.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.func import functional_call, jvp as func_jvp

from .solve import odeint

ODEFunc = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def odeint_jvp(
    func: ODEFunc,
    y0: torch.Tensor,
    t: torch.Tensor,
    v0: torch.Tensor,
    *,
    params_tangent: dict[str, torch.Tensor] | None = None,
    method: str | None = None,
    rtol=1e-7,
    atol=1e-9,
    options: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve dy/dt = func(t, y) and push the tangent (v0, params_tangent) forward along it.

    Args:
        func: vector field ``func(t, y)`` as for `odeint` (for lawson_rk4: the nonlinear part N).
        y0: initial state, shape (*S).
        t: output times, shape (n,), strictly monotone (units of time, e.g. seconds).
        v0: tangent of the initial state, shape (*S) (zeros for a pure parameter perturbation).
        params_tangent: tangent of func's parameters, ``{name: tensor}`` with names from
            ``func.named_parameters()`` and matching shapes; func must then be an nn.Module.
            Parameters not named have zero tangent. (The parameters of ``options["linear"]``
            cannot carry a tangent here.)
        method, rtol, atol, options: as for `odeint`; error control covers y and v (module docstring).

    Returns:
        (ys, vs), both of shape (n, *S): the solution y(t_i) and the tangent v(t_i) = dy(t_i)·(v0, w).
    """
    if v0.shape != y0.shape:
        raise ValueError(f"v0 must have the shape of y0 {tuple(y0.shape)}, got {tuple(v0.shape)}")
    field = _tangent_field(func, params_tangent)
    pair_dim = max(y0.dim() - 1, 0)
    yv0 = torch.stack([y0, v0.to(y0.dtype)], dim=pair_dim)
    yvs = odeint(
        lambda ti, yv: field(ti, yv, pair_dim),
        yv0,
        t,
        method=method,
        rtol=rtol,
        atol=atol,
        options=options,
    )
    ys, vs = yvs.unbind(pair_dim + 1)  # +1: the output time dimension comes first
    return ys, vs


def _tangent_field(func: ODEFunc, params_tangent: dict[str, torch.Tensor] | None):
    """The vector field of the stacked pair [y, v]: [f(t, y), J_y v + J_θ w] from one forward-mode pass."""
    if not params_tangent:

        def field(t, yv, pair_dim):
            y, v = yv.unbind(pair_dim)
            f, jv = func_jvp(lambda y_: func(t, y_), (y,), (v,))
            return torch.stack([f, jv], dim=pair_dim)

        return field

    if not isinstance(func, nn.Module):
        raise ValueError(
            f"params_tangent needs func to be an nn.Module (to address parameters by name); got {type(func).__name__}"
        )
    named = dict(func.named_parameters())
    unknown = sorted(set(params_tangent) - set(named))
    if unknown:
        raise ValueError(
            f"params_tangent names {unknown} are not parameters of func; valid names: {sorted(named)}"
        )
    names = list(params_tangent)
    for name in names:
        if params_tangent[name].shape != named[name].shape:
            raise ValueError(
                f"params_tangent[{name!r}] has shape {tuple(params_tangent[name].shape)}, "
                f"the parameter has {tuple(named[name].shape)}"
            )
    primals = {name: named[name] for name in names}
    tangents = {name: params_tangent[name].to(named[name].dtype) for name in names}

    def field(t, yv, pair_dim):
        y, v = yv.unbind(pair_dim)
        f, jv = func_jvp(
            lambda y_, p_: functional_call(func, p_, (t, y_)), (y, primals), (v, tangents)
        )
        return torch.stack([f, jv], dim=pair_dim)

    return field


class LyapunovEstimate(NamedTuple):
    """Result of `finite_time_lyapunov`.

    exponent: largest finite-time Lyapunov exponent in 1/(time unit of t) (e.g. 1/s), shape (B,)
        for a batch y0 of shape (B, ...) with y0.dim() >= 2, else shape ().
    growth: per-interval growth factor |v(t_i)| / |v(t_{i-1})| of the renormalised tangent,
        shape (n - 1, B) or (n - 1,).
    ys: the trajectory y(t_i), shape (n, *y0.shape).
    """

    exponent: torch.Tensor
    growth: torch.Tensor
    ys: torch.Tensor


def finite_time_lyapunov(
    func: ODEFunc,
    y0: torch.Tensor,
    t: torch.Tensor,
    *,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    method: str | None = None,
    rtol=1e-7,
    atol=1e-9,
    options: dict[str, Any] | None = None,
) -> LyapunovEstimate:
    """Estimate the largest finite-time Lyapunov exponent along the trajectory from y0 over t.

    The tangent is solved with `odeint_jvp` interval by interval and renormalised to unit length at
    every t_i (so it neither overflows nor leaves the scale of the error control); the exponent is
    Σ_i log(growth_i) / |t[-1] - t[0]|. A generic v0 aligns with the most expanding direction after
    a transient, so use an interval grid that covers several characteristic times of the dynamics.
    Each interval is a separate solve (adaptive methods search a first step per interval): use
    renormalisation intervals much longer than the solver's steps.

    Args:
        func, y0, t, method, rtol, atol, options: as for `odeint`; t has n >= 2 entries (time units).
        v0: initial tangent, shape of y0; default: standard normal from ``seed`` (a generic direction).
        seed: seed of the default v0.

    Returns:
        `LyapunovEstimate` (exponent, growth, ys). Norms of a batch y0 (dim >= 2) are taken per
        sample over all but dim 0, so each trajectory gets its own exponent.
    """
    t = t if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)
    if t.dim() != 1 or len(t) < 2:
        raise ValueError(f"t must be 1-D with at least 2 times, got shape {tuple(t.shape)}")
    duration = abs(float(t[-1]) - float(t[0]))
    if not math.isfinite(duration) or duration == 0:
        raise ValueError(
            f"t must span a finite, non-zero time; got t[0]={float(t[0])}, t[-1]={float(t[-1])}"
        )
    if v0 is None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        v0 = torch.randn(y0.shape, generator=gen, dtype=y0.dtype).to(y0.device)
    batched = y0.dim() >= 2

    def norm(v):
        return v.flatten(1).norm(dim=1) if batched else v.norm()

    def unit(v):
        n = norm(v)
        return v / (n.reshape(-1, *([1] * (v.dim() - 1))) if batched else n)

    y, v = y0, unit(v0)
    ys, growth = [y0], []
    for i in range(1, len(t)):
        yi, vi = odeint_jvp(
            func, y, t[i - 1 : i + 1], v, method=method, rtol=rtol, atol=atol, options=options
        )
        y, v = yi[-1], vi[-1]
        growth.append(norm(v))
        ys.append(y)
        v = unit(v)
    growth_t = torch.stack(growth)
    exponent = torch.log(growth_t).sum(dim=0) / duration
    return LyapunovEstimate(exponent=exponent, growth=growth_t, ys=torch.stack(ys))
