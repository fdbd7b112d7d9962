"""`sonode fill` on files: check the outputs, scan the file, fill each gap, copy the rest block by block.

The whole file is never loaded: it is scanned block by block (finite, not silent), each gap is
filled from its context alone, and the output is the input copied block by block with the gaps
replaced. Memory is O(block + context), whatever the file's length (only --detect reads one
channel whole, within the memory budget).

The output keeps the input's rate and channels. Its container comes from the output's extension
(.wav, .flac, .ogg); its subtype is the input's when that is lossless, and then every sample
outside the gaps is copied bit for bit. A lossy input (Vorbis, ADPCM, mu-law...) is decoded once and
written losslessly (16-bit PCM or 32-bit float) into a WAV or FLAC output; re-encoding it lossily
(an .ogg output, or a lossy subtype) would change the whole file and is refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sonode.errors import AudioInputError, OutputPathError
from sonode.io.checks import check_input_path, check_stream, libsndfile_error
from sonode.io.fileutil import (
    append_riff_chunk,
    atomic_write,
    riff_info_chunk,
    sonode_marker,
    write_json,
)
from sonode.io.outputs import OutputPlan, disk_full
from sonode.limits import MAX_FILL_CONTEXT_S, check_limit, check_memory
from sonode.tasks.fill import FillSettings, Gap, fill_one, plan_gaps

# Long recordings are fine here: only the context of each gap is read and filled.
MAX_FILL_DURATION_S = 3600.0
# Frames per block when scanning and copying.
_BLOCK_FRAMES = 1 << 16
#: Integer PCM subtypes with their bits: copied as int32, which libsndfile converts exactly.
_INT_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
#: Subtypes whose samples survive decoding and re-encoding unchanged.
LOSSLESS_SUBTYPES = (*_INT_BITS, "FLOAT", "DOUBLE")
#: Container per output extension, and the lossless subtypes it can hold.
_CONTAINERS = {
    ".wav": ("WAV", LOSSLESS_SUBTYPES),
    ".flac": ("FLAC", ("PCM_S8", "PCM_16", "PCM_24")),
    ".ogg": ("OGG", ()),
}
#: Peak bytes per sample of one channel while --detect runs on it: an estimate, not yet measured (the
#: channel, its prediction residual, loudness and masks: about eight float64 arrays).
DETECT_BYTES_PER_SAMPLE = 64


def report_path_for(out: str | os.PathLike) -> Path:
    """The JSON report written next to the output: OUT.wav → OUT.fill.json."""
    return Path(out).with_suffix(".fill.json")


def output_format(
    path: str | os.PathLike, out: str | os.PathLike, info: sf._SoundFileInfo
) -> tuple[str, str]:
    """(container, subtype) of the output: see the module docstring.

    Raises:
        OutputPathError: an unknown extension, or an output that would re-encode lossily.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in _CONTAINERS:
        raise OutputPathError(
            f"output {out}: unknown extension {suffix or '(none)'!r}; fill writes .wav, .flac or "
            ".ogg (the container follows the extension)"
        )
    container, lossless = _CONTAINERS[suffix]
    if (
        container == "WAV"
        and info.format in ("WAVEX", "RF64", "W64")
        and Path(path).suffix.lower() == suffix
    ):
        container = info.format  # keep the WAV variant of the input
    if info.subtype in lossless:
        return container, info.subtype
    if not lossless:
        raise OutputPathError(
            f"output {out} would re-encode {path} ({info.format} {info.subtype}) lossily, changing every sample, not "
            "only the gaps (a Vorbis round trip measured 25 dB of change); name a lossless output, e.g. "
            f"{Path(out).with_suffix('.wav')} or .flac"
        )
    if info.subtype in LOSSLESS_SUBTYPES:  # e.g. 32-bit or float input into FLAC
        raise OutputPathError(
            f"output {out}: {container} cannot hold {info.subtype} samples losslessly; name a .wav "
            f"output, e.g. {Path(out).with_suffix('.wav')}"
        )
    # A lossy input (Vorbis, ADPCM, mu-law, ...) is decoded once and stored losslessly.
    return container, "FLOAT" if "FLOAT" in lossless else "PCM_24"


