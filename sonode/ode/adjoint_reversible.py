"""The reversible adjoint: backprop's gradient through reversible Heun at O(1) memory in the steps.

Used by `odeint_adjoint(..., method="reversible_heun")` (mode "reversible", the default for that
method). The forward solve keeps no graph and stores only what it returns anyway — y at the output
times — plus ŷ there. The backward sweep walks the grid from the end, rebuilding each earlier state
with the method's algebraic inverse (`reversible.py`) and accumulating the *discrete* adjoint of the
step map (y, ŷ, f) -> (y', ŷ', f'): the same chain rule backprop applies to the stored graph, applied
to the rebuilt states, so the gradient equals backprop's up to the round-off of the rebuild. At output
times the rebuilt (y, ŷ) are replaced by the stored forward values, which stops round-off from
carrying across outputs.

Per step the sweep costs one evaluation of f with a graph (at the rebuilt ŷ_n: it serves both the
rebuild of y_n and the next vector–Jacobian product) and one vector–Jacobian product — the same work
as backprop's backward, with one graph of f alive at a time instead of all of them.

With ``need_t`` the sweep also gives the discrete dL/dt (the grid times are t[0] + k·h, t[-1] and the
interpolated outputs' t_i: it accumulates dL/dτ_k from f's time argument, the step lengths and the
interpolation, then sums them onto the t_i they come from). odeint_adjoint does not use it: it gives
dL/dt by the continuous formula, as odeint and its other modes do.
"""

from __future__ import annotations

import torch

from .options import SolveOptions
from .reversible import (
    _MF_BASE,
    MF_COUPLING,
    REVERSIBLE_METHODS,
    heun_grid,
    rk_increment,
    solve_reversible,
)
from .solve import times_as_floats
from .tableaus import TABLEAUS


def check_reversible(method: str, adj) -> None:
    """ValueError for a reversible method outside mode 'reversible' or the mode with another method.

    adj: AdjointOptions (its mode, and the backsolve sweep's method override).
    """
    mode = adj.mode
    if adj.method in REVERSIBLE_METHODS:
        raise ValueError(
            f"adjoint_options['method']={adj.method!r}: a reversible method cannot run the backsolve sweep "
            "(it carries two states); pick an explicit or implicit method there"
        )
    if mode == "reversible" and method not in REVERSIBLE_METHODS:
        raise ValueError(
            f"adjoint_options mode='reversible' needs an algebraically reversible method "
            f"({', '.join(REVERSIBLE_METHODS)}); got method={method!r}"
        )
    if mode != "reversible" and method in REVERSIBLE_METHODS:
        raise ValueError(
            f"method {method!r} carries (y, ŷ, f) from step to step, which mode={mode!r} cannot replay; "
            "use adjoint_options={'mode': 'reversible'} (the default for this method: exact, O(1) memory)"
        )


@torch.no_grad()
def reversible_forward(func, y0: torch.Tensor, t: torch.Tensor, opts: SolveOptions):
    """Solve without a graph; return (ys (n, *S), (y, ŷ) at the kept grid points (K, *S) each):
    ys equals `odeint`'s bit for bit."""
    result, kept_states = solve_reversible(func, y0, t, times_as_floats(t), opts, keep_yhat=True)
    return result.ys, kept_states


def _f_with_graph(func, tau_n: torch.Tensor, yh: torch.Tensor, need_t: bool):
    """f(τ_n, ŷ) with a graph from fresh leaves ŷ (and τ_n if t needs a gradient)."""
    leaf_y = yh.detach().requires_grad_()
    leaf_t = tau_n.detach().requires_grad_() if need_t else tau_n.detach()
    with torch.enable_grad():
        f = func(leaf_t, leaf_y)
    return f, leaf_y, leaf_t


def _vjp(f, leaf_y, leaf_t, params, cot, need_t: bool):
    """(cot·∂f/∂ŷ, cot·∂f/∂τ or None, [cot·∂f/∂θ]); unused inputs give None."""
    inputs = [leaf_y] + ([leaf_t] if need_t else []) + list(params)
    if not f.requires_grad:  # f reads neither ŷ, τ nor θ
        return None, None, [None] * len(params)
    grads = list(torch.autograd.grad(f, inputs, cot, allow_unused=True))
    g_y = grads.pop(0)
    g_t = grads.pop(0) if need_t else None
    return g_y, g_t, grads


