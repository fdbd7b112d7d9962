"""The continuous adjoint (docs/design.md, "Adjoints"): one backward sweep of [z, a, g_θ].

Used by `odeint_adjoint(..., adjoint_options={"mode": "backsolve"})`. From t[-1] back to t[0] we solve

    dz/dt = f(t, z),    da/dt = -aᵀ ∂f/∂z,    dg/dt = -aᵀ ∂f/∂θ,
    z(t[-1]) = y(t[-1]),  a(t[-1]) = dL/dy(t[-1]),  g(t[-1]) = 0,

and at every earlier output time t_i add dL/dy(t_i) to a; at t[0], a = dL/dy0 and g = dL/dθ.
Each evaluation costs one f evaluation plus one vector–Jacobian product (torch.autograd.grad).

It is a single sweep: adaptive steps are clipped to land on each t_i and the step size carries
over from one interval to the next (one initial-step search for the whole sweep), so dense
observations cost about one step per output interval, never a fresh solve per interval.

Error (why this is not the default): z is re-computed backwards, and explicit Runge–Kutta methods
are not time-reversible, so z drifts from the forward trajectory within each interval, and the
adjoint is a discretisation of the continuous adjoint ODE rather than the derivative of the
forward solver's numbers. The gradient therefore differs from backprop through the solver by an
amount of the order of the solver tolerance (adaptive) or of the discretisation error (fixed-step);
for dissipative or oscillatory dynamics over long intervals the backward z can drift badly. Two
mitigations here: z is reset to the forward solution y(t_i) at every output time (we hold the
outputs anyway), and with ``adjoint_options={"norm": "seminorm"}`` the adaptive local error is
measured on [z, a] only (g does not feed back into the dynamics, so controlling it only adds steps;
Kidger et al. 2021, "Hey, that's not an ODE"); the default norm covers [z, a, g], as torchdiffeq's.
Memory is O(1) in the number of steps. Use mode "checkpoint" for exact gradients.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from .adaptive import PIController, initial_step, underflow_error
from .fixed import fixed_step, plan_steps
from .interface import flat_to_shapes
from .methods import get_method
from .options import SolveOptions
from .records import time_arg
from .rk import error_ratio, rk_stages


def check_backsolve_supported(opts: SolveOptions, adj) -> None:
    """ValueError for the configurations the backsolve sweep cannot handle."""
    for spec in (opts.spec, get_method(adj.method) if adj.method else None):
        if spec is not None and not spec.backsolve:
            raise ValueError(
                f"adjoint_options mode='backsolve' does not support the implicit methods ({spec.name!r}: Newton on the "
                "augmented adjoint state would need its Jacobian); use mode='checkpoint' (the default: exact gradients)"
            )
        if spec is not None and spec.needs_linear:
            raise ValueError(
                f"adjoint_options mode='backsolve' does not support method {spec.name!r} (the augmented adjoint "
                "state has no exponential integrator); use mode='checkpoint' (the default)"
            )


def _backward_options(opts: SolveOptions, adj, norm) -> SolveOptions:
    """The backward sweep's options: adjoint method/rtol/atol/options if given, else the forward's
    (torchdiffeq's rule: the forward options carry over, except norm, when the method is the same)."""
    method = adj.method or opts.method
    extra = dict(adj.solver_options or {})
    extra.pop("norm", None)
    if method == opts.method and not extra:
        base = dataclasses.replace(opts, norm=None, per_sample=False, step_t=None, jump_t=None)
    else:
        base = SolveOptions.build(method, opts.rtol, opts.atol, extra)

    def scalar(tol):  # per-component tolerances do not fit the augmented state: take the tightest
        return float(tol.min()) if isinstance(tol, torch.Tensor) else float(tol)

    return dataclasses.replace(
        base,
        rtol=scalar(opts.rtol if adj.rtol is None else adj.rtol),
        atol=scalar(opts.atol if adj.atol is None else adj.atol),
        norm=norm,
    )


def _adjoint_norm(choice, n_z: int, param_shapes, state_shape, tuple_shapes=None):
    """The norm of the backward error: over [z, a, g] (default, torchdiffeq's), [z, a] ("seminorm"),
    or the user's norm((t, *z, *a, *param_grads)) in the user's layout, as torchdiffeq calls it: z
    and a in the state's shape (one tensor per part of a tuple state), each gradient in its
    parameter's shape; t is a 0-d zero (dL/dt is not part of sonode's sweep)."""
    if choice is None:
        return None
    if choice == "seminorm":
        return lambda x: torch.linalg.vector_norm(x[: 2 * n_z]) / math.sqrt(max(2 * n_z, 1))

    def layout(flat):
        if tuple_shapes is not None:
            return flat_to_shapes(flat, (), tuple_shapes)
        return (flat.reshape(state_shape),)

    def user(x):
        parts, offset = [x.new_zeros(()), *layout(x[:n_z]), *layout(x[n_z : 2 * n_z])], 2 * n_z
        for shape in param_shapes:
            n = math.prod(shape)
            parts.append(x[offset : offset + n].reshape(shape))
            offset += n
        return choice(tuple(parts))

    return user


class _Augmented:
    """The augmented vector field on a flat state [z, a, g_θ] (z, a of the state's shape)."""

    def __init__(
        self, func: Callable, params: list[torch.Tensor], shape: torch.Size, dtype: torch.dtype
    ):
        self.func, self.params, self.shape = func, params, shape
        self.n_z = math.prod(shape)
        self.dtype = dtype
        for name in ("callback_step", "callback_accept_step", "callback_reject_step"):
            user = getattr(func, name + "_adjoint", None)
            if callable(user):  # the backward pass's callbacks see the augmented state [z, a, g]
                setattr(self, name, user)

    def __call__(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        n = self.n_z
        z, a = state[:n].view(self.shape), state[n : 2 * n].view(self.shape)
        with torch.enable_grad():
            z = z.detach().requires_grad_()
            f = self.func(t, z)
            inputs = [z, *self.params]
            if f.requires_grad:
                vjps = torch.autograd.grad(f, inputs, -a, allow_unused=True)
            else:  # f ignores z and θ: the adjoint and g do not move
                vjps = [None] * len(inputs)
        parts = [f.detach().reshape(-1)]
        for x, g in zip(inputs, vjps, strict=False):
            if g is None:
                g = torch.zeros(x.numel(), dtype=self.dtype, device=state.device)
            parts.append(g.reshape(-1).to(self.dtype))
        return torch.cat(parts)


class _Stepper:
    """Takes the sweep interval by interval, carrying the step size and controller state across."""

    def __init__(self, field: _Augmented, back: SolveOptions):
        self.field, self.back = field, back
        self.h: float | None = back.first_step if back.adaptive else None
        self.n_attempts = 0
        if back.adaptive and back.spec.solver is None:  # RK pairs: the sweep's own step control
            self.ctrl = PIController(back, back.tableau.error_order)
            self.prev_ratio, self.after_reject = 1.0, False

    def interval(self, ta: float, tb: float, state: torch.Tensor) -> torch.Tensor:
        if (
            self.back.spec.solver is not None
        ):  # a registered whole-solve method (multistep, scipy, ...)
            from .solve import solve

            return solve(self.field, state, [ta, tb], self.back).ys[-1]
        if not self.back.adaptive:
            plan = plan_steps(
                self.field, state, torch.tensor([ta, tb], dtype=torch.float64), [ta, tb], self.back
            )
            callback = getattr(self.field, "callback_step", None)
            for t0, h, t1 in zip(plan.t0, plan.h, plan.t1, strict=False):
                state = fixed_step(self.field, self.back, t0, h, state, t1, callback)
            return state
        return self._adaptive_interval(ta, tb, state)

    def _adaptive_interval(self, ta: float, tb: float, state: torch.Tensor) -> torch.Tensor:
        back, tab = self.back, self.back.tableau
        cb_step, cb_accept, cb_reject = (
            getattr(self.field, name, None)
            for name in ("callback_step", "callback_accept_step", "callback_reject_step")
        )
        direction = 1.0 if tb > ta else -1.0
        t = ta
        k1 = self.field(time_arg(t, state), state)  # a jumped at ta: FSAL cannot carry over
        if self.h is None:
            self.h = initial_step(
                self.field, t, state, k1, direction, tab.order, back.rtol, back.atol, norm=back.norm
            )
        h = min(self.h, back.max_step)
        while True:
            if self.n_attempts >= back.max_steps:
                raise RuntimeError(
                    f"backsolve adjoint: max_steps={back.max_steps} reached at t={t!r}; raise options['max_steps'], "
                    "loosen adjoint_options rtol/atol, or use mode='checkpoint'"
                )
            self.n_attempts += 1
            landing = direction * (t + direction * h - tb) >= 0.0
            hh = tb - t if landing else direction * h
            if abs(hh) <= 4.0 * math.ulp(max(abs(t), abs(tb))):
                raise underflow_error(t, hh, "in the backsolve adjoint sweep")
            if cb_step is not None:
                cb_step(time_arg(t, state), state, time_arg(hh, state))
            times = [time_arg(t + c * hh, state) for c in tab.c]
            new, ks = rk_stages(self.field, tab, state, hh, times, k1)
            ratio = float(
                error_ratio(
                    tab, hh, ks, state, new, back.rtol, back.atol, per_sample=False, norm=back.norm
                )
            )
            if not ratio <= 1.0:
                if cb_reject is not None:
                    cb_reject(time_arg(t, state), state, time_arg(hh, state))
                h = abs(hh) * self.ctrl.rejected_factor(ratio)
                self.after_reject = True
                continue
            if cb_accept is not None:
                cb_accept(time_arg(t, state), state, time_arg(hh, state))
            factor = self.ctrl.accepted_factor(ratio, self.prev_ratio, self.after_reject)
            proposed = min(back.max_step, abs(hh) * factor)
            # A step shortened to land on tb says little about the next one: keep the longer proposal.
            h = max(proposed, h) if landing else proposed
            self.prev_ratio, self.after_reject = max(ratio, 1e-10), False
            t, state, k1 = t + hh, new, ks[-1]
            if landing:
                self.h = h
                return state


def backsolve_sweep(
    func,
    opts: SolveOptions,
    adj,
    params,
    t64: torch.Tensor,
    ys: torch.Tensor,
    grad_ys: torch.Tensor,
    tuple_shapes=None,
):
    """dL/dy0 and dL/dθ by the continuous adjoint, one sweep from t[-1] to t[0].

    Args:
        func: f(t, y); opts: the forward options; adj: AdjointOptions (method/rtol/atol overrides).
        params: tensors receiving gradients; t64: (n,) float64 output times.
        ys: (n, *S) forward solution; grad_ys: (n, *S) dL/dy(t_i).
        tuple_shapes: the parts' shapes of a tuple state (S is then their flat concatenation).

    Returns:
        (a0, param_grads): a0 of shape S, one gradient per parameter (its shape and dtype).
    """
    shape = ys.shape[1:]
    field = _Augmented(func, list(params), shape, ys.dtype)
    choice = (adj.solver_options or {}).get("norm")
    norm = _adjoint_norm(choice, field.n_z, [p.shape for p in params], shape, tuple_shapes)
    stepper = _Stepper(field, _backward_options(opts, adj, norm))
    n_theta = sum(p.numel() for p in params)
    t_out = t64.tolist()
    with torch.no_grad():
        g = torch.zeros(n_theta, dtype=ys.dtype, device=ys.device)
        state = torch.cat([ys[-1].reshape(-1), grad_ys[-1].reshape(-1), g])
        for i in range(len(t_out) - 1, 0, -1):
            state = stepper.interval(t_out[i], t_out[i - 1], state)
            # Reset z to the forward solution (we hold it anyway: less drift), add the direct term to a.
            a = state[field.n_z : 2 * field.n_z] + grad_ys[i - 1].reshape(-1)
            state = torch.cat([ys[i - 1].reshape(-1), a, state[2 * field.n_z :]])
    a0 = state[field.n_z : 2 * field.n_z].reshape(shape)
    grads, offset = [], 2 * field.n_z
    for p in params:
        grads.append(state[offset : offset + p.numel()].reshape(p.shape).to(p.dtype))
        offset += p.numel()
    return a0, grads
