"""Algebraically reversible fixed-step solvers: reversible Heun and McCallum–Foster reversible RK4.

Reversible Heun (Kidger, Foster, Li & Lyons 2021):

The method carries a second state ŷ and the last evaluation f_n = f(t_n, ŷ_n) from step to step:

    ŷ_{n+1} = 2 y_n − ŷ_n + h f_n
    f_{n+1} = f(t_{n+1}, ŷ_{n+1})
    y_{n+1} = y_n + h/2 (f_n + f_{n+1}),          y_0 = ŷ_0 = y(t[0]),

one evaluation of f per step, order 2. Its algebraic inverse needs one evaluation too:

    ŷ_n = 2 y_{n+1} − ŷ_{n+1} − h f_{n+1},   f_n = f(t_n, ŷ_n),   y_n = y_{n+1} − h/2 (f_n + f_{n+1}),

so the adjoint (`adjoint_reversible.py`) rebuilds every forward state from the last one instead of
storing them: backprop's gradient with memory that does not grow with the number of steps.

Stability: on y' = λy with z = hλ the step is the linear map [[1+z, z²/2], [2, z−1]] on (y, ŷ),
whose eigenvalues solve μ² − 2zμ − 1 = 0, so μ₁μ₂ = −1: both have |μ| = 1 exactly when z = iω,
|ω| < 1, and one has |μ| > 1 for every z off the imaginary axis. The method is stable only on the
segment (−i, i): fine for oscillatory dynamics, but on dissipative ones (Re λ < 0) the parasitic
mode y − ŷ grows like (1 + |z|)^n; keep |h Re λ| · n_steps small (docs/reversible.md measures it).

Reversible RK4 ("reversible_rk4"; McCallum & Foster 2024) couples two copies (y, z) of the state
through any explicit one-step increment Ψ_h(t, y) = h Σ b_i k_i (here classical RK4's):

    y_{n+1} = λ y_n + (1 − λ) z_n + Ψ_h(t_n, z_n),        z_{n+1} = z_n − Ψ_{−h}(t_{n+1}, y_{n+1}),
    inverse:  z_n = z_{n+1} + Ψ_{−h}(t_{n+1}, y_{n+1}),   y_n = (y_{n+1} − (1 − λ) z_n − Ψ_h(t_n, z_n)) / λ,

y_0 = z_0 = y(t[0]); the order is the base method's (4), the cost two base steps (8 evaluations of f)
per step, and the coupling λ < 1 damps the parasitic mode y − z, which gives the scheme a stability
region of its own (benchmarks/bench_reversible.py measures it). λ = MF_COUPLING = 0.999.

Grid: torchdiffeq's fixed grid, as for the other fixed-step methods: t[0] + k·step_size, the last
point t[-1] (None: the output times); outputs between grid points are linearly interpolated. The grid
times are built from t by tensor arithmetic, so backprop through `odeint` and the reversible adjoint
both differentiate them with respect to t.
"""

from __future__ import annotations

import torch

from .fixed import uniform_points
from .methods import Method, register
from .records import SolveResult, SolveStats, check_finite_outputs
from .rk import lincomb, rk_stages
from .tableaus import TABLEAUS

REVERSIBLE_METHODS = ("reversible_heun", "reversible_rk4")
MF_COUPLING = 0.999  # λ: 1 leaves the parasitic mode y − z undamped, smaller damps more
_MF_BASE = {"reversible_rk4": "rk4"}


def heun_grid(t: torch.Tensor, t_out: list[float], step_size: float | None):
    """The step grid of the reversible methods: torchdiffeq's fixed grid, as for the other fixed-step methods.

    Grid: t[0] + k·step_size (computed in t's dtype, the last point replaced by t[-1]; step_size None:
    the output times themselves). Outputs between grid points are linearly interpolated (torchdiffeq's
    default interp), see :func:`interp_outputs`.

    Args:
        t: (n,) output times as given (may require grad). t_out: the same as python floats.
        step_size: |h| in units of t, or None for one step per output interval.

    Returns:
        (tau, owner, kept, where): tau (N+1,) float64 grid times, differentiable in t (grid point k is
        t[owner[k]] + a constant, so dτ_k/dt[owner[k]] = 1); owner (N+1,) int64; kept: increasing
        grid indices whose states the outputs need (kept[0] = 0, kept[-1] = N); where: per output i,
        (k, exact): output i is grid point k, or (if not exact) lies in (τ_k, τ_{k+1}).
    """
    t64 = torch.as_tensor(t).to(torch.float64).reshape(-1)
    if step_size is None:
        points, owner = list(t_out), list(range(len(t_out)))
    else:
        tt = torch.as_tensor(t).detach().reshape(-1)
        points = uniform_points(tt if tt.is_floating_point() else tt.to(torch.float64), step_size)
        owner = [0] * (len(points) - 1) + [len(t_out) - 1]
    direction = 1.0 if len(t_out) < 2 or t_out[-1] > t_out[0] else -1.0
    where, kept, k = [], {0, len(points) - 1}, 0
    for time in t_out:
        while k + 1 < len(points) and direction * (points[k + 1] - time) <= 0.0:
            k += 1
        exact = time == points[k]
        where.append((k, exact))
        kept.update((k,) if exact else (k, k + 1))
    owner_t = torch.tensor(owner, dtype=torch.int64, device=t64.device)
    base = t64[owner_t]
    tau = base + (torch.tensor(points, dtype=torch.float64, device=t64.device) - base.detach())
    return tau, owner_t, sorted(kept), where


