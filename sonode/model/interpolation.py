"""One linear-ODE trajectory through a gap, fitted to the audio on both sides of it.

A linear ODE dz/dt = A z (A block-diagonal in 2×2 rotation-decay blocks) has trajectories
x(t) = Σ_k Re(c_k e^{s_k t}); sampled, x[n] = Σ_k Re(c_k p_k^n) with p_k = e^{s_k / rate}. The
modes are identified from the audio on both sides of the gap (a covariance-method linear
predictor whose normal equations collect only the rows lying wholly left or wholly right of the
gap), and ONE state c is then fitted by weighted least squares to the left context and the right
context together; the gap samples are unknowns and never enter. The trajectory across the gap is
the fill: two-sided by construction, continuous at both seams, no blend. A linear ODE's
trajectory is exact backward and forward in time, so the same state serves both sides.

Real sounds drift: samples near the gap weigh more (weight e^{−d/τ} at d samples from the gap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal
import torch

from sonode.model.sysid import polynomial_roots

STATE_RIDGE = 1e-8  # relative to the mean diagonal of the (column-normalised) normal matrix
PREDICTOR_RIDGE = 1e-9


def two_sided_predictor(left: np.ndarray, right: np.ndarray, order: int, rows_per_side: int | None = None,
                        forward_backward: bool = True, rel_ridge: float = PREDICTOR_RIDGE) -> np.ndarray:
    """Covariance-method linear predictor of order ``order`` fitted on both contexts of a gap.

    Only prediction rows lying wholly inside one context are used (the gap is unknown). With
    ``forward_backward`` the time-reversed rows are added too (the modified covariance method):
    the dynamics must explain the sound played either way, which a trajectory integrated backward
    into the gap from the right needs as much as a forward one from the left.

    Args:
        left: samples before the gap (newest last); right: samples after it (oldest first).
        order: p.
        rows_per_side: use at most this many prediction rows per side, those nearest the gap.

    Returns:
        a, (p + 1,), a[0] = 1, x[n] ≈ −Σ a[j] x[n − j].
    """
    gram = np.zeros((order + 1, order + 1))
    rows = 0
    for side, near_end in ((left, True), (right, False)):
        if side.shape[0] <= order:
            continue
        if rows_per_side is not None and side.shape[0] > rows_per_side + order:
            side = side[-(rows_per_side + order):] if near_end else side[: rows_per_side + order]
        lagged = np.lib.stride_tricks.sliding_window_view(side, order + 1)[:, ::-1]  # x[n], x[n-1], ...
        t = torch.from_numpy(np.ascontiguousarray(lagged))
        g = (t.T @ t).numpy()
        gram += g
        if forward_backward:
            gram += g[::-1, ::-1]  # backward rows x[n−p], ..., x[n]: the same products, reversed lags
        rows += lagged.shape[0]
    if rows == 0:
        raise ValueError(f"order {order} needs more than {order} samples on one side at least")
    normal = gram[1:, 1:]
    ridge = rel_ridge * np.trace(normal) / order + 1e-300
    a = np.linalg.solve(normal + ridge * np.eye(order), -gram[1:, 0])
    return np.concatenate([[1.0], a])


def predictor_modes(a: np.ndarray, max_radius: float = 1.0) -> np.ndarray:
    """Discrete poles of predictor ``a``, one per conjugate pair (Im ≥ 0, nonzero), radius ≤ max_radius."""
    poles = polynomial_roots(a)
    poles = poles[(poles.imag >= 0) & (np.abs(poles) > 1e-8)]
    return np.minimum(np.abs(poles), max_radius) * np.exp(1j * np.angle(poles))


def trajectory_basis(poles: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Real basis of the free responses at integer times ``n`` (any sign): columns Re(p^n), −Im(p^n)
    for each pole, each column scaled to peak 1 over ``n`` (so damped modes neither overflow
    backward nor vanish forward).

    Returns:
        (n.size, 2K).
    """
    log_p = np.log(poles.astype(np.complex128))
    exponent = n[:, None].astype(np.float64) * log_p[None, :]
    exponent = exponent - exponent.real.max(axis=0, keepdims=True)  # per-column peak |p^n| = 1
    powers = np.exp(exponent)
    return np.concatenate([powers.real, -powers.imag], axis=1)


@dataclass(frozen=True)
class TrajectoryFit:
    """The fill and how well the trajectory matched the contexts it was fitted to."""

    fill: np.ndarray  # (n_gap,)
    context_residual_db: float  # 10·log10(weighted residual energy / weighted context energy)


