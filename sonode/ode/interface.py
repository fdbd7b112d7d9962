"""torchdiffeq's calling convention on top of the solver core: tuple states, per-component
tolerances, callbacks, the time gradient of ``odeint`` and the output dtype.

The core (``solve``) works on one tensor state with python-float times; ``prepare`` maps the user's
call onto it and ``finish`` maps the result back.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from .records import time_arg

CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
ADJOINT_CALLBACKS = tuple(name + "_adjoint" for name in CALLBACKS)


def warn_unused_callbacks(func, opts) -> None:
    """Warn (as torchdiffeq does) about callbacks on func that the solve of ``opts`` never calls."""
    called = opts.spec.callbacks
    if called is None:
        called = CALLBACKS if opts.adaptive else CALLBACKS[:1]
    for name in CALLBACKS:
        if name not in called and callable(getattr(func, name, None)):
            warnings.warn(
                f"method {opts.method!r} does not call func.{name} (it calls "
                f"{', '.join(called) or 'no callbacks'})",
                UserWarning,
                stacklevel=3,
            )


def flat_to_shapes(flat: torch.Tensor, lead: tuple, shapes) -> tuple[torch.Tensor, ...]:
    """Split the last dim of ``flat`` (*lead, N) into tensors of shapes (*lead, *shape_i)."""
    out, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(flat[..., start : start + n].reshape((*lead, *shape)))
        start += n
    return tuple(out)


class Field:
    """The vector field the core sees: flat state for tuple problems, the user's callbacks exposed
    with the user's state layout (callbacks absent on ``func`` stay absent: no cost per step)."""

    def __init__(self, func, shapes=None):
        self.func, self.shapes = func, shapes
        for name in CALLBACKS + ADJOINT_CALLBACKS:
            user = getattr(func, name, None)
            if callable(user):
                setattr(self, name, self._wrap_callback(user))

    def _wrap_callback(self, user):
        if self.shapes is None:
            return user
        return lambda t0, y0, dt: user(t0, flat_to_shapes(y0, (), self.shapes), dt)

    def __call__(self, t, y):
        if self.shapes is None:
            return self.func(t, y)
        f = self.func(t, flat_to_shapes(y, (), self.shapes))
        return torch.cat([fi.reshape(-1) for fi in f])


def _mixed_norm(shapes):
    """torchdiffeq's default norm of a tuple state: the largest RMS over the components."""

    def norm(flat: torch.Tensor) -> torch.Tensor:
        parts = flat_to_shapes(flat, (), shapes)
        return torch.stack(
            [p.abs().pow(2).mean().sqrt() if p.numel() else flat.new_zeros(()) for p in parts]
        ).max()

    return norm


def _tuple_tolerance(name: str, tol, shapes, device=None):
    if isinstance(tol, (tuple, list)):
        if len(tol) != len(shapes):
            raise ValueError(
                f"tupled {name} must have one entry per component of the tuple y0 ({len(shapes)})"
            )
        return torch.cat(
            [
                torch.as_tensor(v, dtype=torch.float64, device=device)
                .expand(math.prod(s))
                .reshape(-1)
                for v, s in zip(tol, shapes, strict=False)
            ]
        )
    return tol


@dataclass
class Problem:
    """A user call mapped onto the core: func (a Field), flat y0, tolerances, options dict."""

    func: Any
    y0: torch.Tensor
    rtol: Any
    atol: Any
    options: dict | None
    shapes: list | None


def prepare(func, y0, rtol, atol, options) -> Problem:
    """Flatten a tuple y0 (and tupled tolerances, a user norm) the way torchdiffeq does."""
    if isinstance(y0, torch.Tensor):
        return Problem(
            func, y0, rtol, atol, options, None
        )  # the core reads func's callbacks itself
    if not isinstance(y0, tuple) or not y0 or not all(isinstance(v, torch.Tensor) for v in y0):
        raise ValueError(
            f"y0 must be a tensor or a non-empty tuple of tensors, got {type(y0).__name__}"
        )
    shapes = [v.shape for v in y0]
    dtype = y0[0].dtype
    for v in y0:
        dtype = torch.promote_types(dtype, v.dtype)
    flat = torch.cat([v.reshape(-1).to(dtype) for v in y0])
    options = dict(options or {})
    user_norm = options.get("norm")
    options["norm"] = (
        _mixed_norm(shapes)
        if user_norm is None
        else (lambda x: user_norm(flat_to_shapes(x, (), shapes)))
    )
    return Problem(
        Field(func, shapes),
        flat,
        _tuple_tolerance("rtol", rtol, shapes, flat.device),  # per element, on the states' device
        _tuple_tolerance("atol", atol, shapes, flat.device),
        options,
        shapes,
    )


def finish(ys: torch.Tensor, problem: Problem, like):
    """The core's (n, *S) output as the user's layout and dtype (a tuple for tuple states)."""
    if problem.shapes is None:
        return ys if ys.dtype == like.dtype else ys.to(like.dtype)
    parts = flat_to_shapes(ys, (ys.shape[0],), problem.shapes)
    return tuple(p.to(v.dtype) for p, v in zip(parts, like, strict=False))


def with_time_gradient(
    solve_fn, func, y0: torch.Tensor, t: torch.Tensor, per_sample: bool
) -> torch.Tensor:
    """Solve by ``solve_fn(y0, t_detached)`` and make the result differentiable in t.

    Moving an output time t_i (i >= 1) moves y(t_i) along f(t_i, y(t_i)); moving t_0 shifts the
    initial condition by -f(t_0, y0) dt_0 before the solve (so the backward carries it through the
    solver's own gradient). Both terms have value zero: the numbers are the plain solve's.
    """

    def f_at(ti: float, y: torch.Tensor) -> torch.Tensor:
        targ = time_arg(ti, y)
        if per_sample:
            targ = targ.expand(y.shape[0])
        return func(targ, y).detach()

    times = t.detach().to(torch.float64).tolist()
    shift = (t - t.detach()).to(y0.real.dtype if y0.is_complex() else y0.dtype)
    with torch.no_grad():
        f0 = f_at(times[0], y0.detach())
    ys = solve_fn(y0 - shift[0] * f0, t.detach())
    with torch.no_grad():
        fs = torch.stack([f_at(ti, yi) for ti, yi in zip(times[1:], ys[1:].detach(), strict=False)])
    moved = ys[1:] + shift[1:].reshape((-1,) + (1,) * y0.ndim) * fs
    return torch.cat([y0[None], moved])
