"""File output: every file sonode writes appears whole or not at all, and is recognisable as sonode's."""

from __future__ import annotations

import contextlib
import json
import os
import pickletools
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_unfinished = [0]  # work under way that an interruption must clean up (`unfinished`)


@contextlib.contextmanager
def unfinished() -> Iterator[None]:
    """Mark work that an interruption must let clean up after itself (an atomic write's temporary
    file, a batch's worker processes): the signal handlers that cannot raise at once (the main
    thread is inside an import) end the process at once only when none is under way
    (`sonode.cli.common.raise_interrupt`), and otherwise raise once the import is done."""
    _unfinished[0] += 1
    try:
        yield
    finally:
        _unfinished[0] -= 1


def nothing_unfinished() -> bool:
    """No `unfinished` work is under way: ending the process now leaves nothing half done."""
    return _unfinished[0] == 0


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination folder so that the final ``os.replace`` is a
    same-filesystem rename, which POSIX makes atomic: a crash or Ctrl-C mid-write leaves the old
    file (or nothing) at ``path``, never a partial one. Parent folders are created.

    Args:
        path: final destination.
        suffix: suffix of the temporary name (default: ``path``'s own suffix, so that libraries
            which infer the format from the extension, e.g. soundfile or matplotlib, still work).

    Yields:
        The temporary path to write to. It is removed if the block raises.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with unfinished():
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.name}.",
            suffix=final.suffix if suffix is None else suffix,
            dir=final.parent,
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            # mkstemp creates 0600; give the file the permissions an ordinary open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_json(path: str | os.PathLike, payload: dict) -> None:
    """Write a JSON object atomically with sonode's marker ("written_by": "sonode <version>")."""
    with atomic_write(path) as tmp:
        tmp.write_text(
            json.dumps({**payload, "written_by": sonode_marker()}, indent=2, default=str) + "\n"
        )


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (following links); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


# --- recognising sonode's own outputs -------------------------------------------------------
#
# sonode refuses to replace an existing file unless it wrote that file itself (or --force is
# given). Its outputs are recognised by their *content*, never by their name, so a user's
# recording called "x.recon.wav" is still protected:
#   WAV      a RIFF LIST/INFO chunk whose ISFT (software) text starts with "sonode "
#   FLAC     a Vorbis comment "software=sonode ..." (libsndfile's software string)
#   OGG      a Vorbis (or Opus) comment "SOFTWARE=sonode ..." (libsndfile's software string)
#   model    a torch zip archive whose payload has "format": "sonode" (models and checkpoints)
#   PNG      a tEXt chunk "Software" starting with "sonode "
#   JSON     a top-level object with "written_by" starting with "sonode "
#   CSV      the exact header row of the batch summary (SUMMARY_CSV_COLUMNS)
#   Markdown a first line "<!-- written by sonode ... -->"

MARKER_PREFIX = "sonode "
#: Columns of the batch summary CSV (sonode.batch.jobs); its header row is the CSV's marker.
SUMMARY_CSV_COLUMNS = (
    "clip",
    "status",
    "snr_db",
    "epochs",
    "wall_time_s",
    "resumed",
    "model",
    "recon",
    "report",
    "curve",
    "error",
)
MARKDOWN_MARKER_START = "<!-- written by sonode"
# Marker checks read at most this much of a file (a JSON report or a pickle header is far smaller).
_MAX_MARKER_READ_BYTES = 64 << 20


def sonode_marker() -> str:
    """The text sonode writes into its outputs: "sonode <version>"."""
    from sonode._version import __version__

    return MARKER_PREFIX + __version__


def markdown_marker() -> str:
    """First line of the Markdown files sonode writes (an HTML comment: invisible when rendered)."""
    return f"{MARKDOWN_MARKER_START} {sonode_marker()[len(MARKER_PREFIX) :]} -->\n"


def riff_info_chunk(software: str) -> bytes:
    """A RIFF ``LIST/INFO`` chunk holding ``software`` as its ISFT text (NUL-terminated, even size)."""
    text = software.encode("utf-8") + b"\0"
    text += b"\0" * (len(text) % 2)
    sub = b"ISFT" + struct.pack("<I", len(text)) + text
    return b"LIST" + struct.pack("<I", 4 + len(sub)) + b"INFO" + sub


def append_riff_chunk(path: str | os.PathLike, chunk: bytes) -> None:
    """Append a chunk to a RIFF/WAVE file in place and fix the RIFF size (readers skip unknown chunks).

    Raises:
        ValueError: ``path`` is not a RIFF/WAVE file or would exceed RIFF's 4 GiB limit.
    """
    with open(path, "r+b") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file")
        end = f.seek(0, os.SEEK_END)
        pad = b"\0" * (end % 2)  # chunks start on even offsets
        riff_size = end + len(pad) + len(chunk) - 8
        if riff_size >= 1 << 32:
            raise ValueError(f"{path} would exceed the 4 GiB RIFF limit")
        f.write(pad + chunk)
        f.seek(4)
        f.write(struct.pack("<I", riff_size))


