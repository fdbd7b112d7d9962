"""The phase-based pitch track and the band-limited reader the warped continuation measurements use."""

from __future__ import annotations

import math

import numpy as np

from sonode.dsp.harmonics import Partials
from sonode.dsp.pitch_track import phase_ratio_track, ratio_track, read_at, warped_time

RATE = 16000


def vibrato_series(f0_hz: float, depth_cents: float, rate_hz: float, seconds: float = 1.0):
    """(x, t, cents): 12 harmonics 1/k of f0 with a sinusoidal vibrato, −60 dB white noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    cents = depth_cents * np.sin(2 * np.pi * rate_hz * t)
    tau = warped_time(t, 2 ** (cents / 1200), t.size, RATE)  # exact phase of each partial
    x = sum(np.cos(2 * np.pi * k * f0_hz * tau + k) / k for k in range(1, 13))
    x = x / np.max(np.abs(x))
    x += 1e-3 * np.random.default_rng(0).normal(size=t.size)
    return x, t, cents


def partials(f0_hz: float) -> Partials:
    return Partials(f0_hz, 0.0, np.zeros(0), np.zeros(0))


def test_the_phase_track_follows_a_vibrato_to_a_fraction_of_a_cent():
    # ratio_track is good to a few cents; the warped continuation needs << 1 cent (1 cent held for
    # 0.2 s turns a 1 kHz partial by 0.7 rad)
    x, t, cents = vibrato_series(220.0, 20.0, 5.5)
    times, ratio = phase_ratio_track(x, RATE, partials(220.0), 4000.0)
    assert times[0] > 0 and times[-1] < t[-1]
    error = 1200 * np.log2(ratio) - np.interp(times, t, cents)
    assert np.sqrt(np.mean(error**2)) < 0.5
    coarse_t, coarse = ratio_track(x, RATE, partials(220.0), 4000.0, ref_time_s=0.5)
    inner = (coarse_t > 0.1) & (coarse_t < 0.9)
    coarse_error = 1200 * np.log2(coarse[inner]) - np.interp(coarse_t[inner], t, cents)
    coarse_error -= coarse_error.mean()  # ratio_track is 1 at its reference frame
    assert np.sqrt(np.mean(error**2)) < 0.5 * np.sqrt(np.mean(coarse_error**2))


def test_the_phase_track_of_a_steady_tone_is_its_frequency_ratio():
    x, _, _ = vibrato_series(247.0, 0.0, 5.0)
    times, ratio = phase_ratio_track(x, RATE, partials(245.0), 4000.0)
    assert np.max(np.abs(1200 * np.log2(ratio / (247.0 / 245.0)))) < 0.2
    assert phase_ratio_track(x[:100], RATE, partials(245.0), 4000.0)[0].size == 0


def test_read_at_reads_a_band_limited_signal_between_its_samples():
    t = np.arange(RATE) / RATE
    x = np.cos(2 * np.pi * 1234.5 * t) + 0.5 * np.sin(2 * np.pi * 3210.0 * t)
    at = np.linspace(0.1, 0.9, 5001) + 0.3 / RATE
    truth = np.cos(2 * np.pi * 1234.5 * at) + 0.5 * np.sin(2 * np.pi * 3210.0 * at)
    error = read_at(x, RATE, at * RATE) - truth
    assert 10 * math.log10(np.sum(truth**2) / np.sum(error**2)) > 40


def test_read_at_high_quality_keeps_the_band_near_nyquist():
    # the default 4x reader is 12 dB down at 7 kHz of 16 kHz; a warped continuation read there
    # twice lost 25 dB at 5 ms on a bright clip (docs/continuation_warp.md)
    t = np.arange(RATE) / RATE
    x = np.cos(2 * np.pi * 7000.0 * t + 0.3)
    at = np.linspace(0.2, 0.8, 5001) + 0.37 / RATE
    truth = np.cos(2 * np.pi * 7000.0 * at + 0.3)

    def snr(read: np.ndarray) -> float:
        return 10 * math.log10(np.sum(truth**2) / np.sum((read - truth) ** 2))

    assert snr(read_at(x, RATE, at * RATE, quality="high", oversample=8)) > 60
    assert snr(read_at(x, RATE, at * RATE)) < 20
