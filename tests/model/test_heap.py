"""`sonode.model.heap.retained_heap`: inside it a freed large block is reused without being faulted
in again (minor page faults, counted by the kernel: no timing); at its end the memory is returned.

Measured in a fresh process: which arena a thread allocates from depends on what ran before (a
thread that met a locked arena moves to another, whose heaps hold at most 64 MiB)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sonode.model import heap

ROOT = Path(__file__).resolve().parents[2]
BLOCK_BYTES = 64 << 20  # over glibc's largest mmap threshold (32 MiB): mapped afresh by default

CHILD = f"""
import json, resource, torch
from sonode.model import heap

def faults_of_rounds(rounds):
    # minor faults while a block is allocated, written and freed ``rounds`` times
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.ones({BLOCK_BYTES} // 8, dtype=torch.float64)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def reused(settled=3, most_warm=64, rounds=3):
    # torch's allocator, as training's: its 64-byte aligned blocks settle in the heap after a few
    # rounds (6 here, later in CI once, as a fit's temporaries do over its first steps), so warm
    # until ``settled`` rounds in a row fault in no block, then count ``rounds`` more; with the
    # heap not kept every round faults one in and it never settles (numpy asks for huge pages,
    # 512 times fewer faults: hence torch)
    quiet = 0
    for _ in range(most_warm):
        quiet = quiet + 1 if faults_of_rounds(1) < {BLOCK_BYTES} // 4096 // 10 else 0
        if quiet == settled:
            return faults_of_rounds(rounds)
    return {BLOCK_BYTES} // 4096 * rounds  # never settled: as many faults as mapping afresh

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

def kept():
    return reused(), resident()  # the faults, and what is resident with the freed block kept

inside, held = heap.retained_heap(kept)()
print(json.dumps({{"inside": inside, "returned": held - resident(), "depth": heap._State.depth}}))
"""


@pytest.mark.skipif(heap._LIBC is None, reason="glibc's mallopt is not available")
def test_a_freed_block_is_reused_inside_and_returned_outside():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    faults = json.loads(done.stdout.strip().splitlines()[-1])
    pages = BLOCK_BYTES // resource.getpagesize()
    assert faults["inside"] < pages // 10, faults  # served from the kept heap: no new pages
    assert faults["returned"] > BLOCK_BYTES // 2, faults  # given back to the system at the end
    assert faults["depth"] == 0


def test_nested_uses_keep_the_heap_until_the_outermost_ends():
    seen = []

    @heap.retained_heap
    def inner():
        seen.append(heap._State.depth)

    @heap.retained_heap
    def outer():
        inner()
        seen.append(heap._State.depth)

    outer()
    expected = [] if heap._LIBC is None else [1, 1]
    assert seen == expected and heap._State.depth == 0


class _RecordingLibc:
    """Stands in for glibc: records the mallopt settings in force and the trims."""

    def __init__(self):
        self.settings = {}
        self.trims = 0

    def mallopt(self, parameter, value):
        self.settings[parameter] = value

    def malloc_trim(self, pad):
        self.trims += 1


def test_the_defaults_come_back_and_the_memory_is_returned_when_the_work_raises(monkeypatch):
    libc = _RecordingLibc()
    monkeypatch.setattr(heap, "_LIBC", libc)
    inside = {}

    @heap.retained_heap
    def failing():
        inside.update(libc.settings)
        raise RuntimeError("the fit failed")

    with pytest.raises(RuntimeError, match="the fit failed"):
        failing()
    assert inside == {heap.M_MMAP_MAX: 0, heap.M_TRIM_THRESHOLD: heap.RETAINED_BYTES}
    assert libc.settings == {
        heap.M_MMAP_MAX: heap.DEFAULT_MMAP_MAX,
        heap.M_TRIM_THRESHOLD: heap.DEFAULT_TRIM_THRESHOLD,
    }
    assert libc.trims == 1 and heap._State.depth == 0


RETAINED = {heap.M_MMAP_MAX: 0, heap.M_TRIM_THRESHOLD: heap.RETAINED_BYTES}
DEFAULTS = {
    heap.M_MMAP_MAX: heap.DEFAULT_MMAP_MAX,
    heap.M_TRIM_THRESHOLD: heap.DEFAULT_TRIM_THRESHOLD,
}


def test_released_work_runs_with_the_defaults_and_the_heap_is_kept_again_after_it(monkeypatch):
    libc = _RecordingLibc()
    monkeypatch.setattr(heap, "_LIBC", libc)
    seen = {}

    @heap.released_heap
    def released():
        seen["inside"], seen["trims"] = dict(libc.settings), libc.trims

    @heap.retained_heap
    def fit():
        released()
        seen["after"] = dict(libc.settings)

    fit()
    assert seen == {"inside": DEFAULTS, "trims": 1, "after": RETAINED}, seen
    assert libc.settings == DEFAULTS and libc.trims == 2 and heap._State.depth == 0
    outside = _RecordingLibc()  # not inside a retained heap: nothing to release
    monkeypatch.setattr(heap, "_LIBC", outside)
    released()
    assert outside.settings == {} and outside.trims == 0


def test_the_fits_continuation_trains_with_the_heap_released(monkeypatch):
    """A 1.5 s 48 kHz fit's continuation training (a curriculum of growing graphs) grew the kept
    heap to a 1783 MiB peak; with glibc's defaults there, 1048 MiB (docs/memory.md). The fit's
    steps keep the heap."""
    from sonode.model import FitOptions, fit_samples, predict
    from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

    libc = _RecordingLibc()
    monkeypatch.setattr(heap, "_LIBC", libc)
    seen = []

    def dynamics(*args, **kwargs):
        seen.append(dict(libc.settings))
        return {"field_kept": False, "cycle": False}

    monkeypatch.setattr(predict, "fit_dynamics", dynamics)
    options = FitOptions(
        latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1, lp_order=32, steps=1
    )
    fit_samples(two_tone_clip(0.3), SAMPLE_RATE, options)
    assert seen == [DEFAULTS] and libc.settings == DEFAULTS
