"""Adaptive solve where every batch element has its own time, step size and accept/reject.

Vectorised with masks (no python loop over samples): each iteration attempts one step for every
still-integrating sample at its own (t_b, h_b); samples that finished ride along with h = 0 and
are masked out. One hard sample therefore no longer forces tiny steps on the others (torchode's
design; docs/design.md, "Per-sample step sizes").
"""

from __future__ import annotations

import torch

from .adaptive import PIController, initial_step
from .options import SolveOptions
from .records import SolveResult, SolveStats
from .rk import Func, dense_weights, error_ratio, rk_stages

_UNDERFLOW_ULPS = 4.0


def _first_active(mask: torch.Tensor, t: torch.Tensor) -> str:
    b = int(mask.nonzero()[0])
    return f"sample {b} at t={float(t[b])!r}"


def solve_per_sample(
    func: Func, y0: torch.Tensor, t_out: list[float], opts: SolveOptions
) -> SolveResult:
    """Per-sample adaptive solve; y0 is (B, ...), ``func`` receives t as a (B,) tensor in y's dtype."""
    tab = opts.tableau
    dev, dtype = y0.device, y0.dtype
    B = y0.shape[0]
    bshape = (B,) + (1,) * (y0.ndim - 1)
    n_out = len(t_out)
    t_end = t_out[-1]
    direction = 1.0 if t_end > t_out[0] else -1.0
    key = direction * torch.tensor(t_out, dtype=torch.float64, device=dev)  # ascending
    t_out_t = direction * key

    t = torch.full((B,), t_out[0], dtype=torch.float64, device=dev)
    k1 = func(t.to(dtype), y0)
    n_calls = 1
    if opts.first_step is None:
        h = initial_step(
            func, t.to(dtype), y0, k1, direction, tab.order, opts.rtol, opts.atol, dim=1
        )
        n_calls += 1
    else:
        h = torch.full((B,), opts.first_step, dtype=torch.float64, device=dev)
    h = h.clamp(max=opts.max_step)
    ctrl = PIController(opts, tab.error_order)

    zeros_i = torch.zeros(B, dtype=torch.int64, device=dev)
    next_out = zeros_i + 1
    n_steps, n_rejected = zeros_i.clone(), zeros_i.clone()
    nfev = zeros_i + n_calls
    prev_ratio = torch.ones(B, dtype=torch.float64, device=dev)
    after_reject = torch.zeros(B, dtype=torch.bool, device=dev)
    arange_b = torch.arange(B, device=dev)
    out_vals = [y0.reshape(B, -1)]
    out_oi, out_bi = [zeros_i], [arange_b]
    y = y0
    n_iter = 0
    while True:
        active = next_out < n_out
        if not bool(active.any()):
            break
        if n_iter >= opts.max_steps:
            raise RuntimeError(
                f"max_steps={opts.max_steps} reached ({_first_active(active, t)}, integrating to "
                f"t={t_end!r}); raise options['max_steps'] or loosen rtol/atol"
            )
        landing = direction * (t + direction * h - t_end) >= 0.0
        hh = torch.where(landing, t_end - t, direction * h)
        hh = torch.where(active, hh, torch.zeros_like(hh))
        tiny = (
            _UNDERFLOW_ULPS * torch.finfo(torch.float64).eps * torch.clamp(t.abs(), min=abs(t_end))
        )
        under = active & (hh.abs() <= tiny)
        if bool(under.any()):
            raise RuntimeError(
                f"step size underflow ({_first_active(under, t)}): the solution may blow up or be "
                "singular near this time, or the problem is too stiff for an explicit method"
            )
        hb = hh.to(dtype).reshape(bshape)
        times = [(t + c * hh).to(dtype) for c in tab.c]
        y1, ks = rk_stages(func, tab, y, hb, times, k1)
        n_calls += tab.n_stages - 1
        nfev += (tab.n_stages - 1) * active
        ratio = error_ratio(tab, hb, ks, y, y1, opts.rtol, opts.atol, per_sample=True).double()
        accept = active & (ratio <= 1.0)  # nan compares False: rejected
        reject = active & ~accept

        # PI controller, elementwise (same law as PIController on floats)
        r = ratio.clamp(min=1e-10)
        fac_acc = (opts.safety * r ** (-ctrl.beta1) * prev_ratio**ctrl.beta2).clamp(
            opts.dfactor, opts.ifactor
        )
        fac_acc = torch.where(after_reject, fac_acc.clamp(max=1.0), fac_acc)
        fac_rej = (opts.safety * r ** (-1.0 / ctrl.k)).clamp(opts.dfactor, 1.0)
        fac_rej = torch.where(
            torch.isfinite(ratio), fac_rej, torch.full_like(fac_rej, opts.dfactor)
        )
        h_new = (hh.abs() * torch.where(accept, fac_acc, fac_rej)).clamp(max=opts.max_step)
        h = torch.where(active, h_new, h)
        prev_ratio = torch.where(accept, r, prev_ratio)
        after_reject = (after_reject | reject) & ~accept

        # dense output for the outputs each accepted step passed
        t1 = t + hh
        stop = torch.searchsorted(key, direction * t1, right=True)
        stop = torch.where(landing, torch.full_like(stop, n_out), stop)
        stop = torch.where(accept, stop, next_out)
        count = stop - next_out
        m = int(count.max())
        if m > 0:
            sel = (count > 0).nonzero().squeeze(1)
            idx = next_out[sel, None] + torch.arange(m, device=dev)
            valid = idx < stop[sel, None]
            theta = ((t_out_t[idx.clamp(max=n_out - 1)] - t[sel, None]) / hh[sel, None]).clamp(
                0.0, 1.0
            )
            w = dense_weights(tab, theta).to(dtype)  # (R, m, s)
            k = (
                torch.stack(ks)[:, sel].reshape(tab.n_stages, sel.numel(), -1).transpose(0, 1)
            )  # (R, s, F)
            ysel = y[sel].reshape(sel.numel(), 1, -1)
            yo = ysel + hb[sel].reshape(-1, 1, 1) * torch.bmm(w, k)
            yo = torch.where((theta == 1.0).unsqueeze(-1), y1[sel].reshape(sel.numel(), 1, -1), yo)
            out_vals.append(yo[valid])
            out_oi.append(idx[valid])
            out_bi.append(sel[:, None].expand_as(idx)[valid])

        am = accept.reshape(bshape)
        y = torch.where(am, y1, y)
        if tab.fsal:
            k1 = torch.where(am, ks[-1], k1)
        t = torch.where(accept, t1, t)
        if not tab.fsal:  # the last stage is not f(t1, y1): evaluate it (one call for the batch)
            k1 = func(t.to(dtype), y)
            n_calls += 1
            nfev += active
        next_out = stop
        n_steps += accept
        n_rejected += reject
        n_iter += 1

    vals = torch.cat(out_vals)
    ys = vals.new_zeros((n_out, B, vals.shape[-1])).index_put(
        (torch.cat(out_oi), torch.cat(out_bi)), vals
    )
    stats = SolveStats(nfev=nfev, n_steps=n_steps, n_rejected=n_rejected, n_calls=n_calls)
    return SolveResult(ys=ys.reshape(n_out, *y0.shape), stats=stats)
