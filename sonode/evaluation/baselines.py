"""What a practitioner would use instead of sonode: classical upsamplers and LPC continuation.

All functions take and return mono numpy signals of shape ``(n_samples,)`` and compute in float64.

Upsamplers ``f(x, sr_in, sr_out) -> (n_out,)`` share one time convention: output sample j is at
``j/sr_out`` seconds, input sample i at ``i/sr_in`` (time 0 is the first sample of both), and
``n_out = round(n_in·sr_out/sr_in)`` (halves round up), so every method returns the same grid and
can be scored sample by sample against the same truth.

Continuations ``f(history, n_out) -> (n_out,)`` predict the ``n_out`` samples that follow
``history``.

:data:`UPSAMPLERS` and :data:`CONTINUATIONS` map a short name to each baseline; `sonode eval` scores
every entry. Add one with :func:`register_upsampler` / :func:`register_continuation` and look one up
with :func:`upsampler` / :func:`continuation` (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sonode.dsp import bandwidth
from sonode.dsp.metrics import as_signal
from sonode.dsp.predictor import lpc_continue
from sonode.dsp.resample import output_length, upsample_sinc


def _output_positions(n_in: int, sr_in: int, sr_out: int) -> np.ndarray:
    """Output sample times in units of input samples (j·sr_in/sr_out), shape (n_out,)."""
    return np.arange(output_length(n_in, sr_in, sr_out)) * (sr_in / sr_out)


def upsample_soxr(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality resampling with libsoxr via ``librosa.resample(res_type="soxr_hq")``.

    Args:
        x: shape (n_in,).
        sr_in, sr_out: whole Hz.

    Returns:
        Shape (round(n_in·sr_out/sr_in),), float64.
    """
    import librosa  # here, not at the top: importing it costs ~1 s of CPU, which only soxr needs

    signal = as_signal(x, "x")
    n_out = output_length(signal.size, sr_in, sr_out)
    out = librosa.resample(signal, orig_sr=int(sr_in), target_sr=int(sr_out), res_type="soxr_hq")
    return librosa.util.fix_length(out, size=n_out)


