"""System identification: the linear part of the audio ODE, found in closed form before training.

A linear ODE dz/dt = A z with A block-diagonal in 2×2 rotation-decay blocks produces sums of
damped sinusoids. Linear prediction of the clip gives discrete poles p (one per conjugate pair);
the continuous-time poles are s = sample_rate · log p, so the linear ODE reproduces the clip's free
response at any sample rate. Of the many poles of a high-order predictor we keep the K that carry
the most energy when every segment of the clip is fitted by them, which is what the model will do.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal

from sonode.dsp.linalg import lapack_threads, polynomial_roots
from sonode.dsp.metrics import as_signal


@dataclass(frozen=True)
class Modes:
    """K continuous-time modes s_k = decay_per_s[k] + i·omega_rad_per_s[k] (one per conjugate pair)."""

    decay_per_s: np.ndarray  # (K,), ≤ 0: no mode grows, so free runs cannot explode on their own
    omega_rad_per_s: np.ndarray  # (K,), in [0, π·sample_rate]

    @property
    def n_modes(self) -> int:
        return int(self.decay_per_s.shape[0])


def lag_gram(x: np.ndarray, order: int) -> np.ndarray:
    """Normal matrix of the lag matrix: G[i, j] = Σ_{n=order}^{N−1} x[n−i]·x[n−j], i, j ∈ [0, order].

    Shifting both lags by one moves the sum's window by one sample, so
    G[i, j] = G[i−1, j−1] + x[order−i]·x[order−j] − x[N−i]·x[N−j]: the first row (one
    correlation, O(N·order)) and this recursion (O(order²)) give the whole matrix, where forming it
    from the lag matrix costs N·order² (1.2 s of the 1.5 s guitar clip's identification at order
    1024 on an idle core, against 0.03 s). The recursion's rounding stays near the direct sum's
    (tested against it).

    Args:
        x: signal, shape (N,), float64, N > order.
        order: largest lag.

    Returns:
        Symmetric (order + 1, order + 1) array.
    """
    n = x.shape[0]
    p = order
    gram = np.empty((p + 1, p + 1))
    gram[0] = np.correlate(x, x[p:], mode="valid")[::-1]  # [j]: Σ_n x[n]·x[n−j]
    head, tail = (
        x[p::-1],
        x[n - 1 : n - p - 2 if n - p - 2 >= 0 else None : -1],
    )  # [i]: x[p−i], x[N−1−i]
    for i in range(1, p + 1):
        # row i from row i − 1 shifted: columns j ≥ i only (the rest by symmetry below)
        gram[i, i:] = gram[i - 1, i - 1 : p] + head[i] * head[i:] - tail[i - 1] * tail[i - 1 : p]
    upper = np.triu(gram)
    return upper + np.triu(gram, 1).T


def covariance_predictor(x: np.ndarray, order: int, rel_ridge: float = 1e-9) -> np.ndarray:
    """Covariance-method (least-squares) linear predictor.

    Unlike the autocorrelation method it does not window the signal, so the poles of damped
    sinusoids come out unbiased (the autocorrelation method pulls them inward by O(1/duration),
    which shows up as wrong decay rates). It is solved by the normal equations (`lag_gram`, memory
    O(order²) at any length) with a tiny ridge, by Cholesky on one LAPACK thread.

    Args:
        x: signal, shape (n_samples,), n_samples > 2·order.
        order: predictor order p.
        rel_ridge: ridge relative to the mean diagonal of the normal matrix.

    Returns:
        a, shape (p + 1,), a[0] = 1, with x[n] ≈ −Σ_{j≥1} a[j] x[n−j].
    """
    gram = lag_gram(np.asarray(x, dtype=np.float64), order)
    normal = gram[1:, 1:]
    ridge = rel_ridge * np.trace(normal) / order + 1e-300
    with lapack_threads():
        a = scipy.linalg.solve(
            normal + ridge * np.eye(order), -gram[1:, 0], assume_a="pos", check_finite=False
        )
    return np.concatenate([[1.0], a])


def burg(x: np.ndarray, order: int) -> np.ndarray:
    """Burg's prediction-error filter of ``x`` (same recursion and result as ``librosa.lpc``).

    Each order is one reflection coefficient k = −2 f·b / (f·f + b·b) over the current forward
    and backward errors, then two vector updates: O(N·order) in numpy, no per-sample Python loop
    (0.1 s at order 2048 on 12800 samples) and no JIT compilation. When the prediction error
    vanishes (a noise-free sum of ≤ m/2 sinusoids is predicted exactly by order m) the remaining
    coefficients stay zero instead of becoming 0/0 = NaN as in librosa.

    Args:
        x: shape (N,), N > order, float64.
        order: >= 1.

    Returns:
        ``a``, shape (order + 1,), a[0] = 1.
    """
    forward, backward = x[1:].copy(), x[:-1].copy()
    a = np.zeros(order + 1)
    a[0] = 1.0
    # Below this error energy the errors are round-off of an exactly predictable signal.
    floor = 1e-24 * max(2.0 * float(x @ x), np.finfo(float).tiny)
    for m in range(order):
        energy = float(forward @ forward + backward @ backward)
        if energy <= floor:
            break
        k = -2.0 * float(forward @ backward) / energy
        a[: m + 2] += k * a[: m + 2][::-1].copy()
        forward, backward = (forward + k * backward)[1:], (backward + k * forward)[:-1]
    return a


def predictor_run(a: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """Linear-prediction extrapolation: the all-pole filter 1/A(z) run on zero input, its state set
    from the last len(a) − 1 samples of ``history`` (newest first) → (n,) samples following it.
    One C loop (scipy), ~100x faster than a Python loop at order 2048."""
    order = a.shape[0] - 1
    state = scipy.signal.lfiltic([1.0], a, np.asarray(history, dtype=np.float64)[::-1][:order])
    return scipy.signal.lfilter([1.0], a, np.zeros(n), zi=state)[0]


def predictor_poles(x: np.ndarray, order: int) -> np.ndarray:
    """Discrete poles of the linear predictor of ``x``, one per conjugate pair.

    Args:
        x: signal, shape (n_samples,), n_samples > order.
        order: predictor order.

    Returns:
        Complex poles with Im ≥ 0 (real poles included), shape (≤ order,), magnitudes clipped to ≤ 1.
    """
    return stable_poles(
        polynomial_roots(covariance_predictor(np.asarray(x, dtype=np.float64), order))
    )


def stable_poles(roots: np.ndarray) -> np.ndarray:
    """The roots with Im ≥ 0 and |root| > 1e-8 (a zero pole has no continuous-time counterpart),
    magnitudes clipped to ≤ 1 (no mode grows)."""
    poles = roots[(roots.imag >= 0) & (np.abs(roots) > 1e-8)]
    return np.minimum(np.abs(poles), 1.0) * np.exp(1j * np.angle(poles))


MODAL_BLOCK_ROWS = 64  # rows of p^j computed by exp; the rest are products with p^(block start)


def modal_basis(poles: np.ndarray, n_samples: int, first: int = 0) -> np.ndarray:
    """Real basis of the free responses: x[n] = Σ_k Re(c_k p_k^n) = basis @ [Re c, Im c].

    The powers are exp(n·log p) at the first MODAL_BLOCK_ROWS offsets and at each block's start,
    and products of the two elsewhere: one complex product per entry instead of one complex exp
    (several times faster), to within an ulp or two of exp(n·log p).

    Args:
        poles: discrete poles, shape (K,).
        n_samples: rows of the basis.
        first: the power of its first row (rows first … first + n_samples − 1).

    Returns:
        Array (n_samples, 2K): columns Re(p^n) then −Im(p^n).
    """
    with np.errstate(divide="ignore"):
        log_poles = np.log(poles.astype(np.complex128))
    block = min(MODAL_BLOCK_ROWS, max(n_samples, 1))
    n_blocks = -(-n_samples // block)
    with np.errstate(invalid="ignore"):  # 0·log 0 of zero poles: their columns are set below
        offsets = np.exp(np.arange(block)[:, None] * log_poles[None, :])  # (B, K)
        starts = np.exp(
            (first + block * np.arange(n_blocks))[:, None] * log_poles[None, :]
        )  # (blocks, K)
        powers = (starts[:, None, :] * offsets[None, :, :]).reshape(
            n_blocks * block, poles.shape[0]
        )[:n_samples]
    zero = ~np.isfinite(log_poles.real)  # zero poles: 0^n, 1 at n = 0
    powers[:, zero] = 0.0
    if first == 0 and n_samples > 0:
        powers[0] = 1.0
    return np.concatenate([powers.real, -powers.imag], axis=1)


def modal_gram(poles: np.ndarray, n_samples: int) -> np.ndarray:
    """``modal_basis(poles, n).T @ modal_basis(poles, n)`` in closed form, O(K²) instead of O(n·K²).

    Products of the basis columns are real parts of (p_i p_j)^n and (p_i p̄_j)^n, whose sums over
    n are geometric: Σ_{n<N} q^n = expm1(N log q) / expm1(log q) (N where q = 1), accurate for q
    near 1 (two close, lightly damped poles), where 1 − q^N over 1 − q would cancel.

    Args:
        poles: (K,) complex, none zero (use `modal_basis` for those).
        n_samples: N ≥ 1.

    Returns:
        (2K, 2K) symmetric.
    """
    log_p = np.log(poles.astype(np.complex128))
    sums = []
    for other in (log_p, np.conj(log_p)):  # Σ (p_i p_j)^n, Σ (p_i p̄_j)^n
        exponent = log_p[:, None] + other[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.expm1(n_samples * exponent) / np.expm1(exponent)
        sums.append(np.where(np.abs(exponent) < 1e-300, n_samples, total))
    same, cross = sums
    real_real = 0.5 * (same.real + cross.real)
    imag_imag = 0.5 * (cross.real - same.real)
    real_negimag = -0.5 * (same.imag - cross.imag)  # Re(p_i^n)·(−Im(p_j^n))
    return np.block([[real_real, real_negimag], [real_negimag.T, imag_imag]])


def ridge_solve(gram: np.ndarray, rhs: np.ndarray, rel_ridge: float) -> np.ndarray:
    """Solve (G + λI) c = r with λ = rel_ridge · mean diagonal of G, batched over leading dims.

    Args: gram (..., d, d) or (d, d) shared by all right-hand sides; rhs (..., d). Returns (..., d).

    The small ridge keeps nearly collinear modes (close poles) from producing huge, cancelling
    coefficients that would make the trajectory fragile.
    """
    dim = gram.shape[-1]
    lam = rel_ridge * np.trace(gram, axis1=-2, axis2=-1)[..., None, None] / dim + 1e-12
    with lapack_threads():
        if gram.ndim == 2:  # one matrix for every right-hand side: factorised once, not per row
            return np.linalg.solve(gram + lam * np.eye(dim), rhs.reshape(-1, dim).T).T.reshape(
                rhs.shape
            )
        return np.linalg.solve(gram + lam * np.eye(dim), rhs[..., None])[..., 0]


class Stopwatch:
    """Wall-clock seconds spent in named pieces of work (the fit report's identification breakdown).

    ``with watch("roots"): ...`` adds the block's duration to ``watch.seconds["roots"]``."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


RANKING_WINDOW_SAMPLES = 2048  # windows on which the modes are ranked and their number chosen
MAX_RANKING_WINDOWS = 32
MODE_COUNT_CANDIDATES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HELD_BACK_FRACTION = 0.2
# A long clip's predictor is fitted on evenly spaced excerpts totalling this many seconds: its
# normal matrix costs n·order² operations, hours for minutes of audio at order 1024.
IDENTIFY_MAX_SAMPLES_PER_RATE_HZ = 8


def _excerpts(x: np.ndarray, max_samples: int, pieces: int = 8) -> np.ndarray:
    """x itself if short enough, else ``pieces`` evenly spaced excerpts joined (max_samples in all)."""
    if x.shape[0] <= max_samples:
        return x
    length = max_samples // pieces
    starts = np.linspace(0, x.shape[0] - length, pieces).astype(int)
    return np.concatenate([x[s : s + length] for s in starts])


def window_starts(n_samples: int) -> tuple[int, np.ndarray]:
    """The ranking windows of a clip of n_samples: (length, starts (J,)), up to
    MAX_RANKING_WINDOWS windows of RANKING_WINDOW_SAMPLES spread evenly over it."""
    length = min(RANKING_WINDOW_SAMPLES, n_samples)
    n_win = min(MAX_RANKING_WINDOWS, max(1, n_samples // length))
    return length, np.linspace(0, n_samples - length, n_win).astype(int)


def identify_modes(
    x: np.ndarray,
    sample_rate: int,
    n_modes: int | None,
    max_modes: int = 128,
    lp_order: int = 1024,
    rel_ridge: float = 1e-6,
    watch: Stopwatch | None = None,
) -> Modes:
    """Pick the continuous-time modes of a clip, and how many of them it supports.

    The candidates are the poles of an order-``lp_order`` covariance-method predictor of the whole
    clip. Each is ranked by the energy it carries in least-squares fits of all candidates to up to
    MAX_RANKING_WINDOWS windows spread over the clip. The number K of modes kept is ``n_modes``,
    or, when None, the K ≤ ``max_modes`` whose least-squares fits to the ranking windows best
    predict held-back samples of those windows (see `_validation_choice`).

    Args:
        x: normalised clip, shape (n_samples,).
        sample_rate: Hz.
        n_modes: K, or None to choose it by validation.
        max_modes: the largest K the validation may choose.
        lp_order: order of the linear predictor whose poles are the candidates (capped by the clip).
        rel_ridge: ridge of the windowed least-squares fits.
        watch: records the seconds of the predictor, its roots, the ranking and the validation.

    Returns:
        The K modes carrying the most energy; if the predictor has fewer distinct poles than an
        explicit ``n_modes``, the rest are spread on a log-frequency grid with slow decay, so the
        model has the latent size the user asked for.
    """
    watch = watch or Stopwatch()
    order = int(min(lp_order, max(2, (x.shape[0] - 1) // 3)))
    with watch("modes_predictor"):
        predictor = covariance_predictor(
            _excerpts(x, IDENTIFY_MAX_SAMPLES_PER_RATE_HZ * sample_rate), order
        )
    with watch("modes_roots"):
        poles = stable_poles(polynomial_roots(predictor))
    length, starts = window_starts(x.shape[0])
    segs = np.stack([x[s : s + length] for s in starts])  # (J, L)
    with watch("modes_ranking"):
        basis = modal_basis(poles, length)
        coef = ridge_solve(modal_gram(poles, length), segs @ basis, rel_ridge)  # (J, 2K)
        k = poles.shape[0]
        energy_per_mode = (coef[:, :k] ** 2 + coef[:, k:] ** 2).sum(0) * (
            np.abs(basis[:, :k]) ** 2 + basis[:, k:] ** 2
        ).sum(0)
        ranked = poles[np.argsort(energy_per_mode)[::-1]]
    if n_modes is None:
        with watch("modes_validation"):
            n_modes = _validation_choice(segs, ranked, min(max_modes, k), rel_ridge)
    chosen = ranked[:n_modes]
    s = np.log(chosen) * sample_rate
    decay, omega = np.minimum(s.real, 0.0), np.abs(s.imag)
    missing = n_modes - chosen.shape[0]
    if missing > 0:
        nyquist_rad = np.pi * sample_rate
        omega = np.concatenate([omega, np.geomspace(2 * np.pi * 50.0, 0.9 * nyquist_rad, missing)])
        decay = np.concatenate([decay, np.full(missing, -10.0)])
    return Modes(decay_per_s=decay, omega_rad_per_s=omega)


def _validation_choice(
    windows: np.ndarray, ranked: np.ndarray, max_modes: int, rel_ridge: float
) -> int:
    """The K of MODE_COUNT_CANDIDATES (≤ max_modes) whose per-window fits predict held-back
    samples best: every window is fitted on (1 − HELD_BACK_FRACTION) of its samples, chosen at
    random with a fixed seed, and scored on the rest. Too few modes miss the sound; too many fit
    the kept samples' noise and miss the held-back ones."""
    n_win, length = windows.shape
    held = np.random.default_rng(0).random((n_win, length)) < HELD_BACK_FRACTION  # (J, L)
    best_k, best_err = 1, math.inf
    for k in [c for c in MODE_COUNT_CANDIDATES if c <= max_modes] or [max(1, max_modes)]:
        basis = modal_basis(ranked[:k], length)  # (L, 2K)
        kept = (~held).astype(np.float64)
        with lapack_threads():
            gram = (basis.T[None] * kept[:, None, :]) @ basis  # (J, 2K, 2K) by batched matmul
        coef = ridge_solve(gram, (kept * windows) @ basis, rel_ridge)
        err = float(np.sum(held * (windows - coef @ basis.T) ** 2))
        if err < best_err:
            best_k, best_err = k, err
    return best_k


def lpc_coefficients(history: np.ndarray, order: int, method: str = "burg") -> np.ndarray:
    """Linear-prediction polynomial ``a`` of ``history``: x[n] ≈ −Σ_{k=1..order} a[k]·x[n−k].

    ``method="burg"``: Burg's method, :func:`burg` (minimises forward + backward prediction
    error; stable in exact arithmetic, but biased on damped sinusoids: it puts their poles too
    close to the unit circle, so it under-estimates decay).
    ``method="lstsq"``: covariance-method least squares — minimise Σ_{n=order..N−1} of the forward
    prediction error over the whole history, solved with ``numpy.linalg.lstsq`` (exact on a noise-
    free sum of damped sinusoids of matching order; the filter is not guaranteed stable; with
    fewer than 2·order samples it is underdetermined and the minimum-norm solution is returned).

    Args:
        history: shape (n_history,), n_history > order.
        order: number of predictor taps (>= 1).
        method: "burg" or "lstsq".

    Returns:
        ``a``, shape (order + 1,), with ``a[0] == 1`` (librosa's convention). An all-zero history
        gives ``a = [1, 0, ..., 0]`` (predicts silence).
    """
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be a whole number >= 1, got {order!r}")
    if method not in ("burg", "lstsq"):
        raise ValueError(f"method must be 'burg' or 'lstsq', got {method!r}")
    signal = as_signal(history, "history")
    if signal.size <= order:
        raise ValueError(
            f"history has {signal.size} samples but order={order} needs more than {order}; "
            "pass a longer history or a lower order"
        )
    if method == "burg":
        return burg(signal, int(order))
    # Row n holds x[n-1], ..., x[n-order] (newest first), predicting x[n], n = order..N-1.
    past = np.lib.stride_tricks.sliding_window_view(signal[:-1], order)[:, ::-1]
    taps, *_ = np.linalg.lstsq(past, signal[order:], rcond=None)
    return np.concatenate([[1.0], -taps])


def lpc_continue(history: np.ndarray, order: int, n_out: int, method: str = "burg") -> np.ndarray:
    """Continue ``history`` by ``n_out`` samples with a linear predictor and zero excitation.

    Fits :func:`lpc_coefficients` on the whole history, then runs the all-pole filter forward
    from the last ``order`` samples: y[n] = −Σ a[k]·y[n−k]. The output decays, rings or (for an
    unstable filter) grows as the fitted poles dictate; nothing is clipped.

    Args:
        history: shape (n_history,), n_history > order.
        order: predictor order (the registered baselines use 32 to 2048).
        n_out: number of samples to predict (>= 0).
        method: "burg" or "lstsq", see :func:`lpc_coefficients`.

    Returns:
        Shape (n_out,), float64: the samples following ``history``.
    """
    if isinstance(n_out, bool) or not isinstance(n_out, numbers.Integral) or n_out < 0:
        raise ValueError(f"n_out must be a whole number of samples >= 0, got {n_out!r}")
    return predictor_run(lpc_coefficients(history, order, method), history, n_out)
