"""The level of the band above the input, from the sound's own structure, chosen per clip.

Each estimator reads the input up to its band's top (``band_hz`` of `sonode.dsp.bandwidth.fit_band`)
and predicts the long-term power spectral density above it:

- ``tilt``: the straight line of log PSD vs log f through the top octave, continued;
- ``tilt2``: the same line through the top two octaves (a longer lever, less swayed by a resonance);
- ``frames``: the line fitted frame by frame (32 ms) and averaged: an onset's flat broadband burst
  keeps its own, flatter line instead of being averaged into the sustained tilt;
- ``harmonic``: the harmonic series' partials (peak powers through the top octave, continued as a
  line vs log f, spread over their spacing f₀) plus the floor between them (median bins);
- ``decay``: the onset spectrum (the loudest frame of each sub-band) continued as a line, times the
  mean of exp(2σ(f)·t) after it, with the decay rate σ(f) of each sub-band's envelope continued as
  a line in f: higher modes die sooner, so a decaying sound's long-term level falls faster than
  its onset's tilt.

None can be right for every sound, so `choose_estimator` validates each on the clip itself by
pseudo-band-extension: the input is halved in rate, each estimator predicts the input's own top
octave from the octave below, and the one with the smallest RMS error (dB over 1/3-octave bands) is
used. PSD unit here: per-bin power / rate (`sonode.dsp.spectra.power_spectrogram` per-bin power,
which for one continuous sound is proportional to the rate), so levels compare across rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sonode.dsp.bandwidth import band_edge_hz, fit_band, frame_samples
from sonode.dsp.harmonics import harmonic_series, partial_levels
from sonode.dsp.resample import upsample_sinc
from sonode.dsp.spectra import power_spectrogram

ESTIMATORS = ("tilt", "tilt2", "frames", "harmonic", "decay")
N_FIT_BANDS = 8  # log-spaced sub-bands per octave fitted
SCORE_BANDS = 6  # log-spaced bands over the held-back octave scored
MAX_GAIN_DB = 30.0  # `match_level` moves a band by at most this much either way
PSD_FLOOR = 1e-30

Predictor = Callable[[np.ndarray], np.ndarray]  # freqs_hz (n,) -> long-term PSD (n,)


@dataclass
class LevelChoice:
    """Which estimator predicts the band above, and how each did on the held-back top octave.

    Attributes:
        name: the chosen estimator.
        scores_db: estimator -> RMS error (dB) over the held-back octave's bands (absent: did not
            apply, e.g. ``harmonic`` on a sound without a series).
        bias_db: estimator -> mean error (dB, + = too loud) over the same bands.
    """

    name: str
    scores_db: dict[str, float] = field(default_factory=dict)
    bias_db: dict[str, float] = field(default_factory=dict)


def _spectrogram(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_fft = frame_samples(rate)
    freqs_hz, times_s, power = power_spectrogram(x, rate, n_fft, n_fft // 4)
    return freqs_hz, times_s, power / rate


def band_psd(
    freqs_hz: np.ndarray, psd: np.ndarray, lo_hz: float, hi_hz: float, n_bands: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean PSD of ``psd`` ((n_bins,) or (n_bins, n_frames)) over ``n_bands`` log-spaced bands of
    [lo_hz, hi_hz): (centres_hz (m,), psd (m,) or (m, n_frames)); empty bands are dropped."""
    edges = np.geomspace(lo_hz, hi_hz, n_bands + 1)
    centres, rows = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (freqs_hz >= lo) & (freqs_hz < hi)
        if np.any(sel):
            centres.append(math.sqrt(lo * hi))
            rows.append(psd[sel].mean(axis=0))
    return np.asarray(centres), np.asarray(rows)


def _line(u: np.ndarray, y: np.ndarray, max_slope: float = 0.0) -> tuple[float, float]:
    """Least-squares line y = a + b·u with b ≤ max_slope (a rising line is not continued)."""
    slope = min(float(np.polyfit(u, y, 1)[0]), max_slope) if u.size >= 2 else 0.0
    return float(np.mean(y - slope * u)), slope


def _loglog(freqs_hz: np.ndarray, psd: np.ndarray) -> Predictor:
    intercept, slope = _line(np.log10(freqs_hz), np.log10(np.maximum(psd, PSD_FLOOR)))
    return lambda f: 10.0 ** (intercept + slope * np.log10(np.maximum(f, 1.0)))


