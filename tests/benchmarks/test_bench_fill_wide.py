"""benchmarks/bench_fill_wide.py: seeded gap positions in sounding audio, categories, and the
per-category summary (wins counted against the reference on the same gaps)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from bench_fill_wide import category_of, random_positions  # noqa: E402
from fill_wide_tables import REFERENCE, summary  # noqa: E402


def test_positions_are_seeded_random_sounding_and_leave_the_margin():
    rate, margin, n_gap = 16000, 4096, 320
    x = np.zeros(3 * rate)
    x[rate : 2 * rate] = np.sin(np.arange(rate) * 0.05)  # sounding only in the middle second
    draw = [
        random_positions(x, rate, n_gap, 5, margin, np.random.default_rng(s)) for s in (0, 0, 1)
    ]
    assert draw[0] == draw[1] and draw[0] != draw[2]
    for start in draw[0] + draw[2]:
        assert rate - n_gap <= start <= 2 * rate and margin <= start <= x.size - margin - n_gap
    assert len(set(np.diff(draw[0]))) > 1  # not an even grid


def test_category_is_the_folder_under_the_root_or_the_name_prefix(tmp_path):
    assert category_of(tmp_path / "speech_alsa_front.wav", tmp_path) == "speech"
    assert category_of(tmp_path / "music44" / "wesnoth_love.flac", tmp_path) == "music44"


def test_summary_counts_wins_against_the_reference_on_the_same_gap():
    def record(method, clip, start, snr):
        return {
            "clip": clip,
            "category": clip.split("_")[0],
            "rate": 16000,
            "length_ms": 20,
            "start": start,
            "method": method,
            "snr_db": snr,
            "lsd": 1.0,
            "time_s": 0.1,
        }

    records = [
        record(REFERENCE, "a_x", 100, 10.0),
        record(REFERENCE, "b_y", 200, 20.0),
        record("m", "a_x", 100, 12.0),  # wins
        record("m", "b_y", 200, 19.0),  # loses
    ]
    rows = {(r["category"], r["method"]): r for r in summary(records)}
    assert rows[("all", "m")]["wins"] == 1 and rows[("all", "m")]["paired"] == 2
    assert rows[("a", "m")]["delta_db"] == 2.0 and rows[("b", "m")]["delta_db"] == -1.0
