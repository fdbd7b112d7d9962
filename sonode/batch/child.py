"""Run tasks one after another, each in a fresh child process: a batch's layout when only one fit at a
time fits in memory (`sonode.batch.cluster.map_on_cluster`).

An embedded Dask cluster of one worker would add its scheduler and nanny (in this process) and Dask
in the worker to the fit's own peak; a plain child adds only this process, which imports no torch.
The child runs in its own session, so a Ctrl-C at the terminal reaches this process alone: it
ends the child at once (SIGKILL; the fit's checkpoint stays for the rerun) and raises as before; a
child whose parent was killed outright ends itself within a second.

    python -m sonode.batch.child    # reads a pickled (func, item, args, threads) on stdin
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


def map_in_children(
    func: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    threads: int,
    on_failure: Callable[[Any, str], Any],
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[func(item, *args, threads=threads) for item in items]``, each call in its own child process.

    A call that raises, or whose process dies, gives ``on_failure(item, one-line message)``.
    """
    results = []
    for item in items:
        results.append(_run_one(func, item, args, threads, on_failure))
        if on_result is not None:
            on_result(results[-1])
    return results


def _run_one(func, item, args, threads: int, on_failure) -> Any:
    payload = pickle.dumps((func, item, args, threads))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonode.batch.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(payload)
    finally:
        if proc.poll() is None:  # interrupted here (Ctrl-C, SIGTERM): the fit stops with us
            proc.kill()
            proc.wait()
    try:
        status, value = pickle.loads(out)
    except Exception:  # noqa: BLE001 -- no result: the process died (killed, out of memory)
        code = proc.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return on_failure(item, f"its process died ({how}) before returning a result")
    return value if status == "ok" else on_failure(item, value)


def _orphaned_exit(parent: int) -> None:
    """End this process once its parent is gone (killed without running its cleanup): an orphaned
    fit would hold its memory and cores for hours, unseen."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(EXIT_ORPHANED)


#: Exit code of a child whose parent died.
EXIT_ORPHANED = 3


def _main() -> None:
    threading.Thread(target=_orphaned_exit, args=(os.getppid(),), daemon=True).start()
    result_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the result
    func, item, args, threads = pickle.loads(sys.stdin.buffer.read())
    try:
        result = ("ok", func(item, *args, threads=threads))
    except Exception as err:  # noqa: BLE001 -- reported as the item's failure, as Dask does
        result = ("failed", " ".join(f"{type(err).__name__}: {err}".split()))
    with os.fdopen(result_fd, "wb") as f:
        f.write(pickle.dumps(result))


if __name__ == "__main__":
    _main()
