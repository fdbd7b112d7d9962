"""The discrete adjoint by checkpointing: sparse stored states, one backward sweep of replayed pieces.

Forward (no graph): the solve keeps the state at the start of every ``every``-th accepted step.
Backward: for the pieces of ``every`` steps, last piece first, re-run the piece from its stored
state with a graph (`replay_step`: bit-for-bit the forward arithmetic, dense outputs included),
then ONE ``torch.autograd.grad`` maps the cotangents [dL/dy(t_i) of the piece's outputs, a(piece
end)] to a(piece start) and the piece's contribution to dL/dθ. The result is the exact gradient of
the solver's output (= backprop through the solver to round-off) with memory
O(n_steps / every) states + one piece's graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .fixed import fixed_outputs, fixed_step, plan_steps
from .options import SolveOptions
from .records import check_finite_outputs, time_arg
from .solve import replay_step, solve, times_as_floats


@dataclass
class Checkpoints:
    """What the forward leaves for the backward sweep.

    t0, h: start time and signed length of every accepted step (python floats, units of t).
    t1: (fixed-step) end time of every step, as the forward used it (None: t0 + h).
    out_index: (n_steps + 1) ints; outputs [out_index[i], out_index[i+1]) belong to step i.
    kept: (n_pieces, *S) the state at the start of steps 0, every, 2*every, ...
    every: accepted steps per piece.
    tail: (start leaf, outputs with graph) of the last piece if the forward taped it; used once.
    """

    t0: list[float]
    h: list[float]
    out_index: list[int]
    kept: torch.Tensor
    every: int
    tail: tuple | None = None
    t1: list[float] | None = None
    t_out: list[float] | None = None


@torch.no_grad()
def checkpointed_forward(
    func, y0: torch.Tensor, t: torch.Tensor, opts: SolveOptions, every: int, tape_tail: bool
):
    """Solve without a graph; return (ys (n, *S), Checkpoints). ys equals ``odeint``'s bit for bit.

    tape_tail: (fixed-step) record the last piece's graph now, so the backward need not replay it.
    """
    if opts.adaptive:
        # Adaptive solves take far fewer steps than there are audio outputs, so the engine's full
        # record (every step's state) is affordable transiently; we keep every k-th state.
        result = solve(func, y0, t, opts, record_steps=True)
        rec = result.steps
        kept = rec.y0[::every].clone()
        return result.ys, Checkpoints(
            rec.t0.tolist(), rec.h.tolist(), rec.out_index.tolist(), kept, every
        )
    return _fixed_forward(func, y0, t, opts, every, tape_tail)


def _fixed_forward(
    func, y0: torch.Tensor, t: torch.Tensor, opts: SolveOptions, every: int, tape_tail: bool
):
    """The fixed-step solve of ``solve_fixed`` keeping only every k-th step state.

    ``solve(record_steps=True)`` holds every step's state, O(n_steps) memory even when the loss
    only reads the end state; this walks the same plan (``plan_steps``) with the same
    ``fixed_step`` and ``fixed_outputs``, so the outputs are identical (tests/ode/test_adjoint.py
    checks it bit for bit). With ``tape_tail`` the last piece runs with a graph (at most ``every``
    steps of it, so memory stays bounded): the backward then skips one replay, which matters when
    there are few pieces.
    """
    t_out = times_as_floats(t)
    solve(
        func, y0, t_out[:1], opts
    )  # validates y0 the engine's way; a one-point solve does no work
    plan = plan_steps(func, y0, t, t_out, opts)
    n_steps = len(plan.h)
    tail_first = (n_steps - 1) // every * every if tape_tail and n_steps else -1
    ys, kept = [y0], []
    y = y0
    callback = getattr(func, "callback_step", None)
    for step, (t0, h, t1) in enumerate(zip(plan.t0, plan.h, plan.t1, strict=False)):
        if step % every == 0:
            kept.append(y)
        if step == tail_first:
            y = tail_start = y.detach().requires_grad_()
            if step == 0:
                ys[0] = tail_start  # output 0 is the start of step 0
        with torch.set_grad_enabled(step >= tail_first >= 0):
            y_start = y
            y = fixed_step(func, opts, t0, h, y, t1, callback)
            lo, hi = max(plan.out_index[step], 1), plan.out_index[step + 1]
            if hi > lo:
                ys.extend(fixed_outputs(func, opts, t0, h, t1, y_start, y, t_out[lo:hi]))
    tail = None
    if tail_first >= 0:
        lo = plan.out_index[tail_first]
        with torch.enable_grad():
            tail = (tail_start, torch.stack(ys[lo:]) if len(ys) > lo else None)
    ys = torch.stack(ys)  # no_grad: the returned values carry no graph
    check_finite_outputs(ys, t_out)
    kept_t = torch.stack(kept) if kept else y0.new_empty((0, *y0.shape))
    return ys, Checkpoints(plan.t0, plan.h, plan.out_index, kept_t, every, tail, plan.t1, t_out)


def checkpoint_sweep(
    func,
    opts: SolveOptions,
    cps: Checkpoints,
    params,
    t64: torch.Tensor,
    grad_ys: torch.Tensor,
    need_state: bool,
):
    """One backward sweep over the pieces, last first.

    Args:
        params: tensors receiving gradients (require grad). t64: (n,) float64 output times.
        grad_ys: (n, *S) dL/dy(t_i). need_state: whether dL/dy0 is wanted.

    Returns:
        (a0, param_grads): a0 = dL/dy0 including the direct term of output 0 (None if not needed
        and not computed), and one gradient per parameter.
    """
    n_steps = len(cps.h)
    param_grads = [torch.zeros_like(p) for p in params]
    if n_steps == 0:  # t has one entry: ys[0] is y0 itself
        return grad_ys[0], param_grads
    a = None  # cotangent of the current piece's end state; None: nothing comes after the last step
    for piece in reversed(range(len(cps.kept))):
        first, stop = piece * cps.every, min((piece + 1) * cps.every, n_steps)
        taped = cps.tail is not None  # the last piece, taped by the forward (used once)
        if taped:
            (start, outs), cps.tail = cps.tail, None
        else:
            start = cps.kept[piece].detach().requires_grad_(piece > 0 or need_state)
        inputs = ([start] if start.requires_grad else []) + list(params)
        if not inputs:
            return None, param_grads
        with torch.enable_grad():
            if not taped:
                y, outs = _replay_piece(func, opts, cps, first, stop, start, t64)
            outputs, cotangents = [], []
            lo, hi = cps.out_index[first], cps.out_index[stop]
            # A piece of sub-steps between two output times has no outputs; output 0 of piece 0 is
            # y0 itself, which carries no graph when y0 does not require grad.
            if hi > lo and outs is not None and outs.requires_grad:
                outputs.append(outs)
                cotangents.append(grad_ys[lo:hi])
            if a is not None and y.requires_grad:
                outputs.append(y)
                cotangents.append(a)
            if not outputs:  # nothing of this piece depends on its start or the parameters
                grads = [None] * len(inputs)
            else:
                grads = torch.autograd.grad(outputs, inputs, cotangents, allow_unused=True)
        if start.requires_grad:
            a, grads = grads[0], grads[1:]
            if a is None:
                a = torch.zeros_like(start)
        for acc, g in zip(param_grads, grads, strict=False):
            if g is not None:
                acc += g
    return a, param_grads


def _replay_piece(
    func,
    opts: SolveOptions,
    cps: Checkpoints,
    first: int,
    stop: int,
    y: torch.Tensor,
    t64: torch.Tensor,
):
    """Re-run steps [first, stop) from y with a graph; return (end state, (k, *S) outputs of the piece)."""
    outs = []
    callback = getattr(func, "callback_step_adjoint", None)
    if opts.adaptive:
        # every replayed step is an accepted one: callback_step_adjoint then callback_accept_step_adjoint
        accepted = getattr(func, "callback_accept_step_adjoint", None)
        for i in range(first, stop):
            lo, hi = cps.out_index[i], cps.out_index[i + 1]
            y_start = y
            if callback is not None:  # each replayed step (pieces last first, in order within one)
                callback(time_arg(cps.t0[i], y), y, time_arg(cps.h[i], y))
            y, y_out = replay_step(func, opts, cps.t0[i], cps.h[i], y, t64[lo:hi])
            if accepted is not None:
                accepted(time_arg(cps.t0[i], y_start), y_start, time_arg(cps.h[i], y_start))
            if hi > lo:
                outs.append(y_out)
        return y, torch.cat(outs) if outs else None
    # The step is replayed with `fixed_step` and its outputs with `fixed_outputs`, exactly as the
    # forward did (no replay_step bookkeeping: in the audio case there is an output every step).
    for i in range(first, stop):
        lo, hi = cps.out_index[i], cps.out_index[i + 1]
        if callback is not None:
            callback(time_arg(cps.t0[i], y), y, time_arg(cps.h[i], y))
        y_start = y
        y = fixed_step(func, opts, cps.t0[i], cps.h[i], y, cps.t1[i])
        if lo == 0:
            outs.append(y_start)
            lo = 1
        if hi > lo:
            outs.extend(
                fixed_outputs(
                    func, opts, cps.t0[i], cps.h[i], cps.t1[i], y_start, y, cps.t_out[lo:hi]
                )
            )
    return y, torch.stack(outs) if outs else None
