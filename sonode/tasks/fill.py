"""Fill gaps in a recording from both sides with one trajectory of the dynamics identified around them.

For each gap, only its context (``context_s`` on each side) is used. Method ``sonode``
(`sonode.dsp.interpolation.interpolate_gap`): a linear ODE driven by white noise is identified
on both sides of the gap at once (its modes are those of a high-order covariance predictor whose
rows never touch the gap), and the fill is its most likely trajectory through the gap given both
sides (one trajectory, two-sided by construction, continuous at both seams, no blend) plus the
part of a conditional draw that restores the power the mean misses mid-gap (seeded by
``settings.seed``). The order is chosen per gap by validation on pseudo-gaps punched into the
known audio next to it.

Method ``sonode_fit`` is the earlier one: the left context is fitted (`sonode.model.fit_samples`) and
its ODE continued forward across the gap (`sonode.tasks.render.extrapolate`); the right context is fitted too
and its ODE integrated backward in time from its first state (`predict_backward`); the two
predictions are blended with `blend`. The classical fillers of `sonode.dsp.ar_fill` can be used
instead (``method``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sonode.dsp.ar_fill import GAP_FILLERS, linear_ramp
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.tasks.fill_methods import FILL_METHODS, MODEL_FILL_METHODS
from sonode.tasks.render import extrapolate

METHODS = tuple(FILL_METHODS)  # the registry's names (sonode.tasks.fill_methods)
# Fewer context samples than this on a side make that side unusable (the fit's continuation state
# is fixed by the last 512 samples): the gap is then filled one-sided from the other side.
MIN_CONTEXT_SAMPLES = 512
# Measured (bundled clips, 16 kHz, 80 ms gaps, median SNR): 27.8 dB with 0.25 s, 29.5 dB with 0.5 s
# per side (the pseudo-gaps that choose the order need room next to the gap).
DEFAULT_CONTEXT_S = 0.5
DEFAULT_BUDGET_S = 10.0
# The level-aware residual at its full level (issue #21, docs/fill.md "Residual"): it fills the
# gap's quiet bins (where the LSD loses and random power costs no SNR) and leaves the loud ones to
# the trajectory. Measured at 16 kHz on 54 gaps per length (data/, data/more, corpus), paired
# median ΔSNR vs Janssen-20 at 20/40/80 ms and median LSD (Janssen's 0.66/0.80/1.03): this rule
# +0.54/+0.61/+0.49 dB, 0.66/0.77/0.81; the shaped residual at gain 0.25 (the default before)
# +0.53/+0.52/+0.42, 0.71/0.85/1.01; the trajectory alone +0.54/+0.61/+0.53, 0.76/0.93/1.23.
DEFAULT_RESIDUAL = "level"
DEFAULT_RESIDUAL_GAIN = 1.0
# A prediction beyond this many times the context's peak has diverged (as in `sonode.tasks.render`).
MAX_LEVEL_FACTOR = 10.0
# Modes growing more than this over the gap when integrated backward are left out (see
# `predict_backward`).
MAX_BACKWARD_GROWTH = 10.0
# Extra `fit` options of the per-gap fits: none, the defaults (d = 128) measured best: with d = 64
# the forward prediction of the tuba over a 20 ms gap fell from 20.9 to 2.1 dB.
FILL_FIT_OPTIONS: dict[str, Any] = {}


@dataclass(frozen=True)
class Gap:
    """Samples [start, end) to replace; ``sides`` says which contexts are used ("both", "left", "right")."""

    start: int
    end: int
    sides: str = "both"
    kind: str = (
        "given"  # "given" (--gap) or what --detect found ("zeros", "hold", "repeat", "click")
    )

    @property
    def n_samples(self) -> int:
        return self.end - self.start


@dataclass
class FillSettings:
    """How gaps are filled: method, context per side (s), fit budget per gap (s), optional step cap."""

    method: str = "sonode"
    context_s: float = DEFAULT_CONTEXT_S
    budget_s: float = DEFAULT_BUDGET_S
    steps: int | None = None
    seed: int = 0
    orders: tuple[int, ...] | None = (
        None  # sonode's candidate orders; None = candidate_orders(rate)
    )
    residual: str = DEFAULT_RESIDUAL  # sonode: what is added to the trajectory (interpolate_gap)
    fit_options: dict[str, Any] = field(default_factory=lambda: dict(FILL_FIT_OPTIONS))
    # sonode: the further estimators weighed against the orders (sonode.dsp.gap_candidates);
    # None = DEFAULT_GAP_CANDIDATES, () = the orders alone.
    candidates: tuple[str, ...] | None = None
    # sonode: the residual's scale (0 = the most likely trajectory alone, 1 = the whole residual
    # of the rule ``residual``); see DEFAULT_RESIDUAL_GAIN.
    residual_gain: float = DEFAULT_RESIDUAL_GAIN

    def __post_init__(self) -> None:
        if self.method not in FILL_METHODS:
            raise ValueError(
                f"unknown fill method {self.method!r}; valid: {', '.join(FILL_METHODS)}"
            )


def plan_gaps(
    gaps_s: list[tuple[float, float]],
    n_samples: int,
    rate: int,
    context_s: float,
    kinds: list[str] | None = None,
) -> list[Gap]:
    """Validate gaps given in seconds and turn them into sample ranges with their usable sides.

    Args:
        gaps_s: (start_s, end_s) pairs.
        n_samples, rate: the clip's length and rate.
        context_s: context per side, seconds.
        kinds: what each gap is (default "given").

    Returns:
        Gaps sorted by start.

    Raises:
        ValueError: a gap is empty, outside the clip, overlaps another, is longer than the context,
            or has fewer than MIN_CONTEXT_SAMPLES usable samples on both sides.
    """
    duration_s = n_samples / rate
    context = int(round(context_s * rate))
    ranges = []
    for i, (start_s, end_s) in enumerate(gaps_s):
        if not 0 <= start_s < end_s <= duration_s:
            raise ValueError(
                f"gap {start_s:g}-{end_s:g} s is not inside the clip (0-{duration_s:.4f} s) "
                "or ends before it starts"
            )
        start, end = int(math.floor(start_s * rate)), int(math.ceil(end_s * rate))
        if end - start > context:
            raise ValueError(
                f"gap {start_s:g}-{end_s:g} s ({(end - start) / rate * 1000:.1f} ms) is longer than "
                f"the context ({context_s:g} s per side); raise --context"
            )
        ranges.append((start, end, (kinds or [])[i] if kinds else "given"))
    ranges.sort()
    for (s0, e0, _), (s1, e1, _) in zip(ranges, ranges[1:], strict=False):
        if s1 < e0:
            raise ValueError(
                f"gaps {s0 / rate:g}-{e0 / rate:g} s and {s1 / rate:g}-{e1 / rate:g} s overlap; "
                "give them as one gap"
            )
    gaps = []
    for i, (start, end, kind) in enumerate(ranges):
        left_limit = ranges[i - 1][1] if i else 0
        right_limit = ranges[i + 1][0] if i + 1 < len(ranges) else n_samples
        left_ok = start - left_limit >= MIN_CONTEXT_SAMPLES
        right_ok = right_limit - end >= MIN_CONTEXT_SAMPLES
        if not (left_ok or right_ok):
            raise ValueError(
                f"gap {start / rate:g}-{end / rate:g} s has fewer than {MIN_CONTEXT_SAMPLES} samples "
                "of audio on both sides (clip edge or neighbouring gap): nothing to fill it from"
            )
        gaps.append(
            Gap(
                start,
                end,
                "both" if left_ok and right_ok else ("left" if left_ok else "right"),
                kind,
            )
        )
    return gaps


def blend(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Cross-fade two predictions of a gap with continuous level, whatever their correlation.

    y = g·(w·f + (1 − w)·b), w falling linearly from 1 to 0. For fully correlated predictions
    (ρ = 1: same phase) g = 1, a plain linear cross-fade. For uncorrelated ones the linear fade
    would dip by 3 dB mid-gap; g restores the expected energy to the level interpolated between
    the two sides: g² = (w·σ_f + (1 − w)·σ_b)² / (w²σ_f² + (1 − w)²σ_b² + 2w(1 − w)ρσ_fσ_b), with ρ the
    correlation of f and b over the gap clipped to [0, 1] (g → equal-power at ρ = 0).

    Args:
        forward, backward: (n_gap,) predictions from the left and from the right.

    Returns:
        (n_gap,) float64.
    """
    w = linear_ramp(forward.size)
    sigma_f, sigma_b = np.sqrt(np.mean(forward**2)), np.sqrt(np.mean(backward**2))
    if sigma_f == 0 or sigma_b == 0:
        return w * forward + (1 - w) * backward
    rho = float(np.clip(np.mean(forward * backward) / (sigma_f * sigma_b), 0.0, 1.0))
    target = (w * sigma_f + (1 - w) * sigma_b) ** 2
    actual = (
        (w * sigma_f) ** 2 + ((1 - w) * sigma_b) ** 2 + 2 * w * (1 - w) * rho * sigma_f * sigma_b
    )
    return np.sqrt(target / actual) * (w * forward + (1 - w) * backward)


