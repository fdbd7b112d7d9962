"""How many fits of a batch run side by side: as many as the cores allow, fewer when the memory
budget (`sonode.limits`, 2 GiB by default) cannot hold that many of the largest at once (#30: a batch
of two fits of the longest clips a fit accepts held about 2 x 1.8 GiB plus its parent).

Each fit's peak is the estimate the fit itself is checked against (`sonode.model.fit_size`), from
the samples its clip's header announces; this module imports no torch, so the batch's parent, which
only plans, stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sonode.batch.outputs import FitJob

#: What an embedded cluster adds to its fits (peak resident bytes, measured with
#: benchmarks/tree_memory.py on a batch of 1 s clips): the scheduler and client in this process, and
#: per worker its nanny process and Dask's own imports in the worker process.
CLUSTER_PARENT_BYTES = 256 << 20
CLUSTER_WORKER_EXTRA_BYTES = 192 << 20


def memory_workers(task_peaks_bytes: Sequence[int], workers: int, budget_bytes: int) -> int:
    """Most workers, up to ``workers``, whose tasks fit in ``budget_bytes`` together, the ``k``
    largest side by side: CLUSTER_PARENT_BYTES + k x CLUSTER_WORKER_EXTRA_BYTES + the k largest
    peaks (resident sets summed, shared libraries counted in each process: an upper bound). One
    worker runs in a plain child process instead (`sonode.batch.child`), which needs no extra.
    Returns at least 1."""
    largest = sorted(task_peaks_bytes, reverse=True)
    k = max(1, min(workers, len(largest)))
    while k > 1 and (
        CLUSTER_PARENT_BYTES + k * CLUSTER_WORKER_EXTRA_BYTES + sum(largest[:k]) > budget_bytes
    ):
        k -= 1
    return k


def fit_workers(jobs: list[FitJob], fit_kw: dict[str, Any], workers: int | None) -> tuple[int, str]:
    """Worker processes of an embedded cluster for these fits, so that the batch as a whole stays
    within the memory budget (`sonode.limits`): one per core, fewer when that many of the largest
    clips would not fit side by side (each fit's peak is `fit_peak_bytes` of the samples its
    clip's header announces). An explicit ``workers`` is kept.

    Returns:
        (workers, a one-line notice when the count was reduced or ``workers`` may not fit, else "").
    """
    from sonode.batch.cluster import local_layout
    from sonode.limits import GIB, memory_budget_bytes
    from sonode.model.fit_size import fit_peak_bytes, fit_samples_bound, max_fit_samples

    rate, duration_s = fit_kw.get("rate"), fit_kw.get("duration_s")
    peaks = [
        fit_peak_bytes(min(fit_samples_bound(job.clip, rate, duration_s), max_fit_samples()))
        for job in jobs
    ]
    budget = memory_budget_bytes()
    wanted = local_layout(len(jobs), workers, fit_kw.get("threads"))[0]
    fitting = memory_workers(peaks, wanted, budget)
    if fitting == wanted:
        return wanted, ""
    largest = sorted(peaks, reverse=True)[:wanted]
    total = CLUSTER_PARENT_BYTES + wanted * CLUSTER_WORKER_EXTRA_BYTES + sum(largest)
    what = (
        f"{wanted} fits of these clips side by side need about {total / GIB:.1f} GiB, over "
        f"the memory budget of {budget / GIB:.2f} GiB (SONODE_MEMORY_BUDGET)"
    )
    if workers is not None:
        return workers, f"sonode: note: --workers {workers}: {what}; fewer workers keep within it"
    return fitting, (
        f"sonode: running {fitting} fit(s) at a time, not {wanted} (one per core): {what}; "
        "--workers N overrides"
    )
