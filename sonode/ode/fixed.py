"""Fixed-step solvers: the step grid, one method step per grid step, outputs interpolated.

Two grids (``options["grid"]``):
- "uniform" (torchdiffeq's semantics, the default): points t[0] + k·step_size (k = 0, 1, ...,
  ceil(|t[-1] − t[0]| / step_size)), the last one replaced by t[-1]; or t itself without
  step_size; or ``grid_constructor(func, y0, t)``. Outputs between grid points are interpolated
  (linear, or cubic Hermite with ``interp="cubic"``).
- "outputs" (sonode's own): every output interval is cut into ceil(|Δt| / step_size) steps, the last
  one shortened to land exactly on the output time, so outputs are step ends (no interpolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .options import SolveOptions
from .records import SolveResult, SolveStats, StepRecord, check_finite_outputs, time_arg
from .rk import Func, rk_stages


@dataclass
class Plan:
    """The steps of a fixed-step solve: step i goes from t0[i] by h[i] to t1[i] (units of t);
    outputs with index in [out_index[i], out_index[i+1]) lie in step i (output 0 in step 0)."""

    t0: list[float]
    h: list[float]
    t1: list[float]
    out_index: list[int]


def step_grid(t_out: list[float], step_size: float | None) -> list[list[float]]:
    """Sub-step lengths (signed, units of t) of each output interval for grid="outputs".

    None: one step per interval. Otherwise ceil(|Δt| / step_size) steps of ``step_size``, the
    last one shortened so the grid lands on the output time (a tolerance of 1e-9 steps keeps
    round-off in Δt / step_size from adding a needless tiny step).
    """
    grid = []
    for ta, tb in zip(t_out[:-1], t_out[1:], strict=False):
        span = tb - ta
        if step_size is None:
            grid.append([span])
            continue
        n = max(1, math.ceil(abs(span) / step_size - 1e-9))
        grid.append([math.copysign(step_size, span)] * n)  # the caller shortens the last one
    return grid


def uniform_points(t: torch.Tensor, step_size: float) -> list[float]:
    """torchdiffeq's grid, computed in t's dtype as it does (in increasing time, then mapped back)."""
    sign = -1.0 if len(t) > 1 and bool(t[1] < t[0]) else 1.0
    ts = sign * t
    n = int(torch.ceil((ts[-1] - ts[0]) / step_size + 1).item())
    grid = torch.arange(0, n, dtype=t.dtype, device=t.device) * step_size + ts[0]
    grid[-1] = ts[-1]
    return (sign * grid).to(torch.float64).tolist()


EVENT_GRID = "event"  # internal: the event search's grid (not a user option; options.GRIDS)


def plan_steps(func: Func, y0: torch.Tensor, t, t_out: list[float], opts: SolveOptions) -> Plan:
    """The steps and the output assignment of a fixed-step solve through ``t_out``."""
    if opts.grid == EVENT_GRID:
        # t_out are the step ends, each step exactly ±step_size long (torchdiffeq's event search
        # steps by step_size and rounds only t itself: in float32 the two differ by an ulp of t)
        h = math.copysign(opts.step_size, t_out[-1] - t_out[0])
        n = len(t_out) - 1
        return Plan(t_out[:-1], [h] * n, t_out[1:], [0] + [i + 2 for i in range(n)])
    if opts.grid == "outputs":
        t0s, hs, t1s, out_index = [], [], [], [0]
        time = t_out[0]
        for i, steps in enumerate(step_grid(t_out, opts.step_size)):
            for j, h in enumerate(steps):
                last = j == len(steps) - 1
                if last:
                    h = (
                        t_out[i + 1] - time
                    )  # land on the output time whatever round-off accumulated
                t0s.append(time)
                hs.append(h)
                time = time + h
                t1s.append(t_out[i + 1] if last else time)
                out_index.append(i + 2 if last else i + 1)
        return Plan(t0s, hs, t1s, out_index)
    # the grid is computed in t's dtype, as torchdiffeq does (python floats: float64)
    tt = t.detach() if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=torch.float64)
    tt = tt if tt.is_floating_point() else tt.to(torch.float64)
    if opts.grid_constructor is not None:
        points = (
            torch.as_tensor(opts.grid_constructor(func, y0, tt))
            .detach()
            .to(torch.float64)
            .reshape(-1)
            .tolist()
        )
        if len(points) < 2 or points[0] != t_out[0] or points[-1] != t_out[-1]:
            raise ValueError(
                f"grid_constructor must return a grid from t[0]={t_out[0]!r} to t[-1]={t_out[-1]!r}, "
                f"got {points[:1]}...{points[-1:]}"
            )
    elif opts.step_size is not None:
        points = uniform_points(tt, opts.step_size)
    else:
        points = list(t_out)
    direction = 1.0 if t_out[-1] > t_out[0] else -1.0
    out_index, j = [0], 1
    for t1 in points[1:]:
        while j < len(t_out) and direction * (t1 - t_out[j]) >= 0.0:
            j += 1
        out_index.append(j)
    return Plan(
        points[:-1],
        [b - a for a, b in zip(points[:-1], points[1:], strict=False)],
        points[1:],
        out_index,
    )


def fixed_step(
    func: Func,
    opts: SolveOptions,
    t0: float,
    h: float,
    y0: torch.Tensor,
    t1: float | None = None,
    callback=None,
    k1: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step of a fixed-step method from (t0, y0) with step h to t1 (default t0 + h).

    callback: called as callback(t0, y0, dt) first (func.callback_step, looked up once per solve).
    k1: f(t0, y0) if already known (tableau methods and rk4 reuse it; pass none to other steps)."""
    t1 = t0 + h if t1 is None else t1
    sign = 1.0 if h >= 0 else -1.0

    def at(c: float) -> torch.Tensor:
        if c == 1.0:
            return time_arg(t1, y0, -sign if opts.perturb else 0.0)
        return time_arg(t0 + c * h, y0, sign if opts.perturb and c == 0.0 else 0.0)

    spec = opts.spec
    if callback is not None:
        callback(time_arg(t0, y0), y0, time_arg(h, y0))
    if spec.step is not None:
        if k1 is not None:  # only steps that accept it are passed one (rk4, by the Adams start-up)
            return spec.step(func, opts, t0, h, y0, at, k1=k1)
        return spec.step(func, opts, t0, h, y0, at)
    tab = spec.tableau
    return rk_stages(func, tab, y0, h, [at(c) for c in tab.c], k1=k1)[0]


