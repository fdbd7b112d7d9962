"""#30, peak memory at the largest inputs the CLI accepts (benchmarks/memory_survey.py measures the
peaks; these tests pin the fixes it led to, each in seconds, without large files)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from sonode.errors import AudioInputError
from sonode.io.checks import CHECK_BLOCK_SAMPLES, check_values


def _peak_allocated_bytes(fn) -> int:
    """Peak bytes allocated (numpy's buffers included: numpy reports them to tracemalloc) by fn()."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_checking_a_clips_samples_allocates_one_block_not_the_clip():
    # Whole-clip np.abs/np.isfinite added 9 B per sample to the reader's peak: 1 GB for the longest
    # clip the reader accepts (600 s at 192 kHz), enough to carry `upsample CLIP` over 2 GiB.
    x = np.full(8 * CHECK_BLOCK_SAMPLES, 0.5)
    peak = _peak_allocated_bytes(
        lambda: check_values(Path("a.wav"), x, 48_000, 0, "mix", np.ones(1))
    )
    # two blocks' temporaries at most (|block| is made before the previous one is freed): 19 MB
    assert peak < 2 * 9 * CHECK_BLOCK_SAMPLES + (1 << 20), peak
    assert peak < x.nbytes / 3


@pytest.mark.parametrize(
    "bad, value, message",
    [
        (
            CHECK_BLOCK_SAMPLES + 4800,
            np.nan,
            r"2 samples are NaN or infinite \(first at 21\.9453 s\)",
        ),
        (2 * CHECK_BLOCK_SAMPLES + 48, 1e300, r"magnitude 1e\+300 \(first at 43\.6917 s\)"),
    ],
)
def test_a_bad_sample_past_the_first_block_is_found_and_placed(bad, value, message):
    x = np.full(3 * CHECK_BLOCK_SAMPLES, 0.25)
    x[bad] = value
    if np.isnan(value):
        x[-1] = np.inf  # counted across blocks
    with pytest.raises(AudioInputError, match=message):
        check_values(Path("a.wav"), x, 48_000, 0, "mix", np.ones(1))


def test_a_silent_clip_is_still_told_apart_from_a_cancelling_mix():
    x = np.zeros(2 * CHECK_BLOCK_SAMPLES + 3)
    with pytest.raises(AudioInputError, match="channel 1 has sound"):
        check_values(Path("a.wav"), x, 48_000, 0, "mix", np.array([0.0, 0.5]))
    with pytest.raises(AudioInputError, match="the selected audio is silent"):
        check_values(Path("a.wav"), x, 48_000, 0, 0, np.array([0.0, 0.5]))


def test_upsampling_a_clip_too_long_for_memory_is_refused_before_it_is_read(tmp_path, monkeypatch):
    # `upsample CLIP` of the longest file the reader takes (600 s, 192 kHz, 8 channels) read all of
    # it (18 CPU s, 1.45 GiB) before finding that its output could not fit: now the header decides.
    import soundfile as sf

    import sonode.io.clip
    from tests.cli_support import run as cli

    clip = tmp_path / "long.wav"
    sf.write(clip, 0.1 * np.ones((10 * 48_000, 2)), 48_000, subtype="PCM_16")

    def never(*args, **kwargs):
        raise AssertionError("the clip was read before its size was checked")

    monkeypatch.setattr(sonode.io.clip, "_read_mono", never)  # what every read of samples calls
    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str(800 << 20))  # 32 MiB beyond the baseline
    result = cli("upsample", clip, "--rate", "192000", "-o", tmp_path / "u.wav", "--quiet")
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "over the memory limit of 800 MiB" in lines[0], result.output
    assert lines[0].startswith("sonode: error: upsampling ")
    assert not (tmp_path / "u.wav").exists()


def test_resampling_pads_blocks_not_a_copy_of_the_whole_input(monkeypatch):
    # `report CLIP` (fit at 16 kHz) of a 600 s 192 kHz file peaked at 2.38 GiB in resampling: a
    # zero-padded copy of the whole 0.9 GB input. Now each block is padded, with the same output.
    import torch
    import torchaudio.functional as taf

    from sonode.io.clip import RESAMPLE_KW
    from sonode.sinc import resample_blocks

    x = np.random.default_rng(0).standard_normal(600_000)
    want = taf.resample(torch.from_numpy(x), 192_000, 16_000, **RESAMPLE_KW).numpy()
    padded = []
    pad = torch.nn.functional.pad
    monkeypatch.setattr(
        torch.nn.functional, "pad", lambda t, *a, **k: padded.append(t.numel()) or pad(t, *a, **k)
    )
    got = resample_blocks(x, 192_000, 16_000, **RESAMPLE_KW)
    assert np.array_equal(got, want)
    assert padded and max(padded) < x.size / 4, padded


def _stereo(path: Path, seconds: float, rate: int = 16_000, channels: int = 2) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 1e-3 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(path, np.stack([x] * channels, axis=1), rate, subtype="PCM_16")
    return path


def test_detect_reads_one_channel_at_a_time(tmp_path, monkeypatch):
    # Reading every channel and slicing one kept all of them alive through detection (8 B per
    # sample per channel on top of detection's own peak).
    import sonode.tasks.detect_blocks
    from sonode.tasks.fill_scan import find_gaps

    seen = []
    monkeypatch.setattr(
        sonode.tasks.detect_blocks,
        "detect_channel",
        lambda read, n, rate, block: seen.append(read(0, n)) or [],
    )
    find_gaps(_stereo(tmp_path / "four.wav", 0.5, channels=4), [], detect=True, context_s=0.1)
    assert len(seen) == 4
    for x in seen:
        assert x.shape == (8000,) and x.strides == (8,)
        assert x.base is None or x.base.nbytes == x.nbytes  # not a view of all four channels


def test_detect_is_sized_by_its_block(tmp_path, monkeypatch):
    # --detect once held a whole channel (116 B per sample measured, refused past ~218 s at
    # 48 kHz); it now reads blocks of DETECT_BLOCK_S with margins. A budget that refused a whole
    # 60 s channel at 100 B/sample admits it; one below a block's need refuses, in one line.
    from sonode.tasks.detect_blocks import DETECT_BLOCK_S, margin_samples
    from tests.cli_support import run as cli

    clip = _stereo(tmp_path / "long.wav", 60.0)  # 960 000 samples per channel
    held = int(DETECT_BLOCK_S * 16_000) + 2 * margin_samples(16_000)
    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str((768 << 20) + 960_000 * 100))
    result = cli("fill", clip, "--detect", "--dry-run", "-o", tmp_path / "f.wav", "--quiet")
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("SONODE_MEMORY_BUDGET", str((768 << 20) + held * 100))
    result = cli("fill", clip, "--detect", "-o", tmp_path / "f.wav", "--quiet")
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"--detect on blocks of {held} samples needs about" in lines[0]
    assert not (tmp_path / "f.wav").exists()


def test_the_continuation_stays_at_order_1024_whatever_the_lp_order():
    # --lp-order goes up to 4096 (identification: a 195 s 48 kHz fit peaked at 1.65 GiB with it,
    # 1.70 GiB with the default 1024), but the continuation's order stops at 1024 (<= 513 modes):
    # its training's read-out pieces and per-anchor graphs are sized for that.
    from sonode.model.continuation import identify_continuation

    rate = 48_000
    t = np.arange(rate // 2) / rate
    freqs = np.random.default_rng(1).uniform(50, 20_000, 700)  # needs an order above 1024
    x = np.sin(2 * np.pi * freqs[:, None] * t).sum(0) / 30
    assert identify_continuation(x, rate, max_order=4096).order <= 1024
