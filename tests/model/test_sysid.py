"""System identification: the predictor, and modes recovered from signals with known poles."""

import numpy as np
import pytest

from sonode.dsp.lpc import covariance_predictor, identify_modes, modal_basis, predictor_poles
from tests.model.synthetic import SAMPLE_RATE, TONES, two_tone_clip


def test_covariance_predictor_equals_least_squares():
    rng = np.random.default_rng(0)
    x = np.convolve(rng.standard_normal(3000), [1.0, -0.6, 0.3, 0.1], mode="same")
    order = 12
    a = covariance_predictor(x, order, rel_ridge=0.0)
    lagged = np.stack([x[order - j : len(x) - j] for j in range(1, order + 1)], axis=1)
    expected, *_ = np.linalg.lstsq(lagged, -x[order:], rcond=None)
    assert a[0] == 1.0
    np.testing.assert_allclose(a[1:], expected, rtol=1e-8, atol=1e-12)


def test_predictor_poles_are_stable_and_one_per_conjugate_pair():
    poles = predictor_poles(two_tone_clip(), 16)
    assert np.all(np.abs(poles) <= 1.0)
    assert np.all(poles.imag >= 0)


def test_identify_modes_recovers_frequencies_and_decays_of_damped_tones():
    x = two_tone_clip(0.25)
    modes = identify_modes(x, SAMPLE_RATE, n_modes=2, lp_order=32)
    found = sorted(zip(modes.omega_rad_per_s / (2 * np.pi), -modes.decay_per_s, strict=False))
    for (f_true, _, d_true), (f, d) in zip(sorted(TONES), found, strict=False):
        assert f == pytest.approx(f_true, rel=2e-3)
        assert d == pytest.approx(d_true, abs=0.05)


def test_identify_modes_fills_up_to_the_requested_count():
    modes = identify_modes(two_tone_clip(0.05), SAMPLE_RATE, n_modes=40, lp_order=8)
    assert modes.n_modes == 40
    assert np.all(modes.decay_per_s <= 0)
    assert np.all((modes.omega_rad_per_s >= 0) & (modes.omega_rad_per_s <= np.pi * SAMPLE_RATE))


def test_modal_basis_reproduces_a_damped_cosine():
    p = 0.99 * np.exp(1j * 0.2)
    basis = modal_basis(np.array([p]), 50)
    c = 0.7 - 0.2j
    expected = np.real(c * p ** np.arange(50))
    np.testing.assert_allclose(basis @ np.array([c.real, c.imag]), expected, atol=1e-12)