def fit_trajectory(left: np.ndarray, right: np.ndarray, n_gap: int, poles: np.ndarray, window: int,
                   tau: float | None, rel_ridge: float = STATE_RIDGE) -> TrajectoryFit:
    """One state of the modes ``poles`` fitted to the last ``window`` samples of ``left`` and the first
    ``window`` of ``right`` at once (weights e^{−d/τ}, d = samples from the gap; τ None = uniform);
    its trajectory across the ``n_gap`` samples in between is the fill."""
    wl, wr = min(window, left.shape[0]), min(window, right.shape[0])
    n_known = np.concatenate([np.arange(-wl, 0), np.arange(n_gap, n_gap + wr)])
    x_known = np.concatenate([left[left.shape[0] - wl:], right[:wr]])
    distance = np.concatenate([np.arange(wl, 0, -1) - 1, np.arange(wr)]).astype(np.float64)
    weight = np.ones_like(distance) if tau is None else np.exp(-distance / tau)
    n_all = np.concatenate([n_known, np.arange(n_gap)]) - n_gap / 2.0  # origin mid-gap
    basis = trajectory_basis(poles, n_all)
    known, gap = basis[: n_known.size], basis[n_known.size:]
    b = torch.from_numpy(known)
    w = torch.from_numpy(weight)
    gram = (b.T @ (w[:, None] * b)).numpy()
    rhs = (b.T @ (w * torch.from_numpy(x_known))).numpy()
    dim = gram.shape[0]
    lam = rel_ridge * np.trace(gram) / dim + 1e-300
    c = torch.linalg.solve(torch.from_numpy(gram + lam * np.eye(dim)), torch.from_numpy(rhs)).numpy()
    residual = x_known - known @ c
    energy = float(np.sum(weight * x_known**2))
    res_db = 10 * math.log10(max(float(np.sum(weight * residual**2)), 1e-300) / energy) if energy > 0 else 0.0
    return TrajectoryFit(fill=gap @ c, context_residual_db=res_db)


def side_gram(side: np.ndarray, order: int, n_rows: int, near_end: bool) -> np.ndarray:
    """Covariance normal matrix Σ_n v_n v_nᵀ, v_n = (x[n], x[n−1], …, x[n−order]), over the
    ``n_rows`` prediction rows of ``side`` nearest the gap (its end if ``near_end``, else its start).

    Computed in O(order·(n_rows + order)) rather than O(n_rows·order²): the first row by dot
    products, then down each diagonal G[i+1, j+1] = G[i, j] + (entering − leaving products).

    Returns:
        (order + 1, order + 1) symmetric; zeros if ``side`` has ≤ ``order`` samples.
    """
    x = np.asarray(side, dtype=np.float64)
    p = order
    n_rows = int(min(n_rows, x.shape[0] - p))
    if n_rows <= 0:
        return np.zeros((p + 1, p + 1))
    hi = x.shape[0] - 1 if near_end else p + n_rows - 1  # rows n ∈ [lo, hi]
    lo = hi - n_rows + 1
    lags = np.arange(p + 1)
    # G[0, d] = Σ_n x[n] x[n−d], by FFT correlation
    top = scipy.signal.correlate(x[lo - p: hi + 1], x[lo: hi + 1], mode="valid")[::-1]
    # G[i, i + d] = G[0, d] + Σ_{m<i} (x[lo−1−m] x[lo−1−m−d] − x[hi−m] x[hi−m−d])
    m = np.arange(p)[:, None]
    d = lags[None, :]
    pad = np.concatenate([np.zeros(2 * p + 1), x])  # x[k] at pad[k + 2p + 1]; negative k read 0 (unused)
    off = 2 * p + 1
    enter = pad[off + lo - 1 - m] * pad[off + lo - 1 - m - d]
    leave = pad[off + hi - m] * pad[off + hi - m - d]
    corr = np.cumsum(enter - leave, axis=0)  # corr[i−1, d]
    gram = np.empty((p + 1, p + 1))
    gram[0] = top
    i = np.arange(1, p + 1)[:, None]
    dd = np.arange(p + 1)[None, :]
    valid = i + dd <= p
    rows, cols = np.broadcast_to(i, valid.shape)[valid], (i + dd)[valid]
    gram[rows, cols] = top[np.broadcast_to(dd, valid.shape)[valid]] + corr[rows - 1, np.broadcast_to(dd, valid.shape)[valid]]
    upper = np.triu(gram)
    return upper + np.triu(upper, 1).T


def predictor_from_gram(gram: np.ndarray, forward_backward: bool = True,
                        rel_ridge: float = PREDICTOR_RIDGE) -> np.ndarray:
    """Covariance-method predictor a (p + 1,), a[0] = 1, from a normal matrix (`side_gram`, summed
    over sides); ``forward_backward`` adds the time-reversed rows (same products, reversed lags)."""
    if forward_backward:
        gram = gram + gram[::-1, ::-1]
    order = gram.shape[0] - 1
    normal = gram[1:, 1:]
    ridge = rel_ridge * np.trace(normal) / order + 1e-300
    a = torch.linalg.solve(torch.from_numpy(normal + ridge * np.eye(order)), torch.from_numpy(-gram[1:, 0])).numpy()
    return np.concatenate([[1.0], a])


