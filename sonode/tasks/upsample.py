"""Upsampling that keeps the input's band and synthesises the band above it.

Below the input's band edge nothing can beat band-limited interpolation of the input samples, so
the output's low band is that (``low_band="input"``, the default) or, on request, the fitted
model's own rendering (``"model"``). With the input's band, the output below the cross-over's start
(`exact_below_hz`) IS the interpolation, on the output's own DFT grid (`join_bands`). Above it the
input carries no information; what is added (``high_band="model"``, the default) comes from the
structure of the clip and its fitted dynamics (`sonode.tasks.band_extension`): continued
partials following the series' pitch trajectory, a noise floor, levels from the estimator that
predicted the clip's own top octave best, bounded in SNR cost. A top octave holding only the
recording's noise floor (SILENT_TOP_OCTAVE_DB) gets that floor continued, nothing else;
``high_band="none"`` leaves the band above empty.
Stereo input (n, 2) is upsampled per channel (`upsample_channels`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sonode.dsp.bandwidth import CROSSOVER_WIDTH, band_edge_hz, crossover
from sonode.dsp.metrics import as_signal, energy_above_db
from sonode.dsp.resample import output_length, upsample_sinc
from sonode.io.clip import resample
from sonode.model.decoder import SonodeModel
from sonode.tasks.band_extension import (  # noqa: F401  (Extension, extend_band: re-exported)
    MAX_SNR_COST_DB,
    Extension,
    extend_band,
    image_matched,
)
from sonode.tasks.render import render

LOW_BANDS = ("input", "model")
HIGH_BANDS = ("model", "none")
REPORT_OVERSAMPLING = 4  # the fit report renders the model at this many times its rate ...
REPORT_SPAN_S = (
    2.0  # ... over at most its first this many seconds (8 s of rendering per second of a
)
# 16 kHz fit on the loaded 2-core machine: a whole 30 s clip would add minutes to every fit)


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
    max_snr_cost_db: float | None = MAX_SNR_COST_DB,
    level: str = "auto",
    dynamics: bool = True,
    snr_cost_case: str = "worst",
    device: str = "cpu",
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
        max_snr_cost_db, level, dynamics, snr_cost_case: see `extend_band`.
        device: where the model's rendering runs (``low_band="model"``; see `render`).

    Below the cross-over (`exact_below_hz`: the input's band edge ``Extension.edge_hz`` minus
    CROSSOVER_WIDTH × its Nyquist frequency) the output's spectrum is exactly the low band's
    (``low_band="input"``: the band-limited interpolation of ``x``; `join_bands`).

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
        low = render(model, rate=rate_out, device=device).samples
        low = np.pad(low, (0, max(0, n_out - low.size)))[:n_out]
    if rate_out <= rate_in or high_band == "none":
        if rate_out > rate_in:  # empty above the edge: also removes the interpolator's images
            low = join_bands(low, np.zeros(n_out), rate_in, rate_out, band_edge_hz(sig, rate_in))
        return low, None
    modes = model_modes(model) if model is not None else modes
    high, info = extend_band(
        sig, rate_in, rate_out, modes, seed, max_snr_cost_db, level, dynamics, snr_cost_case
    )
    return join_bands(low, high, rate_in, rate_out, info.edge_hz), info


def upsample_channels(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    **options,
) -> tuple[np.ndarray, list[Extension | None]]:
    """Upsample every channel of ``x`` (n_in, C) (low band: the input's), keeping their image.

    Each channel below the cross-over is its own band-limited interpolation, exactly. Two channels
    get their band above from their mid (L + R)/2 and side (L − R)/2, each extended on its own
    (independent noise and phases: seed, seed + 1) and recombined: mid and side keep the levels
    their top octaves predict, so the channels' correlation above the input's Nyquist frequency is
    that of their top octave (a centred source stays centred, a wide one wide). Other counts are
    extended channel by channel.

    Args:
        x: (n_in, C) at ``rate_in`` Hz. modes: the mid's (or mix's) oscillators, see `clip_modes`.
        options: `upsample_samples`' high_band, max_snr_cost_db, level, dynamics, snr_cost_case.

    Returns:
        ((round(n_in·rate_out/rate_in), C) float64, the extensions [mid, side] or per channel).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (n_samples, channels), got {x.shape}")
    if x.shape[1] != 2 or rate_out <= rate_in or options.get("high_band", "model") == "none":
        columns = [
            upsample_samples(x[:, c], rate_in, rate_out, seed=seed + c, modes=modes, **options)
            for c in range(x.shape[1])
        ]
        return np.stack([c[0] for c in columns], axis=1), [c[1] for c in columns]
    check_upsample_size(x.shape[0] * x.shape[1], rate_in, rate_out)  # every channel in memory
    mid, side = (x[:, 0] + x[:, 1]) / 2, (x[:, 0] - x[:, 1]) / 2
    keys = ("max_snr_cost_db", "level", "dynamics", "snr_cost_case")
    kw = {k: options[k] for k in keys if k in options}
    high_mid, info_mid = extend_band(mid, rate_in, rate_out, modes, seed, **kw)
    edge = info_mid.edge_hz
    if np.any(side):
        high_side, info_side = extend_band(side, rate_in, rate_out, None, seed + 1, **kw)
        high_mid, high_side = image_matched(high_mid, high_side, mid, side, rate_in, edge)
    else:  # a mono file stored as two channels stays mono
        high_side, info_side = np.zeros_like(high_mid), None
    out = np.stack(
        [
            join_bands(
                upsample_sinc(x[:, 0], rate_in, rate_out),
                high_mid + high_side,
                rate_in,
                rate_out,
                edge,
            ),
            join_bands(
                upsample_sinc(x[:, 1], rate_in, rate_out),
                high_mid - high_side,
                rate_in,
                rate_out,
                edge,
            ),
        ],
        axis=1,
    )
    return out, [info_mid, info_side]


