"""Fixed-step solvers: a grid of steps through the output times, one method step per grid step."""

from __future__ import annotations

import math

import torch

from .implicit import implicit_fixed_step
from .implicit_tableaus import IMPLICIT_METHODS
from .lawson import lawson_rk4_step
from .options import SolveOptions
from .records import SolveResult, SolveStats, StepRecord, check_finite_outputs, time_arg
from .rk import Func, rk_stages


def step_grid(t_out: list[float], step_size: float | None) -> list[list[float]]:
    """Sub-step lengths (signed, units of t) for each output interval.

    None: one step per interval. Otherwise ceil(|Δt| / step_size) steps of ``step_size``, the
    last one shortened so the grid lands on the output time (a tolerance of 1e-9 steps keeps
    round-off in Δt / step_size from adding a needless tiny step).
    """
    grid = []
    for ta, tb in zip(t_out[:-1], t_out[1:]):
        span = tb - ta
        if step_size is None:
            grid.append([span])
            continue
        n = max(1, math.ceil(abs(span) / step_size - 1e-9))
        grid.append([math.copysign(step_size, span)] * n)  # the caller shortens the last one
    return grid


def fixed_step(func: Func, opts: SolveOptions, t0: float, h: float, y0: torch.Tensor) -> torch.Tensor:
    """One step of a fixed-step method from (t0, y0) with step h (units of t)."""
    if opts.method == "lawson_rk4":
        times = [time_arg(t0, y0), time_arg(t0 + 0.5 * h, y0), time_arg(t0 + h, y0)]
        return lawson_rk4_step(func, opts.linear, times, h, y0)
    if opts.method in IMPLICIT_METHODS:
        return implicit_fixed_step(func, opts, t0, h, y0)
    tab = opts.tableau
    times = [time_arg(t0 + c * h, y0) for c in tab.c]
    return rk_stages(func, tab, y0, h, times)[0]


def evals_per_step(opts: SolveOptions) -> int:
    """Evaluations of f per fixed step (Lawson RK4 evaluates N four times)."""
    return 4 if opts.method == "lawson_rk4" else opts.tableau.n_stages


def solve_fixed(func: Func, y0: torch.Tensor, t_out: list[float], opts: SolveOptions, record_steps: bool) -> SolveResult:
    """Integrate through every output time of ``t_out`` (python floats, monotone) on the step grid."""
    ys = [y0]
    rec_t0, rec_h, rec_y0, out_index = [], [], [], [0]
    t, y = t_out[0], y0
    n_steps = 0
    for i, steps in enumerate(step_grid(t_out, opts.step_size)):
        for j, h in enumerate(steps):
            last = j == len(steps) - 1
            if last:
                h = t_out[i + 1] - t  # land on the output time whatever round-off accumulated
            if record_steps:
                rec_t0.append(t)
                rec_h.append(h)
                rec_y0.append(y)
                # outputs 0..i are covered by earlier steps; output i+1 is this step's end if last
                out_index.append(i + 2 if last else i + 1)
            y = fixed_step(func, opts, t, h, y)
            t = t + h
            n_steps += 1
        ys.append(y)
    ys = torch.stack(ys)
    check_finite_outputs(ys, t_out)
    stats = SolveStats(nfev=n_steps * evals_per_step(opts), n_steps=n_steps, n_rejected=0)
    steps = StepRecord.build(rec_t0, rec_h, rec_y0, out_index, y0) if record_steps else None
    return SolveResult(ys=ys, stats=stats, steps=steps)
