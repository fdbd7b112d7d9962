"""The trajectory of a harmonic series: how its fundamental moves (vibrato, glide) over the clip.

`ratio_track` follows the series found by `sonode.dsp.harmonics.harmonic_series` frame by frame:
in each 64 ms frame (hop 8 ms) the ratio r = f₀(t)/f₀ is the one whose partials r·f_k (every
partial of the series in the input's band) sit on the most spectral power (a harmonic sum of log
power, 1-cent grid, parabolic refinement). The search starts at a reference frame (r = 1: where the
series was identified) and moves outward frame by frame, each frame searched within MAX_STEP_CENTS
of its neighbour's ratio, so a partial is never confused with the next one. Frames where the
series stands less than MIN_SALIENCE_DB above the floor hold the neighbour's ratio.

`dewarped` reads the clip on that clock, where the series stands still. `warped_time`
integrates it: τ(t) = ∫ r dt, so partial k at phase 2π·f_k·τ(t) + φ_k has the
instantaneous frequency r(t)·f_k: every partial, above the band too, phase-locked to the
fundamental's trajectory.

`ratio_track` is good to a few cents (a 1-cent grid on 64 ms frames), enough to find a series'
levels. Reading a waveform on the warped clock over 200 ms needs far less: 1 cent held for 0.2 s
turns a 1 kHz partial by 0.7 rad. `phase_ratio_track` measures the ratio from the phase of each
partial demodulated at its frequency (a Hann low-pass four periods long, which keeps the
neighbour partials out), power-weighted over the partials: 0.19 cents rms on a synthetic vibrato
(docs/continuation_warp.md).
"""

from __future__ import annotations

import math

import numpy as np

from sonode.dsp.harmonics import Partials
from sonode.dsp.resample import upsample_sinc

TRACK_FRAME_S = 0.064
TRACK_HOP_S = 0.008
ZERO_PAD = 4
MAX_STEP_CENTS = 25.0  # per 8 ms hop: a glide of 3000 cents/s at most
START_SEARCH_CENTS = 60.0  # around r = 1 at the reference frame
MAX_TRACK_PARTIALS = 40
MIN_SALIENCE_DB = 6.0


