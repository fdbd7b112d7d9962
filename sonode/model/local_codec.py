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

CODEC = "lzma-planes-2"  # what is written; both are read
CODECS = ("lzma-planes-1", "lzma-planes-2")
_MAX_CODE = 2**31 - 1
FREQ_STEP_HZ = 0.05  # a loud track's step: turns a 10 ms interval's phase by ≤ 0.002 rad
# frequency steps tried, coarse to fine, in units of FREQ_STEP_HZ: the states solved again for
# the rounded frequencies absorb most of a coarser step, and each halving costs a bit per entry
FREQ_SCALES = (8.0, 4.0, 2.0, 1.0, 0.25, 1 / 16)
MAX_SHIFT = 6  # a track 2^k times weaker than the typical one gets a 2^k times coarser step
STATE_STEP_START = 1e-3  # of the states' RMS
STEP_TRIES = 6


@dataclass(frozen=True)
class NodeTables:
    """A local model's node tables: the tracks ``first``, ``length`` (K,) int; per entry (P,)
    ``freq_hz`` (Hz) and the state ``amp_re``, ``amp_im`` (normalised amplitude); ``hop``
    (samples between nodes) and ``rate`` (Hz)."""

    first: np.ndarray
    length: np.ndarray
    freq_hz: np.ndarray
    amp_re: np.ndarray
    amp_im: np.ndarray
    hop: int
    rate: int


@dataclass(frozen=True)
class Compact:
    """Tables rounded by `choose_steps`: the steps, the decoded tables (P,), the tracks' step
    shifts and prediction flags (K,), and the SNR (dB) of the rounded model against the
    unrounded one."""

    freq_step_hz: float
    state_step: float
    freq_hz: np.ndarray
    amp_re: np.ndarray
    amp_im: np.ndarray
    shifts: np.ndarray
    predict: np.ndarray
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
    tables: NodeTables,
    synthesise: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    solve: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    target_db: float,
) -> Compact | None:
    """Round the frequencies (per-track steps, `track_shifts`), solve the states again for the
    rounded frequencies (which absorbs most of their rounding), then take the coarsest state step
    whose rounding keeps the model within ``target_db`` of the unrounded one: rounding noise
    grows with the step squared, so one measurement predicts the step and halving corrects a
    miss. Frequency steps are tried coarse to fine (FREQ_SCALES) and the pair that packs
    smallest is kept: finer frequencies cost bits, coarser ones a finer state step; the search
    stops once a finer step packs larger. None if no pair meets the target (the caller keeps
    float tables).

    Args:
        synthesise: (freq_hz, amp_re, amp_im) → the model's samples (n,).
        solve: freq_hz → the least-squares states (amp_re, amp_im) for those frequencies.
    """
    first, length, hop, rate = tables.first, tables.length, tables.hop, tables.rate
    reference = synthesise(tables.freq_hz, tables.amp_re, tables.amp_im)
    shifts = track_shifts(length, tables.amp_re, tables.amp_im)
    chosen = None
    for freq_scale in FREQ_SCALES:
        freq_step = FREQ_STEP_HZ * freq_scale
        steps = entry_freq_steps(length, shifts, freq_step)
        freq = np.rint(tables.freq_hz / steps) * steps
        re, im = solve(freq)
        predict = choose_prediction(NodeTables(first, length, freq, re, im, hop, rate))
        rms = float(np.sqrt(np.mean(re**2 + im**2))) or 1.0
        scale, best = 1.0, None
        for _ in range(STEP_TRIES):
            state_step = STATE_STEP_START * rms * scale
            try:
                blob, freq_d, re_d, im_d = encode(
                    first, length, freq, re, im, hop, rate, freq_step, state_step, shifts,
                    predict=predict,
                )  # fmt: skip
            except OverflowError:
                scale *= 4.0
                continue
            rounding_db = snr_db(reference, synthesise(freq_d, re_d, im_d))
            if rounding_db >= target_db:
                if best is None or len(blob) < best.packed_bytes:
                    best = Compact(
                        freq_step, state_step, freq_d, re_d, im_d, shifts, predict, len(blob),
                        rounding_db,
                    )  # fmt: skip
                if rounding_db < target_db + 1.0:
                    break
            elif best is not None:
                break
            # the step that would just meet the target (noise power ∝ step²), a little finer
            factor = 10 ** ((rounding_db - target_db - 0.5) / 20)
            scale *= float(np.clip(factor, 0.1, 10.0)) if math.isfinite(factor) else 10.0
        if best is not None:
            if chosen is not None and best.packed_bytes >= chosen.packed_bytes:
                break  # finer frequencies cost more than they save in the states
            chosen = best
    return chosen


