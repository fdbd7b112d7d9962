"""Solves with the implicit methods: on the fixed grid, or adaptive by step doubling.

Fixed grid (default; torchdiffeq's semantics for these names): the same grid as the explicit
fixed-step methods (``solve_fixed`` with `implicit.implicit_fixed_step` as the step).

``options={"adaptive": True}``: every attempted step h is also taken as two steps of h/2 (sharing one
Jacobian at the step start); their difference estimates the local error of the half-step result,
err = (y_{h/2,h/2} − y_h) / (2^p − 1) (Richardson), which works for every method here, including those
without an embedded pair. The two half steps are the accepted solution. Steps are shortened to land on
each output time (outputs are step end points, no interpolation), the step size carries across outputs,
and a step whose Newton iteration fails is rejected and halved. Cost per step: three implicit solves
plus one Jacobian — about 3x a fixed step of the same size, bought back many times on stiff problems,
where the step may grow far beyond the explicit stability limit.
"""

from __future__ import annotations

import math

import torch

from .adaptive import PIController, initial_step, underflow_error
from .fixed import solve_fixed
from .implicit import half_steps, implicit_fixed_step, jacobian, newton_stages
from .implicit_tableaus import IMPLICIT_OPTIONS, IMPLICIT_TABLEAUS, check_implicit_options
from .methods import Method, register
from .records import SolveResult, SolveStats, StepRecord, time_arg
from .rk import step_outputs


class _Counted:
    """f, counting its calls (a Jacobian by jacrev counts as one call)."""

    def __init__(self, func):
        self.func, self.n = func, 0

    def __call__(self, t, y):
        self.n += 1
        return self.func(t, y)

    def __getattr__(self, name):  # the user's callback_* (the solvers look them up on func)
        return getattr(self.func, name)


def solve_implicit(
    func, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool
) -> SolveResult:
    """Solve with an implicit method through the output times (python floats, monotone)."""
    counted = _Counted(func)
    if not opts.adaptive:
        result = solve_fixed(counted, y0, t_out, opts, record_steps)
        result.stats = SolveStats(nfev=counted.n, n_steps=result.stats.n_steps, n_rejected=0)
        return result
    return _solve_doubling(counted, y0, t_out, opts, record_steps)


def _error_ratio(y0, y_half, y_full, order: int, rtol: float, atol: float) -> float:
    err = (y_half.detach() - y_full) / (2.0**order - 1.0)
    scale = torch.maximum(y0.detach().abs(), y_half.detach().abs()) * rtol + atol
    return float(torch.linalg.vector_norm(err / scale) / math.sqrt(max(err.numel(), 1)))


