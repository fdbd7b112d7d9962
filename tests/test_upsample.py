"""Upsampling that keeps the input band and synthesises the band above it (issue 10)."""

import math
from pathlib import Path

import numpy as np
import pytest

from sonode.api import fit
from sonode.dsp.bandwidth import crossover
from sonode.dsp.harmonics import _periodogram
from sonode.dsp.metrics import energy_above_db, lsd_ssr
from sonode.dsp.resample import upsample_sinc
from sonode.dsp.spectra import power_spectrogram
from sonode.evaluation.baselines import upsample_shaped_noise
from sonode.io.clip import Clip, read_clip, resample
from sonode.model import FitOptions, fit_samples
from sonode.tasks.render import render
from sonode.tasks.upsample import extend_band, model_energy_above_db, upsample_samples

DATA = Path(__file__).resolve().parent.parent / "data"
TINY = dict(
    latent_dim=48,
    hop_samples=256,
    overlap_samples=32,
    hidden=8,
    layers=1,
    lp_order=64,
    steps=0,
    continuation_steps=0,
    max_time_s=None,
    seed=0,
)


def harmonic_tone(
    rate: int, duration_s: float = 0.5, f0: float = 440.0, inharmonicity: float = 1e-4
):
    """Partials k·f0·√(1+Bk²) up to 22 kHz, amplitude 0.3/k, decay 2 + 3e-4·f per second."""
    t = np.arange(int(duration_s * rate)) / rate
    rng = np.random.default_rng(1)
    x, partials = np.zeros_like(t), []
    for k in range(1, 80):
        f = k * f0 * math.sqrt(1 + inharmonicity * k * k)
        if f > min(22000.0, 0.49 * rate):
            break
        x += (
            0.3
            / k
            * np.exp(-(2 + 3e-4 * f) * t)
            * np.cos(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        )
        partials.append(f)
    return x, np.array(partials)


def _clip(samples: np.ndarray, rate: int) -> Clip:
    return Clip(
        samples=samples,
        sample_rate=rate,
        source_path=Path("synthetic.wav"),
        source_rate=rate,
        source_channels=1,
        channel="mix",
        start_s=0.0,
    )


def _partial(x: np.ndarray, rate: int, f_hz: float) -> tuple[float, float]:
    """(peak frequency Hz, mean power) of the strongest peak within ±1 % of f_hz."""
    freqs, power, to_power = _periodogram(x, rate)
    lo, hi = np.searchsorted(freqs, [0.99 * f_hz, 1.01 * f_hz])
    peak = lo + int(np.argmax(power[lo:hi]))
    return freqs[peak], to_power * power[peak - 3 : peak + 4].sum()


@pytest.fixture(scope="module")
def tone_fit():
    truth, partials = harmonic_tone(48000)
    low = resample(truth, 48000, 16000)
    return truth, partials, low, fit(_clip(low, 16000), **TINY)


def test_synthesised_partials_land_within_10_cents_and_3_db_of_the_true_ones(tone_fit):
    truth, partials, low, fitted = tone_fit
    out = fitted.upsample(48000, max_snr_cost_db=None)  # the band at its predicted level
    assert out.shape == truth.shape and np.all(np.isfinite(out))
    above = partials[(partials > 8200) & (partials < 20000)]
    assert above.size >= 20
    for f in above:
        f_true, p_true = _partial(truth, 48000, f)
        f_out, p_out = _partial(out, 48000, f)
        assert abs(1200 * math.log2(f_out / f_true)) < 10, f
        assert abs(10 * math.log10(p_out / p_true)) < 3, f
    # the input's band is the sinc interpolation's, and the band above is nearer the truth than noise
    sinc, noise = upsample_sinc(low, 16000, 48000), upsample_shaped_noise(low, 16000, 48000)
    ours, theirs = lsd_ssr(truth, out, 48000, 8000), lsd_ssr(truth, sinc, 48000, 8000)
    assert ours["lsd_below"] < theirs["lsd_below"] + 0.05
    assert (
        ours["lsd_above"]
        < min(lsd_ssr(truth, noise, 48000, 8000)["lsd_above"], theirs["lsd_above"]) - 1
    )


def test_fit_report_states_the_model_energy_above_nyquist(tone_fit):
    fitted = tone_fit[3]
    value = fitted.info["fit"]["energy_above_nyquist_db"]
    assert value is None or value == pytest.approx(model_energy_above_db(fitted.model))


def _peakiness_db(x: np.ndarray, rate: int, low_hz: float) -> float:
    """Largest ratio, in dB, of a bin of the frame-averaged spectrum above low_hz to the median of
    the bins within ±500 Hz: ~1 dB for noise, > 10 dB for partials."""
    freqs, _, power = power_spectrogram(x, rate, 1536, 384)
    mean = power.mean(axis=1)
    worst = 0.0
    for i in np.nonzero((freqs > low_hz) & (freqs < 0.95 * rate / 2))[0]:
        near = mean[(freqs > freqs[i] - 500) & (freqs < freqs[i] + 500)]
        worst = max(worst, 10 * math.log10(mean[i] / np.median(near)))
    return worst


def test_low_passed_white_noise_gets_no_harmonic_structure(tone_fit):
    noise48 = np.random.default_rng(0).normal(0, 0.1, 24000)
    low = resample(noise48, 48000, 16000)
    fitted = fit(_clip(low, 16000), **TINY)
    high, info = extend_band(low, 16000, 48000, modes=None)
    assert not info.harmonic
    out = fitted.upsample(48000)
    assert _peakiness_db(out, 48000, 8500) < 3.0
    # the same measure sees the partials of the harmonic tone's extension
    assert _peakiness_db(tone_fit[3].upsample(48000), 48000, 8500) > 10.0


def test_a_pure_tone_below_nyquist_gets_nothing_above():
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t) * np.hanning(t.size)  # faded: no onset click
    out, info = upsample_samples(tone, 16000, 48000)
    assert info is not None and not info.harmonic and info.n_partials_added == 0
    assert energy_above_db(out, 48000, 8000) < -150.0
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    assert np.max(spectrum[np.fft.rfftfreq(out.size, 1 / 48000) > 1100]) < 1e-12 * spectrum.max()


