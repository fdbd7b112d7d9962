"""Reading a model's continuous-time signal: cross-faded segments, free runs, the continuation.

The signal at times t is the cross-fade of the segments' trajectories (`SegmentLayout.weights`).
Segment m is read on its window from the envelope solve over [τ_m, τ_m + (window − 1)/rate] on
training's nodes, batched as training batches it, so a render at the clip's rate repeats the
training solve up to the render's tolerance (≈ −110 dB; `sonode.model.synthesis`). Later samples of
the window, less than a clip sample past it and faded to nearly zero, extend its last node
interval. The last segment never fades out: past its window it runs free from its state at the
window's end, and past the fitted span the continuation ODE (see `sonode.model.continuation`)
takes over and runs free too.

Two solvers read the trajectories: the fast one (`sonode.model.synthesis`: a batch of segments in
one envelope solve and one matrix product, whatever their sample offsets) and, when a step is
given, the engine's sequential Lawson RK4, the reference the fast one is checked against.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from sonode.model.device import on
from sonode.model.fit_size import EVALUATION_SEGMENTS
from sonode.model.modal import modal_solve
from sonode.model.oscillator import OscillatorBank
from sonode.model.synthesis import modal_samples
from sonode.ode import odeint

# ``model`` below is a `sonode.model.decoder.SonodeModel`, typed as nn.Module: the decoder imports
# this module (its render_normalised delegates here), and imports run one way.


def render_normalised(
    model: nn.Module,
    times_s: torch.Tensor,
    max_step_s: float | None = None,
    progress: Callable[[int], None] | None = None,
    bound: float = math.inf,
    chunk_samples: int = 8192,
) -> torch.Tensor:
    """See `SonodeModel.render_normalised`."""
    config, layout = model.config, model.config.layout
    out = torch.zeros_like(times_s)
    if times_s.numel() == 0:
        return out
    n = times_s.numel()
    spacing = float(times_s[1] - times_s[0]) if n > 1 else 1.0 / layout.sample_rate
    starts = layout.start_s().to(times_s.device)
    last = layout.n_segments - 1
    window_end = (
        layout.window_samples - 1
    ) / layout.sample_rate  # where a segment's envelope solve ends
    span_end = config.duration_s
    has_tail = model.continuation_state.shape[0] > 0
    # The continuation ODE takes over at the span's end, without a cross-fade: both it and the
    # segments were fitted to the clip up to its last sample, so the seam is as small as their
    # errors there, while fading over the last segment's free run beyond its data made the first
    # 2 ms of every continuation bad (6 dB SNR on the tuba, 0.8 s history, where the continuation
    # ODE alone gives 30 dB). Inside the span the render is the segments' alone, past it the
    # continuation's alone (without one, the last segment runs on).
    last_end = span_end if has_tail else math.inf

    def first_at_or_after(t: float) -> int:
        return int(torch.searchsorted(times_s, torch.tensor(t, **on(times_s))))

    # samples [lo, hi) of each segment's window; the last segment's window part ends half a sample
    # after window_end (its free run then starts a positive time after its state there)
    lo = torch.searchsorted(times_s, starts)
    hi = torch.searchsorted(times_s, starts + layout.window_samples / layout.sample_rate)
    free_hi = first_at_or_after(last_end)
    hi[last] = (
        min(first_at_or_after(float(starts[last]) + window_end + 0.5 * spacing), free_hi)
        if window_end > 0
        else lo[last]
    )
    free_lo = max(int(hi[last]), int(lo[last]))
    segments = torch.nonzero(hi > lo).flatten().tolist()
    read = _read_windows if max_step_s is None else _read_windows_reference

    def free_run(z0, start_s: float, idx, weights, tail, n_good: int) -> int:
        """`_free_run` from state z0 at start_s over the samples idx (the rest as in this render)."""
        return _free_run(
            model,
            z0,
            start_s,
            times_s,
            idx,
            weights,
            out,
            n_good,
            bound,
            max_step_s,
            spacing,
            chunk_samples,
            tail=tail,
        )

    last_state, n_good = read(
        model, times_s, segments, lo, hi, spacing, window_end, max_step_s, out, progress
    )
    n_good = min(n_good, first_bad_sample(out, bound, n))
    if free_hi > free_lo and (last_state is None or bool(torch.isfinite(last_state).all())):
        if last_state is None:  # no window samples: run from the last segment's start
            z0, start_s = model.states[last:], float(starts[last])
        else:
            z0, start_s = last_state, float(starts[last]) + window_end
        weights = layout.weights(times_s - starts[last], torch.tensor(last, device=out.device))
        idx = torch.arange(free_lo, free_hi, device=out.device)
        n_good = free_run(z0, start_s, idx, weights, None, n_good)
    elif free_hi > free_lo:
        n_good = min(n_good, free_lo)
    if has_tail:
        n_good = add_continuation(
            model, times_s, out, n_good, bound, max_step_s, spacing, chunk_samples
        )
    if progress is not None:
        progress(layout.n_segments)
    return out[:n_good]


def add_continuation(
    model: nn.Module,
    times_s: torch.Tensor,
    out: torch.Tensor,
    n_good: int,
    bound: float,
    max_step_s: float | None,
    spacing: float,
    chunk_samples: int,
) -> int:
    """Add the continuation ODE's free run at the times past the span to ``out``: its early modes
    up to the switch, its late ones from the state reached. Returns the updated count of good
    leading samples (see `_free_run`). Any model with the continuation parts
    (`sonode.model.continuation_parts`) and a ``readout_bias``."""
    config = model.config
    span_end = config.duration_s
    switch_s = span_end + config.continuation_switch_s
    ones = torch.ones_like(times_s)

    def free_run(z0, start_s: float, idx, tail, n_good: int) -> int:
        return _free_run(
            model,
            z0,
            start_s,
            times_s,
            idx,
            ones,
            out,
            n_good,
            bound,
            max_step_s,
            spacing,
            chunk_samples,
            tail=tail,
        )

    early_idx = torch.nonzero((times_s >= span_end) & (times_s < switch_s)).flatten()
    early = (model.tail_bank, model.continuation_field(late=False))
    # the field acts from the end
    n_good = free_run(continuation_end_state(model), span_end, early_idx, early, n_good)
    late = (model.tail_late_bank, model.continuation_field(late=True))
    late_idx = torch.nonzero(times_s >= switch_s).flatten()
    return free_run(continuation_switch_state(model), switch_s, late_idx, late, n_good)


def continuation_end_state(model: nn.Module) -> torch.Tensor:
    """The continuation's state (1, 2K_tail) at the clip's end: its state, fitted at the start of
    its window, carried over the window by its early modes alone (exp(L t)). Its field acts from
    the end on, at the level the modes were identified at (`sonode.model.tail.Tail.run` alike)."""
    config = model.config
    return model.tail_bank.expm_apply(
        config.duration_s - config.continuation_start_s, model.continuation_state
    )


def continuation_switch_state(model: nn.Module) -> torch.Tensor:
    """The continuation's state (1, 2K_tail) where its late modes take over: its early ODE (modes
    and field) integrated from its state at the clip's end (exact exp(L t) when the field is zero)."""
    config = model.config
    field = model.continuation_field(late=False)
    if field.is_zero():
        span_s = config.duration_s + config.continuation_switch_s - config.continuation_start_s
        return model.tail_bank.expm_apply(span_s, model.continuation_state)
    grid = torch.tensor([0.0, config.continuation_switch_s], **on(model.continuation_state))
    return modal_solve(model.tail_bank, field, continuation_end_state(model), grid)[-1]


