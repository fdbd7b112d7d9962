"""`sonode.model.heap.retained_heap`: inside it a freed large block is reused without being faulted
in again (minor page faults, counted by the kernel: no timing); outside it glibc's defaults are back."""

from __future__ import annotations

import resource

import pytest
import torch

from sonode.model import heap

BLOCK_BYTES = 64 << 20  # over glibc's largest mmap threshold (32 MiB): mapped afresh by default


def _faults_of_second_use() -> int:
    """Minor page faults while a block of BLOCK_BYTES is allocated, written, freed, and the same
    again: the second round's faults. (torch's allocator, as training's; numpy asks for huge pages,
    whose faults are 512 times fewer.)"""
    torch.ones(BLOCK_BYTES // 8, dtype=torch.float64)  # first use (freed at once)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(BLOCK_BYTES // 8, dtype=torch.float64)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(heap._LIBC is None, reason="glibc's mallopt is not available")
def test_a_freed_block_is_reused_inside_and_returned_outside():
    pages = BLOCK_BYTES // resource.getpagesize()
    inside = heap.retained_heap(_faults_of_second_use)()
    assert inside < pages // 10  # served from the kept heap: no new pages
    assert heap._State.depth == 0
    outside = _faults_of_second_use()
    assert outside > pages // 2  # mapped afresh and zeroed by the kernel, as before


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
