"""The entry points ``odeint_event`` and ``odeint_dense`` (torchdiffeq's), on top of ``odeint``."""

from __future__ import annotations

import torch

from .events import _EventTimeGradient
from .interface import flat_to_shapes, prepare
from .options import SolveOptions
from .solve import odeint, replay_step, solve


def odeint_event(
    func, y0, t0, *, event_fn, reverse_time: bool = False, odeint_interface=None, **kwargs
):
    """Solve from t0 until event_fn(t, y) = 0; returns (event_t, ys = [y0, y(event_t)]).

    Gradients flow to y0, the parameters and through event_t (implicit function theorem, module
    docstring). odeint_interface: odeint (default) or odeint_adjoint; kwargs go to it.
    """
    odeint_interface = odeint if odeint_interface is None else odeint_interface
    t0 = torch.as_tensor(t0)
    if not t0.is_floating_point():
        t0 = t0.to(torch.float64)
    t = torch.cat([t0.reshape(-1), t0.reshape(-1).detach() + (-1.0 if reverse_time else 1.0)])
    event_t, solution = odeint_interface(func, y0, t, event_fn=event_fn, **kwargs)
    problem = prepare(func, y0, 0.0, 0.0, None)
    is_tuple = problem.shapes is not None
    state_t = torch.cat([s[-1].reshape(-1) for s in solution]) if is_tuple else solution[-1]
    if is_tuple:
        g = lambda tt, yy: event_fn(tt, flat_to_shapes(yy, (), problem.shapes))  # noqa: E731
    else:
        g = event_fn
    with torch.no_grad():
        signs = torch.sign(g(t0.reshape(()).to(state_t.dtype), problem.y0))

    def g_combined(tt, yy):
        return torch.min(g(tt.to(yy.real.dtype if yy.is_complex() else yy.dtype), yy) * signs)  # noqa: E731

    event_t, state_t = _EventTimeGradient.apply(problem.func, g_combined, event_t, state_t)
    if is_tuple:
        parts = flat_to_shapes(state_t, (), problem.shapes)
        solution = tuple(
            torch.cat([s[:-1], p[None].to(s.dtype)]) for s, p in zip(solution, parts, strict=False)
        )
    else:
        solution = torch.cat([solution[:-1], state_t[None]])
    return event_t, solution


def odeint_dense(
    func, y0: torch.Tensor, t0, t1, *, rtol=1e-7, atol=1e-9, method=None, options=None
):
    """Solve from t0 to t1 and return ``dense(t_eval)``: the solution at any times in [t0, t1].

    dense(t_eval) takes a tensor of times (any shape (...)) and returns (..., *y0.shape), from
    the accepted steps' interpolants (each evaluation re-runs its step's stages: no state is
    kept per evaluation, the step record holds one state per step).
    """
    if not isinstance(y0, torch.Tensor):
        raise ValueError("odeint_dense takes a tensor y0 (as torchdiffeq)")
    opts = SolveOptions.build(method, rtol, atol, options)
    ta, tb = float(t0), float(t1)
    rec = solve(func, y0, [ta, tb], opts, record_steps=True).steps
    starts = rec.t0.tolist()
    hs = rec.h.tolist()
    direction = 1.0 if tb > ta else -1.0
    keys = torch.tensor([direction * v for v in starts], dtype=torch.float64)

    def dense(t_eval) -> torch.Tensor:
        te = torch.as_tensor(t_eval, dtype=torch.float64)
        flat = te.reshape(-1).tolist()
        idx = (torch.searchsorted(keys, direction * te.reshape(-1), right=True) - 1).clamp(
            0, len(starts) - 1
        )
        out = []
        for v, i in zip(flat, idx.tolist(), strict=False):
            out.append(
                replay_step(func, opts, starts[i], hs[i], rec.y0[i], torch.tensor([v]))[1][0]
            )
        return (
            torch.stack(out).reshape(*te.shape, *y0.shape)
            if out
            else y0.new_empty((*te.shape, *y0.shape))
        )

    return dense