def _read_windows(
    model: nn.Module, times_s, segments, lo, hi, spacing, window_end, step_s, out, progress
) -> tuple[torch.Tensor | None, int]:
    """Add the weighted window samples [lo[m], hi[m]) of ``segments`` to out with the fast solver,
    EVALUATION_SEGMENTS segments per solve (as training's reconstruction batches them).

    Returns (the last segment's state at window_end (1, d), or None if it is not in ``segments``;
    the index of the first sample not computed, len(times_s) if all were)."""
    layout, last = model.config.layout, model.config.layout.n_segments - 1
    starts, device = layout.start_s().to(times_s.device), times_s.device
    last_state = None
    for begin in range(0, len(segments), EVALUATION_SEGMENTS):
        seg = torch.tensor(segments[begin : begin + EVALUATION_SEGMENTS], device=device)
        counts = hi[seg] - lo[seg]
        try:
            x, z_end = modal_samples(
                model.bank,
                model.field,
                model.states[seg],
                model.readout,
                times_s[lo[seg]] - starts[seg],
                spacing,
                counts,
                window_end,
            )
        except RuntimeError:  # the engine refuses non-finite states: the render ends here
            return None, int(lo[seg[0]])
        # samples past a segment's count are zero in x: give them its last index and zero weight
        rows = torch.arange(x.shape[0], device=device)[:, None]
        inside = rows < counts  # (n, B)
        index = lo[seg] + torch.minimum(rows, counts - 1)
        weights = layout.weights(times_s[index] - starts[seg], seg) * inside
        if int(seg[-1]) == last:
            last_state = z_end[-1:]
        out.index_add_(0, index.reshape(-1), (weights * (x + model.readout_bias)).reshape(-1))
        if progress is not None:
            progress(begin + seg.numel())
    return last_state, times_s.numel()


