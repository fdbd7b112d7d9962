"""Spectral measures of mono signals: power spectrograms and log-spectral distances (the LSD of
ssr_eval and the energy above a frequency are in `sonode.dsp.metrics`).

Conventions (shapes, units, degenerate cases) as in `sonode.dsp.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sonode.dsp.metrics import POWER_FLOOR, as_pair, as_signal, check_sample_rate

# The reference resolution of the issue-5 LSD: n_fft = 2048 at 48 kHz (42.7 ms), hop 10 ms.
_LSD_N_FFT_AT_48K = 2048
_LSD_HOP_S = 0.010


def power_spectrogram(
    x: np.ndarray, sample_rate: float, n_fft: int, hop_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram with a periodic Hann window, frames entirely inside the signal (no padding).

    Power is ``|rfft(w·frame)|² / Σ w²``: white noise of variance s² has expected power s² per bin.

    Args:
        x: signal, shape (n_samples,), with n_samples >= n_fft.
        sample_rate: Hz.
        n_fft: frame length in samples.
        hop_length: frame step in samples.

    Returns:
        ``(freqs_hz, times_s, power)``: shapes (n_fft//2+1,), (n_frames,) with the centre time of
        each frame in seconds, and (n_fft//2+1, n_frames).

    Raises:
        ValueError: the signal is shorter than one frame, or bad sizes.
    """
    sig = as_signal(x, "x")
    rate = check_sample_rate(sample_rate)
    if n_fft < 2 or hop_length < 1:
        raise ValueError(
            f"need n_fft >= 2 and hop_length >= 1, got n_fft={n_fft}, hop_length={hop_length}"
        )
    if sig.size < n_fft:
        raise ValueError(
            f"signal has {sig.size} samples ({sig.size / rate * 1e3:.1f} ms), shorter than one "
            f"{n_fft}-sample analysis frame ({n_fft / rate * 1e3:.1f} ms); score a longer excerpt"
        )
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(sig, n_fft)[::hop_length]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / np.sum(window**2)
    freqs_hz = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    times_s = (np.arange(frames.shape[0]) * hop_length + (n_fft - 1) / 2) / rate
    return freqs_hz, times_s, power.T


def _rms_log_power_difference(ref_power: np.ndarray, est_power: np.ndarray) -> float:
    """Mean over frames (axis 1) of the RMS over bins (axis 0) of log10 power differences."""
    diff = np.log10(np.maximum(ref_power, POWER_FLOOR)) - np.log10(
        np.maximum(est_power, POWER_FLOOR)
    )
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=0))))


def lsd_n_fft(sample_rate: float) -> int:
    """FFT size of the LSD at ``sample_rate``: 2048 at 48 kHz, scaled to keep 42.7 ms frames."""
    return int(round(_LSD_N_FFT_AT_48K * check_sample_rate(sample_rate) / 48000.0))


def log_spectral_distance(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: float,
    *,
    split_hz: float | None = None,
) -> dict[str, float]:
    """Log-spectral distance (LSD): mean over frames of the RMS over bins of log10 power differences.

    ``LSD = mean_t sqrt(mean_f (log10 P_ref(f,t) − log10 P_est(f,t))²)`` on power spectrograms
    with a periodic Hann window, ``n_fft = round(2048·sample_rate/48000)`` (42.7 ms), hop
    ``round(0.010·sample_rate)`` (10 ms), frames entirely inside the signal (no padding), powers
    clamped below at :data:`POWER_FLOOR` (1e-10, see :func:`power_spectrogram` for the scale).
    The unit is log10 of power (bels): multiply by 10 for dB. A pure gain g applied to the
    estimate gives an LSD of exactly ``|2·log10 g|`` (e.g. 2.0 for g = 10), floor permitting.

    Args:
        reference, estimate: shape (n_samples,), same length, at least one frame (42.7 ms) long.
        sample_rate: Hz.
        split_hz: if given, also report the LSD over the bins with frequency < split_hz
            (``"lsd_below"``) and >= split_hz (``"lsd_above"``), e.g. the Nyquist frequency of the
            low-rate input of an upsampler.

    Returns:
        ``{"lsd": float}``, plus ``"lsd_below"`` and ``"lsd_above"`` when ``split_hz`` is given.

    Raises:
        ValueError: bad shapes, signal shorter than one frame, or split_hz leaving a band empty.
    """
    ref, est = as_pair(reference, estimate)
    rate = check_sample_rate(sample_rate)
    n_fft = lsd_n_fft(rate)
    hop_length = max(1, int(round(_LSD_HOP_S * rate)))
    freqs_hz, _, ref_power = power_spectrogram(ref, rate, n_fft, hop_length)
    _, _, est_power = power_spectrogram(est, rate, n_fft, hop_length)
    result = {"lsd": _rms_log_power_difference(ref_power, est_power)}
    if split_hz is not None:
        below = freqs_hz < split_hz
        if not (np.any(below) and np.any(~below)):
            raise ValueError(
                f"split_hz={split_hz!r} leaves one band empty: the bins span 0..{freqs_hz[-1]:g} Hz "
                f"(bin spacing {freqs_hz[1]:g} Hz); pick a split inside that range"
            )
        result["lsd_below"] = _rms_log_power_difference(ref_power[below], est_power[below])
        result["lsd_above"] = _rms_log_power_difference(ref_power[~below], est_power[~below])
    return result


