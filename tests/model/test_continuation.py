"""The continuation ODE identified on a clip's end (`sonode.model.continuation`)."""

from dataclasses import replace

import numpy as np
import pytest

from sonode.dsp.predictor import burg
from sonode.model.continuation import (
    VALIDATION_S,
    envelope_decays,
    identify_continuation,
    merge_beating,
    terminal_fade_samples,
)
from sonode.model.late_modes import end_decays

RATE = 16000


def _snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def _damped_partials(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return (
        np.exp(-3 * t) * np.sin(2 * np.pi * 220 * t + 0.3)
        + 0.5 * np.exp(-8 * t) * np.sin(2 * np.pi * 661 * t)
        + 0.2 * np.exp(-1 * t) * np.sin(2 * np.pi * 1503 * t + 1.0)
    )


def test_damped_partials_continue_exactly_and_no_mode_grows():
    x = _damped_partials(int(0.9 * RATE))
    history, future = x[: int(0.8 * RATE)], x[int(0.8 * RATE) :]
    fit = identify_continuation(history, RATE)
    assert np.all(fit.decay_per_s <= 0)
    # noise-free modes: the covariance method, exact here, validates far better than Burg (whose
    # poles under-estimate decay: 41.8 dB over these 100 ms) and is chosen
    assert fit.estimator == "covariance"
    assert _snr_db(future, fit.samples(future.shape[0], RATE)) > 60
    assert fit.validation_snr_db > 60


def test_the_order_is_chosen_on_held_back_samples():
    """A noisy sustained tone: the chosen order predicts the held-back end at least as well as the
    smallest and the largest candidate (by the validation's score), whatever order that is."""
    rng = np.random.default_rng(1)
    t = np.arange(int(0.6 * RATE)) / RATE
    x = sum(
        np.sin(2 * np.pi * 110 * k * t + k) / k for k in range(1, 12)
    ) + 0.02 * rng.standard_normal(t.shape)
    chosen = identify_continuation(x, RATE)
    assert chosen.estimator == "burg"  # noise: no predictor is exact, Burg's poles are used
    held = int(round(VALIDATION_S * RATE))
    for max_order in (16, 1024):
        # what the clip minus its held-back end continues with is one of the candidates: its
        # score (mean SNR over 5 / 20 / 50 ms of the held-back end) is not above the chosen one's
        fixed = identify_continuation(x[:-held], RATE, max_order=max_order)
        prediction = fixed.samples(held, RATE)
        score = np.mean([_snr_db(x[-held:][:h], prediction[:h]) for h in (80, 320, 800)])
        assert chosen.validation_score_db >= score - 1e-6


def _wandering_tone(seed: int) -> np.ndarray:
    """Seven harmonics of 220 Hz whose pitch wanders (3 % random walk over 0.5 s), plus noise."""
    rng = np.random.default_rng(seed)
    n = RATE // 2
    pitch = 1 + 0.03 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
    phase = 2 * np.pi * 220 * np.cumsum(pitch) / RATE
    return sum(np.sin(k * phase + k) / k for k in range(1, 8)) + 0.05 * rng.standard_normal(n)


def test_the_candidate_is_chosen_by_its_short_and_long_horizons_on_held_back_samples():
    """Each (p, W) is scored by its SNR over 5, 20 and 50 ms of the last 50 ms (identified on what
    precedes them), averaged in dB; recomputed here with numpy's roots and least squares. On this
    clip the pooled SNR over the last 50 ms, which the 50 ms horizon decides, picks another
    candidate (order 64)."""
    x = _wandering_tone(2)
    chosen = identify_continuation(x, RATE, max_order=256)
    held, n = round(VALIDATION_S * RATE), x.shape[0]
    history, future = x[: n - held], x[n - held :]
    scores, pooled = {}, {}
    for p in (16, 32, 64, 128, 256):
        for w in (p, 2 * p):
            roots = np.roots(burg(history[-4 * p :], p))
            poles = roots[roots.imag >= 0]
            poles = np.minimum(np.abs(poles), 1) * np.exp(1j * np.angle(poles))
            powers = poles[None, :] ** np.arange(w + held)[:, None]
            basis = np.concatenate([powers.real, -powers.imag], 1)
            state = np.linalg.lstsq(basis[:w], history[-w:], rcond=None)[0]
            prediction = basis[w:] @ state
            snrs = [_snr_db(future[:h], prediction[:h]) for h in (80, 320, 800)]
            scores[(p, w)] = np.mean(snrs)
            pooled[(p, w)] = snrs[-1]
    best = max(scores, key=scores.get)
    assert (chosen.order, chosen.window_samples) == best, (scores, chosen.summary())
    assert chosen.validation_score_db == pytest.approx(scores[best], abs=0.05)
    assert chosen.validation_snr_db == pytest.approx(pooled[best], abs=0.05)
    assert max(pooled, key=pooled.get) != best  # the test tells the two criteria apart


# ---- seconds: late decays measured on the clip's last second ------------------------------------


def _level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x**2))


