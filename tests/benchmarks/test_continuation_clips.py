"""benchmarks/continuation_clips.py --origins: each column is the mean over history ends."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from continuation_clips import HORIZON, ORIGIN_STEP, RATE, origin_scores  # noqa: E402


def test_origins_average_the_scores_of_each_history_end():
    """Two ends: the row is the mean of the row at the last end and the row of the clip cut
    ORIGIN_STEP earlier (whose last end is the second one), for sonode and the best Burg order."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.5 * RATE)) / RATE
    low = sum(np.exp(-k * t) * np.sin(2 * np.pi * 180 * k * t + k) / k for k in range(1, 6))
    low = low + 1e-2 * rng.standard_normal(t.shape)
    both, best_both, how = origin_scores(low, 2)
    last, best_last, _ = origin_scores(low, 1)
    earlier, best_earlier, _ = origin_scores(low[:-ORIGIN_STEP], 1)
    assert last != earlier  # the two ends score differently: the test tells them apart
    assert both == pytest.approx(list((np.array(last) + np.array(earlier)) / 2))
    assert best_both == pytest.approx(list((np.array(best_last) + np.array(best_earlier)) / 2))
    assert "2 ends" in how and low.shape[0] > 2 * HORIZON
