"""Every test starts from the same random state and thread count, whatever ran before it.

The suite runs on two workers (pyproject's addopts), which changes the order tests meet in one
process; a test that draws from torch's global generator, or inherits a thread count that an
in-process CLI call set, must not pass or fail by that order.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _same_start_for_every_test():
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
    torch.set_num_threads(threads)
