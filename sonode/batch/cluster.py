"""Run independent tasks on a Dask cluster: an embedded LocalCluster, or an existing scheduler.

This is the only module that imports Dask, and only when called: the rest of sonode never needs a
cluster. Each task is one whole fit (seconds to hours of work), so Dask is used plainly: one
`Client.submit` per item, results gathered as they complete. When a worker dies, the scheduler
reruns its tasks on other workers (up to ``distributed.scheduler.allowed-failures`` times, 3 by
default); the task itself must make a rerun safe (sonode's fits resume from their checkpoints).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

#: Environment variable naming an existing scheduler (Dask's own convention).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_layout(n_tasks: int, workers: int | None = None, threads: int | None = None,
                 cores: int | None = None) -> tuple[int, int]:
    """Worker processes and torch threads per task for an embedded cluster on ``cores`` cores.

    Every worker runs one task at a time, so workers × threads ≤ cores (no oversubscription):
    by default one worker per core (fits scale better across processes than across threads), but
    never more workers than tasks, the spare cores going to each task's threads.

    Returns:
        (n_workers, threads_per_task), both ≥ 1.
    """
    cores = cores or available_cores()
    if workers is None:
        workers = max(1, cores // threads) if threads else cores
    workers = max(1, min(workers, n_tasks))
    return workers, threads or max(1, cores // workers)


def map_on_cluster(func: Callable[..., Any], items: Sequence[Any], *args: Any, scheduler: str | None = None,
                   workers: int | None = None, threads: int | None = None,
                   on_failure: Callable[[Any, str], Any], on_result: Callable[[Any], None] | None = None
                   ) -> list[Any]:
    """``[func(item, *args, threads=t) for item in items]``, computed on a Dask cluster.

    Args:
        func: importable on the workers (sonode must be installed there); must not raise for
            expected failures (return a result saying so).
        items: one task each.
        scheduler: address of an existing scheduler (e.g. "tcp://host:8786"); default: the
            DASK_SCHEDULER_ADDRESS environment variable, else an embedded LocalCluster.
        workers: worker processes of the embedded cluster (default: see `local_layout`).
        threads: torch threads per task (default: cores per task on the embedded cluster, 1 on an
            existing one, whose workers should run one task per core).
        on_failure: ``(item, message) -> result`` for a task that raised or whose workers kept
            dying (Dask's KilledWorker).
        on_result: called with each result as it arrives (progress).

    Returns:
        The results in the order of ``items``.
    """
    from distributed import Client, LocalCluster, as_completed

    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    cluster = None
    if scheduler is None:
        n_workers, threads = local_layout(len(items), workers, threads)
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    else:
        threads = threads or 1
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            futures = {client.submit(func, item, *args, threads=threads, pure=False): index
                       for index, item in enumerate(items)}
            results: list[Any] = [None] * len(items)
            for future in as_completed(futures):
                index = futures[future]
                if future.status == "finished":
                    results[index] = future.result()
                else:
                    err = future.exception()
                    results[index] = on_failure(items[index], " ".join(f"{type(err).__name__}: {err}".split()))
                if on_result is not None:
                    on_result(results[index])
            return results
    finally:
        if cluster is not None:
            cluster.close()
