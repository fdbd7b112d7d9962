"""Event handling (``odeint(..., event_fn=...)``, ``odeint_event``) and dense output (``odeint_dense``).

An event is where ``event_fn(t, y)`` changes sign (a vector event_fn: where its first component
does; all components are first made positive at t[0]). The solve steps from t[0] in the direction
of t[1] (fixed-step: steps of ``step_size``; adaptive: its own steps) until a step ends on the other
side, then bisects the step's interpolant down to ``atol`` in t. The state there is the interpolant
at the (detached) event time, so gradients flow as for any output; ``odeint_event`` adds the
gradient through the event time itself by the implicit function theorem:
dτ = −(∂g/∂y dy + ∂g/∂θ dθ) / (∂g/∂t + ∂g/∂y · f).
"""

from __future__ import annotations

import math

import torch

from .adaptive import solve_adaptive
from .fixed import fixed_outputs, fixed_step
from .interface import finish, prepare
from .options import SolveOptions
from .records import time_arg
from .rk import step_outputs

_FIXED_MAX_STEPS = 20_000  # torchdiffeq's bound on a fixed-step event search
_FAR = 1e300  # "integrate forever": an end time no event search reaches


def _bisect(interp, g, sign0, ta: float, tb: float, tol: float) -> float:
    """The event time in [ta, tb] (sign of g(ta) is sign0) by bisection to |Δt| <= tol."""
    n = max(0, math.ceil(math.log(max(abs(tb - ta) / tol, 1.0)) / math.log(2.0)))
    with torch.no_grad():
        for _ in range(n):
            tm = 0.5 * (ta + tb)
            if torch.sign(g(tm, interp(tm))) == sign0:
                ta = tm
            else:
                tb = tm
    return 0.5 * (ta + tb)


def solve_until_event(func, y0, t, *, rtol, atol, method, options, event_fn, adjoint=None):
    """(event_t, ys) with ys = [y0, y(event_t)] (tuples for a tuple y0); t = [t0, t1] gives t0 and the direction."""
    if not isinstance(t, torch.Tensor) or t.ndim != 1 or len(t) != 2:
        raise ValueError(f"event handling needs t = [t0, t1] (t1 only sets the direction), got {t!r}")
    problem = prepare(func, y0, rtol, atol, options)
    opts = SolveOptions.build(method, problem.rtol, problem.atol, problem.options)
    t0, t1 = (float(v) for v in t.detach().to(torch.float64))
    direction = 1.0 if t1 > t0 else -1.0
    y = problem.y0
    user_g = event_fn
    if problem.shapes is not None:
        from .interface import flat_to_shapes

        user_g = lambda tt, yy: event_fn(tt, flat_to_shapes(yy, (), problem.shapes))  # noqa: E731
    with torch.no_grad():
        signs = torch.sign(user_g(time_arg(t0, y), y))

    def g(tt: float, yy):
        return torch.min(user_g(time_arg(tt, yy), yy) * signs)

    tol = float(torch.as_tensor(problem.atol).min())
    grad_ctx = torch.no_grad() if adjoint is not None else torch.enable_grad() if torch.is_grad_enabled() else torch.no_grad()
    with grad_ctx:
        if opts.adaptive:
            event_t, y_event = _adaptive_event(problem.func, y, t0, direction, opts, g, tol)
        else:
            event_t, y_event = _fixed_event(problem.func, y, t0, direction, opts, g, tol)
    if adjoint is not None:  # values of the interpolant, gradient of an adjoint solve to the event time
        from .adjoint import odeint_adjoint

        t_ev = torch.tensor([t0, event_t], dtype=t.dtype)
        ys_adj = odeint_adjoint(func, y0, t_ev, rtol=rtol, atol=atol, method=method, options=options, **adjoint)
        ys = finish(torch.stack([problem.y0, y_event]), problem, y0)
        if problem.shapes is None:
            ys = ys_adj + (ys - ys_adj).detach()
        else:
            ys = tuple(a + (b - a).detach() for a, b in zip(ys_adj, ys))
    else:
        ys = finish(torch.stack([problem.y0, y_event]), problem, y0)
    return torch.tensor(event_t, dtype=t.dtype, device=t.device), ys


def _adaptive_event(func, y0, t0: float, direction: float, opts, g, tol: float):
    with torch.no_grad():
        sign0 = torch.sign(g(t0, y0))
    if sign0 == 0:
        return t0, y0
    crossed = lambda t1, y1: bool(torch.sign(g(t1, y1.detach())) != sign0)  # noqa: E731
    result = solve_adaptive(func, y0, [t0, t0 + direction * _FAR], opts, False, until=crossed)
    if result.last_step is None:
        raise RuntimeError("event search: the solve ended before event_fn changed sign")
    ta, h, ya, yb, ks = result.last_step
    tab = opts.tableau

    def interp(tm: float):
        return step_outputs(tab, ta, h, ya, yb, ks, [tm])[0]

    event_t = _bisect(interp, g, sign0, ta, ta + h, tol)
    return event_t, interp(event_t)