def code_states(
    length: np.ndarray,
    freq_hz: np.ndarray,
    hop: int,
    rate: int,
    step: float,
    target: tuple[np.ndarray, np.ndarray] | None = None,
    codes: tuple[np.ndarray, np.ndarray] | None = None,
    predict: np.ndarray | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Closed-loop predictive coding of the node states along each track.

    Give ``target`` (amp_re, amp_im) (P,) to encode, or ``codes`` (int64 (P,) twice) to decode:
    both run the same arithmetic, so decoding reproduces the encoder's values bit for bit.

    Args:
        length: (K,) the tracks' entry counts (a track's entries are consecutive);
            freq_hz: (P,) the decoded frequencies (Hz).
        hop, rate: samples between nodes, Hz. step: rounding step of the residuals.
        predict: (K,) bool, the tracks whose states are predicted along the track (the others
            are coded as they are); None: all (`choose_prediction`).

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
    use = np.ones(length.size) if predict is None else np.asarray(predict, dtype=np.float64)
    for j in range(int(length.max()) if length.size else 0):
        alive = order[: int(np.searchsorted(-sorted_length, -j, side="left"))]
        index = offset[alive] + j
        if j == 0:
            predicted = np.zeros(index.size, dtype=np.complex128)
        else:
            turn = math.pi * (cycles[index - 1] + cycles[index])  # ψ(1) over the interval
            predicted = decoded[index - 1] * np.exp(1j * turn) * use[alive]
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
    predict: np.ndarray | None = None,
) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
    """(packed bytes, decoded freq_hz, amp_re, amp_im) of the tables at the given steps (track k's
    frequencies at freq_step_hz·2^shifts[k]); with ``streams_only`` the integer streams (first
    increments, lengths, shifts, frequency increments, state codes re, im) instead of the bytes.
    ``predict`` (K,) bool: the tracks coded after prediction; None: `choose_prediction`'s. Give
    the flags the values were decoded with and they encode to the same codes (a decoded model
    saved again is the same file).

    Raises:
        OverflowError: a code does not fit 31 bits (a step far too small for the values)."""
    steps = entry_freq_steps(length, shifts, freq_step_hz)
    freq_codes = np.rint(freq_hz / steps).astype(np.int64)
    freq = freq_codes * steps
    if predict is None:
        predict = choose_prediction(NodeTables(first, length, freq, amp_re, amp_im, hop, rate))
    (code_re, code_im), (re, im) = code_states(
        length, freq, hop, rate, state_step, target=(amp_re, amp_im), predict=predict
    )
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    later = np.ones(freq.size, dtype=bool)
    later[offset] = False
    # a track's first frequency: its increment over the previous track's if both start at the
    # same node (tracks are sorted so, `sonode.dsp.partials.link_tracks`), else absolute
    start_codes = freq_codes[offset]
    start_delta = start_codes.copy()
    same_node = np.r_[False, first[1:] == first[:-1]]
    start_delta[same_node] -= start_codes[np.nonzero(same_node)[0] - 1]
    freq_delta = np.diff(freq_codes, prepend=0)[later]
    first_delta = np.diff(first, prepend=0)
    # first states and track starts apart from the changes along tracks: they differ in scale
    streams = [first_delta, length, shifts, predict.astype(np.int64), start_delta, freq_delta]
    streams += [code_re[offset], code_im[offset], code_re[later], code_im[later]]
    return (streams if streams_only else pack(streams)), freq, re, im


