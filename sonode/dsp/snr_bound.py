"""The SNR cost of a band added above the input, bounded from the input alone.

Against band-limited interpolation (sinc), a band a(t) added above the input's band edge changes the
error e = truth − sinc into e − a. When a is uncorrelated with the truth (random phases, noise), the
error energy grows by the band's energy A: the SNR cost is 10·log10(1 + A/M), with M the energy of
sinc's error. A cost of at most c dB therefore needs A ≤ (10^(c/10) − 1)·M.

M is unknown (the truth's band above is what is missing), and the band's predicted level cannot
stand in for it: on 19 of 79 recordings every level estimator put the band 4–23 dB above the truth's
(guitar plucks and harmonics, drum loops, noises whose spectra steepen above 8 kHz), and the bound
taken from the prediction cost up to 13.4 dB. `sinc_error_floor` bounds M from below with what the
input does show: the strip from the cross-over's start to the input's Nyquist frequency, where the
input's anti-alias filter removed the truth, holds at least the input's floor level just below it
(the median bin of its top third-octave), plus the harmonics of a series found in the input that
fall in that strip (f₀ and B say which), at their top-octave line's level. Nothing above Nyquist is
counted: the truth may end there (a pluck's highs dying, a source sampled at 22 kHz).

That is the *worst* case. Sinc's error IS the truth's band above the cross-over's start, so the
cost of a band of energy A is really 10·log10(1 + A/(E + S)), with E the truth's energy above
Nyquist and S the strip's: it depends on the ratio of the band to the true band. `sinc_error`
takes E from the band's prediction: as it is (the *expected* case), or less the predictor's own
error measured by pseudo-band-extension on the clip's top octave (the *validated* case: the
cost is bounded if the prediction is too loud by no more than it was on the held-back octave).
Measured on 79 recordings, that held-back error does not predict the error above Nyquist
(correlation −0.24 over 73 clips, docs/upsampling.md), so only the worst case holds on every clip.

The band is then given that energy budget, spent where it helps the log-spectral distance most
(`ceiling_gains`): LSD weighs every frame alike, the SNR only the loud ones, so the loudest frames of
the band are cut first and quiet ones (a decay's tail) keep their predicted level.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sonode.dsp.bandwidth import frame_samples, long_term_spectrum
from sonode.dsp.harmonics import Partials, partial_levels

FLOOR_OCTAVES = 1.0 / 3.0  # the top of the fitted band over which the input's floor is measured


def sinc_error_floor(
    x: np.ndarray,
    rate: int,
    band_hz: tuple[float, float],
    start_hz: float,
    partials: Partials | None = None,
) -> float:
    """A lower bound on the mean square of sinc's error above ``start_hz`` (file amplitude²).

    Args:
        x: the input, (n,), at ``rate`` Hz.
        band_hz: the fitted top octave (`sonode.dsp.bandwidth.fit_band`); its top FLOOR_OCTAVES
            gives the floor.
        start_hz: where the output stops being the interpolation (the cross-over's start).
        partials: the harmonic series found, if any: its harmonics that fall in the strip
            [start_hz, rate/2) (known from f₀ and B) count at the level of the top octave's
            partials' line (`partial_levels`), continued over that fraction of an octave.

    Returns:
        the floor's median per-bin power per Hz × (rate/2 − start_hz), plus those partials'
        powers; 0 when the strip is empty.
    """
    freqs_hz, power = long_term_spectrum(x, rate)
    top = band_hz[1]
    nyquist = rate / 2
    inside = (freqs_hz >= top * 2.0**-FLOOR_OCTAVES) & (freqs_hz < top)
    if not np.any(inside) or start_hz >= nyquist:
        return 0.0
    # per-bin power convention: white noise of variance s² has s² in each of its rate/2 Hz
    floor = float(np.median(power[inside])) / nyquist * (nyquist - start_hz)
    if partials is None:
        return floor
    f_k = partials.frequency(np.arange(1, int(nyquist / partials.f0_hz) + 2))
    in_strip = f_k[(f_k >= start_hz) & (f_k < nyquist)]
    return floor + float(np.sum(partial_levels(partials, in_strip))) if in_strip.size else floor


def sinc_error(predicted: float, floor: float, case: str, margin_db: float | None = None) -> float:
    """The energy of sinc's error (file amplitude², mean square) that the SNR-cost bound assumes.

    Args:
        predicted: the band's predicted energy above the cross-over's start (the truth's, if the
            prediction is right).
        floor: `sinc_error_floor`, the least it can be.
        case: "worst" (the truth may hold nothing above Nyquist: min(predicted, floor)), "expected"
            (it holds the prediction: predicted + floor) or "validated" (it holds the prediction
            less ``margin_db``, the predictor's error on the clip's own top octave:
            predicted·10^(−margin/10) + floor; the worst case when ``margin_db`` is None).
    """
    if case == "expected":
        return predicted + floor
    if case == "validated" and margin_db is not None:
        return predicted * 10 ** (-max(margin_db, 0.0) / 10) + floor
    return min(predicted, floor)


def ceiling_gains(frame_energy: np.ndarray, target: float) -> np.ndarray:
    """Per-frame power gains min(1, C/E_t), with the ceiling C chosen so that the frames' energy
    after them sums to ``target`` (all ones when it already does not exceed it).

    Args:
        frame_energy: E_t ≥ 0, (n_frames,).
        target: ≥ 0, in the units of E_t summed.

    Returns:
        (n_frames,) in [0, 1].
    """
    energy = np.maximum(np.asarray(frame_energy, dtype=np.float64), 0.0)
    if energy.sum() <= target:
        return np.ones_like(energy)
    if target <= 0:
        return np.zeros_like(energy)
    # Σ min(E_t, C) is piecewise linear in C: over the sorted energies, find the piece holding target
    e = np.sort(energy)[::-1]  # descending
    rest = np.append(np.cumsum(e[::-1])[::-1][1:], 0.0)  # rest[k] = Σ_{j > k} e_j
    ceilings = (target - rest) / np.arange(1, e.size + 1)  # the k+1 loudest clipped at C
    next_e = np.append(e[1:], 0.0)
    ceiling = ceilings[int(np.argmax(ceilings >= next_e))]  # the first piece that holds C
    return np.minimum(1.0, ceiling / np.maximum(energy, 1e-300))


def bound_band(high: np.ndarray, rate: int, budget: float) -> tuple[np.ndarray, float]:
    """``high`` (n,) at ``rate`` Hz with its mean square brought down to at most ``budget`` by
    per-frame gains (`ceiling_gains`, Hann frames of `frame_samples`, hop 1/4, applied in the STFT
    and overlap-added, so the gain moves smoothly). Returns ((n,) float64, power gain overall)."""
    energy = float(np.mean(high**2))
    if energy <= budget or energy == 0.0:
        return high, 1.0
    n_fft = frame_samples(rate)
    if high.size < n_fft:
        gain = budget / energy
        return high * math.sqrt(gain), gain
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(
        torch.from_numpy(high), n_fft, n_fft // 4, window=window, center=True, return_complex=True
    )
    frame_energy = (spec.abs() ** 2).sum(dim=0).numpy()
    gains = ceiling_gains(frame_energy, budget / energy * float(frame_energy.sum()))
    out = torch.istft(
        spec * torch.from_numpy(np.sqrt(gains))[None, :],
        n_fft,
        n_fft // 4,
        window=window,
        center=True,
        length=high.size,
    ).numpy()
    # the overlap-add smooths the gains: settle the exact energy with one global factor
    settled = float(np.mean(out**2))
    if settled > budget and settled > 0:
        out = out * math.sqrt(budget / settled)
    return out, float(np.mean(out**2)) / energy