def _fit_context(
    samples: np.ndarray, rate: int, settings: FillSettings, budget_s: float
) -> SonodeModel:
    """Fit one side's context (n,) as `sonode.api.fit` would (same options, same model)."""
    options = FitOptions(
        max_time_s=budget_s, steps=settings.steps, seed=settings.seed, **settings.fit_options
    )
    model, _ = fit_samples(np.ascontiguousarray(samples, dtype=np.float64), rate, options)
    return model


def predict_forward(
    left: np.ndarray, n_gap: int, rate: int, settings: FillSettings, budget_s: float
) -> np.ndarray:
    """Fit ``left`` (n,) and continue its ODE for ``n_gap`` samples past its end → (n_gap,)."""
    if not np.any(left):
        return np.zeros(n_gap)  # digital silence before the gap: nothing to continue
    model = _fit_context(left, rate, settings, budget_s)
    out = np.zeros(n_gap)
    prediction = extrapolate(model, n_gap / rate).samples[
        :n_gap
    ]  # shorter only if the free run diverged
    out[: prediction.size] = prediction
    return out


def predict_backward(
    right: np.ndarray, n_gap: int, rate: int, settings: FillSettings, budget_s: float
) -> np.ndarray:
    """The ``n_gap`` samples before ``right`` (n,), integrated backward in time → (n_gap,).

    ``right`` is fitted, and its ODE is solved from the first segment's state at local times
    0, −1/rate, …, −n_gap/rate (`SonodeModel.solve` with decreasing times: the flow is
    invertible). Backward, each damped mode grows by e^{|σ|·t}: modes that would grow more than
    MAX_BACKWARD_GROWTH over the gap (the strongly damped ones the identification uses for
    transients and noise) are removed from the starting state, otherwise they swamp the
    prediction (measured: −1560 dB SNR on the horn, 40 ms, without this). Fitting the
    time-reversed context and continuing it forward instead is not equivalent: the model's modes
    cannot grow, so a decaying sound reversed (growing) is not representable (two damped tones,
    20 ms: 22 dB that way against 116 dB by backward integration).
    """
    if not np.any(right):
        return np.zeros(n_gap)
    model = _fit_context(right, rate, settings, budget_s)
    n_modes = model.config.n_modes
    with torch.no_grad():
        z0 = model.states[:1].detach().clone()
        growth = -model.bank.decay_per_s * (n_gap / rate)  # log of each mode's backward growth
        drop = torch.nonzero(growth > math.log(MAX_BACKWARD_GROWTH)).flatten()
        z0[:, drop] = 0.0
        z0[:, n_modes + drop] = 0.0
        local_s = -torch.arange(n_gap + 1, dtype=torch.float64) / rate
        try:
            x = model.denormalise(model.read(model.solve(z0, local_s)[1:, 0]))
        except RuntimeError:  # the engine refuses non-finite states: the run diverged
            return np.full(n_gap, np.nan)
    return x[::-1].copy()


