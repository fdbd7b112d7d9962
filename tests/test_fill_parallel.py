"""`fill_gaps` fills gap-channels on torch's thread count at once (sonode/tasks/fill_file.py): the
result is the serial one, in the gaps' order, channel by channel, and a failing fill still raises."""

import numpy as np
import pytest
import soundfile as sf
import torch

from sonode.tasks import fill_file as ff
from sonode.tasks.fill import FillSettings, plan_gaps

RATE = 16000


def _stereo(tmp_path):
    t = np.arange(2 * RATE) / RATE
    rng = np.random.default_rng(3)
    left = 0.5 * np.sin(2 * np.pi * 330 * t) + 0.01 * rng.standard_normal(t.size)
    right = 0.4 * np.sin(2 * np.pi * 523 * t + 1) + 0.01 * rng.standard_normal(t.size)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    gaps = plan_gaps([(0.3, 0.31), (0.7, 0.72), (1.1, 1.13), (1.5, 1.52)], t.size, RATE, 0.1)
    return path, gaps


def _fill(path, gaps, threads, channels=None):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        settings = FillSettings(context_s=0.1, orders=(16, 32), candidates=())
        return ff.fill_gaps(path, gaps, RATE, settings, channels_to_fill=channels)
    finally:
        torch.set_num_threads(before)


def test_two_workers_give_the_serial_fills_in_order(tmp_path):
    path, gaps = _stereo(tmp_path)
    channels = [[0, 1], [1], [0], [0, 1]]
    serial, parallel = _fill(path, gaps, 1, channels), _fill(path, gaps, 2, channels)
    assert ff._fill_workers(FillSettings(), 6) == min(torch.get_num_threads(), 6)
    assert len(parallel) == len(gaps)
    x = sf.read(path, always_2d=True)[0]
    for gap, s, p, where in zip(gaps, serial, parallel, channels, strict=True):
        np.testing.assert_allclose(p, s, rtol=0, atol=1e-9)  # Cholesky on 1 thread vs torch's
        for c in range(2):  # a channel not asked for keeps its own samples
            if c not in where:
                np.testing.assert_array_equal(p[:, c], x[gap.start : gap.end, c])
            else:  # a fill, not the original (the tones are not exact repeats of it)
                assert not np.array_equal(p[:, c], x[gap.start : gap.end, c])
    assert torch.get_num_threads() >= 1


def test_a_failing_fill_raises_from_the_pool_and_restores_the_threads(tmp_path, monkeypatch):
    path, gaps = _stereo(tmp_path)

    def broken(left, right, n_gap, *rest):
        return np.full(n_gap, np.nan) if n_gap > 400 else np.zeros(n_gap)

    monkeypatch.setattr(ff, "fill_one", broken)
    before = torch.get_num_threads()
    with pytest.raises(Exception, match="gap 3 produced non-finite samples"):
        _fill(path, gaps, 2)
    torch.set_num_threads(2)
    with pytest.raises(Exception, match="gap 3 produced non-finite"):
        ff.fill_gaps(path, gaps, RATE, FillSettings(context_s=0.1))
    assert torch.get_num_threads() == 2  # the pool set torch to one thread, then restored it
    torch.set_num_threads(before)
