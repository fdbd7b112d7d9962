"""System identification: the linear part of the audio ODE, found in closed form before training.

A linear ODE dz/dt = A z with A block-diagonal in 2×2 rotation-decay blocks produces sums of
damped sinusoids. Linear prediction of the clip gives discrete poles p (one per conjugate pair);
the continuous-time poles are s = sample_rate · log p, so the linear ODE reproduces the clip's free
response at any sample rate. Of the many poles of a high-order predictor we keep the K that carry
the most energy when every segment of the clip is fitted by them, which is what the model will do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Modes:
    """K continuous-time modes s_k = decay_per_s[k] + i·omega_rad_per_s[k] (one per conjugate pair)."""

    decay_per_s: np.ndarray  # (K,), ≤ 0: no mode grows, so free runs cannot explode on their own
    omega_rad_per_s: np.ndarray  # (K,), in [0, π·sample_rate]

    @property
    def n_modes(self) -> int:
        return int(self.decay_per_s.shape[0])


def covariance_predictor(x: np.ndarray, order: int, rel_ridge: float = 1e-9) -> np.ndarray:
    """Covariance-method (least-squares) linear predictor.

    Unlike the autocorrelation method it does not window the signal, so the poles of damped
    sinusoids come out unbiased (the autocorrelation method pulls them inward by O(1/duration),
    which shows up as wrong decay rates). It is solved by the normal equations with a tiny ridge.

    Args:
        x: signal, shape (n_samples,), n_samples > 2·order.
        order: predictor order p.
        rel_ridge: ridge relative to the mean diagonal of the normal matrix.

    Returns:
        a, shape (p + 1,), a[0] = 1, with x[n] ≈ −Σ_{j≥1} a[j] x[n−j].
    """
    lagged = np.lib.stride_tricks.sliding_window_view(x, order + 1)[:, ::-1]  # row n: x[n], x[n-1], ...
    gram = lagged.T @ lagged
    normal = gram[1:, 1:]
    ridge = rel_ridge * np.trace(normal) / order + 1e-300
    a = np.linalg.solve(normal + ridge * np.eye(order), -gram[1:, 0])
    return np.concatenate([[1.0], a])


def predictor_poles(x: np.ndarray, order: int) -> np.ndarray:
    """Discrete poles of the linear predictor of ``x``, one per conjugate pair.

    Args:
        x: signal, shape (n_samples,), n_samples > order.
        order: predictor order.

    Returns:
        Complex poles with Im ≥ 0 (real poles included), shape (≤ order,), magnitudes clipped to ≤ 1.
    """
    poles = np.roots(covariance_predictor(np.asarray(x, dtype=np.float64), order))
    poles = poles[poles.imag >= 0]
    poles = poles[np.abs(poles) > 1e-8]  # a zero pole has no continuous-time counterpart
    return np.minimum(np.abs(poles), 1.0) * np.exp(1j * np.angle(poles))


def modal_basis(poles: np.ndarray, n_samples: int) -> np.ndarray:
    """Real basis of the free responses: x[n] = Σ_k Re(c_k p_k^n) = basis @ [Re c, Im c].

    Args:
        poles: discrete poles, shape (K,).
        n_samples: rows of the basis.

    Returns:
        Array (n_samples, 2K): columns Re(p^n) then −Im(p^n).
    """
    powers = poles[None, :] ** np.arange(n_samples)[:, None]
    return np.concatenate([powers.real, -powers.imag], axis=1)


def ridge_solve(gram: np.ndarray, rhs: np.ndarray, rel_ridge: float) -> np.ndarray:
    """Solve (G + λI) c = r with λ = rel_ridge · mean diagonal of G, batched over leading dims.

    The small ridge keeps nearly collinear modes (close poles) from producing huge, cancelling
    coefficients that would make the trajectory fragile.
    """
    dim = gram.shape[-1]
    lam = rel_ridge * np.trace(gram, axis1=-2, axis2=-1)[..., None, None] / dim + 1e-12
    return np.linalg.solve(gram + lam * np.eye(dim), rhs[..., None])[..., 0]


def identify_modes(x: np.ndarray, sample_rate: int, n_modes: int, window_samples: int,
                   lp_order: int = 256, rel_ridge: float = 1e-6) -> Modes:
    """Pick ``n_modes`` continuous-time modes for a clip.

    Args:
        x: normalised clip, shape (n_samples,).
        sample_rate: Hz.
        n_modes: K, the number of rotation-decay blocks (latent dimension 2K).
        window_samples: length of the segments the model will fit (energy is judged per segment).
        lp_order: order of the linear predictor whose poles are the candidates (capped by the clip).
        rel_ridge: ridge of the per-segment least-squares fits.

    Returns:
        The K modes carrying the most energy over all segments; if the predictor has fewer distinct
        poles than K, the rest are spread on a log-frequency grid with slow decay, so the model
        always has the latent size the user asked for.
    """
    order = int(min(lp_order, max(2, (x.shape[0] - 1) // 2)))
    poles = predictor_poles(x, order)
    n_win = max(1, x.shape[0] // window_samples)
    segs = x[: n_win * window_samples].reshape(n_win, -1) if x.shape[0] >= window_samples else x[None]
    basis = modal_basis(poles, segs.shape[1])
    coef = ridge_solve(basis.T @ basis, segs @ basis, rel_ridge)  # (n_win, 2K)
    k = poles.shape[0]
    energy_per_mode = (coef[:, :k] ** 2 + coef[:, k:] ** 2).sum(0) * (np.abs(basis[:, :k]) ** 2
                                                                      + basis[:, k:] ** 2).sum(0)
    chosen = poles[np.argsort(energy_per_mode)[::-1][:n_modes]]
    s = np.log(chosen) * sample_rate
    decay, omega = np.minimum(s.real, 0.0), np.abs(s.imag)
    missing = n_modes - chosen.shape[0]
    if missing > 0:
        nyquist_rad = np.pi * sample_rate
        omega = np.concatenate([omega, np.geomspace(2 * np.pi * 50.0, 0.9 * nyquist_rad, missing)])
        decay = np.concatenate([decay, np.full(missing, -10.0)])
    return Modes(decay_per_s=decay, omega_rad_per_s=omega)
