"""The continuation ODE: the clip's final dynamics, identified locally, order and window validated.

A sound is continued by integrating, from the state it is in at the end of the clip, the dynamics
it follows there. Both are estimated from the clip's end: a covariance-method linear predictor
of order p on the last 4p samples gives the discrete poles (all of them become the modes of a
linear ODE, s = sample_rate · log p, none allowed to grow), and the state is the least-squares
fit of those modes to the last W samples. This is what high-order linear-prediction
extrapolation does (an order-p predictor run from its last p samples is this ODE with W = p,
sampled), in continuous time, so the continuation can be read at any rate.

Which p and W suit a clip is not guessed: they are chosen by validation on the clip itself — the
same procedure is run on the clip minus its last `VALIDATION_S`, and the pair that predicts those
held-back samples best (SNR) is used on the whole clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sonode.model.sysid import covariance_predictor, modal_basis, polynomial_roots, ridge_solve

CANDIDATE_ORDERS = (16, 32, 64, 128, 256, 512, 1024)
CONTEXT_PER_ORDER = 4  # samples of context per predictor coefficient (4096 for order 1024)
VALIDATION_S = 0.05  # held-back end of the clip that scores the candidates
STATE_RIDGE = 1e-9


@dataclass(frozen=True)
class ContinuationFit:
    """The identified continuation ODE.

    Attributes:
        decay_per_s, omega_rad_per_s: modes (K,), decay ≤ 0.
        state: (2K,) [u; v] at the start of the window, i.e. (n_samples − window_samples)/rate.
        order: predictor order p; window_samples: W.
        validation_snr_db: SNR of the chosen pair on the held-back samples (nan if too short).
    """

    decay_per_s: np.ndarray
    omega_rad_per_s: np.ndarray
    state: np.ndarray
    order: int
    window_samples: int
    validation_snr_db: float


def _poles(context: np.ndarray, order: int) -> np.ndarray:
    poles = polynomial_roots(covariance_predictor(context, order))
    poles = poles[(poles.imag >= 0) & (np.abs(poles) > 1e-8)]
    return np.minimum(np.abs(poles), 1.0) * np.exp(1j * np.angle(poles))


def _state(x: np.ndarray, poles: np.ndarray, window: int) -> np.ndarray:
    basis = modal_basis(poles, window)
    return ridge_solve(basis.T @ basis, x[-window:] @ basis, STATE_RIDGE)


def _candidates(n_history: int, fixed_window: int | None, max_order: int) -> list[tuple[int, int]]:
    pairs = []
    for order in [o for o in CANDIDATE_ORDERS if o <= max_order]:
        if n_history < 2 * order + 2 or n_history < order * 2:
            continue
        windows = (fixed_window,) if fixed_window else (order, 2 * order)
        pairs += [(order, w) for w in windows if w <= n_history]
    return pairs


def identify_continuation(x: np.ndarray, sample_rate: int, window_samples: int | None = None,
                          max_order: int = 1024) -> ContinuationFit:
    """Identify the continuation ODE of a (normalised) clip.

    Args:
        x: the clip, shape (n_samples,), n_samples ≥ 64.
        sample_rate: Hz.
        window_samples: W fixed by the user; None to choose it by validation with the order.
        max_order: the largest predictor order tried (CANDIDATE_ORDERS up to it).

    Returns:
        A `ContinuationFit`.
    """
    x = np.asarray(x, dtype=np.float64)
    held = int(round(VALIDATION_S * sample_rate))
    history, future = x[:-held], x[-held:]
    best = None
    if history.shape[0] > 4 * held:
        candidates = _candidates(history.shape[0], window_samples, max_order)
        for order in sorted({o for o, _ in candidates}):
            context = history[-min(history.shape[0], CONTEXT_PER_ORDER * order):]
            poles = _poles(context, order)
            for _, window in [p for p in candidates if p[0] == order]:
                state = _state(history, poles, window)
                prediction = (modal_basis(poles, window + held)[window:]) @ state
                err = float(np.sum((future - prediction) ** 2))
                score = 10 * math.log10(float(np.sum(future ** 2)) / err) if err > 0 else math.inf
                if best is None or score > best[0]:
                    best = (score, order, window)
    if best is None:  # too short to validate: the largest order the clip supports, W = p
        order = max([o for o in CANDIDATE_ORDERS if x.shape[0] >= 2 * o + 2 and o <= max_order]
                    or [min(CANDIDATE_ORDERS)])
        order = min(order, max(2, (x.shape[0] - 2) // 2))
        best = (math.nan, order, window_samples or order)
    score, order, window = best
    window = min(window, x.shape[0])
    poles = _poles(x[-min(x.shape[0], CONTEXT_PER_ORDER * order):], order)
    s = np.log(poles) * sample_rate
    return ContinuationFit(decay_per_s=np.minimum(s.real, 0.0), omega_rad_per_s=np.abs(s.imag),
                           state=_state(x, poles, window), order=order, window_samples=window,
                           validation_snr_db=score)
