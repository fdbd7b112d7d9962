"""Compact node tables of the local model (model file version 4): quantised, predicted, packed.

A float32 node table costs 32 bits per number, ~18 bits per sample at 0.56 numbers per sample,
where the clip's own FLAC needs 6–8. Here:

- frequencies are rounded to a step (Hz) and stored as the change along their track; a track's
  step grows as its amplitude falls (a frequency error costs in proportion to the amplitude),
  and the states are solved again for the rounded frequencies, which absorbs most of it;
- node states are rounded to a step (normalised amplitude) after *prediction along the track*:
  the state at node f + 1 is predicted from the decoded one at f carried by the dynamics
  (c_{f+1} ≈ c_f·e^{iψ(1)}, the phase the mode turns over the interval), and only the rounded
  residual is stored (closed loop: the encoder predicts from decoded values, so errors do not
  accumulate). A steady partial then costs a few bits per node;
- track starts are stored as their increments, and every integer stream is zig-zag mapped to
  uint32, split into byte planes (the high planes are almost all zero) and LZMA-compressed.

Decoding is plain arithmetic on the stored integers (no code in the file), bounded by the sizes
the metadata declares. The steps are chosen by the fit so that rounding costs a stated fraction of
a dB (`sonode.model.local_fit`).
"""

from __future__ import annotations

import lzma
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sonode.dsp.metrics import snr_db

CODEC = "lzma-planes-1"
_MAX_CODE = 2**31 - 1
FREQ_STEP_HZ = 0.05  # a loud track's step: turns a 10 ms interval's phase by ≤ 0.002 rad
MAX_SHIFT = 6  # a track 2^k times weaker than the typical one gets a 2^k times coarser step
STATE_STEP_START = 1e-3  # of the states' RMS
STEP_TRIES = 6


@dataclass(frozen=True)
class Compact:
    """Tables rounded by `choose_steps`: the steps, the decoded tables (P,) and the SNR (dB) of
    the rounded model against the unrounded one."""

    freq_step_hz: float
    state_step: float
    freq_hz: np.ndarray
    amp_re: np.ndarray
    amp_im: np.ndarray
    shifts: np.ndarray
    packed_bytes: int
    rounding_snr_db: float


def track_shifts(length: np.ndarray, amp_re: np.ndarray, amp_im: np.ndarray) -> np.ndarray:
    """(K,) the power of two that scales each track's frequency step: a frequency error costs in
    proportion to its mode's amplitude, so weak tracks are rounded coarser."""
    power = amp_re**2 + amp_im**2
    track_of = np.repeat(np.arange(length.size), length)
    track_rms = np.sqrt(np.bincount(track_of, power, minlength=length.size) / np.maximum(length, 1))
    typical = float(np.sqrt(np.mean(power))) or 1.0
    ratio = typical / np.maximum(track_rms, 1e-300)
    return np.clip(np.floor(np.log2(ratio)), 0, MAX_SHIFT).astype(np.int64)


def entry_freq_steps(length: np.ndarray, shifts: np.ndarray, freq_step_hz: float) -> np.ndarray:
    """(P,) each entry's frequency step (Hz)."""
    return np.repeat(freq_step_hz * np.exp2(shifts.astype(np.float64)), length)


