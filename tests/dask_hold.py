"""Dask worker preload (``dask worker --preload tests.dask_hold``) for tests/test_batch_dask.py: a
fit that has written a checkpoint after its first step waits there while the file HOLD exists in
the checkpoint's folder, and says so with a file HELD.<pid> beside it.

So a test kills a worker while both workers are known to be mid-fit, instead of guessing from
files that come and go at the machine's speed (a fit could finish before the other had started).
The hook imports torch and the fit as the worker starts, before it takes any task.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

HOLD = "sonode-test-hold"
HELD = "sonode-test-held"


def dask_setup(worker) -> None:
    """Called by Dask as the worker starts (a preload module's hook): imports the fit, wraps its
    checkpoint writer."""
    import sonode.model.train

    save = sonode.model.train.save_checkpoint

    @functools.wraps(save)
    def save_and_wait(path, state, *args, **kwargs):
        save(path, state, *args, **kwargs)
        hold = Path(path).parent / HOLD
        if state.epoch >= 1 and hold.exists():
            (hold.parent / f"{HELD}.{os.getpid()}").touch()
            while hold.exists():
                time.sleep(0.01)

    sonode.model.train.save_checkpoint = save_and_wait
