"""Issue #21: the level-aware residual of `sonode fill` (sonode.dsp.interpolation.level_residual):
per bin the added power that minimises the squared log-spectral error plus its SNR cost, so the
gap's quiet bins are restored and its loud ones left to the most likely trajectory."""

import numpy as np
import pytest
import scipy.optimize

from sonode.dsp.interpolation import (
    LEVEL_KNEE_DB,
    _gap_spectra,
    interpolate_gap,
    level_added_power,
    level_residual,
    missing_power_residual,
)


def test_the_added_power_is_the_minimiser_of_log_error_plus_its_cost_in_every_bin():
    # An independent reference: a bounded scalar minimisation per bin, no Lambert W.
    rng = np.random.default_rng(3)
    m_power = 10 ** rng.uniform(-6, 0, 40)
    v_power = 10 ** rng.uniform(-6, 0, 40)
    for knee_db in (10.0, LEVEL_KNEE_DB):
        added = level_added_power(m_power, v_power, knee_db)
        lam = 2 * 10 ** (knee_db / 10) / np.mean(m_power + v_power)
        for m, v, a in zip(m_power, v_power, added, strict=True):
            cost = lambda x, m=m, v=v, lam=lam: np.log((m + v) / (m + x)) ** 2 + lam * x  # noqa: E731
            best = scipy.optimize.minimize_scalar(
                cost, bounds=(0.0, v), method="bounded", options={"xatol": 1e-14 * v}
            )
            assert cost(a) <= cost(best.x) + 1e-12
            assert a == pytest.approx(best.x, rel=1e-5, abs=1e-9 * v)


def test_quiet_bins_are_filled_and_loud_ones_left_alone():
    m_power = np.array([1.0, 1e-4, 1e-6])  # a loud bin, a quiet one, a very quiet one
    v_power = np.array([1.0, 1e-4, 1e-6])  # each missing as much power as the mean carries
    added = level_added_power(m_power, v_power)
    assert added[0] < 0.01 * v_power[0]  # loud: random power there only costs SNR
    # 35 dB below the mean power: left ~0.4 neper short; 55 dB below: filled to within 5 %
    assert added[1] > 0.25 * v_power[1] and added[2] > 0.95 * v_power[2]
    assert added[0] < added[1] / v_power[1] * v_power[0]


def test_the_knee_runs_from_the_whole_draw_to_nothing():
    rng = np.random.default_rng(0)
    t = np.arange(640) / 16000
    mean = np.cos(2 * np.pi * 440 * t) * np.hanning(640)
    deviation = 0.1 * rng.standard_normal(640)
    n_fft, _, _ = _gap_spectra(mean, deviation)
    whole = np.fft.irfft(np.fft.rfft(deviation, n_fft), n_fft)[:640]
    np.testing.assert_allclose(level_residual(mean, deviation, -300.0), whole, atol=1e-9)
    assert np.max(np.abs(level_residual(mean, deviation, 300.0))) < 1e-9
    assert np.all(level_residual(mean, np.zeros(640)) == 0)


def test_the_level_residual_costs_less_of_the_loud_band_than_the_shaped_one():
    # A loud low partial the mean carries half of, and a quiet high band it misses entirely.
    rng = np.random.default_rng(1)
    n = 1280
    t = np.arange(n) / 16000
    mean = 0.5 * np.cos(2 * np.pi * 200 * t)
    loud = 0.5 * rng.standard_normal(n)
    loud = np.fft.irfft(np.fft.rfft(loud) * (np.fft.rfftfreq(n, 1 / 16000) < 400), n)
    quiet = np.fft.irfft(np.fft.rfft(1e-3 * rng.standard_normal(n)) * (np.fft.rfftfreq(n) > 0.3), n)
    deviation = loud + quiet
    low = np.fft.rfftfreq(n, 1 / 16000) < 400

    def band_power(x, band):
        return np.sum(np.abs(np.fft.rfft(x))[band] ** 2)

    level, shaped = level_residual(mean, deviation), missing_power_residual(mean, deviation)
    assert band_power(level, low) < 0.1 * band_power(shaped, low)
    high = np.fft.rfftfreq(n) > 0.3
    assert band_power(level, high) > 0.5 * band_power(quiet, high)


def test_interpolate_gap_adds_the_level_residual_of_its_weighted_deviation():
    rng = np.random.default_rng(2)
    x = np.cos(2 * np.pi * 440 * np.arange(8000) / 16000) + 0.05 * rng.standard_normal(8000)
    left, right = x[:4000], x[4640:]
    result = interpolate_gap(left, right, 640, orders=(32, 64), residual="level")
    np.testing.assert_array_equal(result.residual, level_residual(result.mean, result.deviation))
    np.testing.assert_array_equal(result.fill, result.mean + result.residual)
    shaped = interpolate_gap(left, right, 640, orders=(32, 64))
    np.testing.assert_array_equal(shaped.deviation, result.deviation)
    assert np.sum(result.residual**2) > 0
