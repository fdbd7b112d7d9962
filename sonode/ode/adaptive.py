"""Adaptive embedded Runge–Kutta solve with shared steps: PI control, FSAL, dense output."""

from __future__ import annotations

import math

import torch

from .options import SolveOptions
from .records import SolveResult, SolveStats, StepRecord, time_arg
from .rk import Func, error_ratio, rk_stages, step_outputs

# Below this many ulps of t a step cannot advance time meaningfully.
_UNDERFLOW_ULPS = 4.0


def rms_norm(x: torch.Tensor, dim=None, norm=None) -> torch.Tensor:
    """Root mean square over all elements, or over every dim but 0 when ``dim == 1``; or ``norm(x)``."""
    if norm is not None:
        return torch.as_tensor(norm(x)).abs()
    if dim is None:
        return torch.linalg.vector_norm(x) / math.sqrt(max(x.numel(), 1))
    flat = x.reshape(x.shape[0], -1)
    return torch.linalg.vector_norm(flat, dim=1) / math.sqrt(max(flat.shape[1], 1))


@torch.no_grad()
def initial_step(
    func: Func, t0, y0, f0, direction: float, order: int, rtol, atol, dim=None, norm=None
):
    """Hairer's starting step (Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4), one f evaluation.

    Returns |h| in units of t: a python float, or a (B,) float64 tensor with ``dim=1`` (per sample;
    then ``t0`` is the time argument tensor used for f).
    """
    y0, f0 = y0.detach(), f0.detach()
    scale = y0.abs() * rtol + atol
    d0 = rms_norm(y0 / scale, dim, norm).double()
    d1 = rms_norm(f0 / scale, dim, norm).double()
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
    if dim is None:
        h0f = float(h0)
        y1 = torch.add(y0, f0, alpha=direction * h0f)
        f1 = func(time_arg(t0 + direction * h0f, y0), y1)
    else:
        hb = h0.to(y0.dtype).reshape(-1, *([1] * (y0.ndim - 1)))
        y1 = y0 + direction * hb * f0
        f1 = func(t0 + direction * h0.to(t0.dtype), y1)
    d2 = rms_norm((f1.detach() - f0) / scale, dim, norm).double() / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(
        dmax <= 1e-15,
        torch.clamp(h0 * 1e-3, min=1e-6),
        (0.01 / dmax.clamp(min=1e-300)) ** (1.0 / order),
    )
    h = torch.minimum(100 * h0, h1)
    return float(h) if dim is None else h


class PIController:
    """h_new = h · clip(safety · ε_n^(-β1) · ε_{n-1}^(β2), dfactor, ifactor), β1 = (p+i)/k, β2 = p/k.

    After a rejection the step is not allowed to grow on the next accepted step (Hairer).
    Works on python floats (shared steps) and on tensors (per sample) alike.
    """

    def __init__(self, opts: SolveOptions, error_order: int):
        self.beta1 = (opts.pcoeff + opts.icoeff) / error_order
        self.beta2 = opts.pcoeff / error_order
        self.k = error_order
        self.opts = opts

    def accepted_factor(self, ratio: float, prev_ratio: float, after_reject: bool) -> float:
        """The next step's size over this one's, after an accepted step whose error norm was
        ``ratio`` (≤ 1; the previous accepted step's ``prev_ratio``): at most 1 after a rejection."""
        o = self.opts
        ratio = max(ratio, 1e-10)
        factor = o.safety * ratio ** (-self.beta1) * prev_ratio**self.beta2
        factor = min(o.ifactor, max(o.dfactor, factor))
        return min(factor, 1.0) if after_reject else factor

    def rejected_factor(self, ratio: float) -> float:
        """The retried step's size over the rejected one's, whose error norm was ``ratio`` (> 1)."""
        o = self.opts
        if not math.isfinite(ratio):
            return o.dfactor  # non-finite stages: retreat as fast as allowed
        return min(1.0, max(o.dfactor, o.safety * ratio ** (-1.0 / self.k)))


def underflow_error(t: float, h: float, why: str) -> RuntimeError:
    """The error an adaptive solve raises when its step ``h`` (in the problem's time units) at time
    ``t`` becomes too small to advance, ``why`` saying which test failed; it names the remedies."""
    return RuntimeError(
        f"step size underflow at t={t!r} (|h|={abs(h):.3g}): {why}. The solution may blow up or "
        "be singular near this time, or the problem is too stiff for an explicit method; check "
        "the vector field, loosen rtol/atol, or stop the integration before this time"
    )


def _stops(opts: SolveOptions, t_out: list[float], direction: float) -> list[tuple[float, bool]]:
    """step_t / jump_t strictly inside (t_start, t_end), in integration order: (time, is_jump);
    plus every output time for methods whose interpolant is not accurate enough to read outputs."""
    t_start, t_end = t_out[0], t_out[-1]
    step_t, jump_t = set(opts.step_t or ()), set(opts.jump_t or ())
    if step_t & jump_t:
        raise ValueError("`step_t` and `jump_t` must not have any repeated elements between them.")
    if not opts.tableau.interpolate_outputs:
        step_t |= set(t_out[1:-1]) - jump_t
    inside = [
        (v, v in jump_t)
        for v in step_t | jump_t
        if direction * (v - t_start) > 0 and direction * (t_end - v) > 0
    ]
    return sorted(inside, key=lambda p: direction * p[0])


