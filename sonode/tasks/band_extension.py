"""The band above the input's band edge, synthesised from the clip's structure.

`extend_band` builds it (see `sonode.tasks.upsample` for how it is joined to the input's band):

- partials, when the input's top octave is harmonic (`sonode.dsp.harmonics`): the series is
  continued up to the output's Nyquist frequency; with ``dynamics`` its pitch trajectory is
  tracked (`sonode.dsp.pitch_track`) and every continued partial follows it, phase-locked to the
  fundamental (vibrato and glides go up); its levels, f₀ and inharmonicity are then measured on
  the clip read on the series' own clock, where it stands still;
- a noise floor continuing the top octave's tilt frame by frame (`sonode.dsp.bandwidth`), scaled so
  that partials + floor hold the top octave's measured power;
- the whole band re-levelled to the estimator of `sonode.dsp.band_level` that predicted the clip's
  own top octave best from the octave below (pseudo-band-extension);
- then held within the SNR-cost bound (MAX_SNR_COST_DB, `sonode.dsp.snr_bound`): its loudest
  frames are cut first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sonode.dsp.band_level import (
    LevelChoice,
    choose_estimator,
    match_level,
    measured,
    octave_cap,
    predictors,
)
from sonode.dsp.bandwidth import (
    CROSSOVER_WIDTH,
    SILENT_TOP_OCTAVE_DB,
    band_edge_hz,
    fit_band,
    frame_samples,
    long_term_spectrum,
    shaped_noise,
    tilt_track,
    top_octave_share_db,
)
from sonode.dsp.harmonics import MAX_PARTIALS, harmonic_series
from sonode.dsp.metrics import as_signal
from sonode.dsp.partial_continuation import continue_partials, top_envelope
from sonode.dsp.pitch_track import dewarped, ratio_track, track_depth_cents, warped_time
from sonode.dsp.resample import output_length
from sonode.dsp.snr_bound import bound_band, sinc_error, sinc_error_floor

#: Default bound on the full-band SNR cost (dB) of the band above against band-limited
#: interpolation: random-phase content of energy A adds A to sinc's error M, a cost of
#: 10·log10(1 + A/M). A is held at (10^(cost/10) − 1) × the smaller of the band's predicted energy
#: and a lower bound on M read from the input (`sonode.dsp.snr_bound`).
MAX_SNR_COST_DB = 1.5
#: Which SNR cost ``max_snr_cost_db`` bounds: "worst" (default: the truth may hold nothing above the
#: input's Nyquist frequency, so the bound holds on every clip) or "expected" (the truth holds the
#: predicted level: the band ~3.8 dB below its prediction, a better LSD where the prediction is
#: right, a larger cost where it is too loud) or "validated" (the truth holds the predicted level
#: less the chosen estimator's RMS error on the clip's held-back top octave; the worst case where
#: no estimator was validated).
SNR_COST_CASES = ("worst", "expected", "validated")
# Below this peak-to-peak pitch excursion the partials are synthesised stationary (the fast sum):
# a few cents over a clip is the tracker's own scatter, not a vibrato.
STEADY_PITCH_CENTS = 3.0
# The noise floor's per-frame line falls at least as 1/f (log10 per-bin power per log10 f): an
# attack's flat burst in the top octave was continued flat to 24 kHz where recorded plucks fall
# steeply (the long-term `octave_cap` cannot see one loud frame)
MAX_FLOOR_SLOPE = -1.0
FLOOR_MIN_SCALE = 0.01  # the floor is never cut by more than 20 dB: partial levels are estimates
SERIES_SEGMENT_S = 0.128  # the loudest stretch searched for a series when the whole clip has none
# ... in a clip up to this long (one note gliding); in a longer recording one stretch's series
# says nothing of the rest
SERIES_SEGMENT_MAX_CLIP_S = 10.0
# Partials following a pitch track cost a cosine per partial per output sample: above this many
# (~10 s of CPU) the series is synthesised stationary (one matrix product per block)
MAX_TRACKED_PARTIAL_SAMPLES = 1e9


@dataclass
class Extension:
    """What the band above the input was made of.

    Attributes:
        edge_hz: where the input's content ends (the cross-over's end).
        top_octave_db: the input's energy in its top octave, dB of its total.
        harmonic: whether partials were continued.
        f0_hz, inharmonicity: the series continued (None when not harmonic).
        f0_source: "modes" (the fitted oscillators) or "spectrum" (the input's peaks) gave f0.
        decay_slope_per_s_hz: the modes' decay trend dσ/df applied to the continued partials.
        n_partials_added: partials synthesised above the edge.
        level_estimator: the estimator of the band's level chosen by pseudo-band-extension, and
            level_scores_db its RMS error (dB) on the held-back top octave, per estimator
            (`sonode.dsp.band_level`); level_bias_db the chosen one's mean error there (+: loud).
        level_scale_db: the band's energy below its predicted level after the SNR-cost bound (dB).
        error_floor_db: the least plausible energy of sinc's error (`sonode.dsp.snr_bound`), dB
            relative to the band's predicted energy (None: not bounded).
        floor_scale_db: the noise floor's gain so that partials + floor hold the top octave's
            measured power (0 without partials).
        pitch_depth_cents: peak-to-peak excursion of the series' pitch track (None: not tracked).
        snr_cost_db: the band's SNR cost against the interpolation, dB, as (expected, worst):
            expected if the truth above holds the predicted level (sinc's error ≈ the predicted
            energy + the strip's floor), worst if it holds nothing above the input's Nyquist
            frequency (sinc's error = the floor alone); the bound keeps the worst at most
            ``max_snr_cost_db`` (None: not computed).
    """

    edge_hz: float
    top_octave_db: float
    harmonic: bool = False
    f0_hz: float | None = None
    inharmonicity: float | None = None
    f0_source: str | None = None
    decay_slope_per_s_hz: float = 0.0
    n_partials_added: int = 0
    level_estimator: str | None = None
    level_scores_db: dict[str, float] | None = None
    level_scale_db: float = 0.0
    pitch_depth_cents: float | None = None
    level_bias_db: float | None = None
    floor_scale_db: float = 0.0
    error_floor_db: float | None = None
    snr_cost_db: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def extend_band(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    max_snr_cost_db: float | None = MAX_SNR_COST_DB,
    level: str = "auto",
    dynamics: bool = True,
    snr_cost_case: str = "worst",
) -> tuple[np.ndarray, Extension]:
    """The synthesised band above the input's band edge, at ``rate_out``.

    Args:
        x: the input, (n_in,), at ``rate_in`` Hz (at least 32 ms long).
        rate_out: Hz, > rate_in.
        modes: see `harmonic_series` (None: the input's spectral peaks stand in for the modes).
        seed: of the random phases and noise.
        max_snr_cost_db: bound on the band's expected SNR cost (see MAX_SNR_COST_DB); None: the
            band at its predicted level.
        level: the level estimator (`sonode.dsp.band_level.ESTIMATORS`), "auto" (chosen per clip
            by pseudo-band-extension) or "synthesis" (the synthesis' own levels, not re-levelled).
        dynamics: the partials follow the series' pitch trajectory (`sonode.dsp.pitch_track`),
            phase-locked to it; False: stationary partials with random phases.
        snr_cost_case: SNR_COST_CASES: the cost ``max_snr_cost_db`` bounds.

    Returns:
        ((round(n_in·rate_out/rate_in),) float64 with no content below the edge, `Extension`).
    """
    if snr_cost_case not in SNR_COST_CASES:
        raise ValueError(f"snr_cost_case must be one of {SNR_COST_CASES}, got {snr_cost_case!r}")
    sig = as_signal(x, "x")
    n_out = output_length(sig.size, rate_in, rate_out)
    cost = None if max_snr_cost_db is None else (max_snr_cost_db, snr_cost_case)
    nyquist = rate_in / 2
    edge = band_edge_hz(sig, rate_in)
    band = fit_band(edge, nyquist)
    share = top_octave_share_db(sig, rate_in, band)
    info = Extension(edge_hz=edge, top_octave_db=share)
    if share < SILENT_TOP_OCTAVE_DB:
        return quiet_floor(sig, rate_in, rate_out, band, edge, seed, cost, info), info
    partials = harmonic_series(sig, rate_in, band, modes)
    ref_time_s = None
    if partials is None and dynamics and sig.size <= SERIES_SEGMENT_MAX_CLIP_S * rate_in:
        # a glide smears the whole clip's partials: look closer
        ref_time_s, partials = loudest_series(sig, rate_in, band)
    track = tilt_track(
        sig,
        rate_in,
        band,
        statistic="median" if partials is not None else "mean",
        clip_slope_limit=partials is not None,
        max_slope=MAX_FLOOR_SLOPE,
    )
    stop = 0.98 * rate_out / 2
    high = np.zeros(n_out)
    if partials is not None:
        warp = None
        if dynamics:
            times_s, ratio = ratio_track(sig, rate_in, partials, band[1], ref_time_s)
            info.pitch_depth_cents = track_depth_cents(ratio)
            f_k = partials.frequency(np.arange(1, 4 * MAX_PARTIALS + 1))
            n_added = min(np.sum((f_k >= edge) & (f_k < stop)), MAX_PARTIALS)
            affordable = n_added * n_out <= MAX_TRACKED_PARTIAL_SAMPLES
            if info.pitch_depth_cents > STEADY_PITCH_CENTS and affordable:
                warp = warped_time(times_s, ratio, n_out, rate_out)
                # levels, f0 and B of the series where it stands still (a vibrato's partials are
                # smeared over hundreds of bins of the clip's own periodogram)
                steady = harmonic_series(dewarped(sig, rate_in, (times_s, ratio)), rate_in, band)
                partials = steady or partials
        high = continue_partials(
            partials, top_envelope(sig, rate_in, band), edge, stop, n_out, rate_out, seed, warp
        )
        info.floor_scale_db = 10 * math.log10(floor_scale(sig, rate_in, band, partials, track))
        info.harmonic, info.f0_hz, info.inharmonicity = (
            True,
            partials.f0_hz,
            float(partials.inharmonicity),
        )
        info.f0_source, info.decay_slope_per_s_hz = partials.source, partials.decay_slope_per_s_hz
        f_k = partials.frequency(np.arange(1, 4 * MAX_PARTIALS + 1))
        info.n_partials_added = int(min(np.sum((f_k >= edge) & (f_k < stop)), MAX_PARTIALS))
    high += shaped_noise(
        track, n_out, rate_out, edge, seed=seed, scale=10 ** (info.floor_scale_db / 10)
    )
    if level != "synthesis":
        choice = LevelChoice(level)
        if level == "auto":

            def synthesis(x_half: np.ndarray, rate_half: int, rate: int) -> np.ndarray:
                half_modes = None if modes is None else modes_below(modes, rate_half / 2)
                return extend_band(
                    x_half, rate_half, rate, half_modes, seed, None, "synthesis", dynamics
                )[0]

            choice = choose_estimator(sig, rate_in, synthesis)
        info.level_estimator, info.level_scores_db = choice.name, choice.scores_db or None
        info.level_bias_db = choice.bias_db.get(choice.name)
        available = predictors(sig, rate_in, band)
        available["synthesis"] = measured(high, rate_out, edge, stop)
        name = choice.name if choice.name in available else "tilt"
        target = octave_cap(sig, rate_in, band, available[name])
        high = match_level(high, rate_out, edge, stop, target)
        info.level_estimator = name
    if cost is not None:
        high = bounded(sig, rate_in, band, edge, partials, high, rate_out, cost, info)
    return high, info


def bounded(
    x: np.ndarray,
    rate_in: int,
    band_hz: tuple[float, float],
    edge_hz: float,
    partials,
    high: np.ndarray,
    rate_out: int,
    cost: tuple[float, str],
    info: Extension,
) -> np.ndarray:
    """``high`` held within the SNR-cost bound ``cost`` = (c dB, case): its energy at most
    (10^(c/10) − 1) × sinc's error as the case assumes (`sonode.dsp.snr_bound.sinc_error`), and
    never above the prediction; ``info``'s error_floor_db, level_scale_db and snr_cost_db are set. (n_out,)."""
    predicted = float(np.mean(high**2))
    share = 10 ** (cost[0] / 10) - 1
    start = edge_hz - CROSSOVER_WIDTH * rate_in / 2  # the output is the interpolation below it
    floor = sinc_error_floor(x, rate_in, band_hz, start, partials)
    info.error_floor_db = 10 * math.log10(floor / predicted) if predicted > 0 < floor else None
    margin = (info.level_scores_db or {}).get(info.level_estimator or "")
    error = sinc_error(predicted, floor, cost[1], margin)
    high, gain = bound_band(high, rate_out, min(predicted, share * error))
    info.level_scale_db = 10 * math.log10(gain) if gain > 0 else -math.inf
    if floor > 0:
        added = gain * predicted
        info.snr_cost_db = (
            10 * math.log10(1 + added / (predicted + floor)),
            10 * math.log10(1 + added / floor),
        )
    return high


def quiet_floor(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    band_hz: tuple[float, float],
    edge_hz: float,
    seed: int,
    cost: tuple[float, str] | None,
    info: Extension,
) -> np.ndarray:
    """The band above an input whose top octave holds only its recording's noise floor
    (quantisation, dither: < SILENT_TOP_OCTAVE_DB of its energy): that floor continued flat (the
    median bin per frame, slope 0: such a floor is white), within the same SNR-cost bound.
    Nothing was added here before, and ssr_eval's LSD scores an empty band by its eps (~8 on six
    recordings whose truths hold the same 16-bit floor above 8 kHz as their inputs below it).
    (n_out,) float64."""
    n_out = output_length(x.size, rate_in, rate_out)
    if not np.any(x):
        return np.zeros(n_out)
    track = tilt_track(x, rate_in, band_hz, statistic="median")
    track.slope = np.zeros_like(track.slope)  # flat at the band's centre level
    high = shaped_noise(track, n_out, rate_out, edge_hz, seed=seed)
    if cost is not None:
        high = bounded(x, rate_in, band_hz, edge_hz, None, high, rate_out, cost, info)
    return high


def floor_scale(x: np.ndarray, rate: int, band_hz: tuple[float, float], partials, track) -> float:
    """Gain (power, in [FLOOR_MIN_SCALE, 1]) of the noise floor ``track`` so that it and the series'
    partials together hold the top octave's measured mean power: the floor between the partials
    (median bins) also counts a vibrato's or glide's smeared partials, which are synthesised."""
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs_hz = np.fft.rfftfreq(x.size, d=1.0 / rate)
    inside = (freqs_hz >= band_hz[0]) & (freqs_hz < band_hz[1])
    total = 2 * float(np.sum(spectrum[inside])) / x.size**2
    n_fft = frame_samples(rate)
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / rate)
    in_band = bins_hz[(bins_hz >= band_hz[0]) & (bins_hz < band_hz[1])]
    # per-bin power s² for white noise of variance s²: a band's mean power is Σ bins / (n_fft/2)
    floor = float(np.sum(track.power_at(in_band, track.times_s, rate).mean(axis=1))) / (n_fft / 2)
    residual = total - float(np.sum(partials.top_power))
    return float(np.clip(residual / floor, FLOOR_MIN_SCALE, 1.0)) if floor > 0 else 1.0


def loudest_series(x: np.ndarray, rate: int, band_hz: tuple[float, float]):
    """(centre time s, `Partials`) of the series in the loudest SERIES_SEGMENT_S of ``x`` (its
    top octave's power), or (None, None) when that stretch is not harmonic either."""
    n = int(SERIES_SEGMENT_S * rate)
    if x.size < 2 * n:
        return None, None
    times_s, power = top_envelope(x, rate, band_hz)
    centre = int(round(times_s[int(np.argmax(power))] * rate))
    lo = min(max(0, centre - n // 2), x.size - n)
    partials = harmonic_series(x[lo : lo + n], rate, band_hz)
    if partials is None:
        return None, None
    # its levels are the loud stretch's: scale them to the whole clip's mean
    inside = (times_s >= lo / rate) & (times_s < (lo + n) / rate)
    partials.top_power = partials.top_power * np.mean(power) / max(np.mean(power[inside]), 1e-300)
    return (lo + n / 2) / rate, partials


def modes_below(
    modes: tuple[np.ndarray, np.ndarray, np.ndarray], max_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The oscillators below ``max_hz`` (what a clip at twice that rate could show)."""
    keep = np.asarray(modes[0]) < max_hz
    return tuple(np.asarray(m)[keep] for m in modes)


def image_matched(
    high_mid: np.ndarray,
    high_side: np.ndarray,
    mid: np.ndarray,
    side: np.ndarray,
    rate_in: int,
    edge_hz: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The bands above of mid and side (each (n_out,)), the louder one turned down so that their
    energy ratio is the inputs' (mid, side: (n_in,) at ``rate_in``) over the top octave: the
    channels' coherence above Nyquist then follows their top octave's. Extended on their own, mid
    and side get estimators chosen apart (a spurious harmonic series in one, a wide piece put
    19 dB mid-heavy above 9 kHz where its top octave was 1 dB side-heavy). Only turned down, so
    each stays within its own SNR-cost bound."""
    band = fit_band(edge_hz, rate_in / 2)
    powers = []
    for x in (mid, side):
        freqs_hz, power = long_term_spectrum(x, rate_in)
        powers.append(float(np.sum(power[(freqs_hz >= band[0]) & (freqs_hz < band[1])])))
    have_mid, have_side = float(np.mean(high_mid**2)), float(np.mean(high_side**2))
    if min(powers + [have_mid, have_side]) <= 0:
        return high_mid, high_side
    want, have = powers[1] / powers[0], have_side / have_mid
    if have > want:
        return high_mid, high_side * math.sqrt(want / have)
    return high_mid * math.sqrt(have / want), high_side