def upsample_linear(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Piecewise-linear interpolation between input samples (no anti-alias or anti-image filter).

    Output times past the last input sample (less than one input sample) are extrapolated along
    the last segment, so that a linear ramp is reproduced exactly on the whole output grid.

    Args:
        x: shape (n_in,), n_in >= 2.
        sr_in, sr_out: whole Hz.

    Returns:
        Shape (round(n_in·sr_out/sr_in),), float64.
    """
    signal = as_signal(x, "x", min_samples=2)
    positions = _output_positions(signal.size, sr_in, sr_out)
    left = np.minimum(np.floor(positions).astype(np.int64), signal.size - 2)
    frac = positions - left
    return signal[left] + frac * (signal[left + 1] - signal[left])


def upsample_cubic(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Keys cubic convolution with a = −1/2 (Catmull–Rom), Keys (1981), IEEE TASSP 29(6).

    Local (4 input samples per output sample), passes through the input samples, and third-order
    accurate: quadratics are reproduced exactly (cubics are not). Beyond the ends the input is
    extended by quadratic extrapolation (Keys's boundary condition, exact for quadratics): one
    sample before the start and two after the end, since the last output time can fall up to one
    input sample past the last input sample.

    Args:
        x: shape (n_in,), n_in >= 3.
        sr_in, sr_out: whole Hz.

    Returns:
        Shape (round(n_in·sr_out/sr_in),), float64.
    """
    signal = as_signal(x, "x", min_samples=3)
    before = 3 * signal[0] - 3 * signal[1] + signal[2]
    after1 = 3 * signal[-1] - 3 * signal[-2] + signal[-3]
    after2 = 3 * after1 - 3 * signal[-1] + signal[-2]
    padded = np.concatenate([[before], signal, [after1, after2]])
    positions = _output_positions(signal.size, sr_in, sr_out)
    left = np.floor(positions).astype(np.int64)  # input index at or before each output time
    s = positions - left
    # padded[left + k] is input sample left - 1 + k, k = 0..3.
    p0, p1, p2, p3 = (padded[left + k] for k in range(4))
    return p1 + 0.5 * s * (
        (p2 - p0) + s * ((2 * p0 - 5 * p1 + 4 * p2 - p3) + s * (3 * (p1 - p2) + p3 - p0))
    )


def _continuation(order: int, method: str) -> Callable[[np.ndarray, int], np.ndarray]:
    def continue_(history: np.ndarray, n_out: int) -> np.ndarray:
        return lpc_continue(history, order, n_out, method)

    continue_.__name__ = f"lpc{order}_{method}"
    continue_.__doc__ = f"``lpc_continue(history, order={order}, n_out, method={method!r})``."
    return continue_


def upsample_shaped_noise(x: np.ndarray, sr_in: int, sr_out: int, seed: int = 0) -> np.ndarray:
    """Sinc interpolation plus noise above the input's band: the cheap bandwidth extension to beat.

    Below the input's band edge (`sonode.dsp.bandwidth.band_edge_hz`) the output is
    ``upsample_sinc(x)``; above it, random-phase noise whose per-frame (32 ms) power continues the
    straight line of log10 power vs log10 frequency fitted over the input's top octave (slope held
    at 0 where it rises), joined by the zero-phase cross-over of `sonode.dsp.bandwidth.crossover`.
    An input whose top octave is empty (< −70 dB of its energy) gets nothing added.

    Args:
        x: shape (n_in,), at least one 32 ms frame.
        sr_in, sr_out: whole Hz, sr_out > sr_in.
        seed: of the noise.

    Returns:
        Shape (round(n_in·sr_out/sr_in),), float64.
    """
    signal = as_signal(x, "x")
    low = upsample_sinc(signal, sr_in, sr_out)
    edge = bandwidth.band_edge_hz(signal, sr_in)
    band = bandwidth.fit_band(edge, sr_in / 2)
    high = np.zeros_like(low)
    if bandwidth.top_octave_share_db(signal, sr_in, band) >= bandwidth.SILENT_TOP_OCTAVE_DB:
        track = bandwidth.tilt_track(signal, sr_in, band, statistic="mean")
        high = bandwidth.shaped_noise(track, low.size, sr_out, edge, seed=seed)
    return bandwidth.crossover(low, high, sr_out, edge, bandwidth.CROSSOVER_WIDTH * sr_in / 2)


def _sinc_high(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``upsample_sinc(x, sr_in, sr_out, quality="high")``."""
    return upsample_sinc(x, sr_in, sr_out, quality="high")


Upsampler = Callable[[np.ndarray, int, int], np.ndarray]
Continuation = Callable[[np.ndarray, int], np.ndarray]

UPSAMPLERS: dict[str, Upsampler] = {
    "sinc": upsample_sinc,
    "sinc_hq": _sinc_high,
    "soxr_hq": upsample_soxr,
    "linear": upsample_linear,
    "cubic": upsample_cubic,
    "sinc_noise": upsample_shaped_noise,
}

# Burg at the orders 32 and 256; least squares at 32 only: at order 256 its (N × 256)
# system took 0.7-4.8 s per clip (1 s history at 16 kHz, loaded 2-core machine) for 20 ms SNRs
# within 0.7 dB of Burg-256 on the bundled clips, against 0.02-0.04 s for Burg-256.
# High-order Burg (512-2048; the literature's reference for tonal audio, Kauppinen & Roth 2002)
# uses the whole history as context (>= 4096 samples in `sonode eval`: 0.8 s at 16 kHz). Burg
# costs O(N·order): 0.09 s at order 2048 on 12800 samples.
CONTINUATIONS: dict[str, Continuation] = {
    "lpc32_burg": _continuation(32, "burg"),
    "lpc256_burg": _continuation(256, "burg"),
    "lpc512_burg": _continuation(512, "burg"),
    "lpc1024_burg": _continuation(1024, "burg"),
    "lpc2048_burg": _continuation(2048, "burg"),
    "lpc32_lstsq": _continuation(32, "lstsq"),
}


def _register(registry: dict, kind: str, name: str, function: Callable | None):
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(
            f"a {kind} name must be a Python identifier (it names table columns), got {name!r}"
        )
    if name in registry or name == "sonode":
        raise ValueError(f"a {kind} named {name!r} already exists; choose another name")

    def add(f: Callable) -> Callable:
        registry[name] = f
        return f

    return add if function is None else add(function)


def register_upsampler(name: str, function: Upsampler | None = None):
    """Add an upsampler ``f(x, sr_in, sr_out) -> (round(n_in·sr_out/sr_in),)`` under ``name``;
    as a decorator without ``function``. Raises ValueError for a name already taken."""
    return _register(UPSAMPLERS, "upsampler", name, function)


def register_continuation(name: str, function: Continuation | None = None):
    """Add a continuation ``f(history, n_out) -> (n_out,)`` under ``name``; as a decorator without
    ``function``. Raises ValueError for a name already taken."""
    return _register(CONTINUATIONS, "continuation", name, function)


def _lookup(registry: dict, kind: str, name: str) -> Callable:
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(registry)}") from None


def upsampler(name: str) -> Upsampler:
    """The upsampling baseline registered as ``name`` (ValueError listing the valid names)."""
    return _lookup(UPSAMPLERS, "upsampler", name)


def continuation(name: str) -> Continuation:
    """The continuation baseline registered as ``name`` (ValueError listing the valid names)."""
    return _lookup(CONTINUATIONS, "continuation", name)