#: Blocks of a long clip overlap by this much. The cross-fade spans the overlap's middle half, where
#: both blocks' interpolations are the whole clip's (the sinc kernel and the cross-over's DFT wrap
#: reach only milliseconds into a block), so the band below the cross-over is still exact.
BLOCK_OVERLAP_S = 1.0
MIN_BLOCK_S = 4.0  # shorter blocks than this would leave the band-level estimators too little


def upsample_in_blocks(
    x: np.ndarray,
    rate_in: int,
    rate_out: int,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    **options,
) -> np.ndarray:
    """`upsample_channels` of a clip of any length in bounded memory: the whole clip at once when it
    fits the memory budget, else blocks as long as fit, overlapping by BLOCK_OVERLAP_S and joined by
    a cross-fade whose weights sum to 1 (amplitude-complementary: the shared low band stays exact).
    Each block's band above is extended on its own (its own level estimate and seed), so a song's
    band above follows its sections; across a join its independent parts dip by up to 3 dB.

    Args:
        x: (n_in, C) at ``rate_in`` Hz. modes, seed, options: as `upsample_channels`.

    Returns:
        (round(n_in·rate_out/rate_in), C) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    n_in, n_ch = x.shape
    block = check_upsample_blocks(n_in, n_ch, rate_in, rate_out)
    if block >= n_in:
        return upsample_channels(x, rate_in, rate_out, modes, seed, **options)[0]
    grid = rate_in // math.gcd(rate_in, rate_out)  # input steps that land on whole output samples
    overlap = -(-int(BLOCK_OVERLAP_S * rate_in) // grid) * grid
    n_blocks = -(-(n_in - overlap) // (block - overlap))
    hop = -(-(n_in - overlap) // n_blocks // grid) * grid  # equal blocks, none longer than `block`
    starts = [i * hop for i in range(n_blocks) if i * hop < n_in - overlap]
    out = np.zeros((output_length(n_in, rate_in, rate_out), n_ch))
    join_out = overlap * rate_out // rate_in  # output samples of each join (grid: exact)
    for i, start in enumerate(starts):
        end = n_in if i + 1 == len(starts) else start + hop + overlap
        y, _ = upsample_channels(x[start:end], rate_in, rate_out, modes, seed + 2 * i, **options)
        weight = np.ones(y.shape[0])
        if i > 0:  # rises where the previous block falls
            weight *= _fade(y.shape[0], join_out, rising=True)
        if i + 1 < len(starts):
            weight *= _fade(y.shape[0], join_out, rising=False)
        o = start * rate_out // rate_in
        n = min(y.shape[0], out.shape[0] - o)
        out[o : o + n] += y[:n] * weight[:n, None]
    return out


def _fade(n: int, overlap: int, rising: bool) -> np.ndarray:
    """(n,) weights: sin² over the middle half of an ``overlap``-sample join at the start (rising)
    or cos² at the end; the two sides of a join sum to 1 sample by sample."""
    ramp = np.clip((np.arange(n) - overlap / 4) / (overlap / 2), 0.0, 1.0)
    if not rising:
        ramp = np.clip((np.arange(n) - (n - overlap) - overlap / 4) / (overlap / 2), 0.0, 1.0)
        return np.cos(0.5 * np.pi * ramp) ** 2
    return np.sin(0.5 * np.pi * ramp) ** 2


def check_upsample_blocks(n_in: int, n_channels: int, rate_in: int, rate_out: int) -> int:
    """Input samples per block `upsample_in_blocks` can afford within the memory budget (n_in when
    the whole clip fits); refuses, before any work, a rate or a length that no block would fit.

    Raises:
        sonode.limits.LimitError: one line with the value and the limit.
    """
    from sonode.limits import PROCESS_BASELINE_BYTES, check_memory, memory_budget_bytes

    n_out = output_length(n_in, rate_in, rate_out)
    held = 3 * 8 * n_channels * (n_out + n_in)  # the input, the output and the written copy
    per_input = UPSAMPLE_BYTES_PER_OUTPUT_SAMPLE * n_channels * rate_out / rate_in
    min_block = min(n_in, int(MIN_BLOCK_S * rate_in))
    check_upsample_size(min_block * n_channels, rate_in, rate_out)  # rates, kernel, one block
    check_memory(
        f"upsampling {n_in} samples × {n_channels} channels to {rate_out} Hz in blocks",
        held + per_input * min_block,
        "choose a lower --rate or a shorter clip",
    )
    free = memory_budget_bytes() - PROCESS_BASELINE_BYTES - held
    return min(n_in, max(min_block, int(free // per_input)))


def join_bands(
    low: np.ndarray, high: np.ndarray, rate_in: int, rate_out: int, edge_hz: float
) -> np.ndarray:
    """``low`` below the cross-over, ``high`` above it: a zero-phase raised-cosine cross-over of
    width CROSSOVER_WIDTH × the input's Nyquist frequency ending at ``edge_hz`` (the input's
    anti-alias roll-off, where the synthesis starts). (n_out,) float64.

    Exact below the cross-over's start, ``exact_below_hz``, on the output's own DFT grid: ``low`` is
    weighted there (weight 1 below it), and ``high`` joins through the padded `crossover` (no
    wrap-around) and then has its DFT bins below that frequency zeroed (the cropped, filtered band
    otherwise leaks a little below it: measured 0.36 dB of in-band SNR on a 66 dB clip).
    """
    start_hz = exact_below_hz(rate_in, edge_hz)
    width_hz = edge_hz - start_hz
    freqs_hz = np.fft.rfftfreq(low.size, d=1.0 / rate_out)
    ramp = np.clip((edge_hz - freqs_hz) / width_hz, 0.0, 1.0)
    out = np.fft.rfft(low) * (0.5 - 0.5 * np.cos(np.pi * ramp))
    if np.any(high):
        above = np.fft.rfft(crossover(np.zeros_like(high), high, rate_out, edge_hz, width_hz))
        out += np.where(freqs_hz < start_hz, 0.0, above)
    return np.fft.irfft(out, n=low.size)


def exact_below_hz(rate_in: int, edge_hz: float) -> float:
    """Below this frequency (Hz) `upsample_samples`' output is the input's band-limited
    interpolation, exactly: the cross-over's start."""
    return edge_hz - CROSSOVER_WIDTH * rate_in / 2


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