def interp_outputs(
    t, tau: torch.Tensor, kept: list[int], where, states: torch.Tensor
) -> torch.Tensor:
    """(n, *S) outputs from the (len(kept), *S) grid states: exact, or torchdiffeq's linear interpolation."""
    t64 = torch.as_tensor(t).to(torch.float64).reshape(-1)
    pos = {k: j for j, k in enumerate(kept)}
    outs = []
    for i, (k, exact) in enumerate(where):
        y0 = states[pos[k]]
        if exact:
            outs.append(y0)
        else:
            slope = (t64[i] - tau[k]) / (tau[k + 1] - tau[k])
            outs.append(y0 + slope.to(y0.dtype) * (states[pos[k + 1]] - y0))
    return torch.stack(outs)


def heun_step(func, tau1: torch.Tensor, h: torch.Tensor, y, yh, f):
    """One forward step from (y_n, ŷ_n, f_n) with step h (0-d float64) to (y_{n+1}, ŷ_{n+1}, f_{n+1})."""
    yh1 = 2 * y - yh + h * f
    f1 = func(tau1, yh1)
    y1 = y + (0.5 * h) * (f + f1)
    return y1, yh1, f1


def rk_increment(func, tab, tau: torch.Tensor, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Ψ_h(τ, y) = h Σ b_i k_i of the explicit tableau ``tab`` (τ, h: 0-d float64 tensors)."""
    _, ks = rk_stages(func, tab, y, h, [tau + c * h for c in tab.c])
    return lincomb(torch.zeros_like(y), h, tab.b, ks)


def mf_step(func, tab, tau0: torch.Tensor, tau1: torch.Tensor, y, z):
    """One McCallum–Foster step from (y_n, z_n) on [τ0, τ1] to (y_{n+1}, z_{n+1})."""
    h = tau1 - tau0
    y1 = MF_COUPLING * y + (1.0 - MF_COUPLING) * z + rk_increment(func, tab, tau0, h, z)
    z1 = z - rk_increment(func, tab, tau1, -h, y1)
    return y1, z1


def solve_reversible(func, y0: torch.Tensor, t, t_out: list[float], opts, keep_yhat: bool = False):
    """A reversible method through the output times; differentiable by ordinary autograd.

    Args:
        func: f(t, y); t is a 0-d float64 tensor. y0: (*S). t: (n,) output times (tensor or list).
        t_out: t as validated python floats. opts: SolveOptions (step_size).
        keep_yhat: also return ŷ (Heun) or z (McCallum–Foster) at the output times (what the
            reversible adjoint stores).

    Returns:
        SolveResult with ys (n, *S); with keep_yhat, (SolveResult, yhats (n, *S)).
    """
    tau, _, kept, where = heun_grid(t, t_out, opts.step_size)
    heun = opts.method == "reversible_heun"
    tab = None if heun else TABLEAUS[_MF_BASE[opts.method]]
    y = yh = y0  # yh: ŷ of reversible Heun, z of McCallum–Foster
    f = func(tau[0], y0) if heun else None
    ys, yhats = [y0], [y0]
    next_kept = 1
    for n in range(len(tau) - 1):
        if heun:
            y, yh, f = heun_step(func, tau[n + 1], tau[n + 1] - tau[n], y, yh, f)
        else:
            y, yh = mf_step(func, tab, tau[n], tau[n + 1], y, yh)
        if n + 1 == kept[next_kept]:
            ys.append(y)
            yhats.append(yh)
            next_kept += 1
    ys_kept = torch.stack(ys)
    ys = interp_outputs(t, tau, kept, where, ys_kept)
    check_finite_outputs(ys, t_out)
    n_steps = len(tau) - 1
    nfev = n_steps + 1 if heun else 2 * tab.n_stages * n_steps
    result = SolveResult(ys=ys, stats=SolveStats(nfev=nfev, n_steps=n_steps, n_rejected=0))
    return (result, (ys_kept, torch.stack(yhats))) if keep_yhat else result


def _solve(
    func, y0: torch.Tensor, t_out: list[float], opts, record_steps: bool, t=None
) -> SolveResult:
    if record_steps:  # carries (y, ŷ, f) between steps: no StepRecord
        raise ValueError(f"record_steps is not available with method {opts.method!r}")
    return solve_reversible(func, y0, t_out if t is None else t, t_out, opts)


for _name, _order, _evals in (("reversible_heun", 2, 1), ("reversible_rk4", 4, 8)):
    register(
        Method(
            _name,
            _order,
            adaptive=False,
            options=("step_size",),
            evals=_evals,
            solver=_solve,
            replayable=False,
            backsolve=False,
            adjoint_mode="reversible",
            callbacks=(),  # the (y, ŷ) recursion has no per-step hook yet
            description="algebraically reversible (exact O(1)-memory adjoint, mode 'reversible')",
        )
    )
