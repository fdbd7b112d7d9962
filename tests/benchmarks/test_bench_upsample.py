"""benchmarks/bench_upsample_folder.py's window of levels meeting both goals and the truth's own
band within the SNR goal, and
benchmarks/bench_partial_phase.py's phase prediction score on signals whose answer is known."""

from __future__ import annotations

import math
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from bench_partial_phase import control_clip, run  # noqa: E402
from bench_upsample_folder import uncorrelated_window_db  # noqa: E402
from bench_upsample_level import clip_levels  # noqa: E402
from upsample_diagnosis import oracle_truth_band  # noqa: E402

from sonode.dsp.metrics import lsd_ssr, snr_db  # noqa: E402

RATE = 48000
SHARE = 10**0.15 - 1  # the SNR goal's 1.5 dB as a share of sinc's error: 0.4125


def _band(rng, n: int, lo_hz: float, hi_hz: float, power: float) -> np.ndarray:
    """White noise confined to [lo_hz, hi_hz) on the DFT grid, mean square ``power``."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(f < lo_hz) | (f >= hi_hz)] = 0
    x = np.fft.irfft(spectrum, n=n)
    return x * math.sqrt(power / np.mean(x**2))


def test_the_window_is_the_analytic_one_with_and_without_images():
    rng = np.random.default_rng(0)
    n = RATE
    low = _band(rng, n, 100, 7000, 1.0)
    above = _band(rng, n, 8000, 20000, 0.01)  # E_hi, all of sinc's error when it has no images
    # A ≤ 0.4125·M and A ≥ E_hi/2 with M = E_hi: 10·log10(0.4125/0.5) = −0.835 dB
    assert (
        abs(uncorrelated_window_db(low + above, low, RATE, 8000) - 10 * math.log10(SHARE / 0.5))
        < 1e-6
    )
    # images of energy I (a band the truth does not hold) are removed by the band: M = E_hi + I,
    # A ≤ 0.4125·M + I
    images = _band(rng, n, 20500, 23000, 0.004)
    m = np.mean(above**2) + np.mean(images**2) - 2 * np.mean(above * images)
    want = 10 * math.log10((SHARE * m + np.mean(images**2)) / (0.5 * np.mean(above**2)))
    got = uncorrelated_window_db(low + above, low + images, RATE, 8000)
    assert abs(got - want) < 1e-6 and got > 0


def test_phases_locked_to_the_fundamental_are_predicted_and_random_ones_are_not(tmp_path):
    args = Namespace(rate=16000, truth_rate=RATE, duration=1.0)
    locked = run(control_clip(tmp_path, seconds=1.0), args)
    scattered = run(control_clip(tmp_path, seconds=1.0, random_phases=True), args)
    assert locked["truth"] > 0.95 and locked["hold"] > 0.95
    assert abs(scattered["truth"]) < 0.3 and abs(scattered["hold"]) < 0.5


def test_the_truths_own_band_is_held_within_the_snr_goal_and_scores_its_shape():
    rng = np.random.default_rng(1)
    n = RATE
    low = _band(rng, n, 100, 7800, 1.0)
    above = _band(rng, n, 8000, 20000, 0.05)  # sinc's whole error: the band gets 0.41/2 of it
    truth = low + above
    out = oracle_truth_band(truth, low, low, RATE, 8000)
    added = out - low
    assert abs(np.mean(added**2) / np.mean(above**2) - SHARE / 2) < 0.01
    assert abs(np.mean(added * above)) < 0.05 * np.mean(above**2)  # random phases: uncorrelated
    cost_db = snr_db(truth, low) - snr_db(truth, out)
    assert abs(cost_db - 10 * math.log10(1 + SHARE / 2)) < 0.1  # 0.81 dB
    # its shape is the truth's: well below the LSD of white noise at the same level in 8-24 kHz
    white = low + _band(rng, n, 8000, 24000, float(np.mean(added**2)))
    assert (
        lsd_ssr(truth, out, RATE, 8000)["lsd_above"]
        < lsd_ssr(truth, white, RATE, 8000)["lsd_above"] - 1
    )


def test_the_level_check_scores_each_estimator_against_the_truth_above_8k():
    # a power law the input shows: the line fits continue it (error ~0 dB); the same input with
    # the truth 20 dB quieter above 8 kHz: every estimator is ~20 dB too loud, as the check says
    from sonode.io.clip import resample

    rng = np.random.default_rng(3)
    spectrum = np.fft.rfft(rng.normal(size=RATE))
    f = np.fft.rfftfreq(RATE, 1 / RATE)
    spectrum *= np.maximum(f, 100.0) ** -0.75
    truth = np.fft.irfft(spectrum, n=RATE)
    truth = 0.1 * truth / truth.std()
    low = resample(truth, RATE, 16000)
    found = clip_levels(truth, low, 16000, RATE)
    assert abs(found["truth"]["tilt"]) < 1.5
    assert set(found["held"]) <= set(found["truth"]) and "tilt" in found["held2"]
    quieter = np.fft.rfft(truth)
    quieter[f >= 8000] *= 0.1
    found_q = clip_levels(np.fft.irfft(quieter, n=RATE), low, 16000, RATE)
    assert found_q["truth"]["tilt"] == pytest.approx(found["truth"]["tilt"] + 20.0, abs=1.0)