def predictors(x: np.ndarray, rate: int, band_hz: tuple[float, float]) -> dict[str, Predictor]:
    """Every estimator that applies to ``x`` (rate Hz), fitted below ``band_hz[1]``."""
    freqs_hz, times_s, psd = _spectrogram(x, rate)
    lo, hi = band_hz
    out: dict[str, Predictor] = {}
    c1, p1 = band_psd(freqs_hz, psd.mean(axis=1), lo, hi, N_FIT_BANDS)
    out["tilt"] = _loglog(c1, p1)
    c2, p2 = band_psd(freqs_hz, psd.mean(axis=1), lo / 2, hi, 2 * N_FIT_BANDS)
    out["tilt2"] = _loglog(c2, p2)
    cf, pf = band_psd(freqs_hz, psd, lo, hi, N_FIT_BANDS)  # (m, n_frames)
    u = np.log10(cf)
    y = np.log10(np.maximum(pf, PSD_FLOOR))
    u_c = u - u.mean()
    slopes = np.minimum(u_c @ (y - y.mean(axis=0)) / np.sum(u_c**2), 0.0)
    levels = y.mean(axis=0) - slopes * u.mean()
    out["frames"] = lambda f: np.mean(
        10.0 ** (levels[None, :] + slopes[None, :] * np.log10(np.maximum(f, 1.0))[:, None]),
        axis=1,
    )
    partials = harmonic_series(x, rate, band_hz)
    if partials is not None:
        floor_c, floor_p = band_psd(
            freqs_hz, np.median(psd, axis=1) / math.log(2), lo, hi, N_FIT_BANDS
        )
        floor = _loglog(floor_c, floor_p)
        # a partial of mean power P every f0 Hz: P/f0 per Hz, i.e. P/(2·f0) in per-bin power/rate
        out["harmonic"] = lambda f, p=partials, fl=floor: (
            partial_levels(p, np.maximum(f, 1.0)) / (2 * p.f0_hz) + fl(f)
        )
    decay = _decay_predictor(times_s, cf, pf)
    if decay is not None:
        out["decay"] = decay
    return out


def _decay_predictor(
    times_s: np.ndarray, centres_hz: np.ndarray, psd: np.ndarray
) -> Predictor | None:
    """The ``decay`` estimator from sub-band PSDs (m, n_frames), or None when the clip does not
    decay (its loudest frame is in its last quarter, or too few frames follow it)."""
    peak_frame = int(np.argmax(psd.sum(axis=0)))
    after = times_s[peak_frame:] - times_s[peak_frame]
    if after.size < 8 or peak_frame > 0.75 * times_s.size:
        return None
    onset = psd[:, peak_frame]
    log_env = np.log(
        np.maximum(psd[:, peak_frame:], PSD_FLOOR) / np.maximum(onset, PSD_FLOOR)[:, None]
    )
    # σ per sub-band: slope of ln power vs time after the peak (power decays as e^{2σt})
    sigma = np.array([np.polyfit(after, row, 1)[0] / 2 for row in log_env])
    design = np.polyfit(centres_hz, sigma, 1)
    slope_per_hz = min(float(design[0]), 0.0)  # higher never decays more slowly
    ref_sigma = float(np.mean(sigma - slope_per_hz * centres_hz))
    onset_line = _loglog(centres_hz, onset)
    duration_s = times_s[-1] - times_s[0]
    span_s = max(float(after[-1]), 1e-3)

    def predict(f: np.ndarray) -> np.ndarray:
        s = np.minimum(ref_sigma + slope_per_hz * f, -1e-3)
        mean_decay = (1 - np.exp(2 * s * span_s)) / (
            -2 * s * span_s
        )  # mean of e^{2σt} on [0, span]
        # the frames before the peak are left out (an attack is short and quieter)
        return onset_line(f) * mean_decay * span_s / max(duration_s, span_s)

    return predict


def octave_cap(
    x: np.ndarray, rate: int, band_hz: tuple[float, float], predict: Predictor
) -> Predictor:
    """``predict`` held at or below a PSD falling as 1/f from the top octave's mean PSD (at its
    geometric centre): no octave above the band holds more energy than the top octave itself.
    A line through a flat top octave would otherwise double the energy in every octave above
    (measured: +12 to +28 dB above 8 kHz on sampled instruments whose recordings end near 11 kHz)."""
    freqs_hz, _, psd = _spectrogram(x, rate)
    inside = (freqs_hz >= band_hz[0]) & (freqs_hz < band_hz[1])
    ref_psd = float(psd[inside].mean()) if np.any(inside) else 0.0
    ref_hz = math.sqrt(band_hz[0] * band_hz[1])
    return lambda f: np.minimum(predict(f), ref_psd * ref_hz / np.maximum(f, 1.0))