def _fixed_event(func, y0, t0: float, direction: float, opts, g, tol: float):
    if opts.step_size is None:
        raise ValueError("event handling with a fixed-step method needs options['step_size']")
    with torch.no_grad():
        sign0 = torch.sign(g(t0, y0))
    h = direction * opts.step_size
    ta, ya = t0, y0
    for _ in range(_FIXED_MAX_STEPS):
        tb = ta + h
        yb = fixed_step(func, opts, ta, h, ya, tb)
        if torch.sign(g(tb, yb.detach())) != sign0:

            def interp(tm: float, ta=ta, ya=ya, yb=yb, tb=tb):
                return fixed_outputs(func, opts, ta, h, tb, ya, yb, [tm])[0]

            event_t = _bisect(interp, g, sign0, ta, tb, tol)
            return event_t, interp(event_t)
        ta, ya = tb, yb
    raise RuntimeError(f"event search: no sign change of event_fn within {_FIXED_MAX_STEPS} fixed steps")


class _EventTimeGradient(torch.autograd.Function):
    """Identity on (event_t, state); its backward adds the gradient through the event time."""

    @staticmethod
    def forward(ctx, func, g, event_t, state):
        ctx.func, ctx.g = func, g
        ctx.save_for_backward(event_t, state)
        return event_t.detach().clone(), state.detach().clone()

    @staticmethod
    def backward(ctx, grad_t, grad_state):
        event_t, state = ctx.saved_tensors
        with torch.enable_grad():
            tt = event_t.detach().requires_grad_()
            yy = state.detach().requires_grad_()
            value = ctx.g(tt, yy)
            dg_dt, dg_dy = torch.autograd.grad(value, (tt, yy), allow_unused=True)
        dg_dt = torch.zeros_like(tt) if dg_dt is None else dg_dt
        dg_dy = torch.zeros_like(yy) if dg_dy is None else dg_dy
        with torch.no_grad():
            f = ctx.func(event_t.to(state.real.dtype if state.is_complex() else state.dtype), state)
            total = (grad_t + (grad_state * f).sum()).reshape(())  # dL/dτ, the end state moving with τ
            rate = dg_dt.reshape(()) + (dg_dy * f).sum()  # dg/dτ along the solution
            grad_state = grad_state + dg_dy * (-total / (rate + 1e-12))
        return None, None, None, grad_state


def odeint_event(func, y0, t0, *, event_fn, reverse_time: bool = False, odeint_interface=None, **kwargs):
    """Solve from t0 until event_fn(t, y) = 0; returns (event_t, ys = [y0, y(event_t)]).

    Gradients flow to y0, the parameters and through event_t (implicit function theorem, module
    docstring). odeint_interface: odeint (default) or odeint_adjoint; kwargs go to it.
    """
    from .solve import odeint

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
        from .interface import flat_to_shapes

        g = lambda tt, yy: event_fn(tt, flat_to_shapes(yy, (), problem.shapes))  # noqa: E731
    else:
        g = event_fn
    with torch.no_grad():
        signs = torch.sign(g(t0.reshape(()).to(state_t.dtype), problem.y0))
    g_combined = lambda tt, yy: torch.min(g(tt.to(yy.real.dtype if yy.is_complex() else yy.dtype), yy) * signs)  # noqa: E731
    event_t, state_t = _EventTimeGradient.apply(problem.func, g_combined, event_t, state_t)
    if is_tuple:
        from .interface import flat_to_shapes

        parts = flat_to_shapes(state_t, (), problem.shapes)
        solution = tuple(torch.cat([s[:-1], p[None].to(s.dtype)]) for s, p in zip(solution, parts))
    else:
        solution = torch.cat([solution[:-1], state_t[None]])
    return event_t, solution


def odeint_dense(func, y0: torch.Tensor, t0, t1, *, rtol=1e-7, atol=1e-9, method=None, options=None):
    """Solve from t0 to t1 and return ``dense(t_eval)``: the solution at any times in [t0, t1].

    dense(t_eval) takes a tensor of times (any shape (...)) and returns (..., *y0.shape), from
    the accepted steps' interpolants (each evaluation re-runs its step's stages: no state is
    kept per evaluation, the step record holds one state per step).
    """
    from .solve import replay_step, solve

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
        idx = (torch.searchsorted(keys, direction * te.reshape(-1), right=True) - 1).clamp(0, len(starts) - 1)
        out = []
        for v, i in zip(flat, idx.tolist()):
            out.append(replay_step(func, opts, starts[i], hs[i], rec.y0[i], torch.tensor([v]))[1][0])
        return torch.stack(out).reshape(*te.shape, *y0.shape) if out else y0.new_empty((*te.shape, *y0.shape))

    return dense
