"""The media of a listening report: audio excerpts (FLAC or 16-bit WAV) and pictures, inside one folder.

Every file goes to ``<folder>/media/`` (full-length files of trimmed versions to ``media/full/``),
written atomically with sonode's marker, so the page (`sonode.evaluation.report_page`) refers only
to files inside its own folder and a rerun may replace them. Versions that are compared by ear
share one time span (the excerpt), so the A/B switch can keep the playback position.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonode.io.fileutil import written_by_sonode
from sonode.io.wav import check_output_path, write_flac, write_wav

MEDIA_DIR = "media"
AUDIO_FORMATS = ("flac", "wav")
#: Versions longer than this are heard as an excerpt of this length (the full file is linked).
DEFAULT_EXCERPT_S = 4.0
# Peaks above full scale (a diverging baseline) are scaled into 16-bit range rather than clipped;
# the loudness matching below works on what is written, so the comparison stays fair.
_PEAK = 0.99
#: Figures closer than this count as a tie in the numbers table (it shows two decimals).
TIE = 0.005
#: Waveform margin shown on each side of a gap, and loop margin around it (seconds).
GAP_MARGIN_S = 0.02
LOOP_MARGIN_S = 0.15
#: Line colours of the candidates in order, as `sonode.plot.panels` gives them (the truth is black).
LINE_COLORS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple")


@dataclass
class Version:
    """One thing to listen to: a label, its role ("truth", "input", "sonode", "baseline"), samples (n,)."""

    label: str
    role: str
    samples: np.ndarray
    note: str = ""


def safe_name(text: str) -> str:
    """A file-name fragment: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def loudest_span(x: np.ndarray, n_excerpt: int) -> tuple[int, int]:
    """[start, end) of the ``n_excerpt`` samples of ``x`` with the most energy (whole x if shorter)."""
    if x.size <= n_excerpt:
        return 0, x.size
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(x, dtype=np.float64) ** 2)])
    window = energy[n_excerpt:] - energy[:-n_excerpt]
    start = int(np.argmax(window[:: max(1, n_excerpt // 50)]) * max(1, n_excerpt // 50))
    return start, start + n_excerpt


def matched_gains(signals: Iterable[np.ndarray]) -> list[float]:
    """Playback gains (≤ 1) that give every signal the RMS of the quietest sounding one.

    A silent signal keeps gain 1. Applied as the audio element's volume, which cannot exceed 1,
    hence matching down to the quietest rather than up to the loudest.
    """
    rms = [float(np.sqrt(np.mean(np.square(s)))) if np.size(s) else 0.0 for s in signals]
    sounding = [r for r in rms if r > 1e-9]
    floor = min(sounding) if sounding else 0.0
    return [round(floor / r, 4) if r > 1e-9 else 1.0 for r in rms]


@dataclass
class MediaWriter:
    """Writes a report's media below ``folder`` and remembers what it wrote.

    Args:
        folder: the report folder (DIR of `sonode report -o DIR`).
        audio_format: "flac" (16-bit) or "wav" (16-bit PCM), for browsers without FLAC.
        excerpt_s: longest version heard whole; longer ones become excerpts plus a linked full file.
        protect: input files that must never be written.
        force: replace existing files sonode did not write.
    """

    folder: Path
    audio_format: str = "flac"
    excerpt_s: float = DEFAULT_EXCERPT_S
    protect: tuple[str, ...] = ()
    force: bool = False
    written: list[Path] = field(default_factory=list)

    def __post_init__(self):
        self.folder = Path(self.folder)
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(
                f"audio format must be one of {', '.join(AUDIO_FORMATS)}, got {self.audio_format!r}"
            )
        if not self.excerpt_s > 0:
            raise ValueError(f"excerpt length must be > 0 s, got {self.excerpt_s}")

    def path(self, name: str) -> Path:
        """Where media file ``name`` goes, checked (an existing foreign file needs ``force``)."""
        out = self.folder / MEDIA_DIR / name
        check_output_path(out, self.protect, force=self.force)
        return out

    def relative(self, path: Path) -> str:
        """``path`` as the page refers to it: relative to the folder, with forward slashes."""
        return path.relative_to(self.folder).as_posix()

    def audio(self, name: str, samples: np.ndarray, rate: int, subfolder: str = "") -> str:
        """Write mono ``samples`` (n,) at ``rate`` Hz as media/[subfolder/]<name>.<ext>; returns its relative path."""
        x = np.asarray(samples, dtype=np.float64)
        x = np.where(np.isfinite(x), x, 0.0)
        peak = float(np.max(np.abs(x), initial=0.0))
        if peak > 1.0:
            x = x * (_PEAK / peak)
        out = self.path(
            f"{subfolder + '/' if subfolder else ''}{safe_name(name)}.{self.audio_format}"
        )
        if self.audio_format == "flac":
            write_flac(out, x, rate, protect=self.protect, force=self.force)
        else:
            write_wav(out, x, rate, subtype="PCM_16", protect=self.protect, force=self.force)
        self.written.append(out)
        return self.relative(out)

    def versions(
        self, stem: str, versions: list[Version], rate: int, span: tuple[int, int] | None = None
    ) -> tuple[list[dict[str, Any]], float]:
        """Write versions that are compared by ear; all are cut to one span so positions match.

        Args:
            stem: file-name prefix, e.g. "guitar.upsampling".
            versions: equal-length signals at ``rate``.
            span: [start, end) samples to hear; default: all of it, or the loudest
                ``excerpt_s`` of the first version when longer (then full files are linked).

        Returns:
            (one dict per version for the page: label, role, note, src, full (or None), gain;
            the excerpt's start in seconds of the versions' own time).
        """
        n = min(v.samples.size for v in versions)
        if span is None:
            span = loudest_span(versions[0].samples[:n], int(round(self.excerpt_s * rate)))
        start, end = span
        trimmed = (start, end) != (0, n)
        cut = [np.asarray(v.samples[start:end], dtype=np.float64) for v in versions]
        gains = matched_gains(cut)
        entries = []
        for version, samples, gain in zip(versions, cut, gains, strict=False):
            name = f"{stem}.{safe_name(version.label)}"
            src = self.audio(name, samples, rate)
            full = (
                self.audio(name, version.samples[:n], rate, subfolder="full") if trimmed else None
            )
            entries.append(
                {
                    "label": version.label,
                    "role": version.role,
                    "note": version.note,
                    "src": src,
                    "full": full,
                    "gain": gain,
                    "duration_s": samples.size / rate,
                }
            )
        return entries, start / rate

    def picture(self, name: str) -> Path:
        """A checked path media/<name>.png for a plotting function to write; recorded as written."""
        out = self.path(f"{safe_name(name)}.png")
        self.written.append(out)
        return out


def figure_entry(writer: MediaWriter, path: Path, alt: str, caption: str = "") -> dict[str, Any]:
    """A picture for the page: its relative path, size in pixels (for layout), alternative text, caption."""
    with open(path, "rb") as f:  # a PNG's IHDR chunk: width and height, big-endian, at bytes 16..24
        width, height = struct.unpack(">II", f.read(24)[16:24])
    return {
        "src": writer.relative(path),
        "alt": alt,
        "caption": caption,
        "width": width,
        "height": height,
    }


def saved_figure(
    writer: MediaWriter, figure, name: str, alt: str, caption: str = ""
) -> dict[str, Any]:
    """Save a matplotlib ``figure`` as media/<name>.png and return its `figure_entry`."""
    from sonode.plot.panels import save_figure

    path = writer.picture(name)
    save_figure(figure, path)
    return figure_entry(writer, path, alt, caption)


def check_report_folder(
    folder: str | os.PathLike, inputs: Iterable[str | os.PathLike], force: bool
) -> Path:
    """Refuse, before any work, a report folder whose index.html or media files sonode did not write.

    Raises:
        sonode.errors.OutputPathError: a foreign file is in the way (without ``force``), or the
            folder is a file.
    """
    from sonode.errors import OutputPathError

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"report folder {out} is a file; give a folder name (-o DIR)")
    check_output_path(out / "index.html", inputs, force=force)
    media = out / MEDIA_DIR
    if media.is_dir() and not force:
        for path in sorted(media.rglob("*")):
            if path.is_file() and not path.name.startswith(".") and not written_by_sonode(path):
                raise OutputPathError(
                    f"refusing to write into {media}: {path} was not written by sonode; "
                    "choose another folder, or pass --force"
                )
    return out


def numbers_row(
    task: str,
    metric: str,
    sonode: float | None,
    baseline: str,
    value: float | None,
    higher_is_better: bool,
) -> dict[str, Any]:
    """One row of the numbers table. ``win``: True/False, or None when either figure is missing or
    not finite, or when they agree to TIE (a difference the table's two decimals cannot show)."""
    finite = sonode is not None and value is not None and np.isfinite(sonode) and np.isfinite(value)
    decided = finite and abs(sonode - value) >= TIE
    win = (sonode > value if higher_is_better else sonode < value) if decided else None
    return {
        "task": task,
        "metric": metric,
        "sonode": _plain(sonode),
        "baseline": baseline,
        "baseline_value": _plain(value),
        "higher_is_better": higher_is_better,
        "win": win,
    }


def _plain(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