def choose_steps(
    first: np.ndarray,
    length: np.ndarray,
    freq_hz: np.ndarray,
    amp_re: np.ndarray,
    amp_im: np.ndarray,
    hop: int,
    rate: int,
    synthesise: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    solve: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    target_db: float,
) -> Compact | None:
    """Round the frequencies (per-track steps, `track_shifts`), solve the states again for the
    rounded frequencies (which absorbs most of their rounding), then take the coarsest state step
    whose rounding keeps the model within ``target_db`` of the unrounded one: rounding noise
    grows with the step squared, so one measurement predicts the step and halving corrects a
    miss. A finer frequency step is tried if no state step meets the target; None if none does
    (the caller keeps float tables).

    Args:
        synthesise: (freq_hz, amp_re, amp_im) → the model's samples (n,).
        solve: freq_hz → the least-squares states (amp_re, amp_im) for those frequencies.
    """
    reference = synthesise(freq_hz, amp_re, amp_im)
    shifts = track_shifts(length, amp_re, amp_im)
    for freq_scale in (1.0, 0.25, 1 / 16):
        freq_step = FREQ_STEP_HZ * freq_scale
        steps = entry_freq_steps(length, shifts, freq_step)
        freq = np.rint(freq_hz / steps) * steps
        re, im = solve(freq)
        rms = float(np.sqrt(np.mean(re**2 + im**2))) or 1.0
        scale, best = 1.0, None
        for _ in range(STEP_TRIES):
            state_step = STATE_STEP_START * rms * scale
            try:
                blob, freq_d, re_d, im_d = encode(
                    first, length, freq, re, im, hop, rate, freq_step, state_step, shifts
                )
            except OverflowError:
                scale *= 4.0
                continue
            rounding_db = snr_db(reference, synthesise(freq_d, re_d, im_d))
            if rounding_db >= target_db:
                if best is None or len(blob) < best.packed_bytes:
                    best = Compact(
                        freq_step, state_step, freq_d, re_d, im_d, shifts, len(blob), rounding_db
                    )
                if rounding_db < target_db + 1.0:
                    break
            elif best is not None:
                break
            # the step that would just meet the target (noise power ∝ step²), a little finer
            factor = 10 ** ((rounding_db - target_db - 0.5) / 20)
            scale *= float(np.clip(factor, 0.1, 10.0)) if math.isfinite(factor) else 10.0
        if best is not None:
            return best
    return None


