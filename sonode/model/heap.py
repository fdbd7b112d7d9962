"""Keep freed memory for the next step instead of returning it to the system (glibc only).

A training step allocates and frees the same (window × segments × modes) complex arrays every
time, 55 MB each on the README quickstart's clip. glibc serves blocks over its mmap threshold
(at most 32 MiB) with a fresh mmap and unmaps them on free, so every step page-faults and zeroes
each of them again: measured on the quickstart's guitar, 1 thread, side by side, a step took
0.435 CPU s with them mapped and freed and 0.373 with the heap kept (forward 0.20 → 0.17,
backward 0.235 → 0.205). `retained_heap` serves them from the heap and keeps up to
RETAINED_BYTES of freed memory at its top for reuse; outside it the defaults come back and the
retained memory is returned (`malloc_trim`), also when the work raises. Elsewhere than glibc it
does nothing. The settings are the whole process's (other threads allocate so meanwhile), and
glibc cannot report the ones before: a program's own are not restored (docs/design.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import TypeVar

# mallopt's parameters (malloc.h) and glibc's defaults for them
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: Freed memory kept at the heap's top: a step's temporaries at the largest run of segments
#: (`sonode.model.objective.STEP_RUN_BYTES`, 192 MiB) and the graph-free reconstruction's
#: (256 segments, ~290 MB), so that neither is faulted in again on the next use.
RETAINED_BYTES = 512 << 20

F = TypeVar("F", bound=Callable)


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


def retained_heap(work: F) -> F:
    """Decorator: ``work`` runs with large blocks served from a heap that keeps RETAINED_BYTES of
    freed memory (see the module's docstring); nested uses keep it until the outermost ends."""

    @functools.wraps(work)
    def run(*args, **kwargs):
        if _LIBC is None or _State.depth:
            return work(*args, **kwargs)
        _State.depth += 1
        _retain()
        try:
            return work(*args, **kwargs)
        finally:
            _State.depth -= 1
            _release()

    return run  # type: ignore[return-value]


def released_heap(work: F) -> F:
    """Decorator: inside a `retained_heap`, ``work`` runs with glibc's defaults, the retained
    memory returned first, and the heap is kept again after it; elsewhere it just runs ``work``.

    For work whose blocks are not a training step's: the continuation's training grows its graphs
    step by step (the horizon's curriculum), so a kept heap without mmap only fragments and grows:
    a 1.5 s 48 kHz fit peaked at 1783 MiB in it, 1048 MiB with glibc's defaults there, at a cost
    of ~45 % more CPU in that phase (blocks mapped afresh each step; docs/memory.md)."""

    @functools.wraps(work)
    def run(*args, **kwargs):
        if _LIBC is None or not _State.depth:
            return work(*args, **kwargs)
        _release()
        try:
            return work(*args, **kwargs)
        finally:
            _retain()

    return run  # type: ignore[return-value]


def _retain() -> None:
    """Large blocks from the heap, up to RETAINED_BYTES of freed memory kept at its top."""
    _LIBC.mallopt(M_MMAP_MAX, 0)
    _LIBC.mallopt(M_TRIM_THRESHOLD, RETAINED_BYTES)


def _release() -> None:
    """glibc's defaults back, and the freed memory kept returned to the system."""
    _LIBC.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
    _LIBC.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
    if hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


class _State:
    depth = 0
