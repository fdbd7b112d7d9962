"""sonode.evaluation.baselines: exactness where the method guarantees it, analytic signals elsewhere."""

import math

import librosa
import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings, strategies as st

from sonode.dsp import lpc, resample
from sonode.dsp.metrics import snr_db
from sonode.evaluation import baselines

UPSAMPLER_NAMES = sorted(baselines.UPSAMPLERS)


def _tone(frequency_hz: float, sample_rate: int, n_samples: int) -> np.ndarray:
    return np.cos(2 * np.pi * frequency_hz * np.arange(n_samples) / sample_rate + 0.3)


# --- output grid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_in", "sr_in", "sr_out", "n_out"),
    [
        (100, 16000, 48000, 300),
        (441, 44100, 48000, 480),
        (10, 3, 4, 13),
        (1, 2, 1, 1),
        (3, 2, 1, 2),
    ],
)
def test_output_length_rounds_half_up(n_in, sr_in, sr_out, n_out):
    assert resample.output_length(n_in, sr_in, sr_out) == n_out


@pytest.mark.parametrize("name", UPSAMPLER_NAMES)
@pytest.mark.parametrize(("sr_in", "sr_out"), [(16000, 48000), (16000, 44100), (22050, 48000)])
def test_every_upsampler_returns_the_common_grid(name, sr_in, sr_out):
    x = _tone(300.0, sr_in, 1001)
    y = baselines.UPSAMPLERS[name](x, sr_in, sr_out)
    assert y.shape == (resample.output_length(1001, sr_in, sr_out),)
    assert y.dtype == np.float64


@pytest.mark.parametrize(
    ("name", "min_snr_db"),
    # Measured (16 -> 48 kHz, 16 -> 44.1 kHz): sinc 44-71 dB, sinc_hq > 150, soxr_hq > 126.
    [("sinc", 40.0), ("sinc_hq", 140.0), ("soxr_hq", 120.0)],
)
@pytest.mark.parametrize("sr_out", [48000, 44100])
@pytest.mark.parametrize("frequency_hz", [440.0, 5000.0])
def test_band_limited_upsamplers_match_the_analytic_tone(name, min_snr_db, sr_out, frequency_hz):
    # A tone well below the input Nyquist, read on the output grid, is the exact answer; a time
    # misalignment of one output sample would cost tens of dB here. Edges (50 ms) are excluded
    # because the resamplers treat the signal as zero outside its span.
    sr_in = 16000
    y = baselines.UPSAMPLERS[name](_tone(frequency_hz, sr_in, 4000), sr_in, sr_out)
    truth = _tone(frequency_hz, sr_out, y.size)
    edge = int(0.05 * sr_out)
    assert snr_db(truth[edge:-edge], y[edge:-edge]) > min_snr_db


# --- linear and cubic --------------------------------------------------------------------------


@pytest.mark.parametrize(("sr_in", "sr_out"), [(16000, 48000), (16000, 44100), (3, 7)])
def test_linear_reproduces_a_ramp_and_cubic_a_quadratic_exactly(sr_in, sr_out):
    n_in = 50
    t_in = np.arange(n_in) / sr_in
    t_out = np.arange(resample.output_length(n_in, sr_in, sr_out)) / sr_out

    def ramp(t):
        return 0.3 - 2.0 * t * sr_in / n_in

    def quadratic(t):
        u = t * sr_in / n_in
        return 0.1 + u - 1.5 * u**2

    np.testing.assert_allclose(
        baselines.upsample_linear(ramp(t_in), sr_in, sr_out), ramp(t_out), atol=1e-12
    )
    np.testing.assert_allclose(
        baselines.upsample_cubic(quadratic(t_in), sr_in, sr_out), quadratic(t_out), atol=1e-12
    )


def test_cubic_is_keys_not_a_spline_it_does_not_reproduce_cubics():
    # Keys a=-1/2 is exact to degree 2 only; a cubic leaves a visible error (a spline would not).
    t = np.arange(20, dtype=float)
    y = baselines.upsample_cubic((t / 20) ** 3, 1, 3)
    exact = (np.arange(60) / 3 / 20) ** 3
    assert np.max(np.abs(y - exact)[3:-6]) > 1e-6


def test_linear_and_cubic_pass_through_the_input_samples():
    x = np.random.default_rng(0).standard_normal(64)
    for upsample in (baselines.upsample_linear, baselines.upsample_cubic):
        np.testing.assert_allclose(upsample(x, 16000, 48000)[::3], x, atol=1e-12)


