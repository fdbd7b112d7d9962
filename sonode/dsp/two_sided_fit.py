"""Identifying the two-sided predictor of a gap: the normal matrix of each side, the predictor, its
innovation level, and a memo of these fits keyed by the exact samples each one reads.

Filling one gap identifies the same predictor several times: the ``reestimate`` candidate
(`sonode.dsp.gap_candidates.reestimated_fill`) starts from the fill of the largest order, which
the orders of `sonode.dsp.interpolation.interpolate_gap` have just identified on the same samples
for the same pseudo-gap or gap. At 44.1 kHz that start (two normal matrices and an order-2048
Cholesky factorisation) was a third of the reestimate's cost (docs/fill_history.md, "Speed of one
gap at 44.1 kHz"). The memo's key is the samples themselves (bytes, compared for equality, not a
hash), so a hit returns exactly what the fit would have computed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np
import scipy.linalg
import scipy.signal
import torch

T = TypeVar("T")


class FitMemo:
    """Least-recently-used memo of at most ``size`` results; safe to share between threads (a
    result may then be computed twice, never returned wrong)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The result stored under ``key``, else ``compute()`` (stored, oldest entry dropped)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]  # type: ignore[return-value]
            self.misses += 1
        value = compute()
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


PREDICTOR_RIDGE = 1e-9
# a gap's orders × (pseudo-gaps + 1) fits, at most; ≤ 2·(5·2048 + 2049)·8 B ≈ 0.2 MB each
PREDICTOR_MEMO = FitMemo(24)


