"""The output plan: every file a command will write, checked together before any work starts.

One place decides whether an output path may be written, for every command:

- it is not a FIFO, device or socket (opening one could block forever or write to hardware), nor a
  folder;
- it is not any path the command reads (links followed), with or without ``--force``; inputs found
  only later, such as the source clip recorded in a model, are added with `OutputPlan.protect`;
- two outputs of one command are not the same file;
- an existing file is replaced only if sonode wrote it (`sonode.io.fileutil.written_by_sonode`) or
  with ``force``;
- its folder exists or can be created, is a folder, and is writable (a read-only file system is
  found here, not after an hour of fitting);
- the file systems have room for the expected sizes (with a margin).

The writers themselves (`sonode.io.fileutil.atomic_write` and those built on it) write through a
temporary file and a rename, and mark the file as sonode's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from sonode.errors import OutputPathError
from sonode.io.fileutil import same_file, written_by_sonode

#: Free space kept beyond the expected sizes (file system metadata, the temporary file's rename).
FREE_SPACE_MARGIN_BYTES = 1 << 20

PathLike = str | os.PathLike


def special_kind(path: PathLike) -> str | None:
    """ "a FIFO", "a device", "a socket" or "a folder" when ``path`` exists and is one (links
    followed), else None. Never opens the path (opening a FIFO blocks until a writer comes)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


class OutputPlan:
    """The outputs of one command, checked together against its inputs before any work.

    Args:
        inputs: every path the command reads (None entries are skipped).
        force: replace existing files that sonode did not write (never an input).
    """

    def __init__(self, inputs: Iterable[PathLike | None] = (), force: bool = False):
        self.inputs: list[Path] = []
        self.outputs: dict[Path, int] = {}
        self.force = force
        self.protect(*inputs)

    def protect(self, *paths: PathLike | None) -> OutputPlan:
        """Add paths the command reads (e.g. a model's recorded source clip once it is known)."""
        self.inputs += [Path(p) for p in paths if p is not None and str(p) != ""]
        return self

    def add(self, path: PathLike, expected_bytes: float = 0) -> Path:
        """Plan one output of about ``expected_bytes``; returns it as a Path."""
        out = Path(path)
        for other in self.outputs:
            if other == out or same_file(other, out):
                raise OutputPathError(
                    f"two outputs of this command are the same file ({other}, {out}); one would "
                    "replace the other: give them different names"
                )
        self.outputs[out] = int(max(0.0, expected_bytes))
        return out

    def check(self) -> OutputPlan:
        """Check every planned output (see the module docstring). Raises OutputPathError."""
        needed: dict[int, tuple[Path, int]] = {}
        for out, size in self.outputs.items():
            check_output(out, self.inputs, force=self.force)
            folder = existing_folder(out)
            dev = os.stat(folder).st_dev
            previous = needed.get(dev, (folder, 0))[1]
            needed[dev] = (folder, previous + size)
        for folder, size in needed.values():
            if size:
                check_free_space(folder, size)
        return self


def check_output(out: PathLike, inputs: Iterable[PathLike] = (), *, force: bool = False) -> Path:
    """Check one output path (see the module docstring; free space aside). Returns it as a Path."""
    out_path = Path(out)
    kind = special_kind(out_path)
    if kind == "a folder":
        raise OutputPathError(
            f"output {out_path} is a folder; give a file name, e.g. {out_path / 'out.wav'}"
        )
    if kind is not None:
        raise OutputPathError(
            f"output {out_path} is {kind}, not a regular file; sonode writes only regular "
            "files, choose another output path"
        )
    for inp in inputs:
        if same_file(out_path, inp):
            raise OutputPathError(
                f"output {out_path} is the input file {inp}; sonode never overwrites its input "
                "nor any file it reads, not even with --force; choose another output path"
            )
    if not force and out_path.exists() and not written_by_sonode(out_path):
        raise OutputPathError(
            f"refusing to overwrite {out_path}: the file exists and was not written by sonode; "
            "choose another output path, or pass --force to replace it"
        )
    check_folder(out_path)
    return out_path


def existing_folder(out: PathLike) -> Path:
    """The output's folder, or its nearest existing ancestor when the folder is still to be made."""
    folder = Path(out).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folder(out: PathLike) -> None:
    """The folder of ``out`` exists (or can be made: its nearest existing ancestor is a folder) and
    is writable, on a file system mounted read-write."""
    folder = existing_folder(out)
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {out}: {folder} is not a folder")
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only or not os.access(folder, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if read_only else "is not writable by this user"
        raise OutputPathError(
            f"cannot write {out}: the folder {folder} {why}; choose another output folder"
        )


def check_free_space(folder: PathLike, n_bytes: int) -> None:
    """The file system of ``folder`` has ``n_bytes`` (+ a margin) free for this user."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < n_bytes + FREE_SPACE_MARGIN_BYTES:
        raise OutputPathError(
            f"not enough free space in {folder}: the outputs need about {_mib(n_bytes)}, "
            f"{_mib(free)} are free; free some space or choose another output folder"
        )


def disk_full(err: BaseException, out: PathLike) -> bool:
    """Whether a failed write to ``out`` was for lack of room: an OSError saying so, or (libsndfile
    reports only "System error") less than FREE_SPACE_MARGIN_BYTES left in its folder."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        st = os.statvfs(existing_folder(out))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FREE_SPACE_MARGIN_BYTES


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"