@torch.no_grad()
def reversible_sweep(
    func, opts: SolveOptions, params, t: torch.Tensor, ys, kept_states, grad_ys, need_t: bool
):
    """dL/dy0, dL/dθ and dL/dt by the discrete adjoint of a reversible method, rebuilding states backwards.

    Args:
        func, opts: as given to the forward solve. params: tensors receiving gradients.
        t: (n,) output times. ys: (n, *S) the outputs. kept_states: (y, ŷ) (Heun) or (y, z)
            (McCallum–Foster) at the grid points the outputs need, from `reversible_forward`.
        grad_ys: (n, *S) dL/dy(t_i). need_t: also return dL/dt.

    Returns:
        (a0, param_grads, grad_t): dL/dy0 (shape S), one gradient per parameter, and dL/dt of
        shape (n,) in t's dtype (None unless need_t).
    """
    t_out = times_as_floats(t)
    tau, owner, out_pos, where = heun_grid(t.detach(), t_out, opts.step_size)
    g_tau = torch.zeros_like(tau)
    ys, yhats = kept_states  # at the kept grid points out_pos
    grad_kept, g_out_t = _interp_adjoint(t, tau, out_pos, where, ys, grad_ys, need_t, g_tau)
    grad_ys = grad_kept
    g_params = [torch.zeros_like(p) for p in params]

    def add_params(grads):
        for acc, g in zip(g_params, grads, strict=False):
            if g is not None:
                acc += g

    sweep = _heun_sweep if opts.method == "reversible_heun" else _mf_sweep
    a0 = sweep(func, opts, params, tau, out_pos, ys, yhats, grad_ys, need_t, g_tau, add_params)
    grad_t = None
    if need_t:
        grad_t = torch.zeros(len(t_out), dtype=torch.float64, device=tau.device).index_add_(
            0, owner, g_tau
        )
        grad_t = (grad_t + g_out_t).to(t.dtype)
    return a0, g_params, grad_t


def _interp_adjoint(t, tau, kept, where, ys_kept, grad_ys, need_t: bool, g_tau):
    """The outputs' cotangents moved onto the kept grid states through the linear interpolation
    y_i = y_k + s (y_{k+1} − y_k), s = (t_i − τ_k)/(τ_{k+1} − τ_k); adds ∂/∂τ to g_tau.

    Returns (grad_kept (K, *S), dL/dt_i through s (n,) float64)."""
    pos = {k: j for j, k in enumerate(kept)}
    grad_kept = torch.zeros(
        (len(kept), *grad_ys.shape[1:]), dtype=grad_ys.dtype, device=grad_ys.device
    )
    g_out_t = torch.zeros(len(where), dtype=torch.float64, device=tau.device)
    t64 = t.detach().to(torch.float64).reshape(-1)
    for i, (k, exact) in enumerate(where):
        if exact:
            grad_kept[pos[k]] += grad_ys[i]
            continue
        dt = tau[k + 1] - tau[k]
        s = (t64[i] - tau[k]) / dt
        grad_kept[pos[k]] += (1.0 - s).to(grad_ys.dtype) * grad_ys[i]
        grad_kept[pos[k + 1]] += s.to(grad_ys.dtype) * grad_ys[i]
        if need_t:
            g_s = (grad_ys[i] * (ys_kept[pos[k + 1]] - ys_kept[pos[k]])).sum().to(torch.float64)
            g_out_t[i] += g_s / dt
            g_tau[k] += g_s * (s - 1.0) / dt
            g_tau[k + 1] -= g_s * s / dt
    return grad_kept, g_out_t


def _heun_sweep(func, opts, params, tau, out_pos, ys, yhats, grad_ys, need_t, g_tau, add_params):
    """Reversible Heun's backward sweep; accumulates into g_tau / the parameters, returns dL/dy0."""
    n_steps = len(tau) - 1

    out_i = len(out_pos) - 1
    y, yh = ys[out_i], yhats[out_i]
    a_y, a_yh, a_f = grad_ys[out_i].clone(), torch.zeros_like(y), torch.zeros_like(y)
    fg, leaf_y, leaf_t = _f_with_graph(func, tau[n_steps], yh, need_t)
    for n in range(n_steps - 1, -1, -1):
        h = tau[n + 1] - tau[n]
        f1 = fg.detach()
        # y_{n+1} = y_n + h/2 (f_n + f_{n+1}): f_{n+1}'s cotangent, pushed through f to ŷ_{n+1}, τ, θ.
        g_y, g_t, g_p = _vjp(fg, leaf_y, leaf_t, params, a_f + (0.5 * h) * a_y, need_t)
        if g_y is not None:
            a_yh = a_yh + g_y
        if g_t is not None:
            g_tau[n + 1] += g_t
        add_params(g_p)
        # Rebuild (y_n, ŷ_n, f_n); at an output time take the stored forward values instead.
        at_output = n == out_pos[out_i - 1]
        yh0 = yhats[out_i - 1] if at_output else 2 * y - yh - h * f1
        fg, leaf_y, leaf_t = _f_with_graph(func, tau[n], yh0, need_t)
        f0 = fg.detach()
        y0 = ys[out_i - 1] if at_output else y - (0.5 * h) * (f0 + f1)
        if need_t:  # ŷ_{n+1} = 2y_n − ŷ_n + h f_n and y_{n+1} both move with h = τ_{n+1} − τ_n
            a_h = (a_yh * f0).sum() + 0.5 * (a_y * (f0 + f1)).sum()
            g_tau[n + 1] += a_h
            g_tau[n] -= a_h
        a_y, a_yh, a_f = a_y + 2 * a_yh, -a_yh, h * a_yh + (0.5 * h) * a_y
        y, yh = y0, yh0
        if at_output:
            out_i -= 1
            a_y = a_y + grad_ys[out_i]
    # ŷ_0 = y_0 and f_0 = f(t_0, y_0): all three cotangents land on y0.
    g_y, g_t, g_p = _vjp(fg, leaf_y, leaf_t, params, a_f, need_t)
    a0 = a_y + a_yh + (g_y if g_y is not None else 0)
    if g_t is not None:
        g_tau[0] += g_t
    add_params(g_p)
    return a0


