"""Adams multistep methods on the fixed grid: "explicit_adams" (Adams–Bashforth) and
"implicit_adams" / "fixed_adams" (Adams–Bashforth predictor, Adams–Moulton corrector by
fixed-point iteration), with torchdiffeq's semantics:

- the history holds f at the last (max_order − 1) step starts; while it has fewer than 3 entries
  the step is Kutta's 3/8 RK4, then k-step Adams–Bashforth with k = the history length;
- the corrector (implicit_adams) iterates y1 = y0 + h (γ0 f(t1, y1) + Σ γj f_{1−j}) up to max_iters
  times until the change is within rtol/atol (max norm); if it does not converge a warning is
  issued and the oldest history entry is dropped (the order falls by one).

Coefficients are computed exactly (rational arithmetic) from the quadrature conditions, assuming
equal steps (as the fixed grid has, but for its possibly shorter last step).
"""

from __future__ import annotations

import dataclasses
import warnings
from fractions import Fraction
from functools import cache

import torch

from .fixed import fixed_outputs, fixed_step, plan_steps
from .methods import FIXED_OPTIONS, Method, register
from .records import SolveResult, SolveStats, check_finite_outputs, time_arg
from .tableaus import RK4

MIN_ORDER, MAX_ORDER, MAX_ITERS = 4, 12, 4


@cache
def adams_weights(nodes: tuple[int, ...]) -> tuple[float, ...]:
    """w_j with ∫_0^1 p(s) ds = Σ_j w_j p(nodes[j]) for every polynomial p of degree < len(nodes)
    (nodes in units of the step, relative to the step start). Exact rational solve, then floats."""
    n = len(nodes)
    rows = [[Fraction(x) ** m for x in nodes] + [Fraction(1, m + 1)] for m in range(n)]
    for col in range(n):  # Gauss–Jordan on the Vandermonde system
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [v / rows[col][col] for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=False)]
    return tuple(float(row[-1]) for row in rows)


def _weighted(coeffs, fs: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Σ c_j f_j in torchdiffeq's arithmetic, so float32 solves match it to the last bit: each c_j
    (h β_j rounded once) is a 0-d float64 tensor, so a 0-d state's products and sum are float64 by
    type promotion (a state with dims stays in its dtype), then cast back to the state's dtype."""
    total = sum(
        torch.tensor(c, dtype=torch.float64, device=like.device) * f
        for c, f in zip(coeffs, fs, strict=False)
    )
    return total.to(like.dtype)


def _converged(old: torch.Tensor, new: torch.Tensor, rtol, atol) -> bool:
    scale = atol + rtol * torch.maximum(old.abs(), new.abs())
    return bool(((old - new).abs() / scale).max() < 1)  # max norm


def _solve(
    func, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool, t=None
) -> SolveResult:
    implicit = opts.spec.implicit
    max_order = int(opts.option("max_order", MAX_ORDER))
    max_iters = int(opts.option("max_iters", MAX_ITERS))
    if not MIN_ORDER <= max_order <= MAX_ORDER:
        raise ValueError(f"option max_order must be in [{MIN_ORDER}, {MAX_ORDER}], got {max_order}")
    # the grid in t's own dtype (float32 t: float32 grid points), as solve_fixed and torchdiffeq build it
    plan = plan_steps(func, y0, t_out if t is None else t, t_out, opts)
    rk4 = dataclasses.replace(opts, method="rk4")  # the 3/8 rule for the starting steps
    history: list[torch.Tensor] = []  # f at previous step starts, newest first
    ys, y, nfev = [y0], y0, 0
    callback = getattr(func, "callback_step", None)
    for i, (t0, h, t1) in enumerate(zip(plan.t0, plan.h, plan.t1, strict=False)):
        if callback is not None:
            callback(time_arg(t0, y), y, time_arg(h, y))
        # perturb: f just inside the step at both ends, as fixed_step does for the RK methods
        sign = (1.0 if h >= 0 else -1.0) if opts.perturb else 0.0
        history.insert(0, func(time_arg(t0, y, sign), y))
        del history[max_order - 1 :]
        nfev += 1
        if len(history) < MIN_ORDER - 1:
            # f(t0, y) is history[0] already: torchdiffeq reuses it too (same nfev, same callbacks)
            y1 = fixed_step(func, rk4, t0, h, y, t1, k1=history[0])
            nfev += RK4.n_stages - 1
        else:
            k = len(history)
            beta = adams_weights(tuple(-j for j in range(k)))
            dy = _weighted([h * b for b in beta], history, y)
            if implicit:
                gamma = adams_weights((1,) + tuple(-j for j in range(k)))
                known = h * _weighted(gamma[1:], history, y)
                converged = False
                for _ in range(max_iters):
                    new = known + _weighted(
                        [h * gamma[0]], [func(time_arg(t1, y, -sign), y + dy)], y
                    )
                    nfev += 1
                    converged = _converged(
                        dy, new, opts.rtol, opts.atol
                    )  # on the increments, as torchdiffeq
                    dy = new
                    if converged:
                        break
                if not converged:
                    warnings.warn(
                        "implicit_adams: functional iteration did not converge; dropping the order by one",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    history.pop()
            y1 = y + dy
        lo, hi = max(plan.out_index[i], 1), plan.out_index[i + 1]
        if hi > lo:
            ys.extend(fixed_outputs(func, opts, t0, h, t1, y, y1, t_out[lo:hi]))
        y = y1
    ys = torch.stack(ys)
    check_finite_outputs(ys, t_out)
    return SolveResult(ys=ys, stats=SolveStats(nfev=nfev, n_steps=len(plan.h), n_rejected=0))


_OPTIONS = FIXED_OPTIONS + ("max_order", "max_iters")
register(
    Method(
        "explicit_adams",
        4,
        adaptive=False,
        options=_OPTIONS,
        solver=_solve,
        replayable=False,
        description="Adams–Bashforth, up to 11 steps (3/8-rule RK4 start)",
    )
)
register(
    Method(
        "implicit_adams",
        4,
        adaptive=False,
        implicit=True,
        options=_OPTIONS,
        solver=_solve,
        replayable=False,
        description="Adams–Bashforth–Moulton predictor–corrector (fixed-point iteration: not for stiff problems)",
    ),
    "fixed_adams",
)
