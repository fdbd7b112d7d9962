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
from collections.abc import Callable, Sequence
from typing import Any

#: Environment variable naming an existing scheduler (Dask's own convention).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


#: Seconds to reach a --scheduler before giving up (checked before any work).
SCHEDULER_TIMEOUT_S = 5.0


def embedded_cluster(n_workers: int):
    """A Dask cluster on this machine that a local stranger can neither join nor drive.

    Every connection is TLS with a certificate made for this run only
    (`distributed.security.Security.temporary`: mutual TLS, the key never leaves this process and
    its workers), all on 127.0.0.1, and no HTTP server is opened: Dask starts one per scheduler and
    worker even without a dashboard (it answers /info and /workers, which reveal the addresses),
    so the scheduler and workers used here skip it (`QuietScheduler`, `QuietWorker`).

    Returns:
        A started `distributed.SpecCluster` (the caller closes it).
    """
    from distributed import Nanny, SpecCluster
    from distributed.security import Security

    security = Security.temporary()
    common = {"host": "127.0.0.1", "security": security, "protocol": "tls://"}
    scheduler = {
        "cls": __getattr__("QuietScheduler"),
        "options": {**common, "port": 0, "dashboard": False, "dashboard_address": None},
    }
    worker = {
        "cls": Nanny,
        "options": {
            **common,
            "nthreads": 1,
            "worker_class": __getattr__("QuietWorker"),
            "dashboard": False,
            "dashboard_address": None,
            "silence_logs": logging.ERROR,
        },
    }
    return SpecCluster(
        scheduler=scheduler,
        workers={i: worker for i in range(n_workers)},
        security=security,
        silence_logs=logging.ERROR,
    )


def _no_http_server(self, routes, dashboard_address, default_port=0, ssl_options=None):
    """Replaces `distributed.node.ServerNode.start_http_server`: the routes are kept (so that the
    server's bookkeeping works) but nothing listens."""
    from distributed.http.routing import RoutingApplication

    self.http_application = RoutingApplication(routes)


def _quiet(base: type) -> type:
    return type(
        f"Quiet{base.__name__}",
        (base,),
        {"start_http_server": _no_http_server, "__module__": __name__},
    )


def __getattr__(name: str):
    # QuietScheduler / QuietWorker are made on first use: Dask is imported only when a cluster runs.
    if name in ("QuietScheduler", "QuietWorker"):
        import distributed

        cls = _quiet(getattr(distributed, name[len("Quiet") :]))
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def check_scheduler(address: str) -> None:
    """Refuse, within SCHEDULER_TIMEOUT_S, a --scheduler address that is malformed or unreachable.

    Raises:
        SonodeError: one line with the address and what failed.
    """
    import socket

    from sonode.errors import SonodeError

    scheme, _, location = address.partition("://")
    if not location:
        scheme, location = "tcp", address
    if scheme not in ("tcp", "tls"):
        return  # other transports (ucx, inproc) are left to Dask
    host, _, port = location.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SonodeError(
            f"--scheduler {address!r} is not an address like tcp://HOST:8786 or tls://HOST:8786"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=SCHEDULER_TIMEOUT_S):
            pass
    except OSError as err:
        raise SonodeError(
            f"cannot reach the Dask scheduler at {address} within {SCHEDULER_TIMEOUT_S:g} s "
            f"({err.strerror or err}); check the address and that it is running"
        ) from None


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    from sonode.limits import available_cores as cores

    return cores()


def local_layout(
    n_tasks: int, workers: int | None = None, threads: int | None = None, cores: int | None = None
) -> tuple[int, int]:
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


def map_on_cluster(
    func: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    scheduler: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    on_failure: Callable[[Any, str], Any],
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[func(item, *args, threads=t) for item in items]``, computed on a Dask cluster.

    Args:
        func: importable on the workers (sonode must be installed there); must not raise for
            expected failures (return a result saying so).
        items: one task each.
        scheduler: address of an existing scheduler (e.g. "tcp://host:8786"); default: the
            DASK_SCHEDULER_ADDRESS environment variable, else an embedded LocalCluster.
        workers: worker processes of the embedded cluster (default: see `local_layout`); with one,
            the tasks run one after another in a child process each, without a cluster.
        threads: torch threads per task (default: cores per task on the embedded cluster, 1 on an
            existing one, whose workers should run one task per core).
        on_failure: ``(item, message) -> result`` for a task that raised or whose workers kept
            dying (Dask's KilledWorker).
        on_result: called with each result as it arrives (progress).

    Returns:
        The results in the order of ``items``.
    """
    from distributed import Client

    from sonode.io.fileutil import unfinished

    # a signal must reach the code below, which stops the workers (or kills the child)
    with unfinished():
        scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
        cluster = None
        if scheduler is None:
            n_workers, threads = local_layout(len(items), workers, threads)
            if n_workers == 1:  # no cluster for one worker: it would only add its processes' memory
                from sonode.batch.child import map_in_children

                return map_in_children(
                    func, items, *args, threads=threads, on_failure=on_failure, on_result=on_result
                )
            cluster = embedded_cluster(n_workers)
        else:
            check_scheduler(scheduler)
            threads = threads or 1
        try:
            with Client(
                cluster if cluster is not None else scheduler, timeout=SCHEDULER_TIMEOUT_S
            ) as client:
                try:
                    return _gather(client, func, items, args, threads, on_failure, on_result)
                except BaseException:  # Ctrl-C, SIGTERM: the fits stop now, not after closing
                    if cluster is not None:
                        _kill_local_workers()
                    raise
        finally:
            if cluster is not None:
                cluster.close()


def _gather(client, func, items, args, threads, on_failure, on_result) -> list[Any]:
    from distributed import as_completed

    futures = {
        client.submit(func, item, *args, threads=threads, pure=False): index
        for index, item in enumerate(items)
    }
    results: list[Any] = [None] * len(items)
    for future in as_completed(futures):
        index = futures[future]
        if future.status == "finished":
            results[index] = future.result()
        else:
            err = future.exception()
            results[index] = on_failure(
                items[index], " ".join(f"{type(err).__name__}: {err}".split())
            )
        if on_result is not None:
            on_result(results[index])
    return results


def _kill_local_workers() -> None:
    """SIGKILL the embedded cluster's worker processes (their fits' checkpoints stay for the rerun).
    Closing the cluster asks each to finish first: 4.5 s from a signal to the exit, one of them
    still running after (measured, two workers fitting)."""
    import multiprocessing

    for process in multiprocessing.active_children():
        process.kill()
    for process in multiprocessing.active_children():
        process.join(timeout=1.0)