def measured(x: np.ndarray, rate: int, lo_hz: float, hi_hz: float) -> Predictor:
    """The long-term PSD of ``x`` (rate Hz) as a predictor: 1/3-octave band means over
    [lo_hz, hi_hz), linear in dB between band centres and held beyond them."""
    freqs_hz, _, psd = _spectrogram(x, rate)
    n_bands = max(2, int(round(3 * math.log2(hi_hz / lo_hz))))
    centres, power = band_psd(freqs_hz, psd.mean(axis=1), lo_hz, hi_hz, n_bands)
    log_power = np.log10(np.maximum(power, PSD_FLOOR))
    return lambda f: 10.0 ** np.interp(np.log10(np.maximum(f, 1.0)), np.log10(centres), log_power)


def choose_estimator(
    x: np.ndarray,
    rate: int,
    synthesis: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
) -> LevelChoice:
    """Pseudo-band-extension: each estimator predicts ``x``'s own top octave from ``x`` at half its
    rate (each held below `octave_cap`); the one with the smallest RMS dB error over SCORE_BANDS
    bands is chosen ("tilt" when the clip is too short to halve).

    Args:
        x: (n,) at ``rate`` Hz.
        synthesis: optionally the band extension itself, (x_half, rate/2, rate) -> its band above at
            ``rate``: scored as the candidate "synthesis" (its own levels, not re-levelled).
    """
    half = rate // 2
    try:
        x_half = upsample_sinc(x, rate, half, quality="high")
        edge_half = band_edge_hz(x_half, half)
        band_half = fit_band(edge_half, half / 2)
        candidates = predictors(x_half, half, band_half)
    except ValueError:
        return LevelChoice("tilt")
    top = fit_band(band_edge_hz(x, rate), rate / 2)[1]
    if synthesis is not None:
        band = synthesis(x_half, half, rate)
        if np.any(band):
            candidates["synthesis"] = measured(band, rate, edge_half, top)
    candidates = {k: octave_cap(x_half, half, band_half, p) for k, p in candidates.items()}
    freqs_hz, _, psd = _spectrogram(x, rate)
    centres, truth = band_psd(freqs_hz, psd.mean(axis=1), edge_half, top, SCORE_BANDS)
    if centres.size == 0 or not np.all(truth > 0):
        return LevelChoice("tilt")
    choice = LevelChoice("tilt")
    for name, predict in candidates.items():
        err = 10 * np.log10(np.maximum(predict(centres), PSD_FLOOR) / truth)
        if np.all(np.isfinite(err)):
            choice.scores_db[name] = float(np.sqrt(np.mean(err**2)))
            choice.bias_db[name] = float(np.mean(err))
    if choice.scores_db:
        choice.name = min(choice.scores_db, key=choice.scores_db.get)
    return choice


def match_level(
    high: np.ndarray, rate: int, start_hz: float, stop_hz: float, target: Predictor
) -> np.ndarray:
    """``high`` (n,) at ``rate`` Hz re-levelled so that its long-term PSD in 1/3-octave bands of
    [start_hz, stop_hz) follows ``target``: a zero-phase gain, smooth in log f (linear in dB between
    band centres, held beyond them, at most ±MAX_GAIN_DB), applied to the whole-signal FFT, so the
    band's time structure (partials, onsets) is kept. Returns (n,) float64."""
    freqs_hz, _, psd = _spectrogram(high, rate)
    n_bands = max(2, int(round(3 * math.log2(stop_hz / start_hz))))
    centres, actual = band_psd(freqs_hz, psd.mean(axis=1), start_hz, stop_hz, n_bands)
    keep = actual > 0
    if not np.any(keep):
        return high
    centres, actual = centres[keep], actual[keep]
    gain_db = np.clip(
        10 * np.log10(np.maximum(target(centres), PSD_FLOOR) / actual), -MAX_GAIN_DB, MAX_GAIN_DB
    )
    pad = int(round(0.05 * rate))
    n_fft = high.size + 2 * pad
    f = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    curve_db = np.interp(np.log10(np.maximum(f, 1.0)), np.log10(centres), gain_db)
    spectrum = np.fft.rfft(np.pad(high, pad)) * 10 ** (curve_db / 20)
    return np.fft.irfft(spectrum, n=n_fft)[pad : pad + high.size]
