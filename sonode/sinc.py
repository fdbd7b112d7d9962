"""Windowed-sinc resampling, block by block: the one implementation of torchaudio's polyphase
resampler used by io.clip (resampling on read), dsp.resample (the interpolators) and tasks.render
(decimation), with the guard against ratios whose kernel would not fit in memory.

torchaudio's polyphase kernel has (new/g) x (2 width + orig/g) taps, g = gcd(orig, new): cheap for
ratios like 48000 -> 16000, but gigabytes for near-coprime rates (16000 -> 44101: 5.65 GB). Above
MAX_RESAMPLE_KERNEL_TAPS (128 MB in float64) the ratio is refused with a nearby rate that works.
torchaudio also convolves the whole signal at once, unfolding it (11 GB to decimate 200 s by 6);
here the convolution runs over blocks of whole polyphase frames, so each output sample sees exactly
the inputs it would see in one piece (bit-identical results) and memory stays O(output + kernel).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchaudio.functional.functional import _get_sinc_resample_kernel

from sonode.limits import LimitError

# The two kernels sonode uses, by torchaudio's names. KAISER_BEST (the torchaudio resampling
# tutorial's "kaiser_best", librosa's former preset): 64 zero crossings, Kaiser beta 14.77, cutoff at
# 0.9476 of the lower Nyquist; for reading clips and decimating renders. HANN_DEFAULT: torchaudio's
# defaults (Hann window, 6 zero crossings, cutoff 0.99); the plain sinc interpolator.
KAISER_BEST = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}
HANN_DEFAULT = {"lowpass_filter_width": 6, "rolloff": 0.99, "resampling_method": "sinc_interp_hann"}

MAX_RESAMPLE_KERNEL_TAPS = 1 << 24
#: Highest input rate sonode reads (io.checks.MAX_SAMPLE_RATE_HZ): nearby rates are searched up to it.
MAX_INPUT_RATE_HZ = 192_000


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def resample_blocks(samples: np.ndarray, orig_rate: int, new_rate: int, **kernel_kw) -> np.ndarray:
    """``torchaudio.functional.resample(samples, orig_rate, new_rate, **kernel_kw)`` computed block by
    block, so that memory stays O(output + kernel) whatever the length (torchaudio's single
    convolution unfolds the whole signal: 11 GB to decimate 200 s by 6). Blocks start on whole
    polyphase frames, so each output sample sees exactly the inputs it would see in one piece.

    Args:
        samples: shape (n_samples,), any float dtype.
        orig_rate, new_rate: positive ints, Hz.
        kernel_kw: lowpass_filter_width, rolloff, resampling_method, beta (torchaudio's names).

    Returns:
        float64 (ceil(n_samples * new_rate / orig_rate),).

    Raises:
        ValueError: bad rates or shape. sonode.limits.LimitError: kernel over MAX_RESAMPLE_KERNEL_TAPS.
    """
    if not (_is_int(orig_rate) and _is_int(new_rate) and orig_rate > 0 and new_rate > 0):
        raise ValueError(
            f"sample rates must be positive integers in Hz, got {orig_rate}, {new_rate}"
        )
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float64))
    if x.ndim != 1:
        raise ValueError(
            f"resample expects a mono signal of shape (n_samples,), got {tuple(x.shape)}"
        )
    if orig_rate == new_rate:
        return x.numpy().copy()
    check_resample_cost(int(orig_rate), int(new_rate), kernel_kw)
    g = math.gcd(int(orig_rate), int(new_rate))
    kernel, width = _get_sinc_resample_kernel(
        int(orig_rate), int(new_rate), g, dtype=torch.float64, **kernel_kw
    )
    orig, new = orig_rate // g, new_rate // g
    n = x.shape[0]
    n_out = math.ceil(new * n / orig)
    n_frames = -(-n_out // new)  # each polyphase frame (one input stride) gives `new` outputs
    taps = kernel.shape[-1]
    per_block = max(
        1, (1 << 22) // (taps + new)
    )  # frames per convolution: ~32 MB of unfolded input
    out = np.empty(n_frames * new)
    for f0 in range(0, n_frames, per_block):
        f1 = min(n_frames, f0 + per_block)
        # x zero-padded by `width` in front, sliced per block: a padded copy of the whole signal
        # would double the input's memory (0.9 GB more for 600 s read at 192 kHz)
        lo, hi = f0 * orig - width, (f1 - 1) * orig + taps - width
        piece = x[max(lo, 0) : min(hi, n)]
        if lo < 0 or hi > n:
            piece = torch.nn.functional.pad(piece, (max(-lo, 0), max(hi - max(n, lo), 0)))
        y = torch.nn.functional.conv1d(piece[None, None], kernel, stride=orig)  # (1, new, frames)
        out[f0 * new : f1 * new] = y[0].transpose(0, 1).reshape(-1).numpy()
    return out[:n_out]


def check_resample_cost(orig_rate: int, new_rate: int, kernel_kw: dict) -> None:
    """LimitError when the polyphase kernel for this ratio is over MAX_RESAMPLE_KERNEL_TAPS (the
    message names the nearest rate whose ratio is simple enough)."""
    problem = resample_cost_problem(orig_rate, new_rate, kernel_kw)
    if problem:
        raise LimitError(problem)


def resample_kernel_taps(orig_rate: int, new_rate: int, kernel_kw: dict) -> int:
    """Size of torchaudio's polyphase kernel for this ratio (see its source)."""
    kw = kernel_kw
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    width = math.ceil(
        kw.get("lowpass_filter_width", 6) * orig / (min(orig, new) * kw.get("rolloff", 0.99))
    )
    return new * (2 * width + orig)


def resample_cost_problem(orig_rate: int, new_rate: int, kernel_kw: dict) -> str | None:
    """Why resampling ``orig_rate`` Hz to ``new_rate`` Hz with the sinc kernel ``kernel_kw`` is
    refused (its kernel would exceed MAX_RESAMPLE_KERNEL_TAPS taps), naming a nearest rate that is
    not; None when it is allowed."""
    taps = resample_kernel_taps(orig_rate, new_rate, kernel_kw)
    if taps <= MAX_RESAMPLE_KERNEL_TAPS:
        return None
    # Nearest rate whose ratio to orig_rate is simple enough (it exists: orig_rate itself).
    top = max(MAX_INPUT_RATE_HZ, new_rate)
    near = [orig_rate]
    for delta in range(1, top):
        near = [
            r
            for r in (new_rate - delta, new_rate + delta)
            if 1 <= r <= top
            and resample_kernel_taps(orig_rate, r, kernel_kw) <= MAX_RESAMPLE_KERNEL_TAPS
        ]
        if near:
            break
    return (
        f"resampling {orig_rate} Hz to {new_rate} Hz needs a filter kernel of {taps} taps, over the limit of "
        f"{MAX_RESAMPLE_KERNEL_TAPS} (the ratio {new_rate}/{orig_rate} is too awkward to filter exactly in "
        f"bounded memory); use a nearby rate such as {near[0]} Hz"
    )
