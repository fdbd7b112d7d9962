"""Event handling: the search behind ``odeint(..., event_fn=...)`` and the event-time gradient of
``odeint_event`` (the entry points are in ``entry.py``).

An event is where ``event_fn(t, y)`` changes sign (a vector event_fn: where its first component
does; all components are first made positive at t[0]). The solve steps from t[0] in the direction
of t[1] (fixed-step: steps of ``step_size``; adaptive: its own steps) until a step ends on the other
side, then bisects the step's interpolant down to ``atol`` in t. The state there is the interpolant
at the (detached) event time, so gradients flow as for any output; ``odeint_event`` adds the
gradient through the event time itself by the implicit function theorem:
dτ = −(∂g/∂y dy + ∂g/∂θ dθ) / (∂g/∂t + ∂g/∂y · f).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .adaptive import solve_adaptive
from .fixed import EVENT_GRID, fixed_step
from .interface import finish, flat_to_shapes, prepare
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
    """(event_t, ys) with ys = [y0, y(event_t)] (tuples for a tuple y0); t = [t0, t1] gives t0 and the direction.

    adjoint: None (gradients by backprop through the search), or ``adjoint(t_event) -> ys`` that
    solves to the event time with an adjoint method: its gradients, the search's values.
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 1 or len(t) != 2:
        raise ValueError(
            f"event handling needs t = [t0, t1] (t1 only sets the direction), got {t!r}"
        )
    problem = prepare(func, y0, rtol, atol, options)
    opts = SolveOptions.build(method, problem.rtol, problem.atol, problem.options)
    t0, t1 = (float(v) for v in t.detach().to(torch.float64))
    direction = 1.0 if t1 > t0 else -1.0
    y = problem.y0
    user_g = event_fn
    if problem.shapes is not None:
        user_g = lambda tt, yy: event_fn(tt, flat_to_shapes(yy, (), problem.shapes))  # noqa: E731
    with torch.no_grad():
        signs = torch.sign(user_g(time_arg(t0, y), y))

    def g(tt, yy):  # tt: a float, or a 0-d tensor in the state's real dtype
        tt = tt if isinstance(tt, torch.Tensor) else time_arg(tt, yy)
        return torch.min(user_g(tt, yy) * signs)

    tol = float(torch.as_tensor(problem.atol).min())
    grad_ctx = (
        torch.no_grad()
        if adjoint is not None
        else torch.enable_grad()
        if torch.is_grad_enabled()
        else torch.no_grad()
    )
    with grad_ctx:
        if opts.spec.solver is not None and opts.adaptive:
            raise ValueError(f"event handling is not available for method {opts.method!r}")
        if opts.spec.solver is not None:
            event_t, y_event = _windowed_event(problem.func, y, t0, direction, opts, g, tol)
        elif opts.adaptive:
            event_t, y_event = _adaptive_event(problem.func, y, t0, direction, opts, g, tol)
        else:
            event_t, y_event = _fixed_event(problem.func, y, t0, direction, opts, g, tol)
    ys = finish(torch.stack([problem.y0, y_event]), problem, y0)
    if (
        adjoint is not None
    ):  # values of the interpolant, gradient of an adjoint solve to the event time
        ys_adj = adjoint(torch.tensor([t0, event_t], dtype=t.dtype))
        if problem.shapes is None:
            ys = ys_adj + (ys - ys_adj).detach()
        else:
            ys = tuple(a + (b - a).detach() for a, b in zip(ys_adj, ys, strict=False))
    event_time = torch.tensor(event_t, dtype=t.dtype, device=t.device)
    return _differentiable_time(problem, user_g, signs, event_time, ys), ys