@pytest.mark.parametrize(("name", "order"), [("linear", 2), ("cubic", 3)])
def test_interpolation_error_converges_at_the_method_order(name, order):
    # Doubling the input rate on a smooth signal divides the interior error by ~2**order.
    errors = []
    for sr_in in (400, 800, 1600):
        sr_out = 4 * sr_in
        x = np.sin(2 * np.pi * 7.0 * np.arange(sr_in) / sr_in)
        y = baselines.UPSAMPLERS[name](x, sr_in, sr_out)
        exact = np.sin(2 * np.pi * 7.0 * np.arange(y.size) / sr_out)
        errors.append(np.max(np.abs(y - exact)[sr_out // 10 : -sr_out // 10]))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(np.log2(ratios), order, atol=0.1)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UPSAMPLER_NAMES)
def test_upsamplers_reject_bad_rates_and_signals(name):
    upsample = baselines.UPSAMPLERS[name]
    x = np.ones(100)
    with pytest.raises(
        ValueError, match="sr_in must be a positive whole number of Hz, got 16000.5"
    ):
        upsample(x, 16000.5, 48000)
    with pytest.raises(ValueError, match="sr_out must be a positive whole number of Hz, got 0"):
        upsample(x, 16000, 0)
    with pytest.raises(ValueError, match=r"shape \(n_samples,\)"):
        upsample(np.ones((2, 50)), 16000, 48000)
    with pytest.raises(ValueError, match="NaN or inf at sample 5"):
        upsample(np.r_[np.ones(5), np.inf, np.ones(5)], 16000, 48000)


def test_short_inputs_and_unknown_quality_are_explained():
    with pytest.raises(ValueError, match="has 2 samples; at least 3 needed"):
        baselines.upsample_cubic(np.ones(2), 1, 2)
    with pytest.raises(ValueError, match="has 1 samples; at least 2 needed"):
        baselines.upsample_linear(np.ones(1), 1, 2)
    with pytest.raises(ValueError, match="quality must be one of"):
        resample.upsample_sinc(np.ones(10), 1, 2, quality="best")


# --- LPC continuation --------------------------------------------------------------------------


def _damped_sum(n_samples: int) -> np.ndarray:
    n = np.arange(n_samples)
    return 0.999**n * np.cos(0.05 * n + 0.4) + 0.5 * 0.998**n * np.cos(0.23 * n + 1.1)


@pytest.mark.parametrize("order", [4, 12])
def test_lstsq_continues_a_sum_of_two_damped_sinusoids_analytically(order):
    # Two damped sinusoids obey an exact order-4 recursion; least squares finds it (an
    # over-specified order finds an equivalent predictor), so the continuation is exact.
    x = _damped_sum(2500)
    assert snr_db(x[2000:], lpc.lpc_continue(x[:2000], order, 500, method="lstsq")) > 60.0


def test_lstsq_recovers_the_poles_of_a_damped_sinusoid():
    n = np.arange(1000)
    a = lpc.lpc_coefficients(0.999**n * np.cos(0.05 * n + 0.4), 2, method="lstsq")
    np.testing.assert_allclose(a, [1.0, -2 * 0.999 * math.cos(0.05), 0.999**2], atol=1e-10)


def test_burg_continues_a_sum_of_two_sinusoids_with_accurate_poles():
    # Burg has a known phase-dependent frequency bias on noise-free sinusoids (Swingler 1979),
    # so its continuation is good but not exact: measured 19.6 dB over 500 samples here, and
    # 8 dB on the damped sum where least squares is exact (it pulls the poles to the unit circle).
    n = np.arange(2500)
    x = np.cos(0.05 * n + 0.4) + 0.5 * np.cos(0.23 * n + 1.1)
    poles = np.roots(lpc.lpc_coefficients(x[:2000], 4, method="burg"))
    np.testing.assert_allclose(
        np.sort(np.abs(np.angle(poles))), [0.05, 0.05, 0.23, 0.23], atol=1e-3
    )
    np.testing.assert_allclose(np.abs(poles), 1.0, atol=1e-5)
    assert snr_db(x[2000:], lpc.lpc_continue(x[:2000], 4, 500, method="burg")) > 15.0
    assert snr_db(x[2000:2020], lpc.lpc_continue(x[:2000], 4, 20, method="burg")) > 40.0


@pytest.mark.parametrize("method", ["burg", "lstsq"])
def test_continuation_is_the_all_pole_filter_run_with_zero_input(method):
    # Independent reference: scipy's lfilter with its state initialised from the history's tail.
    rng = np.random.default_rng(3)
    history = scipy.signal.lfilter([1.0], [1.0, -1.6, 0.9], rng.standard_normal(3000))
    a = lpc.lpc_coefficients(history, 32, method)
    np.testing.assert_array_equal(a[0], 1.0)
    if method == "burg":
        np.testing.assert_allclose(a, librosa.lpc(history, order=32))
    state = scipy.signal.lfiltic([1.0], a, history[::-1][:32])
    expected, _ = scipy.signal.lfilter([1.0], a, np.zeros(400), zi=state)
    np.testing.assert_allclose(
        lpc.lpc_continue(history, 32, 400, method), expected, rtol=1e-9, atol=1e-12
    )


def test_lpc_edge_cases_and_errors():
    assert lpc.lpc_continue(np.ones(10), 3, 0).shape == (0,)
    np.testing.assert_array_equal(lpc.lpc_coefficients(np.zeros(50), 4), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(lpc.lpc_continue(np.zeros(50), 4, 8, "lstsq"), np.zeros(8))
    with pytest.raises(ValueError, match="history has 32 samples but order=32 needs more than 32"):
        lpc.lpc_continue(np.ones(32), 32, 10)
    with pytest.raises(ValueError, match="history has 10 samples but order=256"):
        lpc.lpc_coefficients(np.ones(10), 256, "lstsq")
    with pytest.raises(ValueError, match="order must be a whole number >= 1, got 0"):
        lpc.lpc_coefficients(np.ones(10), 0)
    with pytest.raises(ValueError, match="method must be 'burg' or 'lstsq', got 'yule'"):
        lpc.lpc_continue(np.ones(10), 2, 5, method="yule")
    with pytest.raises(ValueError, match="n_out must be a whole number of samples >= 0, got -1"):
        lpc.lpc_continue(np.ones(10), 2, -1)


def test_continuation_registry_entries_are_the_named_predictors():
    x = _damped_sum(3000)
    for name, continue_ in baselines.CONTINUATIONS.items():
        order, method = name.removeprefix("lpc").split("_")
        np.testing.assert_array_equal(continue_(x, 50), lpc.lpc_continue(x, int(order), 50, method))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rates=st.sampled_from([(16000, 48000), (16000, 44100), (8000, 22050), (3, 7)]),
)
def test_linear_output_stays_within_each_segment(seed, rates):
    # Inside the input span every linear output is a convex combination of two neighbours.
    sr_in, sr_out = rates
    x = np.random.default_rng(seed).standard_normal(40)
    y = baselines.upsample_linear(x, sr_in, sr_out)
    positions = np.arange(y.size) * sr_in / sr_out
    inside = positions <= x.size - 1
    left = np.floor(positions[inside]).astype(int)
    right = np.minimum(left + 1, x.size - 1)
    low, high = np.minimum(x[left], x[right]), np.maximum(x[left], x[right])
    assert np.all((y[inside] >= low - 1e-12) & (y[inside] <= high + 1e-12))


def test_baseline_registries_add_look_up_and_refuse(monkeypatch):
    monkeypatch.setattr(baselines, "UPSAMPLERS", dict(baselines.UPSAMPLERS))
    monkeypatch.setattr(baselines, "CONTINUATIONS", dict(baselines.CONTINUATIONS))

    @baselines.register_upsampler("zero_order_hold")
    def hold(x, sr_in, sr_out):
        return np.repeat(x, sr_out // sr_in)

    baselines.register_continuation("silence", lambda history, n_out: np.zeros(n_out))
    assert baselines.upsampler("zero_order_hold") is hold
    assert baselines.UPSAMPLERS["zero_order_hold"] is hold
    assert np.array_equal(baselines.continuation("silence")(np.ones(8), 3), np.zeros(3))
    assert baselines.upsampler("sinc") is resample.upsample_sinc
    with pytest.raises(ValueError, match="already exists"):
        baselines.register_upsampler("sinc", hold)
    with pytest.raises(ValueError, match="already exists"):
        baselines.register_continuation("sonode", hold)  # sonode's own column
    with pytest.raises(ValueError, match="identifier"):
        baselines.register_continuation("lpc 8", hold)
    with pytest.raises(ValueError, match="unknown upsampler 'sync'; valid: sinc, sinc_hq"):
        baselines.upsampler("sync")
    with pytest.raises(ValueError, match="unknown continuation 'burg'"):
        baselines.continuation("burg")
