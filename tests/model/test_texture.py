"""The continuation's texture (`sonode.model.texture`) against an analytic AR(2) process."""

import math

import numpy as np
import pytest
from scipy.signal import lfilter, welch

from sonode.model.texture import TextureModes, texture

RATE = 16000
RADIUS, THETA = 0.9, 2 * math.pi * 1000 / RATE  # the AR(2)'s pole pair: 1 kHz, bandwidth ~270 Hz
A1, A2 = 2 * RADIUS * math.cos(THETA), -(RADIUS**2)


def ar2(n: int, seed: int) -> np.ndarray:
    """A stationary AR(2) realisation, unit innovations (its first 1000 samples dropped)."""
    e = np.random.default_rng(seed).standard_normal(n + 1000)
    return lfilter([1.0], [1.0, -A1, -A2], e)[1000:]


def ar2_variance() -> float:
    """x[n] = a1 x[n−1] + a2 x[n−2] + e[n]: σ² = (1 − a2) / ((1 + a2)((1 − a2)² − a1²))."""
    return (1 - A2) / ((1 + A2) * ((1 - A2) ** 2 - A1**2))


def ar2_density(hz: np.ndarray) -> np.ndarray:
    """One-sided power per Hz of the AR(2) with unit innovations."""
    z = np.exp(-2j * np.pi * hz / RATE)
    return 2 / RATE / np.abs(1 - A1 * z - A2 * z**2) ** 2


def modes(end: np.ndarray, held_decay_per_s: float = 0.0) -> TextureModes:
    """The AR(2)'s pole as the one mode, holding (or decaying at) ``held_decay_per_s``."""
    return TextureModes(
        power=np.ones(1),
        decay_per_s=np.array([math.log(RADIUS) * RATE]),
        omega_rad_per_s=np.array([THETA * RATE]),
        held_decay_per_s=np.array([held_decay_per_s]),
        switch_s=0.05,
        end_samples=end,
        rate=RATE,
    )


def test_a_lost_stationary_process_is_restored_at_its_analytic_variance_and_spectrum():
    # the mean has lost everything (zeros): the texture is the end's process itself
    draw = texture(modes(ar2(RATE // 2, 1)), np.zeros(4 * RATE), RATE, seed=3)[RATE // 10 :]
    # the analytic variance is 18.7; 0.5 s of reference scatters it by a few per cent
    assert np.mean(draw**2) == pytest.approx(ar2_variance(), rel=0.1)
    hz, density = welch(draw, RATE, "hann", 1024)
    strong = ar2_density(hz) > 1e-3 * ar2_density(hz).max()  # within 30 dB of the peak
    error_db = 10 * np.log10(density[strong] / ar2_density(hz)[strong])
    assert np.sqrt(np.mean(error_db**2)) < 1.5  # the spectral shape, to a dB or so
    # the first 50 ms are the mean's alone, then it fades in
    first = texture(modes(ar2(RATE // 2, 1)), np.zeros(RATE), RATE, seed=3)
    assert np.all(first[: int(0.05 * RATE)] == 0) and np.any(first[int(0.05 * RATE) + 1 :] != 0)


def test_a_decaying_sound_keeps_decaying_at_its_measured_rate():
    draw = texture(modes(ar2(RATE // 2, 1), held_decay_per_s=-2.0), np.zeros(3 * RATE), RATE)
    frame = RATE // 10
    levels_db = 10 * np.log10(np.mean(draw[: 30 * frame].reshape(30, frame) ** 2, 1))
    times_s = (np.arange(30) + 0.5) / 10
    later = times_s > 0.3
    slope = np.polyfit(times_s[later], levels_db[later], 1)[0]
    # power e^{2σ t}, σ = −2/s: −17.4 dB/s (frame levels scatter by ~0.5 dB)
    assert slope == pytest.approx(-40 / math.log(10), rel=0.1)
    assert levels_db[later].max() <= levels_db[2] + 1  # it never grows


def test_a_mean_that_keeps_the_level_gets_next_to_nothing():
    end, mean = ar2(RATE // 2, 1), ar2(3 * RATE, 2)
    draw = texture(modes(end), mean, RATE)
    assert np.mean(draw**2) < 0.05 * np.mean(mean**2)


def test_the_draw_is_seeded_and_zero_gain_is_nothing():
    m, mean = modes(ar2(RATE // 2, 1)), np.zeros(RATE)
    assert np.array_equal(texture(m, mean, RATE, seed=5), texture(m, mean, RATE, seed=5))
    assert not np.array_equal(texture(m, mean, RATE, seed=5), texture(m, mean, RATE, seed=6))
    assert np.array_equal(texture(m, mean, RATE, gain=0.0), np.zeros(RATE))
    half = texture(m, mean, RATE, seed=5, gain=0.5)
    assert np.allclose(half, 0.5 * texture(m, mean, RATE, seed=5))


def test_a_window_that_starts_after_the_onset_is_refused():
    with pytest.raises(ValueError, match="onset"):
        texture(modes(ar2(RATE // 2, 1)), np.zeros(100), RATE, first_s=0.1)


def test_a_band_that_fell_faster_than_its_trend_is_restored_only_to_where_it_ended():
    # the reference falls 40 dB/s (its last frame ~17 dB under its 0.5 s average) while the modes'
    # late decays say "held": the texture keeps to within 3 dB of the last frame, not the average
    end = ar2(RATE // 2, 1) * 10 ** (-2 * np.arange(RATE // 2) / RATE)
    draw = texture(modes(end), np.zeros(2 * RATE), RATE)[RATE // 5 :]
    last_frame = end[-2048:]
    assert level_db(draw) < level_db(last_frame) + 3.5
    assert level_db(draw) > level_db(last_frame) - 3  # and it is there


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2)))
