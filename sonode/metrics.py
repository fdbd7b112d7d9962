"""Objective quality metrics for comparing an estimated signal with a reference (truth).

Every function takes mono numpy signals of shape ``(n_samples,)`` (any real dtype; computed in
float64) and, where time or frequency matters, ``sample_rate`` in Hz. Reference and estimate must
have the same length: the caller decides how they are aligned, a metric never trims silently.

Conventions for the degenerate cases, shared by all functions here:

- a perfect estimate (zero error energy) has an SNR of ``+inf`` dB, not a large finite number, so
  that "perfect" cannot be confused with "very good";
- a silent reference (zero energy) makes SNR-like ratios undefined: whole-signal metrics raise
  ``ValueError``; metrics over windows return ``nan`` for silent windows (plots show a gap).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

# Spectra are normalised by the window energy, so that white noise of variance s^2 has an expected
# power of s^2 in every bin whatever n_fft is. Powers below this floor are clamped to it before
# taking logs: 1e-10 is 100 dB below unit-variance white noise, far below 16/24-bit quantisation
# noise, so it only matters for bins that are (digitally) empty in one of the signals.
POWER_FLOOR = 1e-10

# The reference resolution of the issue-5 LSD: n_fft = 2048 at 48 kHz (42.7 ms), hop 10 ms.
_LSD_N_FFT_AT_48K = 2048
_LSD_HOP_S = 0.010


def as_signal(x: np.ndarray, name: str = "x", min_samples: int = 1) -> np.ndarray:
    """``x`` as a finite float64 vector of shape (n_samples,), or a ValueError naming ``name``.

    The one input check shared by the evaluation modules (metrics, baselines, plotting).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a mono signal of shape (n_samples,), got shape {arr.shape}")
    if arr.size < min_samples:
        raise ValueError(f"{name} has {arr.size} samples; at least {min_samples} needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf at sample {int(np.argmin(np.isfinite(arr)))}")
    return arr


