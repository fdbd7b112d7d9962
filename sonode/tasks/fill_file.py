"""`sonode fill` on files: check the outputs, scan the file, fill each gap, copy the rest block by block.

The whole file is never loaded: it is scanned block by block (finite, not silent), each gap is
filled from its context alone, and the output is the input copied block by block with the gaps
replaced. Memory is O(block + threads × context), whatever the file's length (--detect too: it
reads one channel at a time in blocks of `sonode.tasks.detect_blocks.DETECT_BLOCK_S`).

The output keeps the input's rate and channels. Its container comes from the output's extension
(.wav, .flac, .ogg); its subtype is the input's when that is lossless, and then every sample
outside the gaps is copied bit for bit. A lossy input (Vorbis, ADPCM, mu-law...) is decoded once and
written losslessly (16-bit PCM or 32-bit float) into a WAV or FLAC output; re-encoding it lossily
(an .ogg output, or a lossy subtype) would change the whole file and is refused.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sonode.errors import AudioInputError, OutputPathError
from sonode.io.fileutil import (
    append_riff_chunk,
    atomic_write,
    riff_info_chunk,
    sonode_marker,
    write_json,
)
from sonode.io.outputs import OutputPlan, disk_full
from sonode.limits import check_memory
from sonode.tasks.fill import FillSettings, Gap, fill_one
from sonode.tasks.fill_scan import (
    _BLOCK_FRAMES,
    _open,
    _read_frames,
    find_gaps,
)

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


def output_bytes(subtype: str, n_values: int) -> int:
    """Bytes of an output of ``n_values`` samples (frames x channels) stored as ``subtype``, for the
    free-space check: the sample width (1 to 8 B) times the values plus a header's 64 KiB. An upper
    bound for FLAC, which compresses (before #30 closed, 8 B per value: 4x a 16-bit output)."""
    width = _INT_BITS[subtype] // 8 if subtype in _INT_BITS else (8 if subtype == "DOUBLE" else 4)
    return width * n_values + (64 << 10)


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


def fill_gaps(
    path: str | os.PathLike,
    gaps: list[Gap],
    rate: int,
    settings: FillSettings,
    on_gap: Callable[[str], None] | None = None,
    channels_to_fill: list[list[int]] | None = None,
) -> list[np.ndarray]:
    """The filled samples of every gap, (n_gap, channels) each, from its own context only (a gap's
    context never reaches into another gap, see `plan_gaps`). ``channels_to_fill``: per gap, the
    channels to fill (default all); the others keep their own samples (a click found in one
    channel leaves the other as it was)."""
    context = int(round(settings.context_s * rate))
    with _open(path) as f:
        n_frames, channels = f.frames, f.channels
    tasks = len(gaps) * channels if channels_to_fill is None else sum(map(len, channels_to_fill))
    workers = _fill_workers(settings, tasks)
    check_memory(  # up to 2 × workers + 1 gaps' windows are held while their fills run
        f"filling {channels} channel(s), {workers} at once",
        16
        * channels
        * (2 * context + max((g.n_samples for g in gaps), default=0))
        * (2 * workers + 1),
        "fill fewer channels at once (--threads 1)",
    )
    filled: list[np.ndarray] = []
    pending: deque = deque()  # (gap index, its output, [(channel, future of its fill)])

    def collect() -> None:  # the oldest pending gap: its fills in place, then checked
        i, out, futures = pending.popleft()
        for c, future in futures:
            out[:, c] = future.result()
        if not np.all(np.isfinite(out)):
            raise AudioInputError(
                f"{path}: the fill of gap {i + 1} produced non-finite samples; nothing was written "
                "(try --method janssen)"
            )

    with _FillPool(workers) as pool:
        for i, gap in enumerate(gaps):
            left_limit = gaps[i - 1].end if i else 0
            right_limit = gaps[i + 1].start if i + 1 < len(gaps) else n_frames
            lo, hi = max(left_limit, gap.start - context), min(right_limit, gap.end + context)
            window = _read_frames(path, lo, hi - lo)
            out = np.empty((gap.n_samples, channels))
            futures = []
            for c in range(channels):
                x = window[:, c]
                if channels_to_fill is not None and c not in channels_to_fill[i]:
                    out[:, c] = x[gap.start - lo : gap.end - lo]  # written back as read: unchanged
                    continue
                if on_gap is not None:
                    label = f"channel {c}: " if channels > 1 else ""
                    on_gap(
                        f"{label}gap {i + 1}/{len(gaps)} {gap.start / rate:.4f}-{gap.end / rate:.4f} s ({gap.kind}, "
                        f"{'both sides' if gap.sides == 'both' else gap.sides + ' side only'})"
                    )
                left, right = x[: gap.start - lo], x[gap.end - lo :]
                futures.append(
                    (
                        c,
                        pool.submit(
                            fill_one, left, right, gap.n_samples, rate, settings, gap.sides
                        ),
                    )
                )
            filled.append(out)
            pending.append((i, out, futures))
            if len(pending) > 2 * workers:  # bounded memory: a few gaps' contexts at a time
                collect()
        while pending:
            collect()
    return filled


def _fill_workers(settings: FillSettings, tasks: int) -> int:
    """Gap-channels filled at once: torch's thread count (the cores, or --threads) for the
    classical and validated fills, which are pure functions of their context; 1 for sonode_fit
    (its training uses torch's threads itself)."""
    import torch

    if settings.method == "sonode_fit":
        return 1
    return max(1, min(torch.get_num_threads(), tasks))


class _FillPool:
    """A thread pool of ``workers`` with torch on one thread each while it runs (restored after);
    with one worker, the fills run in the calling thread, as before. The fills' heavy parts
    (Cholesky, FFT, large numpy loops) release the GIL, so gap-channels run in parallel."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def __enter__(self) -> _FillPool:
        import torch

        self.threads = torch.get_num_threads()
        self.executor = None
        if self.workers > 1:
            torch.set_num_threads(1)
            self.executor = ThreadPoolExecutor(self.workers)
        return self

    def submit(self, f: Callable, *args: Any) -> Future:
        if self.executor is not None:
            return self.executor.submit(f, *args)
        future: Future = Future()
        future.set_result(f(*args))  # an exception propagates here, as in the serial loop
        return future

    def __exit__(self, *exc: object) -> None:
        import torch

        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(self.threads)


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
    marker (a RIFF INFO chunk in WAV, a "software" comment in FLAC and OGG: see
    `sonode.io.fileutil.written_by_sonode`). Same integer subtype in and out: copied as int32, bit
    for bit."""
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
                if container not in ("WAV", "WAVEX"):  # FLAC/OGG: a software comment (see below)
                    dst.software = sonode_marker()
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
        check_fill_outputs(path, out, force, expected_bytes=output_bytes(subtype, n_values))
    gaps, rate, found, notes = find_gaps(path, gaps_s, detect, settings.context_s)
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
                "channels": note["channels"],
                "reason": note["reason"],
            }
            for g, note in zip(gaps, notes, strict=True)
        ],
    }
    if dry_run:
        return report
    if not gaps:
        raise ValueError(
            "no gap to fill: give --gap START END or use --detect (which found nothing)"
        )
    filled = fill_gaps(path, gaps, rate, settings, on_gap, [n["channels"] for n in notes])
    check_fill_outputs(path, out, force)  # again: the files may have appeared while filling
    write_filled(path, out, gaps, filled, container, subtype)
    write_json(report_path_for(out), report)  # with sonode's marker: a rerun may replace it
    return report
