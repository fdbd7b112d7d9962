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
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sonode.dsp.linalg import lapack_threads, polynomial_roots
from sonode.dsp.predictor import (
    burg as burg,  # the linear predictor moved to dsp/predictor.py; importable here as before
    covariance_predictor,
    lag_gram as lag_gram,
    lpc_coefficients as lpc_coefficients,
    lpc_continue as lpc_continue,
    predictor_poles as predictor_poles,
    predictor_run as predictor_run,
    stable_poles,
)


@dataclass(frozen=True)
class Modes:
    """K continuous-time modes s_k = decay_per_s[k] + i·omega_rad_per_s[k] (one per conjugate pair)."""

    decay_per_s: np.ndarray  # (K,), ≤ 0: no mode grows, so free runs cannot explode on their own
    omega_rad_per_s: np.ndarray  # (K,), in [0, π·sample_rate]

    @property
    def n_modes(self) -> int:
        return int(self.decay_per_s.shape[0])


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