def _noisy_partials(
    n: int, decay_per_s: float, noise: float, wander: float, seed: int = 2
) -> np.ndarray:
    """Five harmonics of 110 Hz, all decaying at decay_per_s, whose pitch wanders like a held
    note's (a random walk of relative size ``wander`` over the clip), plus white noise."""
    rng = np.random.default_rng(seed)
    pitch = 1 + wander * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
    phase = 2 * np.pi * 110 * np.cumsum(pitch) / RATE
    tone = sum(np.sin(k * phase + k) / k for k in range(1, 6)) * np.exp(
        -decay_per_s * np.arange(n) / RATE
    )
    return tone + noise * rng.standard_normal(n)


def test_a_sustained_tone_holds_its_level_for_two_seconds():
    x = _noisy_partials(RATE, 0.0, noise=1e-2, wander=2e-3)
    fit = identify_continuation(x, RATE)
    assert fit.estimator == "burg" and fit.switch_after_end_s == VALIDATION_S
    cont = fit.samples(2 * RATE, RATE)
    last = _level_db(x[-RATE // 10 :])
    blocks = [_level_db(cont[i : i + RATE // 10]) - last for i in range(0, 2 * RATE, RATE // 10)]
    assert max(abs(b) for b in blocks) < 1.0, blocks
    # Burg's own decays (context 0.26 s) take the wander for decay and lose the level (−5.9 dB):
    # what the late decays are for
    burg_only = replace(fit, late_decay_per_s=None, late_omega_rad_per_s=None).samples(
        2 * RATE, RATE
    )
    assert _level_db(burg_only[-RATE // 10 :]) - last < -3.0


def test_a_decaying_tone_continues_at_its_decay_rate():
    decay_per_s = 2.0  # 17.4 dB/s
    n = RATE
    x = _noisy_partials(n, decay_per_s, noise=1e-3, wander=0.0)
    fit = identify_continuation(x, RATE)
    cont = fit.samples(2 * RATE, RATE)
    levels = np.array([_level_db(cont[i : i + RATE // 50]) for i in range(0, 2 * RATE, RATE // 50)])
    slope_db_per_s = np.polyfit(np.arange(levels.shape[0]) / 50, levels, 1)[0]
    expected = -20 * decay_per_s / np.log(10)
    assert abs(slope_db_per_s - expected) < 0.1 * abs(expected), (slope_db_per_s, expected)
    assert abs(_level_db(cont[: RATE // 10]) - _level_db(x[-RATE // 10 :]) - expected * 0.1) < 1.0


def test_envelope_decays_measure_each_partial_and_never_grow():
    t = np.arange(RATE) / RATE
    x = (
        np.exp(-1.0 * t) * np.sin(2 * np.pi * 300 * t)
        + np.exp(-6.0 * t) * np.sin(2 * np.pi * 1000 * t)
        + np.minimum(t, 0.5) * np.sin(2 * np.pi * 2000 * t)
    )  # the last swells
    decays = envelope_decays(x, RATE, 2 * np.pi * np.array([300.0, 1000.0, 2000.0]), 512)
    assert decays == pytest.approx([-1.0, -6.0, 0.0], abs=0.05)
    assert envelope_decays(x[:1000], RATE, np.array([1.0]), 512) is None  # fewer than 4 frames


def test_end_decays_measure_the_decay_at_the_clips_end_not_the_seconds_average():
    """A partial whose decay slows from 6/s to 1/s half-way (a string's two-stage decay): the
    second's energy-weighted average is near the loud first half's, the end's is the last one."""
    t = np.arange(RATE) / RATE
    envelope = np.where(t < 0.5, np.exp(-6.0 * t), np.exp(-2.5 - 1.0 * t))  # continuous at 0.5 s
    x = envelope * np.sin(2 * np.pi * 300 * t)
    omega = 2 * np.pi * np.array([300.0])
    assert envelope_decays(x, RATE, omega, 512)[0] < -3.0  # measured -5.3
    assert end_decays(x, RATE, omega, 512) == pytest.approx([-1.0], abs=0.05)
    assert end_decays(x[:1000], RATE, omega, 512) is None  # fewer than 4 frames


def test_beating_modes_merge_into_one_and_others_stay():
    omega = 2 * np.pi * np.array([440.0, 440.5, 445.0])
    decay, merged = merge_beating(omega, np.array([-1.0, -3.0, -2.0]), np.array([3.0, 1.0, 1.0]))
    assert merged == pytest.approx(2 * np.pi * np.array([440.125, 440.125, 445.0]))
    assert decay == pytest.approx([-1.5, -1.5, -2.0])


def test_a_fade_out_is_found_and_the_sound_before_it_continued():
    x = _noisy_partials(RATE, 0.0, noise=1e-2, wander=2e-3)
    assert terminal_fade_samples(x, RATE) == 0  # ends sounding
    fade = RATE // 100  # 10 ms, linear to zero
    faded = x.copy()
    faded[-fade:] *= np.linspace(1.0, 0.0, fade)
    found = terminal_fade_samples(faded, RATE)
    assert (
        0.85 * fade <= found <= 2 * fade
    )  # past the fade by up to a period (its peak below the one before)
    fit = identify_continuation(faded, RATE)
    assert fit.fade_samples == found
    cont = fit.samples(RATE // 2, RATE)
    before = _level_db(x[-RATE // 10 - fade : -fade])
    assert abs(_level_db(cont[: RATE // 10]) - before) < 1.0
    assert abs(_level_db(cont[-RATE // 10 :]) - before) < 1.0