def average_spectrum_lsd(reference: np.ndarray, estimate: np.ndarray, sample_rate: float) -> float:
    """LSD (bels) between two signals' *average* power spectra: the RMS over bins of the log10
    difference of their spectrograms' means over frames (the frames of `log_spectral_distance`).

    It compares what two sounds' spectra are, not their waveforms: a noise and an independent draw
    of the same noise are close, as a long continuation and the clip's end it should keep are.
    The signals may differ in length; each must hold one frame (42.7 ms)."""
    rate = check_sample_rate(sample_rate)
    n_fft, hop = lsd_n_fft(rate), max(1, int(round(_LSD_HOP_S * rate)))
    ref = power_spectrogram(reference, rate, n_fft, hop)[2].mean(axis=1, keepdims=True)
    est = power_spectrogram(estimate, rate, n_fft, hop)[2].mean(axis=1, keepdims=True)
    return _rms_log_power_difference(ref, est)


def multi_resolution_stft_distance(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: float,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
) -> float:
    """Multi-resolution STFT distance (after Yamamoto et al., Parallel WaveGAN, 2020).

    For each FFT size: magnitude spectrograms M (reference) and M̂ (estimate) as in
    :func:`power_spectrogram` (Hann window, hop n_fft/4, no padding), then

    - spectral convergence ``SC = ‖M − M̂‖_F / ‖M‖_F`` (relative error, scale-free),
    - log-magnitude distance ``LM = mean |ln M − ln M̂|`` (natural log; magnitudes clamped below
      at sqrt(POWER_FLOOR) = 1e-5),

    and the result is the mean over resolutions of ``SC + LM``. A gain g on the estimate gives
    ``|1 − g| + |ln g|``; a perfect estimate gives 0.

    Args:
        reference, estimate: shape (n_samples,), same length.
        sample_rate: Hz. ``fft_sizes`` are sizes at 48 kHz and are scaled by sample_rate/48000
            (rounded), so each resolution covers the same duration at every rate.
        fft_sizes: FFT sizes at 48 kHz (default 10.7, 21.3 and 42.7 ms).

    Returns:
        The distance (dimensionless, >= 0).

    Raises:
        ValueError: bad shapes, signal shorter than the largest frame, or silent reference.
    """
    ref, est = as_pair(reference, estimate)
    rate = check_sample_rate(sample_rate)
    if len(fft_sizes) == 0:
        raise ValueError("fft_sizes is empty; pass at least one FFT size, e.g. (512, 1024, 2048)")
    per_resolution = []
    for size_at_48k in fft_sizes:
        n_fft = int(round(size_at_48k * rate / 48000.0))
        hop_length = max(1, n_fft // 4)
        _, _, ref_power = power_spectrogram(ref, rate, n_fft, hop_length)
        _, _, est_power = power_spectrogram(est, rate, n_fft, hop_length)
        ref_mag, est_mag = np.sqrt(ref_power), np.sqrt(est_power)
        ref_norm = np.linalg.norm(ref_mag)
        if ref_norm == 0:
            raise ValueError("reference is silent (all zeros): spectral convergence is undefined")
        spectral_convergence = np.linalg.norm(ref_mag - est_mag) / ref_norm
        mag_floor = math.sqrt(POWER_FLOOR)
        log_magnitude = np.mean(
            np.abs(np.log(np.maximum(ref_mag, mag_floor)) - np.log(np.maximum(est_mag, mag_floor)))
        )
        per_resolution.append(spectral_convergence + log_magnitude)
    return float(np.mean(per_resolution))


# ---- super-resolution metrics (issue 10) ---------------------------------------------------------
