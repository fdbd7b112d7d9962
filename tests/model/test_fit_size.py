"""The fit's memory estimate (`sonode.model.fit_size`) is a model of its allocations: what it holds
grows with the clip's samples and its states, the largest piece of work does not, and the work on
spans fixed in seconds grows with the rate. (Its figures against measured peaks:
benchmarks/memory_estimate.py.)"""

from __future__ import annotations

import math

import pytest

from sonode.limits import GIB, PROCESS_BASELINE_BYTES, LimitError
from sonode.model import fit_size
from sonode.model.fit_size import (
    check_fit_size,
    fit_bytes,
    fit_peak_bytes,
    fit_work_bytes,
    max_fit_samples,
)
from sonode.model.options import FitOptions

MINUTE_16K = 60 * 16000


def test_what_a_fit_holds_grows_with_its_samples_and_its_states():
    hop, d = 256, 256
    a, b = 10 * MINUTE_16K, 20 * MINUTE_16K
    segments = math.ceil((b - 32) / hop) - math.ceil((a - 32) / hop)
    per_clip = fit_size.CLIP_ARRAYS * 8 * (b - a)
    per_states = fit_size.STATE_COPIES * segments * d * 8
    assert fit_bytes(b) - fit_bytes(a) == per_clip + per_states  # the work is the same
    # twice the latent dimension: twice the state copies, and a larger read-out
    held = fit_work_bytes(b, latent_dim=2 * d)["held"] - fit_work_bytes(b)["held"]
    assert held == fit_size.STATE_COPIES * (segments + math.ceil((a - 32) / hop)) * d * 8
    # a shorter hop: more segments, more states
    assert fit_work_bytes(b, hop_samples=128)["held"] > fit_work_bytes(b)["held"]


def test_the_largest_piece_of_work_counts_and_a_steps_run_is_bounded():
    per_segment = 288 * 128 * 16
    whole = fit_work_bytes(256 * 256 + 32)  # 256 segments: the whole clip on every step
    assert whole["step"] == fit_size.STEP_TEMPORARIES * 256 * per_segment
    longer = fit_work_bytes(257 * 256 + 32)  # sampled: the run of `run_segments`' rule
    assert longer["step"] <= fit_size.STEP_RUN_BYTES < whole["step"]
    assert longer["evaluation"] == fit_size.EVALUATION_TEMPORARIES * 256 * per_segment
    # the run a step takes, as training takes it (`objective.run_segments`): a small model's run is
    # capped at WHOLE_CLIP_SEGMENTS, not sized by the bytes alone
    from sonode.model.layout import SegmentLayout
    from sonode.model.objective import run_segments

    small_run = run_segments(SegmentLayout(16000, 10 * MINUTE_16K, 256, 32), 4)
    small_segment = 288 * 4 * 16
    step = fit_work_bytes(10 * MINUTE_16K, latent_dim=8)["step"]
    assert step == fit_size.STEP_TEMPORARIES * small_run * small_segment
    assert small_run == fit_size.WHOLE_CLIP_SEGMENTS
    terms = fit_work_bytes(24000)
    largest = max(terms["step"], terms["evaluation"], terms["spans"])
    assert fit_bytes(24000) == terms["held"] + largest + terms["heap"]
    assert terms["heap"] == int(fit_size.HEAP_SLACK_SHARE * largest)
    # no continuation to train: no work on its spans (a small model's fit is small)
    small = fit_work_bytes(
        24000, latent_dim=8, hop_samples=64, overlap_samples=8, continuation=False
    )
    assert small["spans"] == 0 and fit_bytes(24000, latent_dim=8, continuation=False) < 64 << 20


def test_a_short_high_rate_fit_is_sized_by_its_spans_not_its_length():
    # measured (benchmarks/memory_estimate.py): 1.5 s at 16 kHz 1084 MiB, at 48 kHz 1148 MiB
    assert fit_peak_bytes(24000, 16000) >= 1084 << 20
    assert fit_peak_bytes(72000, 48000) >= 1148 << 20
    spans = fit_work_bytes(72000, 48000)["spans"] - fit_work_bytes(72000, 16000)["spans"]
    assert spans == fit_size.SPAN_BYTES_PER_HZ * 32000
    # above 48 kHz the continuation's horizons are read at a coarser stride: no more work
    assert fit_work_bytes(72000, 192000)["spans"] == fit_work_bytes(72000, 48000)["spans"]
    # not the old 136 B per sample: a 600 s 16 kHz fit measured 1500 MiB under -t 60, not the 2013
    # it gave (a check's two state copies are counted: 146 MiB more); 300 s 1356 MiB, 60 s at 48 kHz
    # 1301 MiB; 300 s at 48 kHz 2057 MiB under -t 300, its first check's copies included
    assert 1500 << 20 <= fit_peak_bytes(600 * 16000, 16000) < 1800 << 20
    assert fit_peak_bytes(300 * 48000, 48000) >= 2057 << 20
    assert 1356 << 20 <= fit_peak_bytes(300 * 16000, 16000) < 1500 << 20
    assert 1301 << 20 <= fit_peak_bytes(60 * 48000, 48000) < 1450 << 20


def test_the_longest_fit_is_where_the_estimate_meets_the_budget(monkeypatch):
    monkeypatch.setattr("sonode.limits.memory_budget_bytes", lambda: 2 * GIB)
    for rate in (16000, 48000):
        n = max_fit_samples(rate)
        assert fit_peak_bytes(n, rate) <= 2 * GIB < fit_peak_bytes(n + 1, rate)
    assert max_fit_samples(48000) <= max_fit_samples(16000)
    check_fit_size(max_fit_samples(16000), 16000, FitOptions())
    with pytest.raises(LimitError, match="at 16000 Hz needs about") as refused:
        check_fit_size(max_fit_samples(16000) + 2000, 16000, FitOptions())
    assert "\n" not in str(refused.value)
    # too little memory for even the fixed work: nothing fits
    monkeypatch.setattr("sonode.limits.memory_budget_bytes", lambda: PROCESS_BASELINE_BYTES)
    assert max_fit_samples(16000) == 0


def test_the_fit_report_gives_the_estimate_beside_the_measured_peak(tmp_path):
    import numpy as np

    import sonode
    from sonode.io.clip import Clip
    from sonode.model.fit_size import estimated_peak_bytes

    t = np.arange(4000) / 8000
    x = 0.5 * np.exp(-3 * t) * np.sin(2 * np.pi * 440 * t)
    clip = Clip(x, 8000, tmp_path / "x.wav", 8000, 1, "mix", 0.0)
    options = {"latent_dim": 8, "hidden": 8, "hop_samples": 64, "overlap_samples": 8}
    fitted = sonode.fit(
        clip, steps=1, lp_order=32, continuation_training_steps=0, threads=1, **options
    )
    memory = fitted.info["fit"]["memory_mib"]
    options = FitOptions(steps=1, lp_order=32, continuation_training_steps=0, **options)
    assert memory["estimate"] == estimated_peak_bytes(4000, 8000, options) >> 20
    assert memory["peak"] is None or memory["peak"] > 0
    fitted.save(tmp_path / "m.sonode")  # machine-dependent, like the timings: not in model files
    assert "memory_mib" not in sonode.load(tmp_path / "m.sonode").info["fit"]