def most_likely_fill(left: np.ndarray, right: np.ndarray, n_gap: int, a: np.ndarray) -> np.ndarray:
    """The gap samples minimising the prediction-error energy of ``a`` over every row touching the gap.

    With the predictor read as a linear ODE driven by white noise (its innovation), this is the
    most likely trajectory through the gap given both sides (the Kalman/RTS smoother's mean over
    the gap, with the p samples on each side as the boundary states); it is solved through the
    Toeplitz normal equations of `sonode.gap_baselines.ar_interpolate`.
    """
    from sonode.gap_baselines import ar_interpolate

    p = a.size - 1
    nl, nr = min(p, left.shape[0]), min(p, right.shape[0])
    segment = np.concatenate([left[left.shape[0] - nl:], np.zeros(n_gap), right[:nr]])
    return ar_interpolate(segment, nl, n_gap, a)


def fill_with_order(left: np.ndarray, right: np.ndarray, n_gap: int, order: int, rows_per_side: int
                    ) -> np.ndarray:
    """Identify the order-``order`` dynamics on both sides (``rows_per_side`` rows each, nearest the
    gap) and return the most likely trajectory through the gap."""
    gram = side_gram(left, order, rows_per_side, True) + side_gram(right, order, rows_per_side, False)
    return most_likely_fill(left, right, n_gap, predictor_from_gram(gram))


CANDIDATE_ORDERS = (128, 256, 512, 1024)
ROWS_PER_ORDER = 4  # prediction rows per side per coefficient, as the continuation's context (4p)
PSEUDO_GAPS_PER_SIDE = 2


@dataclass(frozen=True)
class GapFill:
    """A validated two-sided fill.

    Attributes:
        fill: (n_gap,).
        orders: the candidate orders combined; weights: their weights (sum 1).
        validation_snr_db: per order, SNR of its fills of the pseudo-gaps (nan without pseudo-gaps).
    """

    fill: np.ndarray
    orders: tuple[int, ...]
    weights: np.ndarray
    validation_snr_db: np.ndarray


def pseudo_gaps(left: np.ndarray, right: np.ndarray, n_gap: int, per_side: int = PSEUDO_GAPS_PER_SIDE,
                min_side: int = 0):
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
            yield x[:start], x[start + n_gap:], x[start: start + n_gap]


def _usable(order: int, n_left: int, n_right: int) -> bool:
    rows = max(0, min(ROWS_PER_ORDER * order, n_left - order)) + max(0, min(ROWS_PER_ORDER * order, n_right - order))
    return rows >= 2 * order


def interpolate_gap(left: np.ndarray, right: np.ndarray, n_gap: int, orders: tuple[int, ...] = CANDIDATE_ORDERS,
                    per_side: int = PSEUDO_GAPS_PER_SIDE) -> GapFill:
    """Fill ``n_gap`` samples between ``left`` and ``right`` with the most likely trajectory of a
    linear ODE identified on both sides, the order chosen by validation on the clip itself.

    Every candidate order p (``orders``, those the context supports) identifies the dynamics on
    ROWS_PER_ORDER·p rows per side and fills the gap (`fill_with_order`). The same is done on
    pseudo-gaps of the same length punched into the known audio on both sides (`pseudo_gaps`);
    the candidates' fills are averaged with weights ∝ 1 / (pseudo-gap error energy)², so the orders
    that fill this clip's own gaps best dominate, and close runners-up still average out part of
    each other's error.

    Returns:
        A `GapFill`.
    """
    left = np.asarray(left, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    candidates = [o for o in orders if _usable(o, left.shape[0], right.shape[0])]
    if not candidates:
        candidates = [max(1, min(max(left.shape[0], right.shape[0]) // 3, min(orders)))]
    pseudo = list(pseudo_gaps(left, right, n_gap, per_side))
    # only orders that every pseudo-gap's context supports can be validated, so only those are used
    validated = [o for o in candidates if all(_usable(o, pl.shape[0], pr.shape[0]) for pl, pr, _ in pseudo)]
    if validated and pseudo:
        candidates = validated
    else:
        pseudo = []
    errors = np.zeros(len(candidates))
    energy = 0.0
    for pl, pr, truth in pseudo:
        energy += float(np.sum(truth**2))
        for i, order in enumerate(candidates):
            errors[i] += float(np.sum((fill_with_order(pl, pr, n_gap, order, ROWS_PER_ORDER * order) - truth) ** 2))
    fills = np.array([fill_with_order(left, right, n_gap, o, ROWS_PER_ORDER * o) for o in candidates])
    if energy > 0 and np.all(errors > 0):
        weights = errors ** -2.0
        snr = 10 * np.log10(energy / errors)
    else:  # nothing to validate on (short contexts, or silence): plain average
        weights = np.ones(len(candidates))
        snr = np.full(len(candidates), np.nan)
    weights = weights / weights.sum()
    return GapFill(fill=weights @ fills, orders=tuple(candidates), weights=weights, validation_snr_db=snr)