def _callback(func, name: str):
    return getattr(func, name, None)


def solve_adaptive(
    func: Func,
    y0: torch.Tensor,
    t_out: list[float],
    opts: SolveOptions,
    record_steps: bool,
    until=None,
) -> SolveResult:
    """Shared-step adaptive solve through the output times ``t_out`` (python floats, monotone).

    Steps are clipped to land on every step_t / jump_t; after a jump f is re-evaluated just past it.
    Callbacks of func (callback_step before each attempt, callback_accept_step /
    callback_reject_step after) receive (t0, y0, dt). ``until(t1, y1) -> bool`` (event search)
    is asked after every accepted step; True stops the solve and leaves that step, as
    (t0, h, y0, y1, ks), in ``result.last_step``.
    """
    tab = opts.tableau
    n_out = len(t_out)
    t_start, t_end = t_out[0], t_out[-1]
    direction = 1.0 if t_end > t_start else -1.0
    cb_step, cb_accept, cb_reject = (
        _callback(func, n)
        for n in ("callback_step", "callback_accept_step", "callback_reject_step")
    )
    stops = _stops(opts, t_out, direction)
    next_stop = 0
    k1 = func(time_arg(t_start, y0), y0)
    nfev = 1
    if opts.first_step is None:
        h = initial_step(
            func, t_start, y0, k1, direction, tab.order, opts.rtol, opts.atol, norm=opts.norm
        )
        nfev += 1
    else:
        h = opts.first_step
    h = min(max(h, opts.min_step), opts.max_step)
    ctrl = PIController(opts, tab.error_order)

    ys: list[torch.Tensor] = [y0[None]]  # chunks of outputs, one per step that reaches any
    rec_t0, rec_h, rec_y0, out_index = [], [], [], [0]
    t, y = t_start, y0
    next_out = 1
    prev_ratio, after_reject = 1.0, False
    ratio = 0.0
    n_steps = n_rejected = 0
    last_step = None
    while next_out < n_out:
        if n_steps + n_rejected >= opts.max_steps:
            raise RuntimeError(
                f"max_steps={opts.max_steps} reached at t={t!r} (integrating to t={t_end!r}); "
                "raise options['max_num_steps'], loosen rtol/atol, or check that the ODE is not stiff"
            )
        target, jump = stops[next_stop] if next_stop < len(stops) else (t_end, False)
        landing = direction * (t + direction * h - target) >= 0.0
        hh = target - t if landing else direction * h
        if abs(hh) <= _UNDERFLOW_ULPS * math.ulp(max(abs(t), abs(t + hh))):
            why = (
                "the stages became non-finite (inf/nan)"
                if not math.isfinite(ratio)
                else f"the last rejected step's error was {ratio:.3g} x the tolerance"
            )
            raise underflow_error(t, hh, why)
        if cb_step is not None:
            cb_step(time_arg(t, y0), y, time_arg(hh, y0))
        on_stop = landing and next_stop < len(stops)
        t1 = target if on_stop else t + hh
        times = [time_arg(t + c * hh, y0) for c in tab.c]
        if on_stop and jump:  # f just before the discontinuity, not on it
            times = [
                time_arg(t1, y0, -direction) if c == 1.0 else ti
                for c, ti in zip(tab.c, times, strict=False)
            ]
        nfev += tab.n_stages - (k1 is not None)
        y1, ks = rk_stages(func, tab, y, hh, times, k1)
        ratio = float(
            error_ratio(tab, hh, ks, y, y1, opts.rtol, opts.atol, per_sample=False, norm=opts.norm)
        )
        if not ratio <= 1.0 and not abs(hh) <= opts.min_step:  # also catches nan
            n_rejected += 1
            if cb_reject is not None:
                cb_reject(time_arg(t, y0), y, time_arg(hh, y0))
            h = max(abs(hh) * ctrl.rejected_factor(ratio), opts.min_step)
            after_reject = True
            continue
        if cb_accept is not None:
            cb_accept(time_arg(t, y0), y, time_arg(hh, y0))
        if until is not None and until(t1, y1):
            last_step = (t, hh, y, y1, ks)
            break
        reached_end = landing and not on_stop
        stop = n_out if reached_end else next_out
        while not reached_end and stop < n_out and direction * (t_out[stop] - t1) <= 0.0:
            stop += 1
        if stop > next_out:
            ys.append(step_outputs(tab, t, hh, y, y1, ks, t_out[next_out:stop]))
        if record_steps:
            rec_t0.append(t)
            rec_h.append(hh)
            rec_y0.append(y)
            out_index.append(stop)
        next_out = stop
        n_steps += 1
        h = min(
            opts.max_step,
            max(opts.min_step, abs(hh) * ctrl.accepted_factor(ratio, prev_ratio, after_reject)),
        )
        prev_ratio, after_reject = max(ratio, 1e-10), False
        t, y, k1 = t1, y1, ks[-1]
        if on_stop:
            next_stop += 1
            if jump or not tab.fsal:
                k1 = func(time_arg(t1, y0, direction if jump else 0.0), y1)
                nfev += 1
        elif not tab.fsal:
            k1 = None
    stats = SolveStats(nfev=nfev, n_steps=n_steps, n_rejected=n_rejected)
    steps = StepRecord.build(rec_t0, rec_h, rec_y0, out_index, y0) if record_steps else None
    return SolveResult(ys=torch.cat(ys), stats=stats, steps=steps, last_step=last_step)