def _solve_doubling(
    func: _Counted, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool
) -> SolveResult:
    tab = IMPLICIT_TABLEAUS[opts.method]
    direction = 1.0 if t_out[-1] > t_out[0] else -1.0
    t, y = t_out[0], y0
    h = opts.first_step
    if h is None:
        h = initial_step(
            func, t, y0, func(time_arg(t, y0), y0), direction, tab.order, opts.rtol, opts.atol
        )
    h = min(h, opts.max_step)
    ctrl = PIController(opts, tab.order + 1)
    prev_ratio, after_reject = 1.0, False
    ys, next_out = [y0], 1
    rec_t0, rec_h, rec_y0, out_index = [], [], [], [0]
    n_steps = n_rejected = 0
    cb_step, cb_accept, cb_reject = (
        getattr(func, n, None)
        for n in ("callback_step", "callback_accept_step", "callback_reject_step")
    )
    while next_out < len(t_out):
        if n_steps + n_rejected >= opts.max_steps:
            raise RuntimeError(
                f"max_steps={opts.max_steps} reached at t={t!r} (integrating to t={t_out[-1]!r}) with method "
                f"{opts.method!r}; raise options['max_steps'] or loosen rtol/atol"
            )
        target = t_out[next_out]
        landing = direction * (t + direction * h - target) >= 0.0
        hh = target - t if landing else direction * h
        if abs(hh) <= 4.0 * math.ulp(max(abs(t), abs(target))):
            raise underflow_error(
                t, hh, f"{opts.method}'s Newton iteration or error test keeps failing"
            )
        if cb_step is not None:
            cb_step(time_arg(t, y), y, time_arg(hh, y))
        jac = jacobian(func, time_arg(t, y), y)
        y1 = half_steps(func, opts, t, hh, y, jac)
        Z = newton_stages(func, tab, t, hh, y, jac, opts) if y1 is not None else None
        if Z is None:  # Newton failed: halve the step
            if cb_reject is not None:
                cb_reject(time_arg(t, y), y, time_arg(hh, y))
            n_rejected += 1
            h, after_reject = 0.5 * abs(hh), True
            continue
        with torch.no_grad():
            y_full = y.detach() + (torch.as_tensor(tab.d, dtype=Z.dtype, device=Z.device) @ Z).view(
                y.shape
            )
        ratio = _error_ratio(y, y1, y_full, tab.order, opts.rtol, opts.atol)
        if not ratio <= 1.0:
            if cb_reject is not None:
                cb_reject(time_arg(t, y), y, time_arg(hh, y))
            n_rejected += 1
            h, after_reject = abs(hh) * ctrl.rejected_factor(ratio), True
            continue
        if cb_accept is not None:
            cb_accept(time_arg(t, y), y, time_arg(hh, y))
        if record_steps:
            rec_t0.append(t)
            rec_h.append(hh)
            rec_y0.append(y)
        n_steps += 1
        t, y = t + hh, y1
        if landing:
            ys.append(y)
            next_out += 1
        if record_steps:
            out_index.append(next_out)
        proposed = min(
            opts.max_step, abs(hh) * ctrl.accepted_factor(ratio, prev_ratio, after_reject)
        )
        # A step shortened to land on an output says little about the next one: keep the longer proposal.
        h = max(proposed, h) if landing else proposed
        prev_ratio, after_reject = max(ratio, 1e-10), False
    stats = SolveStats(nfev=func.n, n_steps=n_steps, n_rejected=n_rejected)
    steps = StepRecord.build(rec_t0, rec_h, rec_y0, out_index, y0) if record_steps else None
    return SolveResult(ys=torch.stack(ys), stats=stats, steps=steps)


def replay_implicit(func, opts, t0: float, h: float, y0: torch.Tensor, t_out: list[float]):
    """Re-run one accepted adaptive step (its two half steps) with a graph: (y1, (k, *S) outputs).

    Outputs of the adaptive implicit solve are step end points, so each is y0 or y1.
    """
    y1 = half_steps(func, opts, t0, h, y0, jacobian(func, time_arg(t0, y0), y0))
    if y1 is None:  # cannot happen for a step the forward accepted (same arithmetic)
        raise RuntimeError(f"{opts.method}: replay of the step from t={t0!r} failed to converge")
    return y1, step_outputs(None, t0, h, y0, y1, None, t_out)


def _implicit_step(func, opts, t0: float, h: float, y0: torch.Tensor, at) -> torch.Tensor:
    # Newton's stages use the plain times t0 + c h (no perturb: torchdiffeq has no implicit RK methods)
    return implicit_fixed_step(func, opts, t0, h, y0)


def _solve(
    func, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool, t=None
) -> SolveResult:
    return solve_implicit(func, y0, t_out, opts, record_steps)


for _name, _tab in IMPLICIT_TABLEAUS.items():
    register(
        Method(
            _name,
            _tab.order,
            adaptive=False,
            implicit=True,
            options=IMPLICIT_OPTIONS,
            step=_implicit_step,
            evals=_tab.n_stages,
            solver=_solve,
            check=check_implicit_options,
            replay=replay_implicit,
            backsolve=False,
            description=f"implicit Runge–Kutta {_name} (Newton; options adaptive, newton_tol, max_iters)",
        )
    )
