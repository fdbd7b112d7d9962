"""#22 item 3: segments per step from the memory rule (`sonode.model.objective.run_segments`)."""

import pytest
import torch

import sonode.model.train as train
from sonode.model import FitOptions, fit_samples
from sonode.model.fit_size import STEP_RUN_BYTES, STEP_TEMPORARIES, WHOLE_CLIP_SEGMENTS
from sonode.model.layout import SegmentLayout
from sonode.model.objective import run_segments
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

SMALL = dict(latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1, lp_order=32)


def _layout(seconds: float, hop: int = 256, overlap: int = 32) -> SegmentLayout:
    return SegmentLayout(16000, int(seconds * 16000), hop, overlap)


def test_a_clip_of_at_most_256_segments_is_solved_whole_on_every_step():
    for seconds in (0.5, 1.0, 4.0):
        layout = _layout(seconds)
        assert layout.n_segments <= WHOLE_CLIP_SEGMENTS
        assert run_segments(layout, 128) == WHOLE_CLIP_SEGMENTS


def test_a_long_clip_s_run_fits_the_step_memory_whatever_its_length():
    runs = {seconds: run_segments(_layout(seconds), 128) for seconds in (10.0, 60.0, 300.0, 3600.0)}
    assert set(runs.values()) == {85}  # 192 MiB / (4 × 288 samples × 128 modes × 16 B)
    per_segment_bytes = STEP_TEMPORARIES * 288 * 128 * 16
    assert 85 * per_segment_bytes <= STEP_RUN_BYTES < 86 * per_segment_bytes
    assert run_segments(_layout(60.0), 512) == 21  # 4× the modes, a quarter of the run
    assert run_segments(_layout(60.0), 8) == WHOLE_CLIP_SEGMENTS  # small models keep 256
    assert run_segments(_layout(60.0), 128, requested=256) == 256  # an explicit size is honoured


def test_the_default_fit_of_a_short_clip_is_the_256_segment_fit_bit_for_bit():
    x = two_tone_clip(0.3)
    fits = []
    for batch in (None, 256):
        torch.manual_seed(0)
        model, _ = fit_samples(
            x, SAMPLE_RATE, FitOptions(**SMALL, steps=3, max_time_s=None, batch_segments=batch)
        )
        fits.append(model.state_dict())
    assert fits[0].keys() == fits[1].keys()
    for name in fits[0]:
        assert torch.equal(fits[0][name], fits[1][name]), name


def test_the_fit_trains_a_long_clip_on_the_rule_s_runs(monkeypatch):
    sizes = []

    class Recording(train.SegmentBatches):
        def __init__(self, layout, batch_segments, seed):
            sizes.append((layout.n_segments, batch_segments))
            super().__init__(layout, batch_segments, seed)

    monkeypatch.setattr(train, "SegmentBatches", Recording)
    # a budget of 3 segments' temporaries at d = 8, window 72: runs of 3 on a 300-segment clip
    monkeypatch.setattr("sonode.model.fit_size.STEP_RUN_BYTES", 3 * STEP_TEMPORARIES * 72 * 4 * 16)
    x = two_tone_clip(300 * 64 / SAMPLE_RATE)
    fit_samples(x, SAMPLE_RATE, FitOptions(**SMALL, steps=1, max_time_s=None))
    assert sizes == [(300, 3)]


def test_batch_segments_below_two_is_refused():
    with pytest.raises(ValueError, match="batch_segments must be ≥ 2"):
        FitOptions(batch_segments=1)
