"""The scores of `sonode eval` (sonode.evaluation.evaluate): an upsampler against the truth, a
free run against the clip it was fitted on, and a continuation against the clip's next samples.
Every figure comes from `sonode.dsp.metrics` and `sonode.dsp.spectra`; SNR and levels in dB.
"""

from __future__ import annotations

import numpy as np

from sonode.dsp.metrics import energy_above_db, lsd_ssr, snr_db
from sonode.dsp.spectra import log_spectral_distance

SNR_WINDOWS_MS = (5, 20, 50)


def upsampling_scores(
    reference: np.ndarray, x: np.ndarray, rate: int, nyquist: float
) -> dict[str, float]:
    """SNR (dB); the LSD of ssr_eval (`sonode.dsp.metrics.lsd_ssr`: log10 power, gains matched) over all
    bins, below and above ``nyquist``; the issue-5 LSD (1e-10 floor, "lsd5_*"); the share of energy
    above ``nyquist`` (dB of the total) and its difference from the truth's (dB)."""
    ssr = lsd_ssr(reference, x, rate, split_hz=nyquist)
    lsd5 = log_spectral_distance(reference, x, rate, split_hz=nyquist)
    share = energy_above_db(x, rate, nyquist) if np.any(x) else -np.inf
    share_truth = energy_above_db(reference, rate, nyquist)
    return {
        "snr_db": snr_db(reference, x),
        "lsd": ssr["lsd"],
        "lsd_below": ssr["lsd_below"],
        "lsd_above": ssr["lsd_above"],
        "lsd5_below": lsd5["lsd_below"],
        "lsd5_above": lsd5["lsd_above"],
        "energy_above_db": share,
        "energy_above_vs_truth_db": share - share_truth,
    }


def trajectory_scores(reference: np.ndarray, free_run: np.ndarray, rate: int) -> dict[str, float]:
    """How well one free run (n,) follows the clip's first n samples: SNR (dB); the worst level
    difference (dB) over whole 100 ms blocks — what a sustained sound's free run must hold when a
    pitch error has turned into phase drift and the SNR says nothing; and the ssr_eval LSD
    (levels as they are)."""
    n = free_run.shape[0]
    reference = reference[:n]
    block = rate // 10
    n_blocks = max(1, n // block)

    def levels_db(x: np.ndarray) -> np.ndarray:
        power = np.mean(x[: n_blocks * block].reshape(n_blocks, -1) ** 2, axis=1)
        return 10 * np.log10(np.maximum(power, 1e-20))

    return {
        "snr_db": snr_db(reference, free_run),
        "level_error_db": float(np.max(np.abs(levels_db(free_run) - levels_db(reference)))),
        # no least-squares gain matching: it would scale a phase-drifted free run to silence
        "lsd": lsd_ssr(reference, free_run, rate, match_gain=False)["lsd"],
    }


def continuation_scores(future: np.ndarray, x: np.ndarray, rate: int) -> dict[str, float]:
    """A continuation ``x`` against the clip's ``future`` (n,): SNR (dB) over the first 5/20/50 ms
    (SNR_WINDOWS_MS) and the LSD over all of it."""
    scores = {
        f"snr_{ms}ms_db": snr_db(future[: rate * ms // 1000], x[: rate * ms // 1000])
        for ms in SNR_WINDOWS_MS
    }
    scores["lsd"] = log_spectral_distance(future, x, rate)["lsd"]
    return scores
