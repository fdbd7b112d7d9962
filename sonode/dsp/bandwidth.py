"""Spectral tools for bandwidth extension: where the input's band ends, how its top octave tilts,
noise shaped to continue that tilt, and a phase-free cross-over joining two bands.

No model here (it sits beside `sonode.evaluation.baselines`, which builds its shaped-noise upsampler from it,
and below `sonode.tasks.upsample`). Signals are mono float64 numpy arrays of shape (n_samples,).

Power convention: per-bin powers as in `sonode.dsp.metrics.power_spectrogram` (white noise of
variance s² has s² in every bin). The same continuous sound sampled at rate r has per-bin power
proportional to r, so a level measured at ``rate_in`` is scaled by ``rate_out/rate_in`` at ``rate_out``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sonode.dsp.metrics import as_signal
from sonode.dsp.spectra import power_spectrogram

FRAME_S = 0.032  # analysis/synthesis frame of the envelopes (32 ms, hop 8 ms)
N_SUBBANDS = 8  # log-spaced sub-bands over which the tilt line is fitted
SMOOTH_FRAMES = 6  # half-width, in 8 ms hops, of the Hann smoothing of sub-band powers over time
# Below this share of the clip's energy in the top octave the input holds only its recording's
# noise floor up there (a pure tone resampled in float has ~-150 dB; 16-bit quantisation noise
# ~-90 dB): sonode's extension then continues only that floor (band_extension.quiet_floor); the
# shaped-noise baseline adds nothing.
SILENT_TOP_OCTAVE_DB = -70.0
# The input's band ends where its long-term spectrum falls this far below the level just under it.
EDGE_DROP_DB = 30.0
CROSSOVER_WIDTH = 0.02  # cross-over transition, as a fraction of the input's Nyquist frequency


def frame_samples(rate: float) -> int:
    """Even frame length of FRAME_S at ``rate`` Hz."""
    return 2 * max(8, int(round(FRAME_S * rate / 2)))


def long_term_spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-bin power over FRAME_S frames: (freqs_hz (n_bins,), power (n_bins,))."""
    n_fft = min(frame_samples(rate), (x.size // 2) * 2)
    freqs_hz, _, power = power_spectrogram(x, rate, n_fft, max(1, n_fft // 4))
    return freqs_hz, power.mean(axis=1)


def band_edge_hz(x: np.ndarray, rate: int) -> float:
    """Where the input's content ends: the lowest frequency ≥ 0.8·Nyquist from which its long-term
    spectrum (smoothed over 5 bins) stays EDGE_DROP_DB below its median level over 0.6–0.8·Nyquist
    up to Nyquist (an anti-alias filter's roll-off); the Nyquist frequency if it never does. Hz.

    "Stays": a valley between two partials dips as low (a guitar's harmonics: −31 dB at 6.69 kHz,
    content up to 7.44 kHz); an edge there dropped the input's own content above it (1.7 dB of SNR).
    """
    sig = as_signal(x, "x", min_samples=16)
    freqs_hz, power = long_term_spectrum(sig, rate)
    nyquist = rate / 2
    smooth = np.convolve(power, np.ones(5) / 5, mode="same")
    ref = np.median(power[(freqs_hz >= 0.6 * nyquist) & (freqs_hz < 0.8 * nyquist)])
    upper = freqs_hz >= 0.8 * nyquist
    loud = upper & (smooth >= ref * 10 ** (-EDGE_DROP_DB / 10))
    if not ref > 0 or loud[-1]:
        return float(nyquist)
    first_quiet = int(np.nonzero(loud)[0][-1]) + 1 if np.any(loud) else int(np.argmax(upper))
    return float(freqs_hz[first_quiet])


def fit_band(edge_hz: float, nyquist_hz: float) -> tuple[float, float]:
    """The input's top octave used for fitting, [Nyquist/2, edge − 0.08·Nyquist) in Hz: clear of
    the anti-alias roll-off, which starts up to ~0.08·Nyquist below the −30 dB point."""
    return nyquist_hz / 2, edge_hz - 0.08 * nyquist_hz


def top_octave_share_db(x: np.ndarray, rate: int, band_hz: tuple[float, float]) -> float:
    """Energy in ``band_hz`` as dB of the total (long-term spectrum); −inf for none."""
    freqs_hz, power = long_term_spectrum(x, rate)
    total = float(np.sum(power))
    inside = float(np.sum(power[(freqs_hz >= band_hz[0]) & (freqs_hz < band_hz[1])]))
    return 10 * math.log10(inside / total) if inside > 0 and total > 0 else -math.inf


@dataclass
class TiltTrack:
    """Per-frame straight line of log10 power vs log10 frequency over an input band.

    Attributes:
        times_s: frame centres, (n_frames,).
        level: log10 per-bin power at ``ref_hz`` at the input's rate, (n_frames,).
        slope: d log10 power / d log10 f, (n_frames,), never > 0 (held flat where it rises).
        ref_hz: frequency at which ``level`` is given (geometric centre of the band).
        rate: the input's rate in Hz (levels are per-bin powers at this rate).
    """

    times_s: np.ndarray
    level: np.ndarray
    slope: np.ndarray
    ref_hz: float
    rate: int

    def power_at(self, freqs_hz: np.ndarray, times_s: np.ndarray, rate_out: int) -> np.ndarray:
        """Continued per-bin power at ``rate_out`` for frequencies (n_f,) at times (n_t,) → (n_f, n_t)."""
        level = np.interp(times_s, self.times_s, self.level)
        slope = np.interp(times_s, self.times_s, self.slope)
        octaves = np.log10(np.maximum(freqs_hz, 1e-9) / self.ref_hz)[:, None]
        return (rate_out / self.rate) * 10.0 ** (level[None, :] + slope[None, :] * octaves)


def tilt_track(
    x: np.ndarray,
    rate: int,
    band_hz: tuple[float, float],
    statistic: str = "mean",
    clip_slope_limit: bool = False,
    max_slope: float = 0.0,
) -> TiltTrack:
    """Fit, in every FRAME_S frame of ``x``, the line of log10 sub-band power vs log10 frequency.

    Args:
        x: the input, (n_samples,), at ``rate`` Hz, at least one frame long.
        band_hz: (low, high) Hz, split into N_SUBBANDS log-spaced sub-bands.
        statistic: "mean" (sub-band power) or "median" (median bin / ln 2: the floor between
            partials, unbiased for noise whose bin powers are exponentially distributed).
        clip_slope_limit: no frame's slope is flatter than the slope of the whole clip's mean
            sub-band powers: a short flat-spectrum frame (an attack) is not continued flat for
            octaves.
        max_slope: no frame's slope is above this (0: held flat where it rises; −1: falling at
            least as 1/f, so no octave above holds more energy than the one below).
    """
    n_fft = frame_samples(rate)
    if x.size < n_fft:
        raise ValueError(
            f"the input has {x.size} samples, fewer than one {n_fft}-sample analysis frame"
        )
    freqs_hz, times_s, power = power_spectrogram(x, rate, n_fft, n_fft // 4)
    edges = np.geomspace(band_hz[0], band_hz[1], N_SUBBANDS + 1)
    centres, rows = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        sel = (freqs_hz >= lo) & (freqs_hz < hi)
        if np.any(sel):
            centres.append(math.sqrt(lo * hi))
            rows.append(
                power[sel].mean(axis=0)
                if statistic == "mean"
                else np.median(power[sel], axis=0) / math.log(2)
            )
    if len(rows) < 2:
        raise ValueError(f"the band {band_hz} Hz holds fewer than two sub-bands at {rate} Hz")
    ref_hz = math.sqrt(band_hz[0] * band_hz[1])
    u = np.log10(np.asarray(centres) / ref_hz)
    # Sub-band powers of one 32 ms frame scatter by ~±1 dB; the slope over half a decade then
    # scatters by ~±0.5 and clamping it at 0 would bias it down: smooth over ~0.1 s first.
    smooth = np.hanning(2 * SMOOTH_FRAMES + 3)[1:-1]
    sub_power = np.stack(
        [
            np.convolve(r, smooth, mode="same") / np.convolve(np.ones_like(r), smooth, mode="same")
            for r in rows
        ]
    )
    y = np.log10(np.maximum(sub_power, 1e-30))  # (n_sub, n_frames)
    u_c = u - u.mean()
    slope = np.minimum((u_c @ (y - y.mean(axis=0))) / np.sum(u_c**2), max_slope)
    if clip_slope_limit:
        y_clip = np.log10(np.maximum(sub_power.mean(axis=1), 1e-30))
        slope = np.minimum(slope, (u_c @ (y_clip - y_clip.mean())) / np.sum(u_c**2))
    level = y.mean(axis=0) - slope * u.mean()
    return TiltTrack(times_s=times_s, level=level, slope=slope, ref_hz=ref_hz, rate=rate)


def shaped_noise(
    track: TiltTrack, n_out: int, rate_out: int, start_hz: float, seed: int = 0, scale: float = 1.0
) -> np.ndarray:
    """Random-phase noise above ``start_hz`` whose per-frame power follows ``track`` continued.

    White Gaussian noise is shaped in the STFT domain (Hann frames of FRAME_S, hop 1/4) by the
    square root of the continued per-bin power times ``scale``, then overlap-added; below
    ``start_hz`` it is zero.

    Returns:
        (n_out,) float64 at ``rate_out``.
    """
    n_fft = frame_samples(rate_out)
    hop = n_fft // 4
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n_out, generator=generator, dtype=torch.float64)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(noise, n_fft, hop, window=window, center=True, return_complex=True)
    freqs_hz = np.fft.rfftfreq(n_fft, d=1.0 / rate_out)
    times_s = np.arange(spec.shape[1]) * hop / rate_out
    # STFT filtering is linear and istft inverts stft: unit-variance white noise (per-bin power 1)
    # times sqrt(target) has the target per-bin power.
    gain = np.sqrt(scale * track.power_at(freqs_hz, times_s, rate_out))
    gain[freqs_hz < start_hz] = 0.0
    shaped = torch.istft(
        spec * torch.from_numpy(gain), n_fft, hop, window=window, center=True, length=n_out
    )
    return shaped.numpy()


def crossover(
    low: np.ndarray, high: np.ndarray, rate: int, edge_hz: float, width_hz: float
) -> np.ndarray:
    """``low`` below ``edge_hz`` plus ``high`` above it, joined without phase shifts.

    Zero-phase complementary weights on the whole-signal FFT: W(f) = 1 below edge − width, a
    raised-cosine fall to 0 at the edge; the output is IFFT(W·LOW + (1 − W)·HIGH). The weights sum
    to one at every frequency and neither band is delayed, so nothing cancels at the seam (the
    same signal on both inputs comes out unchanged). Both are zero-padded by 50 ms against the FFT's
    wrap-around.

    Args:
        low, high: (n,) at ``rate`` Hz.
        edge_hz, width_hz: end and width of the transition, Hz.

    Returns:
        (n,) float64.
    """
    n = low.size
    pad = int(round(0.05 * rate))
    n_fft = n + 2 * pad
    freqs_hz = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    ramp = np.clip((edge_hz - freqs_hz) / max(width_hz, 1e-9), 0.0, 1.0)
    weight = 0.5 - 0.5 * np.cos(np.pi * ramp)
    spectrum = weight * np.fft.rfft(np.pad(low, pad)) + (1.0 - weight) * np.fft.rfft(
        np.pad(high, pad)
    )
    return np.fft.irfft(spectrum, n=n_fft)[pad : pad + n]
