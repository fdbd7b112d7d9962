"""`sonode fill` on files: read every channel, find or check the gaps, fill, write, report.

The output keeps the input's rate, channel count, format and subtype; only gap samples change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf

from sonode.io.clip import read_clip
from sonode.io.wav import check_output_path
from sonode.errors import AudioInputError, OutputPathError
from sonode.io.fileutil import append_riff_chunk, atomic_write, riff_info_chunk, sonode_marker, write_json
from sonode.tasks.fill import FillSettings, Gap, fill_channel, plan_gaps

# Long recordings are fine here: only the context of each gap is fitted.
MAX_FILL_DURATION_S = 3600.0


def report_path_for(out: str | os.PathLike) -> Path:
    """The JSON report written next to the output: OUT.wav → OUT.fill.json."""
    return Path(out).with_suffix(".fill.json")


def check_fill_outputs(path: str | os.PathLike, out: str | os.PathLike, force: bool = False) -> None:
    """Refuse, before any work, an output or report path that is the input, or an existing file
    sonode did not write (unless ``force``), as `sonode.batch.jobs.check_fit_outputs` does for a fit.

    Raises:
        OutputPathError: with the path and what to do instead.
    """
    for target in (out, report_path_for(out)):
        check_output_path(target, [path], force=force)


def find_gaps(path: str | os.PathLike, gaps_s: list[tuple[float, float]], detect: bool,
              context_s: float) -> tuple[list[Gap], int, list[dict[str, Any]]]:
    """The gaps to fill in ``path``: given ones plus, with ``detect``, those found in the channel mix.

    Returns:
        (validated gaps, sample rate, detection records as JSON-ready dicts).
    """
    clip = read_clip(path, max_duration_s=MAX_FILL_DURATION_S)  # validates the file; mono mix
    rate = clip.sample_rate
    found: list[dict[str, Any]] = []
    kinds = ["given"] * len(gaps_s)
    spans = list(gaps_s)
    if detect:
        from sonode.tasks.detect import detect_defects

        for d in detect_defects(_all_channels(path)[0], rate):
            start_s, end_s = d.start / rate, d.end / rate
            found.append({"start_s": start_s, "end_s": end_s, "kind": d.kind})
            # A defect overlapping a given gap widens that gap (the user's gaps may not overlap,
            # but what detection finds inside them is the same damage).
            given = [i for i in range(len(gaps_s)) if start_s < spans[i][1] and spans[i][0] < end_s]
            if given:
                i = given[0]
                spans[i] = (min(spans[i][0], start_s), max(spans[i][1], end_s))
            else:
                spans.append((start_s, end_s))
                kinds.append(d.kind)
    return plan_gaps(spans, clip.n_samples, rate, context_s, kinds), rate, found


def _all_channels(path: str | os.PathLike) -> tuple[np.ndarray, int, str, str]:
    """(samples (n, channels) float64, rate, format, subtype) of the whole file."""
    info = sf.info(str(path))
    samples, rate = sf.read(str(path), dtype="float64", always_2d=True)
    return samples, rate, info.format, info.subtype


def fill_file(path: str | os.PathLike, out: str | os.PathLike, gaps_s: list[tuple[float, float]],
              settings: FillSettings, detect: bool = False, dry_run: bool = False,
              on_gap: Callable[[str], None] | None = None, force: bool = False) -> dict[str, Any]:
    """Fill the gaps of the audio file ``path`` and write ``out`` and its JSON report.

    Args:
        gaps_s: (start_s, end_s) pairs given by the user.
        settings: method, context, budget (see `FillSettings`).
        detect: also fill what `sonode.tasks.detect.detect_defects` finds.
        dry_run: only find and check the gaps; write nothing.
        on_gap: called with a line describing each gap as it is filled.
        force: replace an existing output or report that sonode did not write (never the input).

    Returns:
        The report: input, output, rate, channels, method, and per gap its span, kind, sides used.

    Raises:
        ValueError: bad gaps (see `plan_gaps`) or no gap to fill.
        AudioInputError / OutputPathError: unreadable input, output = input, an existing output or
            report sonode did not write (without ``force``), unwritable output.
    """
    if not dry_run:
        check_fill_outputs(path, out, force)
    gaps, rate, found = find_gaps(path, gaps_s, detect, settings.context_s)
    report: dict[str, Any] = {
        "input": str(path), "output": None if dry_run else str(out), "sample_rate": rate,
        "method": settings.method, "context_s": settings.context_s,
        "budget_s_per_gap": settings.budget_s if settings.method == "sonode_fit" else None,
        "detected": found,
        "gaps": [{"start_s": g.start / rate, "end_s": g.end / rate, "samples": g.n_samples, "kind": g.kind,
                  "sides": g.sides} for g in gaps],
    }
    if dry_run:
        return report
    if not gaps:
        raise ValueError("no gap to fill: give --gap START END or use --detect (which found nothing)")
    samples, file_rate, fmt, subtype = _all_channels(path)
    if file_rate != rate:
        raise AudioInputError(f"{path}: the file changed while it was read")
    filled = np.empty_like(samples)
    for c in range(samples.shape[1]):
        label = f"channel {c}: " if samples.shape[1] > 1 else ""
        filled[:, c] = fill_channel(samples[:, c], rate, gaps, settings, on_gap=None if on_gap is None else (
            lambda i, g: on_gap(f"{label}gap {i + 1}/{len(gaps)} {g.start / rate:.4f}-{g.end / rate:.4f} s "
                                f"({g.kind}, {'both sides' if g.sides == 'both' else g.sides + ' side only'})")))
    if not np.all(np.isfinite(filled)):
        raise RuntimeError("the fill produced non-finite samples; nothing was written (try --method janssen)")
    if subtype.startswith("PCM") or subtype in ("ULAW", "ALAW"):
        filled = np.clip(filled, -1.0, 1.0)  # integer formats: keep the fill inside full scale
    check_fill_outputs(path, out, force)  # again: the files may have appeared while filling
    try:
        with atomic_write(out) as tmp:
            sf.write(tmp, filled, rate, subtype=subtype, format=fmt)
            if fmt in ("WAV", "WAVEX"):  # sonode's marker: a later run may replace its own output
                append_riff_chunk(tmp, riff_info_chunk(sonode_marker()))
    except (OSError, sf.SoundFileError) as err:
        raise OutputPathError(f"cannot write {out}: {err}") from err
    write_json(report_path_for(out), report)  # with sonode's marker: a rerun may replace it
    return report
