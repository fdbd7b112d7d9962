"""The partials of a harmonic series (`sonode.dsp.harmonics`) continued above the input's band.

`continue_partials` places them: levels from the straight line of log power vs log frequency
through the top octave's partials (`partial_levels`), decays from a line σ(f) through the fitted
modes' decay rates, and the time envelope of the top octave (`top_envelope`).

Signals are mono float64 numpy arrays; frequencies in Hz; decays σ in 1/s (≤ 0).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sonode.dsp.bandwidth import frame_samples
from sonode.dsp.harmonics import MAX_PARTIALS, Partials, partial_levels
from sonode.dsp.spectra import power_spectrogram

# Extra decay of a continued partial relative to the top octave's envelope: at most this many
# nepers (≈ 70 dB) over the clip. A faster one cannot be told from the clip's Hann-weighted
# partial levels, which see little of its first instants (measured: a cap over 0.25 s instead
# raised the Karplus-Strong clip's LSD above Nyquist from 1.99 to 2.17).
MAX_EXTRA_DECAY_NEPERS = 8.0


def top_envelope(
    x: np.ndarray, rate: int, band_hz: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Power of the input's top octave per 32 ms frame: (frame centres s, power (n_frames,))."""
    n_fft = frame_samples(rate)
    freqs_hz, times_s, power = power_spectrogram(x, rate, n_fft, n_fft // 4)
    return times_s, power[(freqs_hz >= band_hz[0]) & (freqs_hz < band_hz[1])].sum(axis=0)


HANN_MEAN_POINTS = 1 << 16  # samples summed for the Hann-weighted envelope means
SUM_BLOCK_SAMPLES = 256
WARP_BLOCK_SAMPLES = 4096


def damped_exponential_sum(
    amplitude: np.ndarray, rates_per_s: np.ndarray, n: int, rate: int
) -> np.ndarray:
    """Re Σ_k amplitude_k · exp(rates_k · j / rate) for j < n: (n,) float64.

    Exact exponentials at each block's start, times a shared table of exp(rates·i/rate) for the
    block's SUM_BLOCK_SAMPLES offsets: one complex matrix product (BLAS) instead of a cos and an
    exp per partial per sample.
    """
    block = min(SUM_BLOCK_SAMPLES, max(n, 1))
    n_blocks = -(-n // block)
    starts = amplitude[None, :] * np.exp(
        np.outer(np.arange(n_blocks) * block / rate, rates_per_s)
    )  # (blocks, K)
    table = np.exp(np.outer(rates_per_s, np.arange(block) / rate))  # (K, block)
    return (starts @ table).real.reshape(-1)[:n]


def continue_partials(
    partials: Partials,
    envelope: tuple[np.ndarray, np.ndarray],
    start_hz: float,
    stop_hz: float,
    n_out: int,
    rate_out: int,
    seed: int = 0,
    warp: np.ndarray | None = None,
) -> np.ndarray:
    """Sinusoids for the partials in [start_hz, stop_hz) at ``rate_out``: (n_out,) float64.

    With ``warp`` (n_out,) = τ(t) seconds (`sonode.dsp.pitch_track.warped_time`), partial k's
    phase is 2π·f_k·τ(t) + φ_k: its frequency follows the fundamental's trajectory r(t)·f_k.

    Partial k has frequency f_k, a random phase, and the power envelope of the top octave times
    exp(2·(dσ/df)·(f_k − f_ref)·t), the extra decay of a higher partial (at most
    MAX_EXTRA_DECAY_NEPERS over the clip, either way). Its level continues the line (`partial_levels`)
    through the top octave's partials with their own extra decay taken out of their measured
    (whole-clip Hann-windowed) powers, so a decay is not counted twice.
    """
    ks = np.arange(1, MAX_PARTIALS * 4 + 1, dtype=np.float64)
    f_k = partials.frequency(ks)
    chosen = (f_k >= start_hz) & (f_k < stop_hz)
    f_k = f_k[chosen][:MAX_PARTIALS]
    out = np.zeros(n_out)
    if f_k.size == 0:
        return out
    t = np.arange(n_out) / rate_out
    env_t, env_p = envelope
    base = np.interp(t, env_t, env_p)
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, f_k.size)
    # The top octave's partials follow ``base`` times their own extra decay, and were measured
    # under a whole-clip Hann window: undo that decay's share of their measured powers before
    # continuing the line, then apply each continued partial's own decay again. The Hann-weighted
    # means are of smooth functions: summed over every stride-th sample (a song's 8.6 M samples
    # cost seconds per partial otherwise).
    stride = max(1, n_out // HANN_MEAN_POINTS)
    t_mean, hann = t[::stride], np.hanning(n_out + 2)[1:-1][::stride] ** 2
    base_mean = np.sum(hann * base[::stride]) / np.sum(hann)
    if not base_mean > 0:
        return out
    max_extra_per_s = MAX_EXTRA_DECAY_NEPERS / max(t[-1], 1.0 / rate_out)

    def extra_decay_per_s(f):
        return np.clip(
            partials.decay_slope_per_s_hz * (f - partials.decay_ref_hz),
            -max_extra_per_s,
            max_extra_per_s,
        )

    def hann_mean(f: float) -> float:
        envelope_f = base[::stride] * np.exp(2 * extra_decay_per_s(f) * t_mean) / base_mean
        return float(np.sum(hann * envelope_f) / np.sum(hann))

    undecayed = replace(
        partials, top_power=partials.top_power / np.array([hann_mean(f) for f in partials.top_hz])
    )
    # Σ_k sqrt(2·level_k·base(t)·e^{2 d_k t}/base_mean)·cos(2π f_k t + φ_k) = sqrt(base(t))·Re Σ_k a_k e^{s_k t}:
    # a sum of damped complex exponentials, read a block at a time as one matrix product
    amplitude = np.sqrt(2 * partial_levels(undecayed, f_k) / base_mean) * np.exp(1j * phases)
    rates = extra_decay_per_s(f_k) + 2j * np.pi * f_k  # (K,) 1/s
    if warp is None:
        return np.sqrt(base) * damped_exponential_sum(amplitude, rates, n_out, rate_out)
    for lo in range(0, n_out, WARP_BLOCK_SAMPLES):  # a cos per partial per sample, in blocks
        hi = min(lo + WARP_BLOCK_SAMPLES, n_out)
        phase = np.outer(2 * np.pi * f_k, warp[lo:hi]) + np.angle(amplitude)[:, None]
        decay = np.exp(np.outer(rates.real, t[lo:hi]))
        out[lo:hi] = np.sqrt(base[lo:hi]) * (np.abs(amplitude) @ (decay * np.cos(phase)))
    return out