def check_fill_outputs(
    path: str | os.PathLike, out: str | os.PathLike, force: bool = False, expected_bytes: int = 0
) -> None:
    """Refuse, before any work, an output or report that is the input, a FIFO or device, an existing
    file sonode did not write (unless ``force``), in an unwritable folder, or without room
    (`sonode.io.outputs.OutputPlan`). Raises OutputPathError."""
    plan = OutputPlan([path], force)
    plan.add(out, expected_bytes)
    plan.add(report_path_for(out), 1 << 20)
    plan.check()


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
) -> tuple[list[Gap], int, list[dict[str, Any]], list[str]]:
    """The gaps to fill in ``path``: given ones plus, with ``detect``, those found in its channels.

    Returns:
        (validated gaps, sample rate, detection records as JSON-ready dicts, per gap the reason
        it is filled: "given with --gap", or what detection measured).
    """
    check_limit("--context", context_s, MAX_FILL_CONTEXT_S, "use a shorter context", " s")
    scan(path)
    with _open(path) as f:
        rate, n_frames, channels = f.samplerate, f.frames, f.channels
    found: list[dict[str, Any]] = []
    kinds = ["given"] * len(gaps_s)
    reasons = ["given with --gap"] * len(gaps_s)
    spans = list(gaps_s)
    if detect:
        from sonode.tasks.detect import detect_defects

        check_memory(
            f"--detect on {n_frames} samples per channel",
            n_frames * DETECT_BYTES_PER_SAMPLE,
            "detect on a shorter part of the file, or give the gaps with --gap",
        )
        defects = []
        for c in range(channels):  # one channel at a time: memory of one channel
            defects += detect_defects(_read_frames(path, 0, n_frames)[:, c], rate)
        for d in _merged(defects):
            start_s, end_s = d.start / rate, d.end / rate
            found.append({"start_s": start_s, "end_s": end_s, "kind": d.kind, "reason": d.reason})
            # A defect overlapping a given gap widens that gap (what detection finds inside the
            # user's gap is the same damage).
            given = [i for i in range(len(gaps_s)) if start_s < spans[i][1] and spans[i][0] < end_s]
            if given:
                i = given[0]
                spans[i] = (min(spans[i][0], start_s), max(spans[i][1], end_s))
                reasons[i] += f"; widened to cover a detected {d.kind}: {d.reason}"
            else:
                spans.append((start_s, end_s))
                kinds.append(d.kind)
                reasons.append(d.reason)
    gaps = plan_gaps(spans, n_frames, rate, context_s, kinds)
    # plan_gaps sorts by start: carry each gap's reason along (spans do not overlap, starts differ)
    by_start = {int(np.floor(a * rate)): why for (a, _), why in zip(spans, reasons, strict=True)}
    return gaps, rate, found, [by_start.get(g.start, "") for g in gaps]


def _merged(defects: list) -> list:
    """Overlapping or touching defects of several channels as one (the first kind kept), sorted."""
    out: list = []
    for d in sorted(defects, key=lambda d: (d.start, d.end)):
        if out and d.start <= out[-1].end:
            out[-1] = type(d)(out[-1].start, max(out[-1].end, d.end), out[-1].kind, out[-1].reason)
        else:
            out.append(d)
    return out


def _read_frames(path: str | os.PathLike, start: int, n: int, dtype: str = "float64") -> np.ndarray:
    """Frames [start, start + n) of every channel: (n, channels)."""
    with _open(path) as f:
        f.seek(start)
        block = f.read(n, dtype=dtype, always_2d=True)
    if block.shape[0] != n:
        raise AudioInputError(f"{path}: the file changed or ended early while it was read")
    return block


def fill_gaps(
    path: str | os.PathLike,
    gaps: list[Gap],
    rate: int,
    settings: FillSettings,
    on_gap: Callable[[str], None] | None = None,
) -> list[np.ndarray]:
    """The filled samples of every gap, (n_gap, channels) each, from its own context only (a gap's
    context never reaches into another gap, see `plan_gaps`)."""
    context = int(round(settings.context_s * rate))
    with _open(path) as f:
        n_frames, channels = f.frames, f.channels
    check_memory(
        f"filling {channels} channel(s)",
        16 * channels * (2 * context + max((g.n_samples for g in gaps), default=0)),
        "fill fewer channels at once",
    )
    filled = []
    for i, gap in enumerate(gaps):
        left_limit = gaps[i - 1].end if i else 0
        right_limit = gaps[i + 1].start if i + 1 < len(gaps) else n_frames
        lo, hi = max(left_limit, gap.start - context), min(right_limit, gap.end + context)
        window = _read_frames(path, lo, hi - lo)
        out = np.empty((gap.n_samples, channels))
        for c in range(channels):
            if on_gap is not None:
                label = f"channel {c}: " if channels > 1 else ""
                on_gap(
                    f"{label}gap {i + 1}/{len(gaps)} {gap.start / rate:.4f}-{gap.end / rate:.4f} s ({gap.kind}, "
                    f"{'both sides' if gap.sides == 'both' else gap.sides + ' side only'})"
                )
            x = window[:, c]
            out[:, c] = fill_one(
                x[: gap.start - lo], x[gap.end - lo :], gap.n_samples, rate, settings, gap.sides
            )
        if not np.all(np.isfinite(out)):
            raise AudioInputError(
                f"{path}: the fill of gap {i + 1} produced non-finite samples; nothing was written "
                "(try --method janssen)"
            )
        filled.append(out)
    return filled


