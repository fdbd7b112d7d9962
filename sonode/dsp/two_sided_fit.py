"""Identifying the two-sided predictor of a gap: the normal matrix of each side, the predictor, its
innovation level, and a memo of these fits keyed by the exact samples each one reads.

Filling one gap identifies the same predictor several times: the ``reestimate`` candidate
(`sonode.dsp.gap_candidates.reestimated_fill`) starts from the fill of the largest order, which
the orders of `sonode.dsp.interpolation.interpolate_gap` have just identified on the same samples
for the same pseudo-gap or gap. At 44.1 kHz that start (two normal matrices and an order-2048
Cholesky factorisation) was a third of the reestimate's cost (docs/fill.md, "Speed"). The memo's
key is the samples themselves (bytes, compared for equality, not a hash), so a hit returns
exactly what the fit would have computed.
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
    # G[0, d] = Σ_n x[n] x[n−d], by FFT correlation
    top = scipy.signal.correlate(x[lo - p : hi + 1], x[lo : hi + 1], mode="valid")[::-1]
    # G[i, i + d] = G[0, d] + Σ_{m<i} (x[lo−1−m] x[lo−1−m−d] − x[hi−m] x[hi−m−d])
    pad = np.concatenate([np.zeros(2 * p + 1), x])  # x[k] at pad[k + 2p + 1]; k < 0 unused
    off = 2 * p + 1

    def products(base: int) -> np.ndarray:  # [m, d] ↦ x[base − m] x[base − m − d], a Hankel view
        w = pad[off + base - 2 * p + 1 : off + base + 1][::-1]  # w[j] = x[base − j]
        return w[:p, None] * np.lib.stride_tricks.sliding_window_view(w, p + 1)[:p]

    # in place (same sums as before, bit for bit): these p × (p + 1) passes are the cost at p ≥ 1024
    corr = products(lo - 1)
    np.subtract(corr, products(hi), out=corr)
    np.cumsum(corr, axis=0, out=corr)  # corr[i−1, d]
    corr += top
    # written through a view with row stride p + 2: row i, column d lands on G[i, i + d]; the entries
    # with i + d > p land in the strict lower triangle (or past the end) and are discarded
    flat = np.zeros((p + 1) * (p + 2))
    step = flat.strides[0]
    view = np.lib.stride_tricks.as_strided(
        flat, shape=(p + 1, p + 1), strides=(step * (p + 2), step)
    )
    view[0], view[1:] = top, corr
    gram = flat[: (p + 1) ** 2].reshape(p + 1, p + 1)
    # mirror the upper triangle over the junk, row by row: 3× faster than np.triu twice
    for i in range(1, p + 1):
        gram[i, :i] = gram[:i, i]
    return gram


def predictor_from_gram(
    gram: np.ndarray, forward_backward: bool = True, rel_ridge: float = PREDICTOR_RIDGE
) -> np.ndarray:
    """Covariance-method predictor a (p + 1,), a[0] = 1, from a normal matrix (`side_gram`, summed
    over sides); ``forward_backward`` adds the time-reversed rows (same products, reversed lags)."""
    if forward_backward:
        gram = gram + gram[::-1, ::-1]
    order = gram.shape[0] - 1
    normal = gram[1:, 1:]
    ridge = rel_ridge * np.trace(normal) / order + 1e-300
    normal = normal.copy()  # the ridge added in place: no (p × p) identity built and added
    normal[np.diag_indices(order)] += ridge
    matrix, rhs = torch.from_numpy(normal), torch.from_numpy(-gram[1:, 0])
    factor, info = torch.linalg.cholesky_ex(matrix)  # a Gram matrix plus a ridge: positive definite
    if int(info) == 0:
        a = scipy.linalg.cho_solve((factor.numpy(), True), rhs.numpy(), check_finite=False)
    else:  # round-off broke definiteness
        a = torch.linalg.solve(matrix, rhs).numpy()
    return np.concatenate([[1.0], a])


def innovation_sigma(
    gram: np.ndarray, a: np.ndarray, rows: int, forward_backward: bool = True
) -> float:
    """RMS prediction error of ``a`` over the ``rows`` context rows whose normal matrix is ``gram``
    (forward and, with ``forward_backward``, time-reversed rows: 2·rows in all)."""
    if forward_backward:
        gram = gram + gram[::-1, ::-1]
        rows = 2 * rows
    return float(np.sqrt(max(float(a @ gram @ a), 0.0) / max(rows, 1)))


def two_sided_predictor(
    left: np.ndarray, right: np.ndarray, order: int, rows_per_side: int
) -> tuple[np.ndarray, float]:
    """(a (order + 1,), innovation σ) identified on ``rows_per_side`` rows per side (`order_fill`),
    memoised on the samples read (the reestimate candidate starts here)."""
    left = np.asarray(left, dtype=np.float64)[-(rows_per_side + order) :]
    right = np.asarray(right, dtype=np.float64)[: rows_per_side + order]

    def fit() -> tuple[np.ndarray, float]:
        gram = side_gram(left, order, rows_per_side, True)
        gram += side_gram(right, order, rows_per_side, False)
        rows = sum(max(0, min(rows_per_side, side.shape[0] - order)) for side in (left, right))
        a = predictor_from_gram(gram)
        return a, innovation_sigma(gram, a, rows)

    key = (order, rows_per_side, left.size, left.tobytes(), right.tobytes())
    return PREDICTOR_MEMO.get(key, fit)
