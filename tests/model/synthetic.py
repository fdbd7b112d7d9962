"""Synthetic clips with known continuous-time formulas, for model and render tests."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
TONES = ((440.0, 0.6, 3.0), (1250.0, 0.3, 8.0))  # (frequency Hz, amplitude, decay 1/s)


def two_tone(t_s: np.ndarray) -> np.ndarray:
    """A sum of two damped sinusoids at times ``t_s`` (seconds): band-limited far below 8 kHz."""
    return sum(a * np.exp(-d * t_s) * np.sin(2 * np.pi * f * t_s + 0.3) for f, a, d in TONES)


def two_tone_clip(duration_s: float = 0.25, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(round(duration_s·sample_rate),) samples of `two_tone`."""
    return two_tone(np.arange(int(round(duration_s * sample_rate))) / sample_rate)


def small_two_tone_fit(duration_s: float = 0.25):
    """(model, info) of a small model (8 latent modes, 128-sample hops) fitted to
    `two_tone_clip` in two steps at SAMPLE_RATE: the render tests' model."""
    from sonode.model import FitOptions, fit_samples

    options = FitOptions(
        latent_dim=8,
        hop_samples=128,
        overlap_samples=16,
        hidden=16,
        layers=1,
        lp_order=32,
        steps=2,
        max_time_s=None,
    )
    return fit_samples(two_tone_clip(duration_s), SAMPLE_RATE, options)
