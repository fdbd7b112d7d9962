"""The continuation's late modes: each mode's decay measured on the clip's last second, and modes
that beat more slowly than that span can show merged into one (`sonode.model.continuation` §2 of
docs/continuation.md: Burg's decays are right over tens of milliseconds, wrong over seconds).
"""

from __future__ import annotations

import numpy as np

ENVELOPE_SPAN_S = 1.0  # the clip's end on which the late decays are measured
MIN_ENVELOPE_FRAMES = 4  # fewer half-overlapping frames than this: no late modes (Burg's run on)


def envelope_decays(
    x: np.ndarray, sample_rate: int, omega_rad_per_s: np.ndarray, frame_samples: int
) -> np.ndarray | None:
    """Decay of the clip at each frequency over its last ENVELOPE_SPAN_S: the slope of the log
    amplitude of x demodulated at that frequency, in Hann frames of ``frame_samples`` (hop half a
    frame), fitted by least squares weighted by the frames' energy at it.

    Args:
        x: the clip, (n_samples,).
        sample_rate: Hz.
        omega_rad_per_s: (K,) frequencies.
        frame_samples: frame length (sets the frequency resolution: partials closer than about
            2·sample_rate/frame_samples share one envelope).

    Returns:
        (K,) decays in 1/s, ≤ 0 (a swelling partial is held, not grown), or None when the span
        holds fewer than MIN_ENVELOPE_FRAMES frames.
    """
    span = np.asarray(x, dtype=np.float64)[-min(x.shape[0], int(ENVELOPE_SPAN_S * sample_rate)) :]
    hop = max(1, frame_samples // 2)
    starts = np.arange(0, span.shape[0] - frame_samples + 1, hop)
    if starts.shape[0] < MIN_ENVELOPE_FRAMES:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(span, frame_samples)[starts] * np.hanning(
        frame_samples
    )
    carriers = np.exp(
        -1j * np.arange(frame_samples)[:, None] * omega_rad_per_s[None, :] / sample_rate
    )
    amplitude = np.abs(frames @ carriers) + 1e-300  # (frames, K)
    times_s = (starts + 0.5 * frame_samples) / sample_rate
    weight = amplitude**2
    weight /= weight.sum(axis=0)
    mean_t = weight.T @ times_s
    mean_log = np.sum(weight * np.log(amplitude), axis=0)
    dt = times_s[:, None] - mean_t[None, :]
    slope = np.sum(weight * dt * (np.log(amplitude) - mean_log), axis=0) / np.maximum(
        np.sum(weight * dt**2, axis=0), 1e-300
    )
    return np.minimum(slope, 0.0)


def end_decays(
    x: np.ndarray, sample_rate: int, omega_rad_per_s: np.ndarray, frame_samples: int
) -> np.ndarray | None:
    """Decay of the clip at each frequency at its end: `envelope_decays` over its last
    MIN_ENVELOPE_FRAMES half-overlapping frames only, (MIN_ENVELOPE_FRAMES + 1) / 2 frames, rather
    than over ENVELOPE_SPAN_S. Where the sound's dynamics depend on its level (a kept pitch glide,
    `sonode.model.glide_fit`), the second's average is not the decay at the end's level: demodulated
    at the end's frequency, a partial that glided there seems to fall slower than it does (the
    synthetic string of tests/model/test_predict.py: 0.47/s over its 0.8 s, 0.90/s over its last
    0.32 s, 0.80/s by its law at the end). Same arguments and result as `envelope_decays`."""
    span = frame_samples * (MIN_ENVELOPE_FRAMES + 1) // 2
    if x.shape[0] < span:
        return None
    return envelope_decays(x[-span:], sample_rate, omega_rad_per_s, frame_samples)


def merge_beating(
    omega_rad_per_s: np.ndarray, decay_per_s: np.ndarray, energy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Modes closer than one beat per ENVELOPE_SPAN_S become one: each group of modes whose
    neighbouring frequencies differ by less than 2π/ENVELOPE_SPAN_S rad/s gets the energy-weighted
    mean frequency and decay of the group.

    Args:
        omega_rad_per_s, decay_per_s, energy: (K,) each; energy ≥ 0 weights the means.

    Returns:
        (decay_per_s, omega_rad_per_s), (K,) each.
    """
    order = np.argsort(omega_rad_per_s)
    sorted_omega = omega_rad_per_s[order]
    group = np.concatenate([[0], np.cumsum(np.diff(sorted_omega) >= 2 * np.pi / ENVELOPE_SPAN_S)])
    weight = energy[order] + 1e-300
    total = np.bincount(group, weight)
    mean_omega = np.bincount(group, weight * sorted_omega) / total
    mean_decay = np.bincount(group, weight * decay_per_s[order]) / total
    decay, omega = np.empty_like(decay_per_s), np.empty_like(omega_rad_per_s)
    decay[order], omega[order] = mean_decay[group], mean_omega[group]
    return decay, omega