def fill_one(
    left: np.ndarray,
    right: np.ndarray,
    n_gap: int,
    rate: int,
    settings: FillSettings,
    sides: str = "both",
) -> np.ndarray:
    """Estimate ``n_gap`` samples between ``left`` and ``right`` with ``settings.method`` → (n_gap,).

    ``sonode``: the validated two-sided trajectory (`interpolate_gap`) for gaps with both sides;
    a one-sided gap is continued by Burg extrapolation from its side (as the classical fillers do).
    ``sonode_fit``: a free run may still diverge (backward, the correction field can grow too): a
    side that is not finite or leaves ±MAX_LEVEL_FACTOR × the context's peak is dropped; with no
    usable side left, the classical filler of the same sides fills the gap. Any sonode estimate
    that is not finite or leaves ±MAX_LEVEL_FACTOR × the context's peak is replaced by Janssen.
    """
    if settings.method == "sonode" and sides == "both":
        from sonode.dsp.gap_candidates import DEFAULT_GAP_CANDIDATES, bound_candidates
        from sonode.dsp.interpolation import candidate_orders, interpolate_gap

        orders = settings.orders or candidate_orders(rate)
        names = DEFAULT_GAP_CANDIDATES if settings.candidates is None else settings.candidates
        estimate = interpolate_gap(
            left,
            right,
            n_gap,
            orders=orders,
            residual=settings.residual,
            seed=settings.seed,
            extra=bound_candidates(tuple(names), rate),
            residual_gain=settings.residual_gain,
        ).fill
        peak = max(np.max(np.abs(left), initial=0.0), np.max(np.abs(right), initial=0.0))
        if (
            np.all(np.isfinite(estimate))
            and np.max(np.abs(estimate), initial=0.0) <= MAX_LEVEL_FACTOR * peak
        ):
            return estimate
    if settings.method == "sonode_fit":
        half = settings.budget_s / 2 if sides == "both" else settings.budget_s
        forward = predict_forward(left, n_gap, rate, settings, half) if sides != "right" else None
        backward = predict_backward(right, n_gap, rate, settings, half) if sides != "left" else None
        peak = max(np.max(np.abs(left), initial=0.0), np.max(np.abs(right), initial=0.0))
        usable = [
            p is not None
            and bool(np.all(np.isfinite(p)) and np.max(np.abs(p)) <= MAX_LEVEL_FACTOR * peak)
            for p in (forward, backward)
        ]
        if all(usable):
            return blend(forward, backward)
        if any(usable):
            return forward if usable[0] else backward
    if sides == "both":
        return GAP_FILLERS["janssen" if settings.method in MODEL_FILL_METHODS else settings.method](
            left, right, n_gap
        )
    from sonode.dsp.predictor import lpc_continue  # one-sided: the classical Burg extrapolation

    side = left if sides == "left" else right[::-1]
    prediction = lpc_continue(side, min(1024, side.size // 2), n_gap)
    return prediction if sides == "left" else prediction[::-1]
