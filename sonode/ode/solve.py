"""Entry points: ``odeint`` (public) and the internal contract ``solve`` / ``replay_step``.

``solve`` returns the trajectory, statistics and optionally the record of accepted steps;
``replay_step`` re-executes one recorded step with exactly the forward arithmetic (same stages,
same interpolant), differentiably — the checkpointed adjoint builds on these two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .adaptive import solve_adaptive
from .events import solve_until_event
from .fixed import fixed_outputs, fixed_step, solve_fixed
from .interface import finish, prepare, warn_unused_callbacks, with_time_gradient
from .options import SolveOptions
from .per_sample import solve_per_sample
from .records import SolveResult, SolveStats, StepRecord, time_arg
from .rk import Func, rk_stages, step_outputs

__all__ = [
    "odeint",
    "solve",
    "replay_step",
    "SolveResult",
    "SolveStats",
    "StepRecord",
    "times_as_floats",
]


def times_as_floats(t: torch.Tensor | Sequence[float]) -> list[float]:
    """Validate the output times and return them as python floats (float64).

    Raises ValueError unless t is 1-D, non-empty, finite and strictly monotone.
    """
    tt = torch.as_tensor(t).detach()
    if tt.ndim != 1 or tt.numel() == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of times, got shape {tuple(tt.shape)}")
    if tt.is_complex() or not tt.is_floating_point() and tt.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"t must hold real times, got dtype {tt.dtype}")
    times = tt.to(dtype=torch.float64, device="cpu").tolist()
    if not all(math.isfinite(v) for v in times):
        raise ValueError(f"t must be finite, got {times[:8]}{'...' if len(times) > 8 else ''}")
    if len(times) > 1:
        steps = [b - a for a, b in zip(times[:-1], times[1:], strict=False)]
        if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
            raise ValueError(
                "t must be strictly increasing or strictly decreasing (no repeats); "
                f"got t[0..{min(len(times), 8) - 1}] = {times[:8]}"
            )
    return times


def solve(
    func: Func, y0: torch.Tensor, t, opts: SolveOptions, *, record_steps: bool = False
) -> SolveResult:
    """Solve y' = func(t, y), y(t[0]) = y0, reporting y at every t.

    Args:
        func: f(t, y) -> dy/dt with y's shape; t is a 0-d tensor in y's (real) dtype (per_sample:
            a (B,) tensor).
        y0: initial state, any shape (dim 0 is the batch for ``per_sample``), float dtype.
        t: (n,) output times (units of t), strictly monotone; kept in float64 internally.
        opts: validated options (:meth:`SolveOptions.build`).
        record_steps: also return the accepted steps (shared-step solves only).

    Returns:
        SolveResult with ys (n, *y0.shape), stats, and steps if requested.
    """
    if not isinstance(y0, torch.Tensor) or not (y0.is_floating_point() or y0.is_complex()):
        raise ValueError(
            f"y0 must be a floating-point tensor, got {type(y0).__name__} {getattr(y0, 'dtype', '')}"
        )
    t_out = times_as_floats(t)
    if not bool(torch.isfinite(y0.detach()).all()):
        raise ValueError(f"y0 must be finite (no inf/nan) at t={t_out[0]!r}")
    if len(t_out) == 1:
        steps = StepRecord.build([], [], [], [0], y0) if record_steps else None
        return SolveResult(ys=y0.unsqueeze(0), stats=SolveStats(0, 0, 0), steps=steps)
    if opts.adaptive and opts.per_sample:
        if record_steps:
            raise ValueError(
                "record_steps is not available with per_sample=True (steps differ per sample)"
            )
        if y0.ndim == 0:
            raise ValueError("per_sample=True needs a batch dimension: y0 of shape (batch, ...)")
        if opts.tableau is None or not opts.tableau.interpolate_outputs:
            raise ValueError(
                f"per_sample=True is not available for method {opts.method!r} (its outputs are step ends)"
            )
        return solve_per_sample(func, y0, t_out, opts)
    spec = opts.spec
    if spec.solver is not None:
        if record_steps and not spec.replayable:
            raise ValueError(
                f"record_steps is not available for method {spec.name!r} (its steps cannot be replayed)"
            )
        return spec.solver(func, y0, t_out, opts, record_steps, t=t)
    if opts.adaptive:
        return solve_adaptive(func, y0, t_out, opts, record_steps)
    return solve_fixed(func, y0, t_out, opts, record_steps, t=t)


def replay_step(
    func: Func, opts: SolveOptions, t0: float, h: float, y0: torch.Tensor, t_out: torch.Tensor
):
    """Re-execute one accepted step of a recorded solve, differentiably.

    Args:
        func, opts: as given to :func:`solve`.
        t0, h: the step's start and signed length (units of t), from ``StepRecord``.
        y0: (*state_shape) the state at t0 (may require grad).
        t_out: (k,) float64 output times in the step's closed interval [t0, t0 + h].

    Returns:
        (y1, y_out): the state at t0 + h and (k, *state_shape) the states at t_out, bit-for-bit
        what the forward solve produced (k1 is recomputed as f(t0, y0), the value FSAL reused).
    """
    t0, h = float(t0), float(h)
    times = [float(v) for v in torch.as_tensor(t_out, dtype=torch.float64).reshape(-1).tolist()]
    if opts.adaptive and opts.spec.replay is not None:  # e.g. the implicit methods' step doubling
        return opts.spec.replay(func, opts, t0, h, y0, times)
    if opts.adaptive:
        tab = opts.tableau
        stage_times = [time_arg(t0 + c * h, y0) for c in tab.c]
        y1, ks = rk_stages(func, tab, y0, h, stage_times)
        outs = step_outputs(tab, t0, h, y0, y1, ks, times)
    else:
        y1 = fixed_step(func, opts, t0, h, y0)
        outs = fixed_outputs(func, opts, t0, h, t0 + h, y0, y1, times)
        outs = torch.stack(outs) if outs else y0.new_empty((0, *y0.shape))
    return y1, outs


def odeint(
    func: Func,
    y0,
    t,
    *,
    rtol=1e-7,
    atol=1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    event_fn=None,
    return_stats: bool = False,
):
    """Solve the initial value problem y' = func(t, y), y(t[0]) = y0 (torchdiffeq's signature).

    Args:
        func: f(t, y) -> dy/dt, of y's shape (a tuple of tensors for a tuple y0). t is a 0-d
            tensor in y's (real) dtype (with ``per_sample=True``, a (B,) tensor: each sample's
            own time). Optional attributes callback_step / callback_accept_step /
            callback_reject_step(t0, y0, dt) are called before / after each step.
        y0: (*state_shape) initial state (float or complex; dim 0 is the batch for per_sample),
            or a tuple of such tensors.
        t: (n,) output times in the units of the ODE's time (e.g. seconds), strictly increasing
            or strictly decreasing; t[0] is the initial time. Kept in float64 internally.
        rtol, atol: local error tolerances of the adaptive methods: floats, tensors (per
            component) or, for a tuple y0, tuples (per tensor).
        method: a name in ``SOLVERS`` (docs/engine.md); None means "dopri5".
        options: method options, see :class:`SolveOptions` (unknown names raise ValueError).
        event_fn: event_fn(t, y) -> tensor; the solve stops where it changes sign (then use the
            return value (event_t, ys) of :func:`sonode.ode.odeint_event` semantics).
        return_stats: also return :class:`SolveStats` (evaluations, steps, rejections).

    Returns:
        ys (n, *state_shape) in y0's dtype, with ys[0] = y0 (a tuple for a tuple y0); or
        (ys, stats). With event_fn: (event_t, ys) where ys = [y0, y(event_t)].
        Differentiable by ordinary autograd (backprop through the solver) in y0, the parameters
        and t (dL/dt by the exact flow's formula, see ``interface.with_time_gradient``); for
        fixed-step methods also by ``torch.func.jvp``.

    Raises:
        ValueError: bad method/options/t/y0. RuntimeError: max_steps exceeded, step-size
        underflow or a non-finite solution (the message gives the time).
    """
    if event_fn is not None:
        return solve_until_event(
            func, y0, t, rtol=rtol, atol=atol, method=method, options=options, event_fn=event_fn
        )
    problem = prepare(func, y0, rtol, atol, options)
    opts = SolveOptions.build(method, problem.rtol, problem.atol, problem.options)
    warn_unused_callbacks(func, opts)
    stats = []

    def run(y_start, times):
        result = solve(problem.func, y_start, times, opts)
        stats.append(result.stats)
        return result.ys

    if isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled() and len(t) > 1:
        if not opts.spec.time_gradient:
            raise ValueError(
                f"gradients w.r.t. t are not available for method {opts.method!r}; pass t.detach()"
            )
        ys = with_time_gradient(run, problem.func, problem.y0, t, opts.adaptive and opts.per_sample)
    else:
        ys = run(problem.y0, t)
    ys = finish(ys, problem, y0)
    return (ys, stats[0]) if return_stats else ys