def written_by_sonode(path: str | os.PathLike) -> bool:
    """True if ``path`` is a file carrying sonode's output marker (see the table above).

    Never raises: a missing, unreadable or foreign file is simply not sonode's. Only regular files
    are opened (a FIFO would block the read forever, a device is never sonode's).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(0)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _riff_software(f).startswith(MARKER_PREFIX)
            if head[:4] == b"fLaC":
                return _flac_software(f).startswith(MARKER_PREFIX)
            if head[:4] == b"OggS":
                return _ogg_software(f).startswith(MARKER_PREFIX)
            if head[:8] == b"\x89PNG\r\n\x1a\n":
                return _png_software(f).startswith(MARKER_PREFIX)
            if head[:4] == b"PK\x03\x04":
                return _is_sonode_archive(path)
            if head.lstrip()[:1] == b"{":
                data = json.loads(f.read(_MAX_MARKER_READ_BYTES))
                return isinstance(data, dict) and str(data.get("written_by", "")).startswith(
                    MARKER_PREFIX
                )
            first_line = f.readline(4096).decode("utf-8", "replace").rstrip("\r\n")
            return first_line.startswith(MARKDOWN_MARKER_START) or first_line == ",".join(
                SUMMARY_CSV_COLUMNS
            )
    except (OSError, ValueError, struct.error, zipfile.BadZipFile):
        return False


def _riff_software(f: BinaryIO) -> str:
    f.seek(12)
    for _ in range(1000):  # a WAV has a handful of chunks; stop on a damaged one
        header = f.read(8)
        if len(header) < 8:
            break
        chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
        start = f.tell()
        if chunk_id == b"LIST" and f.read(4) == b"INFO":
            end = start + size
            while f.tell() + 8 <= end:
                sub_id, sub_size = f.read(4), struct.unpack("<I", f.read(4))[0]
                value = f.read(sub_size)
                if sub_id == b"ISFT":
                    return value.split(b"\0", 1)[0].decode("utf-8", "replace")
                f.read(sub_size % 2)
        f.seek(start + size + size % 2)
    return ""


def _flac_software(f: BinaryIO) -> str:
    """The "software=" Vorbis comment of a FLAC stream (metadata blocks follow the 4-byte magic)."""
    f.seek(4)
    for _ in range(128):  # FLAC has a handful of metadata blocks; stop on a damaged one
        header = f.read(4)
        if len(header) < 4:
            return ""
        last, kind, size = header[0] & 0x80, header[0] & 0x7F, int.from_bytes(header[1:], "big")
        if kind == 4:  # VORBIS_COMMENT
            return _vorbis_comment_software(f.read(size), 0)
        f.seek(size, os.SEEK_CUR)
        if last:
            return ""
    return ""


# An Ogg stream's comment header (Vorbis "\x03vorbis", Opus "OpusTags") sits on its second page,
# within the first few KiB unless it carries cover art: only this much is searched.
_OGG_COMMENT_SEARCH_BYTES = 1 << 16


def _ogg_software(f: BinaryIO) -> str:
    """The "SOFTWARE=" comment of an Ogg Vorbis/Opus stream (what libsndfile writes for
    ``SoundFile.software``), or ""."""
    f.seek(0)
    data = f.read(_OGG_COMMENT_SEARCH_BYTES)
    for magic in (b"\x03vorbis", b"OpusTags"):
        offset = data.find(magic)
        if offset >= 0:
            return _vorbis_comment_software(data, offset + len(magic))
    return ""


def _vorbis_comment_software(data: bytes, offset: int) -> str:
    """The "software=" entry of a Vorbis comment block starting at ``offset`` of ``data`` (FLAC and
    Ogg share the layout: little-endian lengths, the vendor string, then "KEY=value" entries), or
    "". At most 1000 entries are read: a damaged count cannot make it loop for long."""
    vendor = struct.unpack_from("<I", data, offset)[0]
    offset += 4 + vendor
    count = struct.unpack_from("<I", data, offset)[0]
    offset += 4
    for _ in range(min(count, 1000)):
        length = struct.unpack_from("<I", data, offset)[0]
        key, _, value = data[offset + 4 : offset + 4 + length].partition(b"=")
        if key.lower() == b"software":
            return value.decode("utf-8", "replace")
        offset += 4 + length
    return ""


def _png_software(f: BinaryIO) -> str:
    f.seek(8)
    while True:
        header = f.read(8)
        if len(header) < 8:
            return ""
        size, kind = struct.unpack(">I", header[:4])[0], header[4:]
        if kind in (b"IDAT", b"IEND"):  # matplotlib writes its text chunks before the image data
            return ""
        data = f.read(size)
        f.read(4)  # CRC
        if kind == b"tEXt":
            key, _, value = data.partition(b"\0")
            if key == b"Software":
                return value.decode("latin-1")


def _is_sonode_archive(path: str | os.PathLike) -> bool:
    """A torch archive of sonode.io.model_file: its pickle holds the key "format" then "sonode".

    The pickle is only disassembled (pickletools), never unpickled, so nothing in it can run.
    """
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1 or archive.getinfo(names[0]).file_size > _MAX_MARKER_READ_BYTES:
            return False
        strings = [
            arg for op, arg, _ in pickletools.genops(archive.read(names[0])) if isinstance(arg, str)
        ]
    return any(a == "format" and b == "sonode" for a, b in zip(strings, strings[1:], strict=False))
