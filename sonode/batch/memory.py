"""How many fits of a batch run side by side: as many as the cores allow, fewer when the memory
budget (`sonode.limits`, 2 GiB by default) cannot hold that many of the largest at once (#30: two
fits of 1.5 s 48 kHz clips side by side held 2.56 GiB, two of the longest clips a fit accepts would
hold about 2 x 1.8 GiB).

Each fit's peak is the estimate the fit itself is checked against (`sonode.model.fit_size`), from
the samples and the rate its clip's header announces; this module imports no torch, so the batch's
parent, which only plans, stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: What an embedded cluster adds to its fits: the scheduler, client and nannies in this process
#: (resident, without torch: 0.08 GiB measured with benchmarks/tree_memory.py, a batch of two 1.5 s clips).
CLUSTER_PARENT_BYTES = 128 << 20
#: Resident library pages every fit process maps (torch, numpy, scipy; measured: a process that
#: imported torch held 232 MiB file-backed of 518 MiB): shared by the workers, so counted once.
SHARED_LIBRARY_BYTES = 224 << 20


def memory_workers(task_peaks_bytes: Sequence[int], workers: int, budget_bytes: int) -> int:
    """Most workers, up to ``workers``, whose tasks fit in ``budget_bytes`` together, the ``k``
    largest side by side: CLUSTER_PARENT_BYTES + the k largest peaks, the libraries they share
    (SHARED_LIBRARY_BYTES) counted once. One worker runs in a plain child process instead
    (`sonode.batch.child`), which needs no cluster. Returns at least 1."""
    largest = sorted(task_peaks_bytes, reverse=True)
    k = max(1, min(workers, len(largest)))
    while k > 1 and cluster_bytes(largest[:k]) > budget_bytes:
        k -= 1
    return k


def cluster_bytes(peaks_bytes: Sequence[int]) -> int:
    """Estimated memory of an embedded cluster running these fits side by side (bytes)."""
    return CLUSTER_PARENT_BYTES + sum(peaks_bytes) - (len(peaks_bytes) - 1) * SHARED_LIBRARY_BYTES


def fit_peak(n_samples: int, fit_rate_hz: int) -> int:
    """Estimated peak bytes of the process fitting a clip whose header announces ``n_samples`` at
    the fitting rate ``fit_rate_hz`` (`sonode.model.fit_size.fit_span`; 0 and 0 for an unreadable
    header): `fit_peak_bytes` of those samples at that rate (its work on spans fixed in seconds
    grows with the rate, whatever the clip's length), at most what a fit accepts."""
    from sonode.model.fit_size import DEFAULT_RATE_HZ, fit_peak_bytes, max_fit_samples

    rate_hz = fit_rate_hz or DEFAULT_RATE_HZ
    return fit_peak_bytes(min(n_samples, max(1, max_fit_samples(rate_hz))), rate_hz)


def fit_workers(
    spans: Sequence[tuple[int, int]], fit_kw: dict[str, Any], workers: int | None
) -> tuple[int, str]:
    """Worker processes of an embedded cluster for fits of clips of these ``spans`` (each
    `sonode.model.fit_size.fit_span`: samples and fitting rate), so that the batch as a whole stays
    within the memory budget (`sonode.limits`): one per core, fewer when that many of the largest
    clips would not fit side by side (`fit_peak`, `memory_workers`). An explicit ``workers`` is
    kept.

    Returns:
        (workers, a one-line notice when the count was reduced or ``workers`` may not fit, else "").
    """
    from sonode.batch.cluster import local_layout
    from sonode.limits import GIB, memory_budget_bytes

    peaks = [fit_peak(n_samples, rate_hz) for n_samples, rate_hz in spans]
    budget = memory_budget_bytes()
    wanted = local_layout(len(spans), workers, fit_kw.get("threads"))[0]
    fitting = memory_workers(peaks, wanted, budget)
    if fitting == wanted:
        return wanted, ""
    total = cluster_bytes(sorted(peaks, reverse=True)[:wanted])
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