@pytest.mark.parametrize(
    "clip_name, rate_in, rate_out",
    [
        ("speech_front_left.wav", 8000, 16000),
        ("sustained_horn_As3.wav", 16000, 44100),
        ("decaying_steelguitar_C4.wav", 22050, 48000),
    ],
)
def test_other_rates_work(clip_name, rate_in, rate_out):
    truth = read_clip(DATA / clip_name, duration_s=0.5, rate=rate_out).samples
    low = resample(truth, rate_out, rate_in)
    out, info = upsample_samples(low, rate_in, rate_out)
    n = min(out.size, truth.size)
    assert abs(out.size - truth.size) <= 1 and np.all(np.isfinite(out))
    ours = lsd_ssr(truth[:n], out[:n], rate_out, rate_in / 2)
    sinc = lsd_ssr(truth[:n], upsample_sinc(low, rate_in, rate_out)[:n], rate_out, rate_in / 2)
    assert ours["lsd_below"] < sinc["lsd_below"] + 0.05
    assert ours["lsd_above"] < sinc["lsd_above"]
    assert (
        energy_above_db(out[:n], rate_out, rate_in / 2)
        < energy_above_db(truth[:n], rate_out, rate_in / 2) + 1
    )


def test_the_crossover_neither_cancels_nor_shifts():
    x = np.random.default_rng(2).normal(size=4800)
    assert np.max(np.abs(crossover(x, x, 48000, 7800, 160) - x)) < 1e-12
    faded = x * np.hanning(x.size)  # (an abrupt end would splatter when the filtered tails are cut)
    assert energy_above_db(crossover(faded, np.zeros_like(x), 48000, 7800, 160), 48000, 8000) < -100


def test_rendering_below_the_model_rate_leaves_no_aliases():
    rate = 16000
    t = np.arange(rate // 2) / rate
    tone = 0.5 * np.hanning(t.size) * np.sin(2 * np.pi * 6000 * t)
    model, _ = fit_samples(tone, rate, FitOptions(**{**TINY, "latent_dim": 8, "lp_order": 16}))
    out = render(model, rate=8000).samples
    assert out.shape == (4000,)
    assert 10 * math.log10(np.sum(out**2) / np.sum(tone[::2] ** 2)) < -60
    assert (
        model_energy_above_db(model) < -40
    )  # the linear tone model has (almost) nothing above 8 kHz


def test_lsd_ssr_is_log10_power_with_a_tiny_eps():
    x = np.random.default_rng(3).normal(0, 0.1, 48000)
    assert lsd_ssr(x, 10 * x, 48000, 8000, match_gain=False)["lsd"] == pytest.approx(2.0, abs=1e-6)
    assert lsd_ssr(x, 10 * x, 48000, 8000)["lsd"] == pytest.approx(0.0, abs=1e-6)
    empty = lsd_ssr(x, upsample_sinc(resample(x, 48000, 16000), 16000, 48000), 48000, 8000)
    assert empty["lsd_above"] > 5  # an empty band scores by the eps: ~log10(power / 1e-24)