def fixed_outputs(
    func: Func,
    opts: SolveOptions,
    t0: float,
    h: float,
    t1: float,
    y0: torch.Tensor,
    y1: torch.Tensor,
    times: list[float],
) -> list[torch.Tensor]:
    """The states at ``times`` (inside the step [t0, t1]): ends exactly, interior interpolated."""
    outs, f0, f1 = [], None, None
    for t in times:
        if t == t1:
            outs.append(y1)
        elif t == t0:
            outs.append(y0)
        elif opts.interp == "linear":
            outs.append(y0 + (t - t0) / h * (y1 - y0))
        else:  # cubic Hermite through (y0, f0) and (y1, f1)
            if f0 is None:
                f0, f1 = func(time_arg(t0, y0), y0), func(time_arg(t1, y1), y1)
            s = (t - t0) / h
            h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
            h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
            outs.append(h00 * y0 + (h10 * h) * f0 + h01 * y1 + (h11 * h) * f1)
    return outs


def solve_fixed(
    func: Func, y0: torch.Tensor, t_out: list[float], opts: SolveOptions, record_steps: bool, t=None
) -> SolveResult:
    """Integrate through every output time of ``t_out`` (python floats, monotone) on the step grid."""
    plan = plan_steps(func, y0, t_out if t is None else t, t_out, opts)
    ys, starts = [y0], []
    y = y0
    callback = getattr(func, "callback_step", None)
    for i, (t0, h, t1) in enumerate(zip(plan.t0, plan.h, plan.t1, strict=False)):
        y_start = y
        if record_steps:
            starts.append(y)
        y = fixed_step(func, opts, t0, h, y, t1, callback)
        lo, hi = plan.out_index[i], plan.out_index[i + 1]
        if i == 0:
            lo = 1  # output 0 is y0 itself
        if hi > lo:
            ys.extend(fixed_outputs(func, opts, t0, h, t1, y_start, y, t_out[lo:hi]))
    ys = torch.stack(ys)
    check_finite_outputs(ys, t_out)
    n_steps = len(plan.h)
    stats = SolveStats(nfev=n_steps * opts.spec.n_evals, n_steps=n_steps, n_rejected=0)
    steps = StepRecord.build(plan.t0, plan.h, starts, plan.out_index, y0) if record_steps else None
    return SolveResult(ys=ys, stats=stats, steps=steps)