def choose_prediction(tables: NodeTables) -> np.ndarray:
    """(K,) bool: the tracks whose states the dynamics predict better than zero does (summed
    |error| along the track). Where the states of neighbouring modes trade off from node to node
    (partials closer than a window resolves, as in dense music), the carried state is a worse
    guess than none, and coding it would cost more bits than the state itself."""
    length = tables.length
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    later = np.ones(tables.freq_hz.size, dtype=bool)
    later[offset] = False
    index = np.nonzero(later)[0]
    c = tables.amp_re + 1j * tables.amp_im
    cycles = tables.freq_hz * tables.hop / tables.rate
    carried = c[index - 1] * np.exp(1j * math.pi * (cycles[index - 1] + cycles[index]))
    track_of = np.repeat(np.arange(length.size), length)[index]
    error = np.bincount(track_of, np.abs(c[index] - carried), minlength=length.size)
    plain = np.bincount(track_of, np.abs(c[index]), minlength=length.size)
    return error < plain


def decode(
    blob: bytes,
    n_tracks: int,
    n_entries: int,
    hop: int,
    rate: int,
    freq_step_hz: float,
    state_step: float,
    codec: str = CODEC,
) -> tuple[np.ndarray, ...]:
    """(first, length, freq_hz, amp_re, amp_im, shifts, predict) from `encode`'s bytes (``codec``:
    one of CODECS; "lzma-planes-1" files predict every track and keep each track's entries
    together). ``predict`` (K,) bool: the tracks coded after prediction.

    Raises:
        ValueError: the bytes are not a stream of the declared sizes, or the tables they hold
            are inconsistent (the caller turns this into a refusal of the file)."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}")
    k, p = n_tracks, n_entries
    if codec == CODECS[0]:
        first_delta, length, shifts, freq_delta, code_re, code_im = unpack(blob, [k] * 3 + [p] * 3)
        predict = None
    else:
        sizes = [k] * 5 + [p - k] + [k] * 2 + [p - k] * 2
        first_delta, length, shifts, predict, start_delta, *rest = unpack(blob, sizes)
        if bool((predict < 0).any()) or bool((predict > 1).any()):
            raise ValueError("a prediction flag is neither 0 nor 1")
    if bool((length < 1).any()) or int(length.sum()) != n_entries:
        raise ValueError("track lengths do not add up to the node entries")
    if bool((shifts < 0).any()) or bool((shifts > MAX_SHIFT).any()):
        raise ValueError("a frequency step is out of range")
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    first = np.cumsum(first_delta)
    if predict is not None:  # v2: reassemble the entry streams in track order
        later = np.ones(p, dtype=bool)
        later[offset] = False
        same_node = np.r_[False, first[1:] == first[:-1]]
        run = np.cumsum(~same_node) - 1  # tracks starting at one node: restart the sum there
        total = np.cumsum(start_delta)
        starts = np.nonzero(~same_node)[0]
        start_codes = total - (total[starts] - start_delta[starts])[run]
        freq_delta, start_re, start_im, later_re, later_im = rest
        code_re, code_im = np.zeros(p, dtype=np.int64), np.zeros(p, dtype=np.int64)
        code_re[offset], code_im[offset] = start_re, start_im
        code_re[later], code_im[later] = later_re, later_im
        track_of = np.repeat(np.arange(n_tracks), length)
        change = np.zeros(p, dtype=np.int64)
        change[later] = freq_delta
        along = np.cumsum(change)  # the changes summed from each track's start
        codes = start_codes[track_of] + along - along[offset][track_of]
        freq = codes * entry_freq_steps(length, shifts, freq_step_hz)
    else:
        track_of = np.repeat(np.arange(n_tracks), length)
        # undo the per-track differences: cumulative sum restarted at each track's first entry
        total = np.cumsum(freq_delta)
        base = total[offset] - freq_delta[offset]
        freq = (total - base[track_of]) * entry_freq_steps(length, shifts, freq_step_hz)
    _, (re, im) = code_states(
        length, freq, hop, rate, state_step, codes=(code_re, code_im), predict=predict
    )
    flags = np.ones(n_tracks, dtype=bool) if predict is None else predict.astype(bool)
    return first, length, freq, re, im, shifts, flags


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
