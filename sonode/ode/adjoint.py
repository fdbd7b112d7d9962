"""Gradients of ODE solutions by the adjoint method, built for dense observations (docs/design.md).

`odeint_adjoint` returns exactly what `odeint` returns; only the backward pass differs from
backpropagation through the solver. Modes (``adjoint_options={"mode": ...}``); the default is
torchdiffeq's, so a torchdiffeq call behaves as there (docs/engine.md, "Which adjoint by default"):

``"backsolve"`` (default wherever it applies) — torchdiffeq's *continuous* adjoint (docs/design.md),
see `adjoint_backsolve.py`: O(1) memory, gradient accurate to the solver's tolerance.

``"checkpoint"`` (pass it explicitly; the default only for the implicit methods and lawson_rk4, which
backsolve cannot integrate) — the *discrete* adjoint. The forward solve runs without a graph and keeps
the state at the start of every ``checkpoint_every``-th accepted step. The backward pass is one sweep
from the last piece to the first: each piece of steps is re-run from its stored state with a graph
(``replay_step``: the same stages and dense-output interpolant as the forward solve), and one
vector–Jacobian product maps the cotangents of [the piece's outputs, its end state] to the piece's
start state and the parameters. The gradient is therefore the gradient of the numbers the solver
produced — equal to backprop through the solver up to round-off, for fixed-step and adaptive methods
alike (for adaptive ones: of the accepted step sequence; step-size choices are not differentiated,
exactly as with backprop). Memory: n_steps / checkpoint_every states plus one piece's graph, instead
of backprop's graph of every step. Cost: one extra forward solve without a graph — about 1.25–1.3x
the time of backprop for a compute-bound f (benchmarks/README.md). sonode's audio model asks for it.

``"reversible"`` (the default for the reversible methods "reversible_heun" / "reversible_rk4") — runs
the method's algebraic inverse backwards: backprop's gradient (y0, θ) at O(1) memory in the number
of steps, see `adjoint_reversible.py` and docs/reversible.md.

Gradients with respect to the output times t (not for lawson_rk4) use the continuous formula
dL/dt_i = <dL/dy(t_i), f(t_i, y(t_i))> for i >= 1 and dL/dt_0 = -<a(t_0), f(t_0, y_0)>, where a(t_0)
is the adjoint at t_0 without the direct term dL/dy(t_0); it ignores that moving t_i also moves a
fixed-step grid, so it differs from backprop through a fixed-step solve by the discretisation error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .adjoint_backsolve import backsolve_sweep, check_backsolve_supported
from .adjoint_checkpoint import checkpoint_sweep, checkpointed_forward
from .adjoint_options import AdjointOptions
from .adjoint_params import held_fixed, leaf_substitutes
from .adjoint_reversible import check_reversible, reversible_forward, reversible_sweep
from .events import solve_until_event
from .interface import ADJOINT_CALLBACKS, finish, prepare, warn_unused_callbacks
from .options import SolveOptions
from .records import time_arg
from .solve import solve

ODEFunc = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def odeint_adjoint(
    func: ODEFunc,
    y0,
    t: torch.Tensor,
    *,
    rtol=1e-7,
    atol=1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    event_fn=None,
    adjoint_rtol=None,
    adjoint_atol=None,
    adjoint_method: str | None = None,
    adjoint_options: dict[str, Any] | None = None,
    adjoint_params: Sequence[torch.Tensor] | None = None,
):
    """Solve dy/dt = func(t, y) like `odeint`, with gradients by the adjoint method (torchdiffeq's signature).

    Args:
        func: vector field ``func(t, y)`` as for `odeint`. For "lawson_rk4" it returns only the
            nonlinear part N(t, y). Optional callbacks as for odeint, plus callback_step_adjoint /
            callback_accept_step_adjoint / callback_reject_step_adjoint(t0, state, dt) called on
            the backward pass (per replayed step in checkpoint mode, per step of the sweep in backsolve).
        y0: initial state, shape (*S) — typically (batch, d) — or a tuple of tensors.
        t: output times, shape (n,), strictly monotone; t[0] is the time of y0.
        rtol, atol, method, options, event_fn: as for `odeint`.
        adjoint_rtol, adjoint_atol, adjoint_method: the backward solver (backsolve mode; default: as forward).
        adjoint_options: see `AdjointOptions` (mode, checkpoint_every, and the backward solver's options).
        adjoint_params: tensors that func reads and that should receive gradients. Default: the
            parameters of func if it is an nn.Module; required for a plain callable (pass () if it
            reads none). The parameters of ``options["linear"]`` (lawson_rk4) are always added (an
            nn.Module's parameters, else its tensor attributes that require grad, e.g.
            ``DenseLinear.A``), since the solver itself applies that operator. Tensors that do not
            require grad are treated as constants.

    Returns:
        Tensor of shape (n, *S) (a tuple for a tuple y0): the same values as ``odeint(func, y0, t, ...)``;
        with event_fn, (event_t, ys) as odeint.

    Gradients flow to y0, the adjoint parameters and t (continuous formula, see the module docstring).
    Double backward is not supported.
    """
    if event_fn is not None:

        def to_event(t_event):
            return odeint_adjoint(
                func,
                y0,
                t_event,
                rtol=rtol,
                atol=atol,
                method=method,
                options=options,
                adjoint_rtol=adjoint_rtol,
                adjoint_atol=adjoint_atol,
                adjoint_method=adjoint_method,
                adjoint_options=adjoint_options,
                adjoint_params=adjoint_params,
            )

        return solve_until_event(
            func,
            y0,
            t,
            rtol=rtol,
            atol=atol,
            method=method,
            options=options,
            event_fn=event_fn,
            adjoint=to_event,
        )
    params = _collect_params(func, adjoint_params, options)
    problem = prepare(func, y0, rtol, atol, options)
    opts = SolveOptions.build(method, problem.rtol, problem.atol, problem.options)
    adj = AdjointOptions.from_dict(
        adjoint_options,
        opts.spec.default_adjoint_mode,
        opts.method,
        method=adjoint_method,
        rtol=adjoint_rtol,
        atol=adjoint_atol,
    )
    check_reversible(opts.method, adj)
    warn_unused_callbacks(func, opts)
    if not isinstance(t, torch.Tensor):  # a list of times, as odeint accepts
        t = torch.tensor(t, dtype=torch.float64)
    if adj.mode == "checkpoint" and not opts.spec.replayable:
        raise ValueError(
            f"odeint_adjoint: mode='checkpoint' cannot replay the steps of {opts.method!r}; use mode='backsolve'"
        )
    if adj.mode == "checkpoint" and opts.adaptive and opts.per_sample:
        raise ValueError(
            "odeint_adjoint: mode='checkpoint' replays shared steps and does not support per_sample=True; "
            "use adjoint_options={'mode': 'backsolve'} (its backward sweep uses shared steps)"
        )
    if adj.mode == "backsolve":
        check_backsolve_supported(opts, adj)
    if not opts.spec.time_gradient and t.requires_grad:
        raise ValueError(
            f"odeint_adjoint: gradients w.r.t. t are not available for {opts.method!r} "
            "(dy/dt = L y + N needs L y, and the linear operator only provides exp(L h)); pass t.detach()"
        )
    # Taping the last piece in the forward only pays off if a backward will follow.
    y_flat = problem.y0
    will_backprop = torch.is_grad_enabled() and (
        y_flat.requires_grad or t.requires_grad or bool(params)
    )
    if any(callable(getattr(problem.func, n, None)) for n in ADJOINT_CALLBACKS):
        will_backprop = False  # replay every piece, so the backward callback sees every step
    spec = _Spec(
        func=problem.func,
        opts=opts,
        adj=adj,
        tape_tail=will_backprop,
        params=params,
        fixed=leaf_substitutes(params),
        shapes=problem.shapes,
    )
    ys = _OdeintAdjoint.apply(y_flat, t, spec, *params)
    return finish(ys, problem, y0)


def _collect_params(func: ODEFunc, adjoint_params, options) -> list[torch.Tensor]:
    """The tensors that receive gradients: explicit list or func's parameters, plus the linear operator's."""
    if adjoint_params is None:
        if not isinstance(func, nn.Module):
            raise ValueError(
                f"odeint_adjoint: func is a plain callable ({type(func).__name__}), so its parameters are unknown; "
                "pass adjoint_params=[tensors func reads] (or () if none), or make func an nn.Module"
            )
        params = list(func.parameters())
    else:
        params = list(adjoint_params)
        bad = [type(p).__name__ for p in params if not isinstance(p, torch.Tensor)]
        if bad:
            raise ValueError(f"adjoint_params must be tensors; got {bad}")
    params += _linear_params((options or {}).get("linear"))
    unique: dict[int, torch.Tensor] = {}
    for p in params:
        if p.requires_grad:
            unique.setdefault(id(p), p)
    return list(unique.values())


def _linear_params(linear) -> list[torch.Tensor]:
    """Tensors of lawson_rk4's linear operator that require grad: an nn.Module's parameters, else
    its tensor attributes (e.g. ``DenseLinear.A``) — the solver applies L itself, so its gradient
    must not be silently dropped."""
    if linear is None:
        return []
    if isinstance(linear, nn.Module):
        return list(linear.parameters())
    return [
        v
        for v in getattr(linear, "__dict__", {}).values()
        if isinstance(v, torch.Tensor) and v.requires_grad
    ]


@dataclass
class _Spec:
    """Non-tensor inputs of the autograd Function, plus what its forward leaves for the backward."""

    func: ODEFunc
    opts: Any
    adj: AdjointOptions
    tape_tail: bool
    params: list = ()  # the adjoint params as given (held_fixed finds them in func by identity)
    fixed: dict = None  # leaf_substitutes(params): computed params, held fixed (adjoint_params.py)
    shapes: Any = None  # a tuple state's parts' shapes (the user's adjoint norm sees them)
    # Filled by the forward (setup_context style forwards cannot write to ctx themselves).
    checkpoints: Any = None


class _OdeintAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(
        y0: torch.Tensor, t: torch.Tensor, spec: _Spec, *params: torch.Tensor
    ) -> torch.Tensor:
        if spec.adj.mode == "checkpoint":
            every = spec.adj.checkpoint_every
            with held_fixed(spec.func, spec.params, spec.fixed, check=False):  # a taped piece
                ys, spec.checkpoints = checkpointed_forward(
                    spec.func, y0, t, spec.opts, every, spec.tape_tail
                )
            return ys
        if spec.adj.mode == "reversible":
            ys, spec.checkpoints = reversible_forward(spec.func, y0, t, spec.opts)
            return ys
        with torch.no_grad():
            return solve(spec.func, y0, t, spec.opts).ys

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, t, spec, *params = inputs
        ctx.spec = spec
        ctx.save_for_backward(t, output, *params)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys: torch.Tensor):
        spec: _Spec = ctx.spec
        t, ys, *_ = ctx.saved_tensors
        # computed params (e.g. from another solve) are held fixed while func is differentiated
        with held_fixed(spec.func, spec.params, spec.fixed) as params:
            return _backward(ctx, spec, t, ys, params, grad_ys)


def _backward(ctx, spec: _Spec, t, ys, params, grad_ys):
    """The sweep of spec.adj.mode: (dL/dy0, dL/dt, None, *dL/dparams) as autograd wants them."""
    need_y0, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    t64 = t.detach().to(torch.float64)
    if spec.adj.mode == "reversible":  # exact discrete gradient in y0 and θ
        # dL/dt by the continuous formula, as odeint and the other modes (not the discrete grid's)
        a0, param_grads, _ = reversible_sweep(
            spec.func, spec.opts, params, t, ys, spec.checkpoints, grad_ys, False
        )
    elif spec.adj.mode == "checkpoint":
        a0, param_grads = checkpoint_sweep(
            spec.func,
            spec.opts,
            spec.checkpoints,
            params,
            t64,
            grad_ys,
            need_state=need_y0 or need_t,
        )
    else:
        a0, param_grads = backsolve_sweep(
            spec.func, spec.opts, spec.adj, params, t64, ys, grad_ys, spec.shapes
        )
    if need_t and a0 is None:  # the sweep skipped the state cotangent: t needs it for t[0]
        a0 = torch.zeros_like(ys[0])
    grad_t = _time_gradient(spec.func, t, ys, grad_ys, a0) if need_t else None
    grad_y0 = a0 if need_y0 else None
    return (grad_y0, grad_t, None, *param_grads)


def _time_gradient(
    func: ODEFunc, t: torch.Tensor, ys: torch.Tensor, grad_ys: torch.Tensor, a0: torch.Tensor
):
    """dL/dt (shape (n,), dtype of t) by the continuous formula of the module docstring."""
    t64 = t.detach().to(torch.float64)
    grad_t = torch.empty(len(t), dtype=torch.float64, device=t.device)
    with torch.no_grad():
        for i in range(len(t)):
            f_i = func(time_arg(float(t64[i]), ys[i]), ys[i])
            if i == 0:
                # a0 includes the direct term grad_ys[0]; y(t_0) = y0 itself does not move with t_0.
                grad_t[0] = -((a0 - grad_ys[0]) * f_i).sum()
            else:
                grad_t[i] = (grad_ys[i] * f_i).sum()
    return grad_t.to(t.dtype)
