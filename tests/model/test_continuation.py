"""The continuation ODE identified on a clip's end (`sonode.model.continuation`)."""

import numpy as np

from sonode.model.continuation import VALIDATION_S, identify_continuation
from sonode.model.sysid import modal_basis

RATE = 16000


def _continue(fit, n: int) -> np.ndarray:
    poles = np.exp((fit.decay_per_s + 1j * fit.omega_rad_per_s) / RATE)
    return modal_basis(poles, fit.window_samples + n)[fit.window_samples:] @ fit.state


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


def _damped_partials(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return (np.exp(-3 * t) * np.sin(2 * np.pi * 220 * t + 0.3) + 0.5 * np.exp(-8 * t) * np.sin(2 * np.pi * 661 * t)
            + 0.2 * np.exp(-1 * t) * np.sin(2 * np.pi * 1503 * t + 1.0))


def test_damped_partials_continue_exactly_and_no_mode_grows():
    x = _damped_partials(int(0.9 * RATE))
    history, future = x[: int(0.8 * RATE)], x[int(0.8 * RATE):]
    fit = identify_continuation(history, RATE)
    assert np.all(fit.decay_per_s <= 0)
    # noise-free modes: the covariance method, exact here, validates far better than Burg (whose
    # poles under-estimate decay: 41.8 dB over these 100 ms) and is chosen
    assert fit.estimator == "covariance"
    assert _snr_db(future, _continue(fit, future.shape[0])) > 60
    assert fit.validation_snr_db > 60


def test_the_order_is_chosen_on_held_back_samples():
    """A noisy sustained tone: the chosen order predicts the held-back end at least as well as the
    smallest and the largest candidate, whatever order that is."""
    rng = np.random.default_rng(1)
    t = np.arange(int(0.6 * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * 110 * k * t + k) / k for k in range(1, 12)) + 0.02 * rng.standard_normal(t.shape)
    chosen = identify_continuation(x, RATE)
    assert chosen.estimator == "burg"  # noise: no predictor is exact, Burg's poles are used
    held = int(round(VALIDATION_S * RATE))
    for max_order in (16, 1024):
        fixed = identify_continuation(x[:-held], RATE, max_order=max_order)
        assert chosen.validation_snr_db >= _snr_db(x[-held:], _continue(fixed, held)) - 1e-6
