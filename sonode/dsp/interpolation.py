"""The trajectory of a noise-driven linear ODE through a gap, given the audio on both sides of it.

A linear predictor of order p, x[n] = −Σ a[j] x[n − j] + e[n] with white innovation e, is a
linear ODE (its modes are the predictor's poles) driven by noise. Its dynamics are identified on
both sides of the gap at once (a covariance-method predictor whose normal equations collect only
the rows lying wholly left or wholly right of the gap, forward and time-reversed), and the gap is
filled from the conditional distribution of the gap samples given both sides:

- the mean, the most likely trajectory (Kalman/RTS smoother mean; `most_likely_fill`): two-sided
  by construction, continuous at both seams, exact for noise-free damped sinusoids;
- plus the part of a conditional draw (`conditional_deviation`) that carries the power the mean
  misses (`missing_power_residual`): the mean shrinks the unpredictable part towards zero mid-gap,
  so its spectrum alone is too weak there.

The order is chosen per gap by validation on pseudo-gaps next to it (`interpolate_gap`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal

from sonode.dsp.two_sided_fit import (  # noqa: F401  (re-exported: the fill's primitives)
    PREDICTOR_MEMO,
    PREDICTOR_RIDGE,
    innovation_sigma,
    predictor_from_gram,
    side_gram,
    two_sided_predictor,
)


def most_likely_fill(left: np.ndarray, right: np.ndarray, n_gap: int, a: np.ndarray) -> np.ndarray:
    """The gap samples minimising the prediction-error energy of ``a`` over every row touching the gap.

    With the predictor read as a linear ODE driven by white noise (its innovation), this is the
    most likely trajectory through the gap given both sides (the Kalman/RTS smoother's mean over
    the gap, with the p samples on each side as the boundary states); it is solved through the
    Toeplitz normal equations of `sonode.dsp.ar_fill.ar_interpolate`.
    """
    from sonode.dsp.ar_fill import ar_interpolate

    p = a.size - 1
    nl, nr = min(p, left.shape[0]), min(p, right.shape[0])
    segment = np.concatenate([left[left.shape[0] - nl :], np.zeros(n_gap), right[:nr]])
    return ar_interpolate(segment, nl, n_gap, a)


@dataclass(frozen=True)
class OrderFill:
    """One candidate order's fill of a gap.

    Attributes:
        mean: (n_gap,) the most likely trajectory (`most_likely_fill`).
        deviation: (n_gap,) one draw from the conditional distribution of the gap given both sides,
            minus its mean (`conditional_deviation`); zeros if no innovations were given.
        sigma: the predictor's innovation standard deviation on the context rows (file amplitude).
    """

    mean: np.ndarray
    deviation: np.ndarray
    sigma: float


def conditional_deviation(a: np.ndarray, n_gap: int, innovations: np.ndarray) -> np.ndarray:
    """A zero-mean draw from the conditional distribution of the gap given both sides, for the AR
    model ``a`` driven by the white ``innovations`` (≥ n_gap + p values: the innovations of the rows
    touching the gap, the first one predicting the gap's first sample).

    Perturb-and-MAP: the most likely fill minimises ‖A_g x_g + A_k x_k‖²; minimising
    ‖A_g x_g + A_k x_k − e‖² instead adds (A_gᵀA_g)⁻¹A_gᵀe, whose covariance for e ~ N(0, σ²I) is
    σ²(A_gᵀA_g)⁻¹, the conditional (Kalman/RTS smoother) covariance. It is small where the
    dynamics carry the sound across the gap (near the seams, for sustained partials) and as large as
    the innovation-driven part of the sound where they do not (mid-gap, noise).

    Returns:
        (n_gap,), in the units of ``innovations``.
    """
    p = a.size - 1
    r = np.correlate(a, a, mode="full")[p:]
    column = np.zeros(n_gap)
    column[: min(n_gap, p + 1)] = r[: min(n_gap, p + 1)]
    column[0] *= 1.0 + 1e-10  # the loading of `ar_interpolate`
    rhs = scipy.signal.correlate(
        np.asarray(innovations[: n_gap + p], dtype=np.float64), a, mode="valid"
    )
    return scipy.linalg.solve_toeplitz(column, rhs)


def order_fill(
    left: np.ndarray,
    right: np.ndarray,
    n_gap: int,
    order: int,
    rows_per_side: int,
    noise: np.ndarray | None = None,
) -> OrderFill:
    """Identify the order-``order`` dynamics on both sides (``rows_per_side`` rows each, nearest the
    gap) and fill the gap: the most likely trajectory, and with ``noise`` (≥ n_gap + order standard
    normal values) a conditional deviation driven by σ·noise."""
    a, sigma = two_sided_predictor(left, right, order, rows_per_side)
    mean = most_likely_fill(left, right, n_gap, a)
    deviation = np.zeros(n_gap) if noise is None else conditional_deviation(a, n_gap, sigma * noise)
    return OrderFill(mean=mean, deviation=deviation, sigma=sigma)


def fill_with_order(
    left: np.ndarray, right: np.ndarray, n_gap: int, order: int, rows_per_side: int
) -> np.ndarray:
    """The most likely trajectory of the order-``order`` dynamics through the gap, (n_gap,)."""
    return order_fill(left, right, n_gap, order, rows_per_side).mean


CANDIDATE_ORDERS = (128, 256, 512, 1024)  # at ORDERS_RATE_HZ; see `candidate_orders`
ORDERS_RATE_HZ = 16000
MAX_ORDER = 2048  # the predictor's solve costs O(p³): 2048 is ~8× 1024's
ROWS_PER_ORDER = 4  # prediction rows per side per coefficient, as the continuation's context (4p)
PSEUDO_GAPS_PER_SIDE = 2
RESIDUALS = ("shaped", "level", "sample", "none")


@dataclass(frozen=True)
class GapFill:
    """A validated two-sided fill.

    Attributes:
        fill: (n_gap,) = mean + residual, file amplitude.
        mean: (n_gap,) the weighted most likely trajectories.
        residual: (n_gap,) what was added to the mean: the shaped conditional deviation
            (`missing_power_residual`), the plain one ("sample"), or zeros ("none").
        orders: the candidate orders combined.
        weights: per candidate (the orders, then the extra candidates), its weight (sum 1).
        validation_snr_db: per candidate, SNR of its fills of the pseudo-gaps (nan without them).
        names: per candidate, its name ("order 512", then the extra candidates' names).
        candidate_fills: (candidates, n_gap) each candidate's fill of the real gap.
        deviation: (n_gap,) the orders' conditional deviations, weighted (zeros for "none").
    """

    fill: np.ndarray
    mean: np.ndarray
    residual: np.ndarray
    orders: tuple[int, ...]
    weights: np.ndarray
    validation_snr_db: np.ndarray
    names: tuple[str, ...] = ()
    candidate_fills: np.ndarray | None = None
    deviation: np.ndarray | None = None


def _gap_spectra(mean: np.ndarray, deviation: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_fft, |M|², V): the mean's and the deviation's power spectra from one Hann-windowed frame
    over the gap (as `sonode.evaluation.evaluate_fill.gap_lsd` measures), zero-padded to ≥ 2·n_gap
    so that filtering by them wraps nothing into the gap."""
    n = mean.size
    n_fft = 2 * (1 << max(1, (n - 1).bit_length()))
    window = np.hanning(n + 2)[1:-1]
    m_power = np.abs(np.fft.rfft(mean * window, n_fft)) ** 2
    v_power = np.abs(np.fft.rfft(deviation * window, n_fft)) ** 2
    return n_fft, m_power, v_power


def _filtered(deviation: np.ndarray, gain: np.ndarray, n_fft: int) -> np.ndarray:
    return np.fft.irfft(np.fft.rfft(deviation, n_fft) * gain, n_fft)[: deviation.size]


def missing_power_residual(mean: np.ndarray, deviation: np.ndarray) -> np.ndarray:
    """The part of a conditional draw that restores the gap's power where the mean lacks it.

    The gap's expected power spectrum given both sides is |M(f)|² + V(f): M the mean's spectrum,
    V the conditional deviation's (what the dynamics cannot carry across the gap: noise, drifting
    partials, growing towards mid-gap). The mean alone carries only |M|², so the fill's spectrum is
    too weak wherever V dominates (measured at 16 kHz: 6-7 dB in the upper half of the band at
    20 ms, 9-15 dB at 80 ms). The deviation is filtered by the zero-phase gain
    g = √(V / (|M|² + V)) — the share of the expected power the mean misses — and added: where
    the mean is weak the fill gets the conditional draw's level, where it is strong (sustained
    partials) almost nothing, so little SNR is lost to random phase (`_gap_spectra`).

    Args:
        mean, deviation: (n_gap,).

    Returns:
        (n_gap,), file amplitude.
    """
    n_fft, m_power, v_power = _gap_spectra(mean, deviation)
    gain = np.sqrt(v_power / np.maximum(m_power + v_power, 1e-300))
    return _filtered(deviation, gain, n_fft)


# `level_residual`: a bin this far below the gap's mean expected power may stay one neper
# (4.3 dB) short of it; quieter bins are filled closer, louder ones less. Chosen on data/ +
# data/more at 16 kHz (flat from 27 to 39 dB), checked on the corpus (docs/fill.md).
LEVEL_KNEE_DB = 33.0


def level_residual(
    mean: np.ndarray, deviation: np.ndarray, knee_db: float = LEVEL_KNEE_DB
) -> np.ndarray:
    """The part of a conditional draw that restores the gap's quiet bins, not its loud ones.

    Added random power a in a bin costs SNR in proportion to a (it is independent of the fill's
    error) and lowers that bin's log-spectral error log(T / (|M|² + a)), T = |M|² + V the
    expected power (`missing_power_residual`). Minimising the squared log error plus λ·a per bin
    gives the filled level y = |M|² + a with log(T / y) = λy/2, i.e. y = (2/λ) W(λT/2) (Lambert
    W), a clipped to [0, V]: quiet bins (where the mean is too weak by 10-40 dB and a costs
    almost nothing) are filled to nearly T, loud ones (where random phase costs SNR) barely.
    λ = 2·10^(knee_db/10) / mean(T): the deficit left is one neper at knee_db below the mean
    power, and scales with the level. The LSD weighs every bin alike, the SNR the loud ones:
    this spends the residual where the one gains most per unit of the other.

    Args:
        mean, deviation: (n_gap,).
        knee_db: see LEVEL_KNEE_DB.

    Returns:
        (n_gap,), file amplitude.
    """
    n_fft, m_power, v_power = _gap_spectra(mean, deviation)
    added = level_added_power(m_power, v_power, knee_db)
    return _filtered(deviation, np.sqrt(added / np.maximum(v_power, 1e-300)), n_fft)


def level_added_power(
    m_power: np.ndarray, v_power: np.ndarray, knee_db: float = LEVEL_KNEE_DB
) -> np.ndarray:
    """Per bin, the power a ∈ [0, V] minimising (ln(T / (|M|² + a)))² + λ·a (`level_residual`).

    Args:
        m_power, v_power: (bins,) |M|² and V, any power unit.

    Returns:
        (bins,) a, in the unit of the inputs.
    """
    import scipy.special

    expected = m_power + v_power
    lam = 2 * 10 ** (knee_db / 10) / max(float(np.mean(expected)), 1e-300)
    level = (2 / lam) * scipy.special.lambertw(lam * expected / 2).real
    return np.clip(level - m_power, 0.0, v_power)


def pseudo_gaps(
    left: np.ndarray,
    right: np.ndarray,
    n_gap: int,
    per_side: int = PSEUDO_GAPS_PER_SIDE,
    min_side: int = 0,
):
    """Gaps of ``n_gap`` samples punched into known audio next to the real gap: ``per_side`` in the
    left context and as many in the right, at evenly spaced distances from the real gap, each with
    the audio between it and the real gap as its right (left) context.

    Yields:
        (pseudo left context, pseudo right context, truth) — right-side ones time-reversed (the
        fill is symmetric in time, so this changes nothing but the bookkeeping).
    """
    for x in (left, right[::-1]):
        n = x.shape[0]
        if n - n_gap < 2 * min_side:
            continue
        for k in range(1, per_side + 1):
            distance = k * (n - n_gap) // (per_side + 1)
            start = n - distance - n_gap
            yield x[:start], x[start + n_gap :], x[start : start + n_gap]


def _usable(order: int, n_left: int, n_right: int) -> bool:
    rows = max(0, min(ROWS_PER_ORDER * order, n_left - order)) + max(
        0, min(ROWS_PER_ORDER * order, n_right - order)
    )
    return rows >= 2 * order


def candidate_orders(rate: float) -> tuple[int, ...]:
    """CANDIDATE_ORDERS scaled to ``rate`` so they span the same time as at ORDERS_RATE_HZ (8-64 ms),
    capped at MAX_ORDER for cost. Measured at 48 kHz (bundled clips, 25 gaps per length): orders
    384-2048 instead of 128-1024 raised the SNR over the gap by a median 0.3/0.5/0.8/0.7 dB (paired)
    at 10/20/40/80 ms — the sound's dynamics span milliseconds, not samples. (More identification
    rows per order, 12 instead of 4, at 128-1024 lowered it by 0.1-0.8 dB.)"""
    scale = rate / ORDERS_RATE_HZ
    return tuple(sorted({min(MAX_ORDER, max(1, int(round(o * scale)))) for o in CANDIDATE_ORDERS}))


def validation_plan(candidates: list[int], pseudo: list) -> tuple[list[int], list]:
    """The orders to use and the pseudo-gaps to compare them on: all candidates are compared on the
    same pseudo-gaps, those whose contexts support the largest order that at least one supports
    (larger orders are dropped). A gap near the end of the available audio has one short side; its
    pseudo-gaps there would otherwise limit every order to what that side supports (measured at
    48 kHz, 80 ms, a side of 4544 samples: order 128 only, 1 dB against Janssen's 25-31 dB).
    No pseudo-gap supports even the smallest order: all candidates, no pseudo-gaps."""
    for top in range(len(candidates) - 1, -1, -1):  # _usable is monotone: smaller orders need less
        supported = [g for g in pseudo if _usable(candidates[top], g[0].shape[0], g[1].shape[0])]
        if supported:
            return candidates[: top + 1], supported
    return candidates, []


def interpolate_gap(
    left: np.ndarray,
    right: np.ndarray,
    n_gap: int,
    orders: tuple[int, ...] = CANDIDATE_ORDERS,
    per_side: int = PSEUDO_GAPS_PER_SIDE,
    residual: str = "shaped",
    seed: int = 0,
    extra: Mapping[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] | None = None,
    residual_gain: float = 1.0,
) -> GapFill:
    """Fill ``n_gap`` samples between ``left`` and ``right`` with the most likely trajectory of a
    linear ODE identified on both sides, the order chosen by validation on the clip itself, plus
    the power the mean misses (``residual`` "shaped": `missing_power_residual`; "level":
    `level_residual`, the quiet bins only; "sample": a plain conditional draw, mean plus
    deviation; "none": the mean alone; measured in docs/fill.md).

    Every candidate order p (``orders``, those the context supports) identifies the dynamics on
    ROWS_PER_ORDER·p rows per side and fills the gap (`order_fill`). The same is done on
    pseudo-gaps of the same length punched into the known audio on both sides (`pseudo_gaps`);
    the candidates' fills are averaged with weights ∝ 1 / (pseudo-gap error energy)², so the orders
    that fill this clip's own gaps best dominate, and close runners-up still average out part of
    each other's error. The candidates' conditional deviations (one white-noise draw from
    ``seed``, shared by all orders) are averaged with the same weights and shaped as ``residual``
    says.

    ``extra`` maps names to further candidate fillers f(left, right, n_gap) -> (n_gap,) (other
    estimators: `sonode.dsp.gap_candidates`); they fill the same pseudo-gaps and the real gap and
    are weighted with the orders by the same rule. The residual's deviation comes from the orders
    alone (weights renormalised over them): it is shaped against the combined mean, then scaled
    by ``residual_gain``.

    Returns:
        A `GapFill`.
    """
    left = np.asarray(left, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    candidates = sorted(o for o in orders if _usable(o, left.shape[0], right.shape[0]))
    if not candidates:
        candidates = [max(1, min(max(left.shape[0], right.shape[0]) // 3, min(orders)))]
    pseudo = list(pseudo_gaps(left, right, n_gap, per_side))
    candidates, pseudo = validation_plan(candidates, pseudo)
    extra = dict(extra or {})
    errors = np.zeros(len(candidates) + len(extra))
    energy = 0.0
    for pl, pr, truth in pseudo:
        energy += float(np.sum(truth**2))
        for i, order in enumerate(candidates):
            errors[i] += float(
                np.sum((fill_with_order(pl, pr, n_gap, order, ROWS_PER_ORDER * order) - truth) ** 2)
            )
        for i, filler in enumerate(extra.values(), start=len(candidates)):
            errors[i] += float(np.sum((filler(pl, pr, n_gap) - truth) ** 2))
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    noise = (
        np.random.default_rng(seed).standard_normal(n_gap + max(candidates))
        if residual != "none"
        else None
    )
    fills = [order_fill(left, right, n_gap, o, ROWS_PER_ORDER * o, noise) for o in candidates]
    means = np.array(
        [f.mean for f in fills] + [filler(left, right, n_gap) for filler in extra.values()]
    )
    if energy > 0 and np.all(errors > 0):
        weights = errors**-2.0
        snr = 10 * np.log10(energy / errors)
    else:  # nothing to validate on (short contexts, or silence): plain average
        weights = np.ones(errors.size)
        snr = np.full(errors.size, np.nan)
    weights = weights / weights.sum()
    mean = weights @ means
    extra_part = deviation = np.zeros(n_gap)
    if residual != "none":
        order_weights = weights[: len(candidates)]  # uniform if the extras took all the weight
        total = order_weights.sum()
        order_weights = (
            order_weights / total if total > 0 else np.full(len(candidates), 1 / len(candidates))
        )
        deviation = order_weights @ np.array([f.deviation for f in fills])
        shape = {"shaped": missing_power_residual, "level": level_residual}
        extra_part = shape[residual](mean, deviation) if residual in shape else deviation
        extra_part = residual_gain * extra_part
    return GapFill(
        fill=mean + extra_part,
        mean=mean,
        residual=extra_part,
        orders=tuple(candidates),
        weights=weights,
        validation_snr_db=snr,
        names=tuple(f"order {o}" for o in candidates) + tuple(extra),
        candidate_fills=means,
        deviation=deviation,
    )