def _differentiable_time(problem, user_g, signs, event_t: torch.Tensor, ys) -> torch.Tensor:
    """event_t carrying dτ = −∂g/∂y dy(τ) / (∂g/∂t + ∂g/∂y·f), dy(τ) being the returned state's own
    gradient at the fixed time τ; its value is unchanged. Without it an odeint_adjoint caller's
    event_t.backward() had no graph to run (a RuntimeError)."""
    state = torch.cat([s[-1].reshape(-1) for s in ys]) if problem.shapes is not None else ys[-1]
    if not state.requires_grad:
        return event_t

    def g(tt, yy):
        return torch.min(user_g(tt.to(yy.real.dtype if yy.is_complex() else yy.dtype), yy) * signs)

    # only the time output is kept: the state returned stays the solve's own (at fixed τ), as odeint's
    return _EventTimeGradient.apply(problem.func, g, event_t, state)[0]


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
        tb = _advance(ta, h, y0)
        yb = fixed_step(func, opts, ta, h, ya, tb)
        if torch.sign(g(tb, yb.detach())) != sign0:
            return _step_event(func, opts.interp, g, sign0, ta, tb, ya, yb, tol)
        ta, ya = tb, yb
    raise RuntimeError(
        f"event search: no sign change of event_fn within {_FIXED_MAX_STEPS} fixed steps"
    )


def _step_event(func, interp: str, g, sign0, ta: float, tb: float, ya, yb, tol: float):
    """(event time, state) inside the fixed step [ta, tb] whose ends differ in sign. As torchdiffeq's
    fixed-step search, times, the step's interpolant and the bisection are computed in the state's
    real dtype: in float32 an event on a flat solution moves with that round-off (by 3 % of the
    time in the sine problem of torchdiffeq's suite, explicit_adams)."""
    t0, t1 = time_arg(ta, ya), time_arg(tb, ya)
    dt = t1 - t0
    if interp == "cubic":  # Hermite through (y, f) at both ends
        f0, f1 = func(t0, ya), func(t1, yb)

        def at(t):
            s = (t - t0) / dt
            h00, h10 = (1 + 2 * s) * (1 - s) * (1 - s), s * (1 - s) * (1 - s)
            h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
            return h00 * ya + h10 * dt * f0 + h01 * yb + h11 * dt * f1

    else:

        def at(t):
            return ya if t == t0 else yb if t == t1 else ya + (t - t0) / dt * (yb - ya)

    lo, hi = t0, t1  # the bracket (at() keeps the step's own ends)
    with torch.no_grad():
        n = int(torch.ceil(torch.log(dt.abs() / tol) / math.log(2.0)).clamp(min=0))
        for _ in range(n):
            mid = (lo + hi) / 2.0
            if torch.sign(g(mid, at(mid))) == sign0:
                lo = mid
            else:
                hi = mid
        event_t = (lo + hi) / 2.0
    return float(event_t), at(event_t)


def _advance(t: float, h: float, like: torch.Tensor) -> float:
    """t + h rounded as torchdiffeq's fixed-step event search accumulates it (in the state's dtype)."""
    return float(time_arg(t, like) + h)


def _windowed_event(func, y0, t0: float, direction: float, opts, g, tol: float):
    """Event search for fixed-step methods with their own solve loop (multistep: the history must
    run on): solve from t0 with an output at every grid point over 64, 128, ... steps until a
    sign change shows, then bisect that step's interpolant."""
    if opts.step_size is None:
        raise ValueError("event handling with a fixed-step method needs options['step_size']")
    with torch.no_grad():
        sign0 = torch.sign(g(t0, y0))
    n = 64
    while n <= _FIXED_MAX_STEPS:
        grid = [t0]
        for _ in range(n):
            grid.append(_advance(grid[-1], direction * opts.step_size, y0))
        ys = opts.spec.solver(func, y0, grid, dataclasses.replace(opts, grid=EVENT_GRID), False).ys
        for k in range(1, n + 1):
            if torch.sign(g(grid[k], ys[k].detach())) != sign0:
                return _step_event(
                    func, opts.interp, g, sign0, *grid[k - 1 : k + 1], *ys[k - 1 : k + 1], tol
                )
        n *= 2
    raise RuntimeError(
        f"event search: no sign change of event_fn within {_FIXED_MAX_STEPS} fixed steps"
    )


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
            total = (grad_t + (grad_state * f).sum()).reshape(
                ()
            )  # dL/dτ, the end state moving with τ
            rate = dg_dt.reshape(()) + (dg_dy * f).sum()  # dg/dτ along the solution
            grad_state = grad_state + dg_dy * (-total / (rate + 1e-12))
        return None, None, None, grad_state