def _read_windows_reference(
    model: nn.Module, times_s, segments, lo, hi, spacing, window_end, step_s, out, progress
) -> tuple[torch.Tensor | None, int]:
    """`_read_windows` with the sequential reference solver (steps ≤ step_s): segments whose grids
    have the same offset and length are solved as one batch."""
    layout, last = model.config.layout, model.config.layout.n_segments - 1
    starts, device = layout.start_s().to(times_s.device), times_s.device
    groups: dict[tuple[float, int], list[int]] = {}
    for m in segments:
        key = (round(float(times_s[lo[m]] - starts[m]) / spacing, 9), int(hi[m] - lo[m]))
        groups.setdefault(key, []).append(m)
    done = 0
    try:
        for (offset_steps, count), members in groups.items():
            grid = _local_grid(offset_steps * spacing, spacing, count, device)
            x = model.read(
                _reference_states(model, model.states[members], grid, step_s, tail=None)[-count:]
            )
            for g, m in enumerate(members):
                idx = torch.arange(int(lo[m]), int(hi[m]), device=device)
                w = layout.weights(times_s[idx] - starts[m], torch.tensor(m, device=device))
                out[idx] += w * x[:, g]
            done += len(members)
            if progress is not None:
                progress(done)
        if last not in segments:
            return None, times_s.numel()
        grid = torch.tensor([0.0, window_end], **on(times_s))
        return _reference_states(model, model.states[last:], grid, step_s, tail=None)[
            -1
        ], times_s.numel()
    except (
        RuntimeError
    ):  # the engine refuses non-finite states: the render ends at the first sample lost
        return None, min(int(lo[m]) for m in segments)


def _free_run(
    model: nn.Module,
    z0: torch.Tensor,
    start_s: float,
    times_s: torch.Tensor,
    idx: torch.Tensor,
    weights: torch.Tensor,
    out: torch.Tensor,
    n_good: int,
    bound: float,
    step_s: float | None,
    spacing: float,
    chunk_samples: int,
    tail: tuple[OscillatorBank, nn.Module] | None,
) -> int:
    """Add the weighted trajectory from state z0 (1, d) at model time start_s to out[idx].

    Integrates chunk by chunk (each from the state at the previous chunk's last sample) and stops
    at the first output that is non-finite or beyond ``bound``; returns the updated count of good
    leading samples. ``tail``: the modes and field of a continuation ODE (read as Σ_k u_k) to run
    instead of the model's dynamics (None).
    """
    if idx.numel() == 0:
        return n_good
    offset, z = float(times_s[idx[0]]) - start_s, z0
    readout = (
        model.readout
        if tail is None
        else torch.cat(
            [
                torch.ones(tail[0].n_modes, **on(z0)),
                torch.zeros(tail[0].n_modes, **on(z0)),
            ]
        )
    )
    for begin in range(0, int(idx.numel()), chunk_samples):
        chunk = idx[begin : begin + chunk_samples]
        if int(chunk[0]) >= n_good:
            break
        try:
            if step_s is None:
                bank, field = (model.bank, model.field) if tail is None else tail
                x, z = modal_samples(
                    bank,
                    field,
                    z,
                    readout,
                    torch.tensor([offset], **on(z0)),
                    spacing,
                    torch.tensor([chunk.numel()], device=z0.device),
                    offset + (chunk.numel() - 1) * spacing,
                )
                x = x[:, 0]
            else:
                states = _reference_states(
                    model, z, _local_grid(offset, spacing, chunk.numel(), z0.device), step_s, tail
                )
                x, z = states[-chunk.numel() :, 0] @ readout, states[-1]
        except RuntimeError:  # the engine refuses non-finite states: the free run ends here
            return min(n_good, int(chunk[0]))
        out[chunk] += weights[chunk] * (x + model.readout_bias)
        n_good = min(n_good, first_bad_sample(out, bound, int(chunk[-1]) + 1, int(chunk[0])))
        if not bool(torch.isfinite(z).all()):
            return min(n_good, int(chunk[-1]) + 1)
        offset = spacing  # continue from the chunk's last output
    return n_good


def _reference_states(
    model: nn.Module,
    z0: torch.Tensor,
    local_s: torch.Tensor,
    step_s: float,
    tail: tuple[OscillatorBank, nn.Module] | None,
) -> torch.Tensor:
    """States (n, B, d) from z0 (B, d) at ``local_s`` by the engine's Lawson RK4 with steps ≤ step_s,
    under the model's dynamics or (``tail``) a continuation ODE's modes and field."""
    if tail is not None:
        return odeint(
            tail[1],
            z0,
            local_s,
            method="lawson_rk4",
            options={"linear": tail[0], "step_size": step_s, "grid": "outputs"},
        )
    return model.solve(z0, local_s, step_s)


def _local_grid(first_s: float, spacing_s: float, count: int, device=None) -> torch.Tensor:
    """Solver times: 0, then ``count`` outputs first_s + j·spacing_s (0 itself when first_s == 0),
    float64 on ``device``."""
    like = {"dtype": torch.float64, "device": device}
    grid = first_s + spacing_s * torch.arange(count, **like)
    return grid if first_s == 0.0 else torch.cat([torch.zeros(1, **like), grid])


def first_bad_sample(x: torch.Tensor, bound: float, end: int | None = None, begin: int = 0) -> int:
    """Index of the first sample in x[begin:end] (default: to the end) that is non-finite or beyond
    ±bound, else len(x)."""
    bad = ~torch.isfinite(x[begin:end]) | (x[begin:end].abs() > bound)
    return begin + int(torch.nonzero(bad)[0]) if bool(bad.any()) else int(x.numel())