def _as_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = as_signal(reference, "reference")
    est = as_signal(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(
            f"reference has {ref.size} samples but estimate has {est.size}; "
            "align and trim them to the same length before scoring"
        )
    return ref, est


def check_sample_rate(sample_rate: float) -> float:
    """``sample_rate`` as a float, or a ValueError unless it is a positive finite number (Hz)."""
    valid = isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool)
    if not (valid and math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return float(sample_rate)


def _n_samples(duration_s: float, sample_rate: float, name: str) -> int:
    """``duration_s`` as a whole number (>= 1) of samples."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"{name} must be a positive duration in seconds, got {duration_s!r}")
    n = int(round(duration_s * sample_rate))
    if n < 1:
        raise ValueError(
            f"{name}={duration_s} s is shorter than one sample at {sample_rate:g} Hz; make it longer"
        )
    return n


def _snr_from_energies(signal_energy: np.ndarray, error_energy: np.ndarray) -> np.ndarray:
    """10·log10(signal/error) elementwise: +inf where error is 0, nan where signal is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 10.0 * np.log10(signal_energy / error_energy)
    snr = np.where(error_energy == 0, np.inf, snr)
    return np.where(signal_energy == 0, np.nan, snr)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` over the whole signal, in dB.

    ``10·log10(Σ reference² / Σ (reference − estimate)²)``.

    Args:
        reference: truth, shape (n_samples,).
        estimate: same shape as ``reference``.

    Returns:
        SNR in dB; ``+inf`` if the estimate is exact.

    Raises:
        ValueError: shapes differ, non-finite samples, or the reference is all zeros (SNR undefined).
    """
    ref, est = _as_pair(reference, estimate)
    signal_energy = float(np.sum(ref**2))
    if signal_energy == 0:
        raise ValueError("reference is silent (all zeros): SNR is undefined; score a non-silent excerpt")
    return float(_snr_from_energies(np.asarray(signal_energy), np.asarray(np.sum((ref - est) ** 2))))


def segmental_snr_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: float,
    frame_s: float = 0.02,
    clamp_db: tuple[float, float] = (-10.0, 35.0),
    silence_db: float = -60.0,
) -> float:
    """Mean over frames of the per-frame SNR, each clamped to ``clamp_db``, in dB.

    Frames are consecutive, non-overlapping, ``round(frame_s·sample_rate)`` samples long; a
    trailing partial frame is dropped. Frames whose reference power is more than ``-silence_db``
    dB below the reference's mean power over all full frames are skipped: in silence the frame SNR
    measures only how quiet the estimate is, and would dominate the mean. The clamp (the usual
    -10..35 dB) keeps one perfect (+inf) or one hopeless frame from dominating.

    Args:
        reference, estimate: shape (n_samples,), same length.
        sample_rate: Hz.
        frame_s: frame length in seconds.
        clamp_db: (low, high) limits applied to each frame's SNR.
        silence_db: frames this many dB (negative) below the mean power are skipped.

    Returns:
        Segmental SNR in dB.

    Raises:
        ValueError: bad shapes/arguments, signal shorter than one frame, or every frame silent.
    """
    ref, est = _as_pair(reference, estimate)
    rate = check_sample_rate(sample_rate)
    n_frame = _n_samples(frame_s, rate, "frame_s")
    low_db, high_db = clamp_db
    if not low_db < high_db:
        raise ValueError(f"clamp_db must be (low, high) with low < high, got {clamp_db!r}")
    n_frames = ref.size // n_frame
    if n_frames == 0:
        raise ValueError(
            f"signal has {ref.size} samples, shorter than one {frame_s} s frame ({n_frame} samples) "
            f"at {rate:g} Hz; use a shorter frame_s or a longer signal"
        )
    ref_frames = ref[: n_frames * n_frame].reshape(n_frames, n_frame)
    err_frames = (ref - est)[: n_frames * n_frame].reshape(n_frames, n_frame)
    signal_energy = np.sum(ref_frames**2, axis=1)
    threshold = np.mean(signal_energy) * 10.0 ** (silence_db / 10.0)
    active = (signal_energy > threshold) & (signal_energy > 0)
    if not np.any(active):
        raise ValueError("every frame of the reference is silent: segmental SNR is undefined")
    frame_snr = _snr_from_energies(signal_energy[active], np.sum(err_frames[active] ** 2, axis=1))
    return float(np.mean(np.clip(frame_snr, low_db, high_db)))


def running_snr_db(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: float,
    window_s: float,
    hop_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SNR in a window sliding along the signal, e.g. to plot how a continuation degrades.

    Windows are ``round(window_s·sample_rate)`` samples long, start at sample 0 and advance by
    ``round(hop_s·sample_rate)`` samples (default ``hop_s = window_s/4``); only windows entirely
    inside the signal are used.

    Args:
        reference, estimate: shape (n_samples,), same length.
        sample_rate: Hz.
        window_s: window length in seconds.
        hop_s: window step in seconds.

    Returns:
        ``(times_s, snr_db)``, both shape (n_windows,): the centre time of each window in seconds
        from the first sample, and its SNR in dB (``+inf`` for an exact window, ``nan`` where the
        reference window is all zeros).

    Raises:
        ValueError: bad shapes/arguments, or signal shorter than one window.
    """
    ref, est = _as_pair(reference, estimate)
    rate = check_sample_rate(sample_rate)
    n_window = _n_samples(window_s, rate, "window_s")
    n_hop = _n_samples(window_s / 4 if hop_s is None else hop_s, rate, "hop_s")
    if ref.size < n_window:
        raise ValueError(
            f"signal has {ref.size} samples, shorter than one {window_s} s window "
            f"({n_window} samples) at {rate:g} Hz; use a shorter window_s"
        )
    ref_windows = np.lib.stride_tricks.sliding_window_view(ref, n_window)[::n_hop]
    err_windows = np.lib.stride_tricks.sliding_window_view(ref - est, n_window)[::n_hop]
    starts = np.arange(ref_windows.shape[0]) * n_hop
    times_s = (starts + (n_window - 1) / 2) / rate
    snr = _snr_from_energies(np.sum(ref_windows**2, axis=1), np.sum(err_windows**2, axis=1))
    return times_s, snr


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
        raise ValueError(f"need n_fft >= 2 and hop_length >= 1, got n_fft={n_fft}, hop_length={hop_length}")
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
    diff = np.log10(np.maximum(ref_power, POWER_FLOOR)) - np.log10(np.maximum(est_power, POWER_FLOOR))
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
    ref, est = _as_pair(reference, estimate)
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
    ref, est = _as_pair(reference, estimate)
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
# The LSD of the audio super-resolution literature as haoheliu/ssr_eval computes it: librosa STFT
# magnitudes (centred frames, Hann window, n_fft = int(2048·rate/44100), hop = int(rate/100)), no
# normalisation, and  d(f,t) = log10(|R|² / (|E| + eps)² + eps)  with eps = 1e-12 — log10 of power,
# no dB factor. On full-scale float signals that eps sits ~240 dB below a loud bin, so an empty
# estimate band scores ~12 per bin there: the reason a noise baseline must be compared too.
SSR_EPS = 1e-12


def _ssr_log_ratio(reference: np.ndarray, estimate: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    n_fft = int(2048 / (44100 / rate))
    hop_length = int(rate / 100)
    ref_mag = np.abs(librosa.stft(reference, n_fft=n_fft, hop_length=hop_length))
    est_mag = np.abs(librosa.stft(estimate, n_fft=n_fft, hop_length=hop_length))
    log_ratio = np.log10(ref_mag**2 / (est_mag + SSR_EPS) ** 2 + SSR_EPS)
    return np.fft.rfftfreq(n_fft, d=1.0 / rate), log_ratio


def matched_gain(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The least-squares gain g minimising Σ(reference − g·estimate)² (1.0 for a silent estimate)."""
    ref, est = _as_pair(reference, estimate)
    energy = float(np.sum(est**2))
    return float(np.sum(ref * est) / energy) if energy > 0 else 1.0


def lsd_ssr(reference: np.ndarray, estimate: np.ndarray, sample_rate: float, split_hz: float | None = None,
            match_gain: bool = True) -> dict[str, float]:
    """LSD as ssr_eval computes it (see SSR_EPS above), over all bins and split at ``split_hz``.

    Each value is the mean over frames of sqrt(mean over the band's bins of d(f,t)²), in log10
    power units (bels, no dB factor). With ``match_gain`` the estimate is first scaled by
    :func:`matched_gain`, so a level difference alone is not scored.

    Args:
        reference, estimate: shape (n_samples,), same length, file amplitude (full scale = 1).
        sample_rate: Hz.
        split_hz: e.g. the input's Nyquist frequency; "lsd_below" has the bins < split_hz,
            "lsd_above" those >= split_hz. None: the whole band only.

    Returns:
        {"lsd", "lsd_below", "lsd_above"} ({"lsd"} without split_hz).
    """
    ref, est = _as_pair(reference, estimate)
    rate = check_sample_rate(sample_rate)
    if match_gain:
        est = est * matched_gain(ref, est)
    freqs_hz, log_ratio = _ssr_log_ratio(ref, est, rate)

    def band(mask: np.ndarray) -> float:
        return float(np.mean(np.sqrt(np.mean(log_ratio[mask] ** 2, axis=0))))

    everything = np.ones(freqs_hz.shape, dtype=bool)
    if split_hz is None:
        return {"lsd": band(everything)}
    below = freqs_hz < split_hz
    if not (np.any(below) and np.any(~below)):
        raise ValueError(f"split_hz={split_hz!r} leaves one band empty (bins span 0..{freqs_hz[-1]:g} Hz)")
    return {"lsd": band(everything), "lsd_below": band(below), "lsd_above": band(~below)}


def energy_above_db(x: np.ndarray, sample_rate: float, split_hz: float) -> float:
    """Share of ``x``'s energy at frequencies ≥ split_hz, in dB of its total (−inf if none).

    Computed from the whole-signal FFT (exact by Parseval, no window).
    """
    sig = as_signal(x, "x")
    rate = check_sample_rate(sample_rate)
    power = np.abs(np.fft.rfft(sig)) ** 2
    power[1 : (sig.size + 1) // 2] *= 2  # one-sided spectrum: count the negative frequencies
    freqs_hz = np.fft.rfftfreq(sig.size, d=1.0 / rate)
    total = float(np.sum(power))
    if total == 0:
        raise ValueError("x is silent: its share of energy above split_hz is undefined")
    above = float(np.sum(power[freqs_hz >= split_hz]))
    return 10.0 * math.log10(above / total) if above > 0 else -math.inf