def _frames(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(times_s (m,), log power (m, n_bins), freqs_hz (n_bins,), hop) of zero-padded Hann frames."""
    n = 1 << int(math.ceil(math.log2(TRACK_FRAME_S * rate)))
    hop = max(1, int(round(TRACK_HOP_S * rate)))
    if x.size < n:
        x = np.pad(x, (0, n - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(n), n=ZERO_PAD * n, axis=1)) ** 2
    times_s = (np.arange(frames.shape[0]) * hop + n / 2) / rate
    freqs_hz = np.fft.rfftfreq(ZERO_PAD * n, d=1.0 / rate)
    return times_s, np.log(spectrum + 1e-20), freqs_hz, hop


def ratio_track(
    x: np.ndarray, rate: int, partials: Partials, max_hz: float, ref_time_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """f₀(t)/f₀ of ``partials`` in ``x`` (rate Hz), using the partials below ``max_hz``.

    Args:
        ref_time_s: where r = 1 (None: the loudest frame).

    Returns:
        (times_s (m,), ratio (m,)), frame centres and ratios.
    """
    times_s, log_power, freqs_hz, _ = _frames(x, rate)
    f_k = partials.frequency(np.arange(1, MAX_TRACK_PARTIALS + 1, dtype=np.float64))
    f_k = f_k[f_k < max_hz]
    ratio = np.ones(times_s.size)
    if f_k.size < 2:
        return times_s, ratio
    bin_hz = freqs_hz[1]
    floor = np.median(log_power, axis=1)

    def best(frame: int, centre: float, span_cents: float) -> tuple[float, float]:
        cents = np.arange(-span_cents, span_cents + 1.0)
        r = centre * 2 ** (cents / 1200)
        pos = np.outer(r, f_k) / bin_hz  # (n_r, K) fractional bins
        lo = np.clip(pos.astype(int), 0, freqs_hz.size - 2)
        frac = pos - lo
        row = log_power[frame]
        score = np.mean(row[lo] * (1 - frac) + row[lo + 1] * frac, axis=1)
        i = int(np.argmax(score))
        if 0 < i < score.size - 1:  # parabolic refinement of the peak
            a, b, c = score[i - 1 : i + 2]
            shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
        else:
            shift = 0.0
        salience_db = 10 / math.log(10) * (score[i] - floor[frame])
        return float(r[i] * 2 ** (shift / 1200)), salience_db

    if ref_time_s is None:
        start = int(np.argmax(log_power.max(axis=1)))
    else:
        start = int(np.argmin(np.abs(times_s - ref_time_s)))
    ratio[start], _ = best(start, 1.0, START_SEARCH_CENTS)
    for step in (1, -1):
        i = start + step
        while 0 <= i < times_s.size:
            r, salience_db = best(i, ratio[i - step], MAX_STEP_CENTS)
            ratio[i] = r if salience_db >= MIN_SALIENCE_DB else ratio[i - step]
            i += step
    return times_s, ratio


def dewarped(x: np.ndarray, rate: int, track: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``x`` read on the series' own clock τ (`warped_time`): y(j/rate) = x(t(τ = j/rate)), so a
    vibrato or glide stands still and a whole-clip periodogram shows sharp partials again (their
    levels, f₀ and inharmonicity). Read by cubic (Catmull-Rom) interpolation of ``x`` upsampled
    4× (band-limited), which keeps interpolation errors ~50 dB down. (m,) float64, m ≈ τ(end)·rate."""
    tau = warped_time(*track, x.size, rate)
    m = int(tau[-1] * rate)
    return read_at(x, rate, np.interp(np.arange(m) / rate, tau, np.arange(x.size) / rate) * rate)


def read_at(
    x: np.ndarray, rate: int, positions: np.ndarray, quality: str = "default", oversample: int = 4
) -> np.ndarray:
    """``x`` (n,) at fractional sample ``positions`` (m,), as `dewarped` reads it: ``x`` upsampled
    ``oversample``× by `upsample_sinc` of ``quality``, then cubic. (m,). The default is ~50 dB
    clean up to a quarter of the rate but only 12 dB at 0.44·rate; "high", 8× keeps 65 dB there
    (a waveform read twice over 200 ms needs that: docs/continuation_warp.md)."""
    fine = upsample_sinc(x, rate, oversample * rate, quality=quality)
    positions = np.asarray(positions) * float(oversample)  # on the fine grid; cubic (Catmull-Rom)
    i = np.clip(np.floor(positions).astype(int), 1, fine.size - 3)
    u = positions - i
    p0, p1, p2, p3 = fine[i - 1], fine[i], fine[i + 1], fine[i + 2]
    return p1 + 0.5 * u * (
        p2 - p0 + u * (2 * p0 - 5 * p1 + 4 * p2 - p3 + u * (3 * (p1 - p2) + p3 - p0))
    )


def warped_time(times_s: np.ndarray, ratio: np.ndarray, n: int, rate: int) -> np.ndarray:
    """τ(t_j) = ∫₀^{t_j} r dt at the n samples t_j = j/rate of the output: (n,) seconds.
    The ratio is interpolated linearly between frame centres and held beyond them."""
    t = np.arange(n) / rate
    r = np.interp(t, times_s, ratio)
    return np.concatenate([[0.0], np.cumsum(0.5 * (r[1:] + r[:-1]))]) / rate


def track_depth_cents(ratio: np.ndarray) -> float:
    """Peak-to-peak excursion of a ratio track, in cents (0 for a steady pitch)."""
    cents = 1200 * np.log2(ratio)
    return float(np.ptp(cents)) if cents.size else 0.0


PHASE_WINDOW_PERIODS = 4  # Hann main lobe ±f0/2: the neighbour partials stay out of the low-pass
PHASE_TRACK_HOP_S = 0.001


def phase_ratio_track(
    x: np.ndarray, rate: int, partials: Partials, max_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """f₀(t)/f₀ of ``partials`` in ``x`` (rate Hz) from the phases of its partials below ``max_hz``.

    Each partial f_k is demodulated (x·e^{−2πi f_k t}, low-passed by a Hann window of
    PHASE_WINDOW_PERIODS periods of f₀); the slope of its unwrapped phase is its frequency offset,
    relative to f_k, averaged over the window and the partials weighted by their power. Only frame
    centres both windows cover fully are returned (a window from each end).

    Returns:
        (times_s (m,), ratio (m,)) every PHASE_TRACK_HOP_S, relative to ``partials.f0_hz`` (not
        normalised to 1 anywhere); empty when the clip is shorter than the window.
    """
    n = x.size
    length = int(round(PHASE_WINDOW_PERIODS * rate / partials.f0_hz)) | 1
    if n <= 2 * length:
        return np.zeros(0), np.zeros(0)
    window = np.hanning(length)
    window /= window.sum()
    t = np.arange(n) / rate
    f_k = partials.frequency(np.arange(1, MAX_TRACK_PARTIALS + 1, dtype=np.float64))
    offset, weight = np.zeros(n), np.zeros(n)
    for f in f_k[f_k < max_hz]:
        base = np.convolve(x * np.exp(-2j * np.pi * f * t), window, mode="same")
        slope_hz = np.gradient(np.unwrap(np.angle(base))) * rate / (2 * np.pi)
        # averaged over the same window, power-weighted: the ripple the neighbour partials leave
        # on the slope (at multiples of f₀, zeros of the window's spectrum) averages out
        power = np.abs(base) ** 2
        offset += np.convolve(power * slope_hz / f, window, mode="same")
        weight += np.convolve(power, window, mode="same")
    inner = slice(length, n - length, max(1, int(round(PHASE_TRACK_HOP_S * rate))))
    return t[inner], 1.0 + offset[inner] / np.maximum(weight[inner], 1e-300)
