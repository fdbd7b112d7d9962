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

import numpy as np

from sonode.dsp.grid import check_sample_rate, n_samples

# Spectra are normalised by the window energy, so that white noise of variance s^2 has an expected
# power of s^2 in every bin whatever n_fft is. Powers below this floor are clamped to it before
# taking logs: 1e-10 is 100 dB below unit-variance white noise, far below 16/24-bit quantisation
# noise, so it only matters for bins that are (digitally) empty in one of the signals.
POWER_FLOOR = 1e-10


def as_signal(x: np.ndarray, name: str = "x", min_samples: int = 1) -> np.ndarray:
    """``x`` as a finite float64 vector of shape (n_samples,), or a ValueError naming ``name``.

    The one input check shared by the evaluation modules (metrics, baselines, plotting).
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a mono signal of shape (n_samples,), got shape {arr.shape}"
        )
    if arr.size < min_samples:
        raise ValueError(f"{name} has {arr.size} samples; at least {min_samples} needed")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf at sample {int(np.argmin(np.isfinite(arr)))}")
    return arr


def as_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals checked with `as_signal`, or a ValueError unless they have the same length."""
    ref = as_signal(reference, "reference")
    est = as_signal(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(
            f"reference has {ref.size} samples but estimate has {est.size}; "
            "align and trim them to the same length before scoring"
        )
    return ref, est


def _n_samples(duration_s: float, sample_rate: float, name: str) -> int:
    """``duration_s`` as a whole number (>= 1) of samples."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"{name} must be a positive duration in seconds, got {duration_s!r}")
    n = n_samples(duration_s, sample_rate)
    if n < 1:
        raise ValueError(
            f"{name}={duration_s} s is shorter than one sample at {sample_rate:g} Hz; make it longer"
        )
    return n


def snr_from_energies(signal_energy: np.ndarray, error_energy: np.ndarray) -> np.ndarray:
    """10·log10(signal/error) elementwise: +inf where error is 0, nan where signal is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 10.0 * np.log10(signal_energy / error_energy)
    snr = np.where(error_energy == 0, np.inf, snr)
    return np.where(signal_energy == 0, np.nan, snr)


def frame_levels_db(x: np.ndarray, first_sample: int, frame_samples: int) -> np.ndarray:
    """Mean-square level (dB) of each whole frame of ``frame_samples`` of x (n,) from
    ``first_sample`` on: shape ((n − first_sample) // frame_samples,)."""
    n = (x.shape[0] - first_sample) // frame_samples
    segment = x[first_sample : first_sample + n * frame_samples]
    return 10 * np.log10(np.mean(segment.reshape(n, frame_samples) ** 2, 1) + 1e-20)


def prediction_snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SNR (dB) of a prediction ``estimate`` of held-back samples ``reference``, both (n_samples,),
    as candidates are ranked by it: +inf if exact (a silent reference matched exactly too), −inf
    if the error is not finite (a predictor that ran away); a silent reference missed scores as
    if its energy were 1e-300, below any candidate, where `snr_db` raises (a held-back end can be
    digital silence after a fade, and its score must not stop a fit)."""
    err = float(np.sum((reference - estimate) ** 2))
    if not math.isfinite(err):
        return -math.inf
    if err == 0:
        return math.inf
    return 10 * math.log10(max(float(np.sum(reference**2)), 1e-300) / err)


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
    ref, est = as_pair(reference, estimate)
    signal_energy = float(np.sum(ref**2))
    if signal_energy == 0:
        raise ValueError(
            "reference is silent (all zeros): SNR is undefined; score a non-silent excerpt"
        )
    return float(snr_from_energies(np.asarray(signal_energy), np.asarray(np.sum((ref - est) ** 2))))


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
    ref, est = as_pair(reference, estimate)
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
    frame_snr = snr_from_energies(signal_energy[active], np.sum(err_frames[active] ** 2, axis=1))
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
    ref, est = as_pair(reference, estimate)
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
    snr = snr_from_energies(np.sum(ref_windows**2, axis=1), np.sum(err_windows**2, axis=1))
    return times_s, snr


# The LSD of the audio super-resolution literature as haoheliu/ssr_eval computes it: librosa STFT
# magnitudes (centred frames, Hann window, n_fft = int(2048·rate/44100), hop = int(rate/100)), no
# normalisation, and  d(f,t) = log10(|R|² / (|E| + eps)² + eps)  with eps = 1e-12 — log10 of power,
# no dB factor. On full-scale float signals that eps sits ~240 dB below a loud bin, so an empty
# estimate band scores ~12 per bin there: the reason a noise baseline must be compared too.
SSR_EPS = 1e-12


def _ssr_log_ratio(
    reference: np.ndarray, estimate: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    n_fft = int(2048 / (44100 / rate))
    hop_length = int(rate / 100)
    ref_mag = np.abs(librosa.stft(reference, n_fft=n_fft, hop_length=hop_length))
    est_mag = np.abs(librosa.stft(estimate, n_fft=n_fft, hop_length=hop_length))
    log_ratio = np.log10(ref_mag**2 / (est_mag + SSR_EPS) ** 2 + SSR_EPS)
    return np.fft.rfftfreq(n_fft, d=1.0 / rate), log_ratio


def matched_gain(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The least-squares gain g minimising Σ(reference − g·estimate)² (1.0 for a silent estimate)."""
    ref, est = as_pair(reference, estimate)
    energy = float(np.sum(est**2))
    return float(np.sum(ref * est) / energy) if energy > 0 else 1.0


def lsd_ssr(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: float,
    split_hz: float | None = None,
    match_gain: bool = True,
) -> dict[str, float]:
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
    ref, est = as_pair(reference, estimate)
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
        raise ValueError(
            f"split_hz={split_hz!r} leaves one band empty (bins span 0..{freqs_hz[-1]:g} Hz)"
        )
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