def code_states(
    first: np.ndarray,
    length: np.ndarray,
    freq_hz: np.ndarray,
    hop: int,
    rate: int,
    step: float,
    target: tuple[np.ndarray, np.ndarray] | None = None,
    codes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Closed-loop predictive coding of the node states along each track.

    Give ``target`` (amp_re, amp_im) (P,) to encode, or ``codes`` (int64 (P,) twice) to decode:
    both run the same arithmetic, so decoding reproduces the encoder's values bit for bit.

    Args:
        first, length: (K,) the tracks; freq_hz: (P,) the decoded frequencies (Hz).
        hop, rate: samples between nodes, Hz. step: rounding step of the residuals.

    Returns:
        ((code_re, code_im), (amp_re, amp_im)): the integer codes and the decoded states, (P,).
    """
    n_entries = freq_hz.size
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    cycles = freq_hz * hop / rate
    decoded = np.zeros(n_entries, dtype=np.complex128)
    out_codes = np.zeros((2, n_entries), dtype=np.int64)
    wanted = None if target is None else target[0] + 1j * target[1]
    order = np.argsort(-length, kind="stable")  # tracks longest first: alive ones are a prefix
    sorted_length = length[order]
    for j in range(int(length.max()) if length.size else 0):
        alive = order[: int(np.searchsorted(-sorted_length, -j, side="left"))]
        index = offset[alive] + j
        if j == 0:
            predicted = np.zeros(index.size, dtype=np.complex128)
        else:
            turn = math.pi * (cycles[index - 1] + cycles[index])  # ψ(1) over the interval
            predicted = decoded[index - 1] * np.exp(1j * turn)
        if wanted is not None:
            residual = (wanted[index] - predicted) / step
            out_codes[0, index] = np.rint(residual.real)
            out_codes[1, index] = np.rint(residual.imag)
        else:
            out_codes[:, index] = codes[0][index], codes[1][index]
        decoded[index] = predicted + step * (out_codes[0, index] + 1j * out_codes[1, index])
    return (out_codes[0], out_codes[1]), (decoded.real.copy(), decoded.imag.copy())


def encode(
    first: np.ndarray,
    length: np.ndarray,
    freq_hz: np.ndarray,
    amp_re: np.ndarray,
    amp_im: np.ndarray,
    hop: int,
    rate: int,
    freq_step_hz: float,
    state_step: float,
    shifts: np.ndarray,
    streams_only: bool = False,
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """(packed bytes, decoded freq_hz, amp_re, amp_im) of the tables at the given steps (track k's
    frequencies at freq_step_hz·2^shifts[k]); with ``streams_only`` the integer streams (first
    increments, lengths, shifts, frequency increments, state codes re, im) instead of the bytes.

    Raises:
        OverflowError: a code does not fit 31 bits (a step far too small for the values)."""
    steps = entry_freq_steps(length, shifts, freq_step_hz)
    freq_codes = np.rint(freq_hz / steps).astype(np.int64)
    freq = freq_codes * steps
    (code_re, code_im), (re, im) = code_states(
        first, length, freq, hop, rate, state_step, target=(amp_re, amp_im)
    )
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    freq_delta = freq_codes.copy()
    freq_delta[1:] -= freq_codes[:-1]
    freq_delta[offset] = freq_codes[offset]  # a track's first frequency is absolute
    first_delta = np.diff(first, prepend=0)
    streams = [first_delta, length, shifts, freq_delta, code_re, code_im]
    return (streams if streams_only else pack(streams)), freq, re, im


def decode(
    blob: bytes,
    n_tracks: int,
    n_entries: int,
    hop: int,
    rate: int,
    freq_step_hz: float,
    state_step: float,
) -> tuple[np.ndarray, ...]:
    """(first, length, freq_hz, amp_re, amp_im, shifts) from `encode`'s bytes.

    Raises:
        ValueError: the bytes are not a stream of the declared sizes, or the tables they hold
            are inconsistent (the caller turns this into a refusal of the file)."""
    first_delta, length, shifts, freq_delta, code_re, code_im = unpack(
        blob, [n_tracks] * 3 + [n_entries] * 3
    )
    if bool((length < 1).any()) or int(length.sum()) != n_entries:
        raise ValueError("track lengths do not add up to the node entries")
    if bool((shifts < 0).any()) or bool((shifts > MAX_SHIFT).any()):
        raise ValueError("a frequency step is out of range")
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    first = np.cumsum(first_delta)
    track_of = np.repeat(np.arange(n_tracks), length)
    # undo the per-track differences: cumulative sum restarted at each track's first entry
    total = np.cumsum(freq_delta)
    base = total[offset] - freq_delta[offset]
    freq = (total - base[track_of]) * entry_freq_steps(length, shifts, freq_step_hz)
    _, (re, im) = code_states(first, length, freq, hop, rate, state_step, codes=(code_re, code_im))
    return first, length, freq, re, im, shifts


def pack(streams: list[np.ndarray]) -> bytes:
    """Integer streams → zig-zag uint32 byte planes, LZMA-compressed."""
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in streams])
    if flat.size and int(np.abs(flat).max()) > _MAX_CODE:
        raise OverflowError("a code does not fit 31 bits")
    zigzag = ((flat << 1) ^ (flat >> 63)).astype(np.uint32)
    planes = zigzag.astype("<u4").view(np.uint8).reshape(-1, 4).T
    return lzma.compress(np.ascontiguousarray(planes).tobytes(), preset=9 | lzma.PRESET_EXTREME)


def unpack(blob: bytes, sizes: list[int]) -> list[np.ndarray]:
    """`pack`'s streams of the given sizes; never decompresses more than they declare."""
    expected = 4 * sum(sizes)
    decompressor = lzma.LZMADecompressor()
    try:
        raw = decompressor.decompress(blob, max_length=expected)
    except lzma.LZMAError as err:
        raise ValueError(f"the packed tables do not decompress ({err})") from None
    if len(raw) != expected or not decompressor.eof:
        raise ValueError("the packed tables do not hold the declared number of entries")
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(4, -1).T
    zigzag = np.ascontiguousarray(planes).view("<u4").reshape(-1).astype(np.int64)
    flat = (zigzag >> 1) ^ -(zigzag & 1)
    bounds = np.cumsum([0, *sizes])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
