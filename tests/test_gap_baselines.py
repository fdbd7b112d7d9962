"""Classical gap fillers against analytic cases and an independent dense least-squares solve."""

import librosa
import numpy as np
import pytest

from sonode.dsp.ar_fill import (
    GAP_FILLERS,
    ar_interpolate,
    burg_crossfade_fill,
    janssen_fill,
    linear_ramp,
)
from sonode.dsp.lpc import burg
from sonode.dsp.metrics import snr_db

RATE = 16000


def _sines(n: int, noise: float = 0.0) -> np.ndarray:
    t = np.arange(n) / RATE
    x = (
        np.sin(2 * np.pi * 440 * t + 0.3)
        + 0.5 * np.sin(2 * np.pi * 1234 * t + 1.0)
        + 0.2 * np.sin(2 * np.pi * 3000 * t)
    )
    return x + noise * np.random.default_rng(0).standard_normal(n)


def test_burg_matches_librosa_and_never_returns_nan():
    x = np.random.default_rng(1).standard_normal(2000)
    np.testing.assert_allclose(burg(x, 64), librosa.lpc(x, order=64), atol=1e-12)
    a = burg(_sines(3000), 200)  # exactly predictable by order 6: the rest stays zero, not NaN
    assert np.all(np.isfinite(a)) and a[0] == 1.0


def test_ar_interpolate_equals_the_dense_least_squares_solution():
    rng = np.random.default_rng(2)
    x, a = rng.standard_normal(120), np.array([1.0, -0.9, 0.4, 0.1])
    start, n_gap, p = 50, 12, 3
    # Independent reference: the full convolution matrix, least squares over the gap columns.
    conv = np.zeros((x.size + p, x.size))
    for j in range(x.size):
        conv[j : j + p + 1, j] = a
    gap = np.arange(start, start + n_gap)
    known = np.setdiff1d(np.arange(x.size), gap)
    expected, *_ = np.linalg.lstsq(conv[:, gap], -conv[:, known] @ x[known], rcond=None)
    np.testing.assert_allclose(ar_interpolate(x, start, n_gap, a), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("n_gap", [160, 320, 640])
def test_janssen_restores_a_sum_of_sinusoids_almost_exactly(n_gap):
    x = _sines(9000 + n_gap, noise=1e-4)
    start = 4500
    y = janssen_fill(x[:start], x[start + n_gap :], n_gap)
    assert snr_db(_sines(9000 + n_gap)[start : start + n_gap], y) > 50.0


def test_two_sided_burg_restores_a_sum_of_sinusoids():
    x = _sines(9000 + 320, noise=1e-4)
    y = burg_crossfade_fill(x[:4500], x[4500 + 320 :], 320)
    assert snr_db(_sines(9320)[4500:4820], y) > 40.0


def test_fillers_share_one_signature_and_refuse_empty_gaps():
    x = _sines(3000, noise=1e-3)
    for fill in GAP_FILLERS.values():
        assert fill(x[:1000], x[1100:], 100).shape == (100,)
        with pytest.raises(ValueError, match="n_gap must be >= 1"):
            fill(x[:1000], x[1100:], 0)
    ramp = linear_ramp(3)
    np.testing.assert_allclose(ramp, [0.75, 0.5, 0.25])
