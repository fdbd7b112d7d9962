"""The continuation's stochastic part: the power its mean loses, restored as shaped noise.

The continuation ODE (`sonode.model.tail`) is the conditional *mean* of the sound past the clip's
end: its early (Burg) modes are damped, so a noise-like part of the sound (a drone, applause, a
bow's or a breath's floor, partials that beat) dies out of it within milliseconds while the sound's
power does not, and the late modes then hold what is left (a drone's continuation sat 7 dB low,
applause's 84 dB). Sinusoids plus residual, as in spectral modelling synthesis (Serra & Smith
1990), in the continuation's terms: the output is the mean plus an independent zero-mean draw whose
power spectrum is what the mean lacks against the level the sound should keep,

    D(f, t) = T(f, t) · F_b(t),    T(f, t) = S(f) · g(f, t),    F_b = 1 − M_b(t) / T_b(t),

with S the spectrum of the clip's last REFERENCE_S (its envelope, valleys included, which a sum
of independently driven modes would fill with their line shapes' tails), g the measured level
trend since the reference's centre, Σ_k P_k L_k(f) e^{2σ*_k t} / Σ_k P_k L_k(f) (P_k = |z_k|² at
the end, L_k the mode's line shape, σ*_k its late decay: the clip's last second at that frequency,
`late_modes`; 0 for the modes a limit cycle holds), and F_b the fraction of a third-octave band b's
target power T_b that the mean's own spectrum M over the frame lacks — taken only when it lacks at
least MIN_LOST (3 dB), so a band the mean still carries keeps the mean alone. E|mean + texture|² in
each band follows the measured trend: a held note's floor is kept at its level, a decaying sound
keeps falling at its measured rates (the texture never sustains it), and nothing is added where the
mean already carries the level. White noise is shaped frame by frame; the draw starts at
``onset_s`` after the end (default the switch to the late modes, the horizon over which the mean
was validated: the first 50 ms are the mean's alone, bit for bit), faded in over ``ramp_s``.
Seeded: the same seed, mean and grid give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.signal import welch

REFERENCE_S = 0.5  # the clip's end the texture restores: long enough to average a note's wander
RAMP_S = 0.02  # the texture's fade-in after its onset: no step in level where it starts
BAND_BINS = 4  # the narrowest band the lost fraction is measured over (bins of a frame)
# a band the mean keeps within 3 dB of its target is left to it: the band levels of one frame
# scatter by a dB or two, and filling that scatter with noise would cost the mean its SNR where it
# still predicts the waveform (a tubular bell's 200 ms SNR fell from 28 to 16 dB without this)
MIN_LOST = 0.5
# a band's target is capped at this factor (3 dB) above where its last frame ended: within it, the
# last frame's scatter about the 0.5 s average (a held sound's) is left alone
FALL_FACTOR = 2.0
FRAME_S = 0.1  # noise is shaped per frame: a power-of-two FFT of at least this, hop half a frame


@dataclass
class TextureModes:
    """What the texture needs of a continuation ODE (K modes; arrays (K,), float64).

    Attributes:
        power: P_k = |z_k|² at the clip's end (normalised amplitude squared).
        decay_per_s: σ_k of the early modes (1/s, ≤ 0).
        omega_rad_per_s: ω_k of the early modes (rad/s).
        held_decay_per_s: σ*_k, the decay each mode's level follows after the end (1/s, ≤ 0).
        switch_s: seconds after the clip's end where the late modes take over.
        end_samples: (R,) the clip's last R samples (REFERENCE_S or fewer; normalised): the level
            and spectral envelope the texture restores, as they were R/2 samples before the end.
        rate: the sample rate of end_samples and of the modes' clip (Hz).
    """

    power: np.ndarray
    decay_per_s: np.ndarray
    omega_rad_per_s: np.ndarray
    held_decay_per_s: np.ndarray
    switch_s: float
    end_samples: np.ndarray
    rate: int

    @classmethod
    def from_tail(cls, tail, rate: int, end_samples: np.ndarray) -> TextureModes:
        """The continuation ODE ``tail`` (a `sonode.model.tail.Tail`) of a clip at ``rate`` Hz whose
        last samples (normalised, its last REFERENCE_S or all of it) are ``end_samples``."""
        k, bank = tail.early.n_modes, tail.early
        with torch.no_grad():
            z = bank.expm_apply(tail.window / rate, tail.state)[0].numpy()  # at the clip's end
        held = tail.late.decay_per_s.detach().numpy().copy()
        if tail.cycle.active:  # the cycle holds its members at their level
            held[tail.cycle.member.numpy() > 0] = 0.0
        return cls(
            z[:k] ** 2 + z[k:] ** 2,
            bank.decay_per_s.detach().numpy().copy(),
            bank.omega_rad_per_s.detach().numpy().copy(),
            held,
            float(tail.switch_s),
            np.asarray(end_samples, dtype=np.float64)[-round(REFERENCE_S * rate) :],
            int(rate),
        )

    @classmethod
    def from_model(cls, model) -> TextureModes:
        """The continuation of a fitted model (either variant: `sonode.model.continuation_parts`),
        its reference the model's own reconstruction of the clip's last REFERENCE_S."""
        from sonode.model.tail import Tail

        config = model.config
        n = min(config.n_samples, round(REFERENCE_S * config.sample_rate))
        times_s = torch.arange(config.n_samples - n, config.n_samples) / config.sample_rate
        with torch.no_grad():
            end = model.render_normalised(times_s.to(torch.float64)).numpy()
        return cls.from_tail(Tail.from_model(model), config.sample_rate, end)


def band_edges(n_bins: int) -> np.ndarray:
    """First bins (B,) of the bands over n_bins: a third of an octave wide, at least BAND_BINS."""
    edges = [0]
    while True:
        nxt = edges[-1] + max(BAND_BINS, round(edges[-1] * (2 ** (1 / 3) - 1)))
        if nxt >= n_bins:
            return np.array(edges)
        edges.append(nxt)


def line_shapes(modes: TextureModes, hz: np.ndarray) -> np.ndarray:
    """(K, F) each mode's unit-sum power line shape at the frequencies ``hz`` (F,): the Lorentzian of
    its pole and its conjugate, which weighs the modes' trends in each bin."""
    pole = np.exp((modes.decay_per_s + 1j * modes.omega_rad_per_s) / modes.rate)[:, None]
    unit = np.exp(-2j * np.pi * hz / modes.rate)[None]
    width = np.maximum(1 - np.abs(pole) ** 2, 1e-12)
    shape = width / np.maximum(np.abs(1 - pole * unit) ** 2, 1e-300)
    shape += width / np.maximum(np.abs(1 - np.conj(pole) * unit) ** 2, 1e-300)
    return shape / shape.sum(1, keepdims=True)


