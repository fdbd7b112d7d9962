"""Which gaps `sonode fill` fills in a file: scan it, take the given gaps, find defects per channel.

Split from `sonode.tasks.fill_file` (reading and gap finding here; filling and writing there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sonode.errors import AudioInputError
from sonode.io.checks import check_input_path, check_stream, libsndfile_error
from sonode.io.clip import read_channel
from sonode.limits import MAX_FILL_CONTEXT_S, check_limit, check_memory
from sonode.tasks.fill import Gap, plan_gaps

# Long recordings are fine here: only the context of each gap is read and filled.
MAX_FILL_DURATION_S = 3600.0
# Frames per block when scanning and copying.
_BLOCK_FRAMES = 1 << 16
#: Peak bytes per sample of the block --detect works on (the block, its window hashes, their
#: sorts, masks). Measured (benchmarks/memory_survey.py) when a whole channel was one block: 415 s
#: of a 48 kHz stereo file whose every window repeats peaked at 2.72 GiB, 116 B per sample over
#: the process baseline, 8 of them the second channel, no longer read; 64 B admitted that file.
#: Detection now reads blocks of DETECT_BLOCK_S (`sonode.tasks.detect_blocks`), whatever the length.
DETECT_BYTES_PER_SAMPLE = 128


def _open(path: str | os.PathLike) -> sf.SoundFile:
    file = Path(path)
    check_input_path(file)
    try:
        f = sf.SoundFile(file)
    except sf.SoundFileError as err:
        raise libsndfile_error(file, err) from err
    check_stream(file, f)
    return f


def scan(path: str | os.PathLike) -> None:
    """Check the whole file block by block: readable to its end, finite, within range, not silent."""
    from sonode.io.checks import MAX_SAMPLE_MAGNITUDE, SILENCE_PEAK

    with _open(path) as f:
        seconds = f.frames / f.samplerate
        check_limit(
            f"{path}: duration",
            round(seconds, 3),
            MAX_FILL_DURATION_S,
            "fill a part of the file",
            " s",
        )
        peak, done = 0.0, 0
        for block in f.blocks(_BLOCK_FRAMES, dtype="float64", always_2d=True):
            with np.errstate(invalid="ignore"):
                if not np.isfinite(block).all():
                    raise AudioInputError(
                        f"{path}: NaN or infinite samples near {done / f.samplerate:.3f} s; the file "
                        "is corrupt, re-export it"
                    )
                peak = max(peak, float(np.abs(block).max()))
            if peak > MAX_SAMPLE_MAGNITUDE:
                raise AudioInputError(
                    f"{path}: a sample of magnitude {peak:.3g} is over the limit of "
                    f"{MAX_SAMPLE_MAGNITUDE:g} (full scale = 1): corrupt or not audio"
                )
            done += block.shape[0]
        if done < f.frames:
            raise AudioInputError(
                f"{path} is truncated: it ends after {done / f.samplerate:.3f} s although its header "
                f"says {seconds:.3f} s; re-export or re-download it"
            )
        if peak < SILENCE_PEAK:
            raise AudioInputError(
                f"{path}: the file is silent (peak {peak:.3g}); nothing to fill from"
            )


def find_gaps(
    path: str | os.PathLike, gaps_s: list[tuple[float, float]], detect: bool, context_s: float
) -> tuple[list[Gap], int, list[dict[str, Any]], list[dict[str, Any]]]:
    """The gaps to fill in ``path``: given ones plus, with ``detect``, those found in its channels.

    Returns:
        (validated gaps, sample rate, detection records as JSON-ready dicts, per gap a note:
        {"reason": "given with --gap" or what detection measured, "channels": the channels to
        fill — all for a given gap, those the defect was found in for a detected one}).
    """
    check_limit("--context", context_s, MAX_FILL_CONTEXT_S, "use a shorter context", " s")
    scan(path)
    with _open(path) as f:
        rate, n_frames, channels = f.samplerate, f.frames, f.channels
    found: list[dict[str, Any]] = []
    spans = list(gaps_s)
    kinds = ["given"] * len(gaps_s)
    notes = [{"reason": "given with --gap", "channels": list(range(channels))} for _ in gaps_s]
    if detect:
        from sonode.tasks.detect import merge_defects
        from sonode.tasks.detect_blocks import DETECT_BLOCK_S, detect_channel, margin_samples

        # One channel at a time, block by block: the memory of one block and its margins.
        block = max(1, int(DETECT_BLOCK_S * rate))
        held = min(n_frames, block + 2 * margin_samples(rate))
        check_memory(
            f"--detect on blocks of {held} samples",
            held * DETECT_BYTES_PER_SAMPLE,
            "give the gaps with --gap",
        )
        defects = []
        for c in range(channels):
            with _open(path) as f:
                of_channel = detect_channel(
                    lambda a, b, f=f, c=c: read_channel(f, c, a, b - a), n_frames, rate, block
                )
            defects += [(d, c) for d in merge_defects(of_channel)]
        for d, where in _merged(defects):
            start_s, end_s = d.start / rate, d.end / rate
            found.append(
                {
                    "start_s": start_s,
                    "end_s": end_s,
                    "kind": d.kind,
                    "reason": d.reason,
                    "channels": where,
                }
            )
            # A defect overlapping a given gap widens that gap (what detection finds inside the
            # user's gap is the same damage).
            given = [i for i in range(len(gaps_s)) if start_s < spans[i][1] and spans[i][0] < end_s]
            if given:
                i = given[0]
                spans[i] = (min(spans[i][0], start_s), max(spans[i][1], end_s))
                notes[i]["reason"] += f"; widened to cover a detected {d.kind}: {d.reason}"
            else:
                spans.append((start_s, end_s))
                kinds.append(d.kind)
                notes.append({"reason": d.reason, "channels": where})
    gaps = plan_gaps(spans, n_frames, rate, context_s, kinds)
    # plan_gaps sorts by start: carry each gap's note along (spans do not overlap, starts differ)
    by_start = {int(np.floor(a * rate)): note for (a, _), note in zip(spans, notes, strict=True)}
    return gaps, rate, found, [by_start[g.start] for g in gaps]


def _merged(defects: list) -> list:
    """(defect, channel) pairs of several channels: overlapping or touching defects as one (the
    first kind and reason kept) with the sorted channels they were found in; sorted by start."""
    out: list = []
    for d, c in sorted(defects, key=lambda pair: (pair[0].start, pair[0].end)):
        if out and d.start <= out[-1][0].end:
            last, where = out[-1]
            out[-1] = (
                type(d)(last.start, max(last.end, d.end), last.kind, last.reason),
                sorted(set(where) | {c}),
            )
        else:
            out.append((d, [c]))
    return out


def _read_frames(path: str | os.PathLike, start: int, n: int, dtype: str = "float64") -> np.ndarray:
    """Frames [start, start + n) of every channel: (n, channels)."""
    with _open(path) as f:
        f.seek(start)
        block = f.read(n, dtype=dtype, always_2d=True)
    if block.shape[0] != n:
        raise AudioInputError(f"{path}: the file changed or ended early while it was read")
    return block
