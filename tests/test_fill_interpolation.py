"""The two-sided trajectory fill (`sonode.model.interpolation`, method ``sonode`` of `sonode fill`).

Analytic cases: damped sinusoids are exactly one trajectory of a linear ODE, so a gap in them is
restored to round-off; with noise the fill is the most likely trajectory and must beat gap-wise
Janssen on average; the fast covariance normal matrix equals the direct one.
"""

import numpy as np
import pytest

from sonode.fill import FillSettings, fill_one
from sonode.gap_baselines import janssen_fill
from sonode.metrics import snr_db
from sonode.model.interpolation import (fill_with_order, interpolate_gap, most_likely_fill, predictor_from_gram,
                                        pseudo_gaps, side_gram)

RATE = 16000


def damped_tones(n, rate=RATE, partials=((440.0, -3.0, 1.0, 0.3), (1234.5, -8.0, 0.5, 1.1))):
    t = np.arange(n) / rate
    return sum(a * np.exp(d * t) * np.cos(2 * np.pi * f * t + ph) for f, d, a, ph in partials)


@pytest.mark.parametrize(("order", "rows", "near_end"), [(5, 20, True), (5, 20, False), (64, 1000, True),
                                                         (300, 400, False), (64, 10_000, True)])
def test_side_gram_equals_the_direct_covariance_normal_matrix(order, rows, near_end):
    x = np.random.default_rng(order).standard_normal(3000)
    gram = side_gram(x, order, rows, near_end)
    lagged = np.lib.stride_tricks.sliding_window_view(x, order + 1)[:, ::-1]
    n = min(rows, x.size - order)
    lagged = lagged[-n:] if near_end else lagged[:n]
    np.testing.assert_allclose(gram, lagged.T @ lagged, rtol=0, atol=1e-10 * np.abs(lagged.T @ lagged).max())


def test_two_damped_sinusoids_are_restored_across_a_gap_to_60_db():
    x = damped_tones(8000)
    start, n_gap = 4000, 640  # 40 ms
    left, right, truth = x[:start], x[start + n_gap:], x[start: start + n_gap]
    # one order alone, and the validated fill through `fill_one` with its seams
    assert snr_db(truth, fill_with_order(left, right, n_gap, 64, 256)) >= 50.0
    y = fill_one(left, right, n_gap, RATE, FillSettings())
    assert snr_db(truth, y) >= 60.0
    steps = np.abs(np.diff(x))
    assert abs(y[0] - left[-1]) <= steps.max() and abs(right[0] - y[-1]) <= steps.max()


def test_a_long_gap_in_a_growing_then_decaying_tone_is_one_trajectory_from_both_sides():
    # Only the two sides together pin down both modes: a growing and a decaying partial.
    x = damped_tones(6000, partials=((300.0, 4.0, 0.2, 0.0), (700.0, -20.0, 1.0, 1.0)))
    start, n_gap = 2500, 1280  # 80 ms
    y = interpolate_gap(x[:start], x[start + n_gap:], n_gap).fill
    assert snr_db(x[start: start + n_gap], y) >= 60.0


def test_a_real_sustained_tone_is_filled_better_than_by_janssen():
    """The method must work for a reason, on real audio: two 40 ms gaps in the bundled tuba at
    16 kHz (0.5 s of context per side, Janssen with its own 4096 samples); the mean SNR over the
    gap must beat gap-wise Janssen's by 2 dB (measured 33.8 vs 28.4 dB when written; a broken
    identification, validation or solve drops far below)."""
    from pathlib import Path

    from sonode.audio_io import read_clip

    x = read_clip(Path(__file__).resolve().parent.parent / "data" / "sustained_tuba_Cs3.wav", rate=RATE).samples
    n_gap, context = 640, 8000
    ours, janssen = [], []
    for start in np.linspace(context, x.size - context - n_gap, 4).astype(int)[2:]:
        left, right, truth = x[start - context: start], x[start + n_gap: start + n_gap + context], x[start: start + n_gap]
        ours.append(snr_db(truth, interpolate_gap(left, right, n_gap).fill))
        janssen.append(snr_db(truth, janssen_fill(left, right, n_gap)))
    assert np.mean(ours) > np.mean(janssen) + 2.0, (ours, janssen)


def test_validation_weights_favour_the_order_the_sound_needs():
    # 40 partials need ≥ 80 poles: the order-16 candidate cannot carry them, and loses its weight.
    partials = tuple((110.0 * k, -1.0, 1.0 / k, 0.7 * k) for k in range(1, 41))
    x = damped_tones(16000, partials=partials) + 1e-4 * np.random.default_rng(0).standard_normal(16000)
    result = interpolate_gap(x[:8000], x[8320:], 320, orders=(16, 256))
    assert result.orders == (16, 256)
    assert result.weights[1] > 0.99 and result.validation_snr_db[1] > result.validation_snr_db[0] + 20


def test_pseudo_gaps_lie_in_known_audio_and_never_touch_the_real_gap():
    left, right = np.arange(1000.0), 5000 + np.arange(800.0)
    for pl, pr, truth in pseudo_gaps(left, right, 100, per_side=2):
        assert truth.size == 100 and pl.size + pr.size + 100 in (1000, 800)
        both = np.concatenate([pl, truth, pr])
        np.testing.assert_array_equal(both, left if both[0] < 5000 else right[::-1])


def test_most_likely_fill_of_an_exact_predictor_reproduces_the_signal():
    x = damped_tones(3000)
    a = predictor_from_gram(side_gram(x, 8, 2000, True))
    assert snr_db(x[1500:1600], most_likely_fill(x[:1500], x[1600:], 100, a)) >= 60.0
