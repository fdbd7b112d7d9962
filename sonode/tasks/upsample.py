"""Upsampling that keeps the input's band and synthesises the band above it.

Below the input's band edge nothing can beat band-limited interpolation of the input samples, so
the output's low band is that (``low_band="input"``, the default) or, on request, the fitted
model's own rendering (``"model"``). Above it the input carries no information; what is added
(``high_band="model"``, the default) comes from the structure of the clip and its fitted dynamics:

- partials: when the input's top octave is harmonic, the series k·f₀·√(1 + B k²) (f₀ and B from
  the model's oscillator modes or from the input's spectral peaks, whichever the input's spectrum
  confirms better) is continued up to the output's Nyquist frequency, levels continuing the top
  octave's tilt, amplitude envelope the top octave's, and, when the modes identified the series,
  their decay trend σ(f);
- a noise floor: random-phase noise whose per-frame level continues the straight line of log power
  vs log frequency through the top octave; when harmonic, that of the floor between the partials,
  with no frame's slope flatter than the whole clip's (an attack's flat spectrum is otherwise
  continued flat for octaves: measured too bright on the plucked clips; on speech the same limit
  cut fricatives by 14 dB, so non-harmonic inputs keep the per-frame line);
- nothing at all when the top octave is empty (SILENT_TOP_OCTAVE_DB).

The two bands are joined by a zero-phase complementary cross-over (`sonode.dsp.bandwidth.crossover`)
ending at the input's band edge, so nothing cancels at the seam. ``high_band="none"`` leaves the
band above empty (band-limited interpolation alone).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from sonode.dsp.bandwidth import (
    CROSSOVER_WIDTH,
    SILENT_TOP_OCTAVE_DB,
    band_edge_hz,
    crossover,
    fit_band,
    shaped_noise,
    tilt_track,
    top_octave_share_db,
)
from sonode.dsp.harmonics import MAX_PARTIALS, continue_partials, harmonic_series, top_envelope
from sonode.dsp.metrics import as_signal, energy_above_db
from sonode.dsp.resample import output_length, upsample_sinc
from sonode.io.clip import resample
from sonode.model.decoder import SonodeModel
from sonode.tasks.render import render

LOW_BANDS = ("input", "model")
HIGH_BANDS = ("model", "none")
REPORT_OVERSAMPLING = 4  # the fit report renders the model at this many times its rate ...
REPORT_SPAN_S = (
    2.0  # ... over at most its first this many seconds (8 s of rendering per second of a
)
# 16 kHz fit on the loaded 2-core machine: a whole 30 s clip would add minutes to every fit)


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
    """

    edge_hz: float
    top_octave_db: float
    harmonic: bool = False
    f0_hz: float | None = None
    inharmonicity: float | None = None
    f0_source: str | None = None
    decay_slope_per_s_hz: float = 0.0
    n_partials_added: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_modes(model: SonodeModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted oscillators: frequencies (K,) Hz, amplitudes (K,) (file amplitude, RMS of the
    segment start states through the readout) and decays σ (K,) 1/s.

    The state is laid out [u_1..u_K, v_1..v_K]; mode k reads as x = c_u·u + c_v·v, an oscillation
    of amplitude |u + iv|·√(c_u² + c_v²). A model of modes that follow the notes
    (`sonode.model.local.LocalModel`) gives the modes alive at its last node.
    """
    if hasattr(model, "partials"):
        return model.partials()
    with torch.no_grad():
        d = model.config.latent_dim
        k = d // 2
        zero = model.read(torch.zeros(d, dtype=torch.float64))
        readout = (model.read(torch.eye(d, dtype=torch.float64)) - zero).numpy()
        states = model.states.detach().numpy()
        radius = np.sqrt(np.mean(states[:, :k] ** 2 + states[:, k:] ** 2, axis=0))
        amplitude = radius * np.hypot(readout[:k], readout[k:]) * abs(model.config.gain)
        freqs_hz = np.abs(model.bank.omega_rad_per_s.detach().numpy()) / (2 * math.pi)
        return freqs_hz, amplitude, model.bank.decay_per_s.detach().numpy()


def extend_band(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, Extension]:
    """The synthesised band above the input's band edge, at ``rate_out``.

    Args:
        x: the input, (n_in,), at ``rate_in`` Hz (at least 32 ms long).
        rate_out: Hz, > rate_in.
        modes: see `harmonic_series` (None: the input's spectral peaks stand in for the modes).
        seed: of the random phases and noise.

    Returns:
        ((round(n_in·rate_out/rate_in),) float64 with no content below the edge, `Extension`).
    """
    sig = as_signal(x, "x")
    n_out = output_length(sig.size, rate_in, rate_out)
    nyquist = rate_in / 2
    edge = band_edge_hz(sig, rate_in)
    band = fit_band(edge, nyquist)
    share = top_octave_share_db(sig, rate_in, band)
    info = Extension(edge_hz=edge, top_octave_db=share)
    if share < SILENT_TOP_OCTAVE_DB:
        return np.zeros(n_out), info
    partials = harmonic_series(sig, rate_in, band, modes)
    track = tilt_track(
        sig,
        rate_in,
        band,
        statistic="median" if partials is not None else "mean",
        clip_slope_limit=partials is not None,
    )
    high = shaped_noise(track, n_out, rate_out, edge, seed=seed)
    if partials is not None:
        stop = 0.98 * rate_out / 2
        tones = continue_partials(
            partials, top_envelope(sig, rate_in, band), edge, stop, n_out, rate_out, seed
        )
        high += tones
        info.harmonic, info.f0_hz, info.inharmonicity = (
            True,
            partials.f0_hz,
            float(partials.inharmonicity),
        )
        info.f0_source, info.decay_slope_per_s_hz = partials.source, partials.decay_slope_per_s_hz
        f_k = partials.frequency(np.arange(1, 4 * MAX_PARTIALS + 1))
        info.n_partials_added = int(min(np.sum((f_k >= edge) & (f_k < stop)), MAX_PARTIALS))
    return high, info


def clip_modes(
    x: np.ndarray, rate: int, n_modes: int = 128, lp_order: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `model_modes` reads from a fitted model, from the clip's identification alone.

    The band above the input needs the clip's oscillators (frequencies, amplitudes, decays) to find
    and continue a harmonic series; the linear start of a fit identifies them in seconds, and
    training moves them little (frequencies and decays step by lr/(free-run length) per step).
    The amplitudes are the RMS, over up to 32 windows spread over the clip, of each mode's
    least-squares amplitude at the window's start (a fitted model's: over its segments' starts).

    Args:
        x: the clip (file amplitude), (n,). rate: Hz.
        n_modes: K, as a fit's default d = 256.
        lp_order: order of the predictor whose roots are the candidates.

    Returns:
        (frequencies Hz, amplitudes in file amplitude, decays 1/s), each (K,).
    """
    from sonode.dsp.lpc import identify_modes, modal_basis, ridge_solve, window_starts
    from sonode.model.init import normalisation

    gain, offset = normalisation(np.asarray(x, dtype=np.float64))
    xn = (x - offset) / gain
    modes = identify_modes(xn, rate, n_modes, lp_order=lp_order)
    poles = np.exp((modes.decay_per_s + 1j * modes.omega_rad_per_s) / rate)
    length, starts = window_starts(xn.shape[0])
    basis = modal_basis(poles, length)
    coef = ridge_solve(
        basis.T @ basis, np.stack([xn[s : s + length] for s in starts]) @ basis, 1e-6
    )
    k = modes.n_modes
    amplitude = np.sqrt(np.mean(coef[:, :k] ** 2 + coef[:, k:] ** 2, axis=0)) * gain
    return modes.omega_rad_per_s / (2 * math.pi), amplitude, modes.decay_per_s


def upsample_samples(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    model: SonodeModel | None = None,
    low_band: str = "input",
    high_band: str = "model",
    seed: int = 0,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, Extension | None]:
    """Upsample input samples: the low band kept, the band above synthesised.

    Args:
        x: the input samples (the fitted clip), (n_in,), at ``rate_in`` Hz.
        rate_out: output rate in Hz. At or below ``rate_in`` this is plain band-limited resampling
            (of the input, or of the model's rendering for ``low_band="model"``).
        model: the fitted model (needed for ``low_band="model"``; its modes guide the partials).
        low_band: "input" (windowed-sinc interpolation of ``x``) or "model" (the model's rendering).
        high_band: "model" (partials + noise floor, see the module docstring) or "none".
        modes: the oscillators that guide the partials when there is no model (see `clip_modes`);
            ignored when ``model`` is given.

    Returns:
        ((round(n_in·rate_out/rate_in),) float64 in file amplitude, `Extension` or None when
        nothing was synthesised above the band).
    """
    if low_band not in LOW_BANDS:
        raise ValueError(f"low_band must be one of {LOW_BANDS}, got {low_band!r}")
    if high_band not in HIGH_BANDS:
        raise ValueError(f"high_band must be one of {HIGH_BANDS}, got {high_band!r}")
    if low_band == "model" and model is None:
        raise ValueError("low_band='model' needs the fitted model")
    sig = as_signal(x, "x", min_samples=3)
    check_upsample_size(sig.size, rate_in, rate_out)
    n_out = output_length(sig.size, rate_in, rate_out)
    if low_band == "input":
        low = (
            upsample_sinc(sig, rate_in, rate_out)
            if rate_out > rate_in
            else _resampled(sig, rate_in, rate_out)
        )
    else:
        low = render(model, rate=rate_out).samples
        low = np.pad(low, (0, max(0, n_out - low.size)))[:n_out]
    if rate_out <= rate_in or high_band == "none":
        if rate_out > rate_in:  # empty above the edge: also removes the interpolator's images
            edge = band_edge_hz(sig, rate_in)
            low = crossover(low, np.zeros(n_out), rate_out, edge, CROSSOVER_WIDTH * rate_in / 2)
        return low, None
    modes = model_modes(model) if model is not None else modes
    high, info = extend_band(sig, rate_in, rate_out, modes, seed)
    return crossover(low, high, rate_out, info.edge_hz, CROSSOVER_WIDTH * rate_in / 2), info


#: Peak bytes per output sample of `upsample_samples`: an estimate, not yet measured (about twenty
#: float64 arrays of the output's length: interpolation, synthesised band, STFT frames, cross-over).
UPSAMPLE_BYTES_PER_OUTPUT_SAMPLE = 160


def check_upsample_size(n_in: int, rate_in: int, rate_out: int) -> None:
    """Refuse, before any work, an output rate whose resampling kernel or output would not fit in
    memory (`sonode.limits`): one line with the value and the limit.

    Raises:
        sonode.limits.LimitError.
    """
    from sonode.dsp.resample import SINC_PRESETS
    from sonode.io.clip import RESAMPLE_KW
    from sonode.limits import MAX_OUTPUT_RATE_HZ, check_limit, check_memory
    from sonode.sinc import check_resample_cost

    check_limit("output rate", rate_out, MAX_OUTPUT_RATE_HZ, "choose a lower --rate", " Hz")
    check_resample_cost(
        int(rate_in), int(rate_out), SINC_PRESETS["default"] if rate_out > rate_in else RESAMPLE_KW
    )
    n_out = output_length(n_in, rate_in, rate_out)
    check_memory(
        f"upsampling {n_in} samples to {n_out} at {rate_out} Hz",
        n_out * UPSAMPLE_BYTES_PER_OUTPUT_SAMPLE,
        "choose a lower --rate or a shorter clip",
    )


def _resampled(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    n_out = output_length(x.size, rate_in, rate_out)
    out = resample(x, rate_in, rate_out) if rate_out != rate_in else x.copy()
    return np.pad(out, (0, max(0, n_out - out.size)))[:n_out]


def model_energy_above_db(
    model: SonodeModel, factor: int = REPORT_OVERSAMPLING, span_s: float = REPORT_SPAN_S
) -> float:
    """The fitted model's energy above its clip's Nyquist frequency, in dB of its total.

    Renders the first min(span_s, fitted span) seconds at ``factor`` × the clip's rate (solver
    steps as fine) and measures the share above rate/2: what aliases at the training grid, or
    appears as added treble when the model is read more finely. −inf when there is none.
    """
    rate = model.config.sample_rate
    samples = render(model, rate=factor * rate, end_s=min(span_s, model.config.duration_s)).samples
    if not np.any(samples):
        return -math.inf
    return energy_above_db(samples - samples.mean(), factor * rate, rate / 2)