def _mf_sweep(func, opts, params, tau, out_pos, ys, zs, grad_ys, need_t, g_tau, add_params):
    """McCallum–Foster's backward sweep (state (y, z)); same contract as `_heun_sweep`.

    Per step: P = Ψ_{−h}(t_{n+1}, y_{n+1}) and Q = Ψ_h(t_n, z_n) are evaluated once, with a graph;
    their values rebuild z_n = z_{n+1} + P and y_n = (y_{n+1} − (1 − λ) z_n − Q) / λ, and their
    graphs give the two vector–Jacobian products of the step's chain rule.
    """
    tab = TABLEAUS[_MF_BASE[opts.method]]
    lam = MF_COUPLING
    out_i = len(out_pos) - 1
    y, z = ys[out_i], zs[out_i]
    a_y, a_z = grad_ys[out_i].clone(), torch.zeros_like(y)
    for n in range(len(tau) - 2, -1, -1):
        t0 = tau[n].detach().requires_grad_(need_t)
        t1 = tau[n + 1].detach().requires_grad_(need_t)
        y1 = y.detach().requires_grad_()
        with torch.enable_grad():
            h = t1 - t0
            P = rk_increment(func, tab, t1, -h, y1)
        # z_{n+1} = z_n − P(y_{n+1}): y_{n+1}'s total cotangent ā_y = a_y − (∂P/∂y)ᵀ a_z.
        g_y, g_t0, g_t1, g_p = _vjp_many(P, y1, t0, t1, params, a_z, need_t)
        a_ybar = a_y - g_y if g_y is not None else a_y
        add_params([None if g is None else -g for g in g_p])
        if need_t:
            g_tau[n] -= g_t0 if g_t0 is not None else 0.0
            g_tau[n + 1] -= g_t1 if g_t1 is not None else 0.0
        at_output = n == out_pos[out_i - 1]
        z0 = zs[out_i - 1] if at_output else z + P.detach()
        z0 = z0.detach().requires_grad_()
        with torch.enable_grad():
            Q = rk_increment(func, tab, t0, h, z0)
        # y_{n+1} = λ y_n + (1 − λ) z_n + Q(z_n)
        g_z, g_t0, g_t1, g_p = _vjp_many(Q, z0, t0, t1, params, a_ybar, need_t)
        add_params(g_p)
        if need_t:
            g_tau[n] += g_t0 if g_t0 is not None else 0.0
            g_tau[n + 1] += g_t1 if g_t1 is not None else 0.0
        y0 = ys[out_i - 1] if at_output else (y - (1.0 - lam) * z0.detach() - Q.detach()) / lam
        a_y, a_z = lam * a_ybar, a_z + (1.0 - lam) * a_ybar + (g_z if g_z is not None else 0.0)
        y, z = y0, z0.detach()
        if at_output:
            out_i -= 1
            a_y = a_y + grad_ys[out_i]
    return a_y + a_z  # y_0 = z_0 = y(t[0])


def _vjp_many(out, leaf, t0, t1, params, cot, need_t: bool):
    """(cot·∂out/∂leaf, ·∂/∂t0, ·∂/∂t1 (None unless need_t), [·∂/∂θ]); unused inputs give None."""
    inputs = [leaf] + ([t0, t1] if need_t else []) + list(params)
    if not out.requires_grad:
        return None, None, None, [None] * len(params)
    grads = list(torch.autograd.grad(out, inputs, cot, allow_unused=True))
    g_leaf = grads.pop(0)
    g_t0, g_t1 = (grads.pop(0), grads.pop(0)) if need_t else (None, None)
    return g_leaf, g_t0, g_t1, grads
