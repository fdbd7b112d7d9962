"""A clip too long for the memory budget is upsampled block by block (`upsample_in_blocks`): the band
below the cross-over stays the whole clip's band-limited interpolation, and the joins add up to 1."""

import numpy as np
import pytest

from sonode.dsp.bandwidth import band_edge_hz
from sonode.dsp.metrics import snr_db
from sonode.dsp.resample import upsample_sinc
from sonode.limits import PROCESS_BASELINE_BYTES
from sonode.tasks.upsample import (
    UPSAMPLE_BYTES_PER_OUTPUT_SAMPLE,
    check_upsample_blocks,
    exact_below_hz,
    upsample_channels,
    upsample_in_blocks,
)

RATE_IN, RATE_OUT, SECONDS = 8000, 24000, 14.0


def _clip(channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(SECONDS * RATE_IN)) / RATE_IN
    tone = 0.4 * np.sin(2 * np.pi * (220 * t + 15 * t**2)) + 0.2 * np.sin(2 * np.pi * 1830 * t)
    x = tone[:, None] + 0.02 * rng.standard_normal((t.size, channels))
    return x


def _budget_for_block(monkeypatch, block_s: float, channels: int) -> None:
    """SONODE_MEMORY_BUDGET such that blocks of about ``block_s`` seconds fit."""
    n_in = int(SECONDS * RATE_IN)
    n_out = n_in * RATE_OUT // RATE_IN
    held = 3 * 8 * channels * (n_out + n_in)
    per_input = UPSAMPLE_BYTES_PER_OUTPUT_SAMPLE * channels * RATE_OUT / RATE_IN
    budget = PROCESS_BASELINE_BYTES + held + per_input * block_s * RATE_IN
    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str(int(budget)))


def _below(y: np.ndarray, cutoff_hz: float) -> np.ndarray:
    spectrum = np.fft.rfft(y)
    spectrum[np.fft.rfftfreq(y.size, 1 / RATE_OUT) >= cutoff_hz] = 0
    return np.fft.irfft(spectrum, n=y.size)


def test_a_clip_that_fits_is_upsampled_whole(monkeypatch):
    x = _clip()
    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str(8 << 30))
    assert check_upsample_blocks(x.shape[0], 1, RATE_IN, RATE_OUT) == x.shape[0]
    whole, _ = upsample_channels(x, RATE_IN, RATE_OUT, seed=5)
    np.testing.assert_array_equal(upsample_in_blocks(x, RATE_IN, RATE_OUT, seed=5), whole)


def test_blocks_join_to_the_whole_clips_low_band(monkeypatch):
    x = _clip()
    _budget_for_block(monkeypatch, 4.5, 1)
    block = check_upsample_blocks(x.shape[0], 1, RATE_IN, RATE_OUT)
    assert block < x.shape[0] / 2  # several blocks, several joins
    # nothing above: each block is its own interpolation, so below the cross-over the joined
    # whole must be the clip's (away from the ends, where the whole clip's DFT wraps around)
    blocks = upsample_in_blocks(x, RATE_IN, RATE_OUT, high_band="none")[:, 0]
    edge = band_edge_hz(x[:, 0], RATE_IN)
    cutoff = exact_below_hz(RATE_IN, edge) - 50.0  # the joins' windows smear by ~1 Hz
    low = _below(upsample_sinc(x[:, 0], RATE_IN, RATE_OUT), cutoff)
    inner = slice(RATE_OUT // 10, -RATE_OUT // 10)
    assert snr_db(low[inner], _below(blocks, cutoff)[inner]) > 80
    # with the band above: below the cross-over it is still the clip's interpolation
    extended = upsample_in_blocks(x, RATE_IN, RATE_OUT)[:, 0]
    assert snr_db(low[inner], _below(extended, cutoff)[inner]) > 60
    above = extended - _below(extended, RATE_IN / 2)
    assert np.sqrt(np.mean(above**2)) > 1e-4  # something was synthesised above the input's Nyquist


def test_stereo_blocks_stay_stereo(monkeypatch):
    x = _clip(channels=2)
    _budget_for_block(monkeypatch, 4.5, 2)
    y = upsample_in_blocks(x, RATE_IN, RATE_OUT)
    assert y.shape == (x.shape[0] * RATE_OUT // RATE_IN, 2) and np.isfinite(y).all()
    assert not np.allclose(y[:, 0], y[:, 1])


def test_no_block_fits_is_refused_in_one_line(monkeypatch):
    from sonode.limits import LimitError

    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str(PROCESS_BASELINE_BYTES + (1 << 20)))
    with pytest.raises(LimitError, match="memory limit"):
        check_upsample_blocks(int(SECONDS * RATE_IN), 1, RATE_IN, RATE_OUT)