def _side_terms(
    side: np.ndarray, order: int, n_rows: int, near_end: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What one side adds to a normal matrix built down its diagonals (`normal_matrix`): its first
    row G[0, d] = Σ_n x[n] x[n−d] (FFT correlation) and the two windows w[j] = x[base − j],
    j < 2·order, of the samples entering (before the first row) and leaving (the last row) as a
    diagonal steps down; None if ``side`` has ≤ ``order`` samples."""
    x = np.asarray(side, dtype=np.float64)
    p = order
    n_rows = int(min(n_rows, x.shape[0] - p))
    if n_rows <= 0:
        return None
    hi = x.shape[0] - 1 if near_end else p + n_rows - 1  # rows n ∈ [lo, hi]
    lo = hi - n_rows + 1
    top = scipy.signal.correlate(x[lo - p : hi + 1], x[lo : hi + 1], mode="valid")[::-1]
    pad = np.concatenate([np.zeros(2 * p + 1), x])  # x[k] at pad[k + 2p + 1]; k < 0 only in junk

    def window(base: int) -> np.ndarray:  # w[j] = x[base − j], j < 2p
        return pad[base + 2 : base + 2 * p + 2][::-1]

    return top, window(lo - 1), window(hi)


def normal_matrix(sides: list[tuple[np.ndarray, int, bool]], order: int) -> np.ndarray:
    """Σ over ``sides`` of the covariance normal matrix Σ_n v_n v_nᵀ, v_n = (x[n], x[n−1], …,
    x[n−order]), each side ``(x, n_rows, near_end)`` contributing its ``n_rows`` prediction rows
    nearest the gap (the end of ``x`` if ``near_end``, else its start); see `side_gram`.

    Built in O(order·(rows + order)), not O(rows·order²): the first row by FFT correlation, then
    down each diagonal, G[i+1, j+1] = G[i, j] + Σ_sides (entering − leaving products). The sides
    share one pass: row i+1 of the diagonal layout is row i plus one small product of the (2·sides,
    2·order) windows — it stays in cache, where summing whole-matrix arrays per side did not
    (order 2048, two sides: 0.03 against 0.14 CPU s; docs/fill.md, "A whole song").

    Returns:
        (order + 1, order + 1) symmetric; zeros where no side has more than ``order`` samples.
    """
    p = order
    terms = [t for t in (_side_terms(x, p, rows, end) for x, rows, end in sides) if t is not None]
    # row i of this strided view (row stride p + 2) is the diagonal layout: column d ↦ G[i, i + d];
    # entries with i + d > p land in the strict lower triangle (or past the end): overwritten below
    flat = np.zeros((p + 1) * (p + 2))
    step = flat.strides[0]
    view = np.lib.stride_tricks.as_strided(
        flat, shape=(p + 1, p + 1), strides=(step * (p + 2), step)
    )
    gram = flat[: (p + 1) ** 2].reshape(p + 1, p + 1)
    if not terms:
        return gram
    view[0] = sum(t[0] for t in terms)
    windows = np.array([w for t in terms for w in t[1:]])  # (2·sides, 2p): entering, leaving, …
    signed = windows * np.tile([1.0, -1.0], len(terms))[:, None]
    for i in range(p):  # G[i+1, i+1+d] = G[i, i+d] + Σ ± w[i] w[i+d]
        np.dot(signed[:, i], windows[:, i : i + p + 1], out=view[i + 1])
        view[i + 1] += view[i]
    for i in range(1, p + 1):  # mirror the upper triangle over the junk, row by row
        gram[i, :i] = gram[:i, i]
    return gram


def side_gram(side: np.ndarray, order: int, n_rows: int, near_end: bool) -> np.ndarray:
    """Covariance normal matrix Σ_n v_n v_nᵀ, v_n = (x[n], x[n−1], …, x[n−order]), over the
    ``n_rows`` prediction rows of ``side`` nearest the gap (its end if ``near_end``, else its start).

    Returns:
        (order + 1, order + 1) symmetric; zeros if ``side`` has ≤ ``order`` samples.
    """
    return normal_matrix([(side, n_rows, near_end)], order)


def _cholesky_solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix`` ⁻¹ ``rhs`` for a symmetric positive definite ``matrix`` (a Gram matrix plus a
    ridge); LU if round-off broke its definiteness. torch's Cholesky keeps to the thread count the
    fill's pool gives torch (`sonode.tasks.fill_file`)."""
    tensor = torch.from_numpy(matrix)
    factor, info = torch.linalg.cholesky_ex(tensor)
    if int(info) == 0:
        return scipy.linalg.cho_solve((factor.numpy(), True), rhs, check_finite=False)
    return torch.linalg.solve(tensor, torch.from_numpy(rhs)).numpy()


def predictor_from_gram(
    gram: np.ndarray, forward_backward: bool = True, rel_ridge: float = PREDICTOR_RIDGE
) -> np.ndarray:
    """Covariance-method predictor a (p + 1,), a[0] = 1, from a normal matrix (`side_gram`, summed
    over sides); ``forward_backward`` adds the time-reversed rows (same products, reversed lags).

    a minimises aᵀ(G + ρ·diag(0, 1, …, 1))a with a[0] = 1, ρ = ``rel_ridge``·trace/p, i.e. solves
    (G[1:, 1:] + ρI) a[1:] = −G[1:, 0]. Forward-backward, C = G + JGJ (J the reversal) is
    centrosymmetric; with the ridge on C[0, 0] too (a constant ρ·a[0]² = ρ: the same minimiser),
    a ∝ (C + ρI)⁻¹e₀, and the orthogonal split into symmetric and antisymmetric vectors turns that
    into two systems of half the size (`_centrosymmetric_solve`): a quarter of the Cholesky's
    O(p³) work, the same predictor to rounding (tests)."""
    order = gram.shape[0] - 1
    if not forward_backward or order < 2:
        if forward_backward:
            gram = gram + gram[::-1, ::-1]
        normal = gram[1:, 1:].copy()  # the ridge added in place: no (p × p) identity built
        normal[np.diag_indices(order)] += rel_ridge * np.trace(normal) / order + 1e-300
        return np.concatenate([[1.0], _cholesky_solve(normal, -gram[1:, 0])])
    trace = 2 * np.trace(gram) - gram[0, 0] - gram[-1, -1]  # of C[1:, 1:]
    y = _centrosymmetric_solve(gram, rel_ridge * trace / order + 1e-300)
    return y / y[0]


def _centrosymmetric_solve(gram: np.ndarray, ridge: float) -> np.ndarray:
    """y = (C + ridge·I)⁻¹ e₀ for C = G + JGJ, G (n, n) symmetric, through two half-size systems.

    With m = n // 2, the orthonormal vectors (e_k ± e_{n−1−k})/√2, k < m (and e_m for odd n)
    split C into M_s (symmetric vectors, m + n % 2) and M_a (antisymmetric, m), whose entries
    are sums of four entries of G: with P = G[k, l] + G[n−1−k, n−1−l] (= C[k, l]) and
    Q = G[k, n−1−l] + G[n−1−k, l] (= C[k, n−1−l]), M_s = P + Q and M_a = P − Q (k, l < m);
    for odd n, M_s's last column is √2·C[k, m] = √2(G[k, m] + G[n−1−k, m]), its corner C[m, m]."""
    n = gram.shape[0]
    m, odd = n // 2, n % 2
    flipped = gram[::-1, ::-1]
    p_part = gram[:m, :m] + flipped[:m, :m]
    q_part = gram[:m, ::-1][:, :m] + flipped[:m, ::-1][:, :m]
    sym = np.empty((m + odd, m + odd))
    np.add(p_part, q_part, out=sym[:m, :m])
    anti = p_part - q_part
    if odd:
        column = np.sqrt(2.0) * (gram[:m, m] + gram[::-1, m][:m])
        sym[:m, m] = sym[m, :m] = column
        sym[m, m] = 2.0 * gram[m, m]
    sym[np.diag_indices(m + odd)] += ridge
    anti[np.diag_indices(m)] += ridge
    e_sym, e_anti = np.zeros(m + odd), np.zeros(m)
    e_sym[0] = e_anti[0] = np.sqrt(0.5)
    alpha_sym, alpha_anti = _cholesky_solve(sym, e_sym), _cholesky_solve(anti, e_anti)
    y = np.empty(n)
    y[:m] = (alpha_sym[:m] + alpha_anti) * np.sqrt(0.5)
    y[n - m :] = ((alpha_sym[:m] - alpha_anti) * np.sqrt(0.5))[::-1]
    if odd:
        y[m] = alpha_sym[m]
    return y


def innovation_sigma(
    gram: np.ndarray, a: np.ndarray, rows: int, forward_backward: bool = True
) -> float:
    """RMS prediction error of ``a`` over the ``rows`` context rows whose normal matrix is ``gram``
    (forward and, with ``forward_backward``, time-reversed rows: 2·rows in all)."""
    energy = float(a @ (gram @ a))
    if forward_backward:  # aᵀ(G + JGJ)a without building JGJ
        energy += float(a[::-1] @ (gram @ a[::-1]))
        rows = 2 * rows
    return float(np.sqrt(max(energy, 0.0) / max(rows, 1)))


def two_sided_predictor(
    left: np.ndarray, right: np.ndarray, order: int, rows_per_side: int
) -> tuple[np.ndarray, float]:
    """(a (order + 1,), innovation σ) identified on ``rows_per_side`` rows per side (`order_fill`),
    memoised on the samples read (the reestimate candidate starts here)."""
    left = np.asarray(left, dtype=np.float64)[-(rows_per_side + order) :]
    right = np.asarray(right, dtype=np.float64)[: rows_per_side + order]

    def fit() -> tuple[np.ndarray, float]:
        gram = normal_matrix([(left, rows_per_side, True), (right, rows_per_side, False)], order)
        rows = sum(max(0, min(rows_per_side, side.shape[0] - order)) for side in (left, right))
        a = predictor_from_gram(gram)
        return a, innovation_sigma(gram, a, rows)

    key = (order, rows_per_side, left.size, left.tobytes(), right.tobytes())
    return PREDICTOR_MEMO.get(key, fit)