def texture(
    modes: TextureModes,
    mean: np.ndarray,
    rate: int,
    first_s: float = 0.0,
    seed: int = 0,
    onset_s: float | None = None,
    ramp_s: float = RAMP_S,
    gain: float = 1.0,
) -> np.ndarray:
    """The stochastic part (n,) to add to ``mean`` (n,), the continuation's samples at first_s + j/rate
    seconds after the clip's end (normalised amplitude).

    Args:
        modes: the continuation's `TextureModes`.
        mean: its mean (today's continuation) on the same grid; first_s must be ≤ the onset.
        rate: output rate (Hz), any (above the clip's rate the texture is zero past its Nyquist).
        seed: of the white noise (same seed and mean: same samples).
        onset_s: where the texture starts (seconds after the end; default ``modes.switch_s``).
        ramp_s: its raised-cosine fade-in.
        gain: amplitude scale (0: zeros, the mean alone; 1: level-true).

    White noise is shaped frame by frame (sine windows, hop half a frame, whose squares sum to 1)
    to D(f, t) of the module's docstring at each frame's centre; S and M are Welch spectra (Hann,
    segments of a frame's duration)."""
    n = mean.shape[0]
    if gain == 0 or n == 0 or modes.power.sum() <= 0 or modes.end_samples.size < 2:
        return np.zeros(n)
    onset_s = modes.switch_s if onset_s is None else float(onset_s)
    if first_s > onset_s + 1e-9:
        raise ValueError(f"the texture is drawn from its onset ({onset_s} s): first_s {first_s}")
    j0 = int(np.ceil((onset_s - first_s) * rate - 1e-9))  # the draw's first sample
    if j0 >= n:
        return np.zeros(n)
    n_fft = 1 << int(np.ceil(np.log2(FRAME_S * rate)))
    hop = n_fft // 2
    hz = np.arange(hop + 1) * rate / n_fft
    # the end's spectrum, power per Hz (Welch, Hann, a frame's duration), on the output bins
    segment = min(modes.end_samples.shape[0], round(n_fft * modes.rate / rate))
    f, end = welch(modes.end_samples, modes.rate, "hann", segment, detrend=False, nfft=n_fft)
    end = np.interp(hz, f, end, right=0.0)
    # ... and of its last frame: a band whose last frame already sits below its 0.5 s average
    # carried by the trend is falling faster than the late modes measured (a slap's or a pluck's
    # noise and high partials) and is restored only to FALL_FACTOR above where it ended
    # (in quarter-frame segments: a band is at least a quarter-frame's resolution, and the seven
    # overlapping segments' average scatters far less than one periodogram, whose minimum with the
    # average would bias a held sound's level low)
    f, last = welch(
        modes.end_samples[-segment:],
        modes.rate,
        "hann",
        max(segment // 4, 2),
        detrend=False,
        nfft=n_fft,
    )
    last = np.interp(hz, f, last, right=0.0)
    segment_out = max(2, round(segment * rate / modes.rate))
    centre_s = modes.end_samples.shape[0] / (2 * modes.rate)  # the reference's time before the end
    last_centre_s = segment / (2 * modes.rate)
    lines = line_shapes(modes, np.minimum(hz, modes.rate / 2))
    weights = modes.power[:, None] * lines  # (K, F)
    at_end = np.maximum(weights.sum(0), 1e-300)
    # the lost fraction is measured per band: one frame's bins scatter by their own size, and their
    # shortfall clipped at zero would add that scatter as power; a band's sum scatters far less
    edges = band_edges(hop + 1)
    widths = np.diff(np.append(edges, hop + 1))
    window = np.sin(np.pi * (np.arange(n_fft) + 0.5) / n_fft)
    rng = np.random.default_rng(seed)
    # one buffer, the draw written in place (no per-sample temporaries: a render's memory budget
    # counts ~96 B per output sample): draw sample d is buffer[hop + j0 + d], the output its middle
    buffer = np.zeros(hop + n + n_fft)
    for m in range((n - j0) // hop + 2):  # frame m: draw samples [(m − 1)·hop, ... + n_fft)
        begin = (m - 1) * hop
        t_s = onset_s + (begin + hop) / rate  # the frame's centre
        trend = np.exp(2 * modes.held_decay_per_s * (t_s + centre_s)) @ weights / at_end
        trend_last = np.exp(2 * modes.held_decay_per_s * (t_s + last_centre_s)) @ weights / at_end
        # the mean over the frame where there is one (before the onset too): zeros past its ends
        # would halve its level and call for noise that is not lacking
        near = mean[max(j0 + begin, 0) : max(j0 + begin + n_fft, 0)]
        near = near if near.shape[0] >= 2 else mean[-n_fft:]
        _, have = welch(
            near, rate, "hann", min(segment_out, near.shape[0]), detrend=False, nfft=n_fft
        )
        target = end * trend
        band_target, band_have = np.add.reduceat(target, edges), np.add.reduceat(have, edges)
        band_last = np.add.reduceat(last * trend_last, edges)
        cap = np.minimum(1.0, FALL_FACTOR * band_last / np.maximum(band_target, 1e-300))
        target *= np.repeat(cap, widths)
        band_target = band_target * cap
        lost = np.where(band_target > 0, 1.0 - band_have / np.maximum(band_target, 1e-300), 0.0)
        lost[lost < MIN_LOST] = 0.0  # (and a band the mean overfills)
        deficit = target * np.repeat(lost, widths) * rate / 2  # per bin: their mean is a power
        spectrum = np.fft.rfft(rng.standard_normal(n_fft)) * np.sqrt(deficit)
        frame = np.fft.irfft(spectrum, n_fft) * window
        buffer[hop + j0 + begin : hop + j0 + begin + n_fft] += frame
    out = buffer[hop : hop + n]
    out[:j0] = 0.0  # the first frame's half before the onset
    n_ramp = min(n - j0, int(np.ceil(ramp_s * rate))) if ramp_s > 0 else 0
    t = first_s + np.arange(j0, j0 + n_ramp) / rate
    out[j0 : j0 + n_ramp] *= np.sin(0.5 * np.pi * np.clip((t - onset_s) / ramp_s, 0.0, 1.0)) ** 2
    out *= gain
    return out