def _as_int32(x: np.ndarray, bits: int) -> np.ndarray:
    """Float samples (full scale 1) as the int32 that libsndfile writes exactly at ``bits`` bits."""
    q = np.clip(np.round(x * 2.0 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return (q.astype(np.int64) << (32 - bits)).astype(np.int32)


def write_filled(
    path: str | os.PathLike,
    out: str | os.PathLike,
    gaps: list[Gap],
    filled: list[np.ndarray],
    container: str,
    subtype: str,
) -> None:
    """Copy ``path`` to ``out`` block by block with each gap replaced, atomically, with sonode's
    marker (WAV). Same integer subtype in and out: copied as int32, bit for bit."""
    with _open(path) as f:
        rate, channels, in_subtype = f.samplerate, f.channels, f.subtype
    integer = subtype in _INT_BITS and in_subtype == subtype
    dtype = "int32" if integer else "float64"
    top = 1.0 - 2.0 ** (1 - _INT_BITS[subtype]) if subtype in _INT_BITS else None
    try:
        with atomic_write(out) as tmp, _open(path) as src:
            with sf.SoundFile(
                tmp, "w", samplerate=rate, channels=channels, subtype=subtype, format=container
            ) as dst:
                pos = 0
                for block in src.blocks(_BLOCK_FRAMES, dtype=dtype, always_2d=True):
                    block = np.array(block)
                    if not integer and top is not None:
                        block = np.clip(
                            block, -1.0, top
                        )  # libsndfile wraps out-of-range floats round
                    for gap, values in zip(gaps, filled, strict=False):
                        a, b = max(gap.start, pos), min(gap.end, pos + block.shape[0])
                        if a < b:
                            part = values[a - gap.start : b - gap.start]
                            if integer:
                                part = _as_int32(part, _INT_BITS[subtype])
                            elif top is not None:
                                part = np.clip(part, -1.0, top)
                            block[a - pos : b - pos] = part
                    dst.write(block)
                    pos += block.shape[0]
            if container in (
                "WAV",
                "WAVEX",
            ):  # sonode's marker: a later run may replace its own output
                append_riff_chunk(tmp, riff_info_chunk(sonode_marker()))
    except (OSError, sf.SoundFileError, ValueError) as err:
        why = "the disk is full" if disk_full(err, out) else "check the folder is writable"
        raise OutputPathError(f"cannot write {out}: {err}; {why} (nothing was written)") from err


def fill_file(
    path: str | os.PathLike,
    out: str | os.PathLike,
    gaps_s: list[tuple[float, float]],
    settings: FillSettings,
    detect: bool = False,
    dry_run: bool = False,
    on_gap: Callable[[str], None] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Fill the gaps of the audio file ``path`` and write ``out`` and its JSON report.

    Args:
        gaps_s: (start_s, end_s) pairs given by the user.
        settings: method, context, budget (see `FillSettings`).
        detect: also fill what `sonode.tasks.detect.detect_defects` finds.
        dry_run: only find and check the gaps; write nothing.
        on_gap: called with a line describing each gap as it is filled.
        force: replace an existing output or report that sonode did not write (never the input).

    Returns:
        The report: input, output, rate, format, subtype, method, and per gap its span, kind, sides.

    Raises:
        ValueError: bad gaps (see `plan_gaps`) or no gap to fill.
        AudioInputError / OutputPathError / LimitError: unreadable input, an output that is the
            input, a FIFO, an existing file sonode did not write (without ``force``), a lossy
            re-encode, an unwritable folder or too little room, a limit exceeded.
    """
    with _open(path) as f:
        info = sf.info(str(path))
        n_values = f.frames * f.channels
    container = subtype = None
    if not dry_run:
        container, subtype = output_format(path, out, info)
        check_fill_outputs(path, out, force, expected_bytes=8 * n_values)
    gaps, rate, found, reasons = find_gaps(path, gaps_s, detect, settings.context_s)
    report: dict[str, Any] = {
        "input": str(path),
        "output": None if dry_run else str(out),
        "sample_rate": rate,
        "format": container,
        "subtype": subtype,
        "input_subtype": info.subtype,
        "method": settings.method,
        "context_s": settings.context_s,
        "budget_s_per_gap": settings.budget_s if settings.method == "sonode_fit" else None,
        "detected": found,
        "gaps": [
            {
                "start_s": g.start / rate,
                "end_s": g.end / rate,
                "samples": g.n_samples,
                "kind": g.kind,
                "sides": g.sides,
                "reason": why,
            }
            for g, why in zip(gaps, reasons, strict=True)
        ],
    }
    if dry_run:
        return report
    if not gaps:
        raise ValueError(
            "no gap to fill: give --gap START END or use --detect (which found nothing)"
        )
    filled = fill_gaps(path, gaps, rate, settings, on_gap)
    check_fill_outputs(path, out, force)  # again: the files may have appeared while filling
    write_filled(path, out, gaps, filled, container, subtype)
    write_json(report_path_for(out), report)  # with sonode's marker: a rerun may replace it
    return report
