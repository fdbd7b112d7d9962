"""Block-wise detection (`sonode.tasks.detect_blocks`): the same defects as on the whole channel,
with long runs and repeats crossing blocks, clicks at block edges, and bounded reads in `fill`."""

import numpy as np
import pytest
import soundfile as sf

from sonode.io.clip import read_clip
from sonode.tasks.detect import _runs, detect_defects
from sonode.tasks.detect_blocks import _RunStitcher, margin_samples

RATE = 8000


def _damaged() -> np.ndarray:
    """8 s of a harmonic tone (non-integer period, vibrato, noise), a louder note from 3 s, and
    every kind of defect, several of them longer than the small blocks."""
    t = np.arange(8 * RATE) / RATE
    phase = 2 * np.pi * 147.3 * t + 0.8 * np.sin(2 * np.pi * 5 * t)
    x = sum(0.3 / k * np.sin(k * phase + k) for k in range(1, 10))
    x = x + 1e-2 * np.random.default_rng(0).standard_normal(t.size)
    x += np.where(t >= 3.0, 0.6 * np.exp(-(t - 3.0) / 0.3) * np.sin(2 * np.pi * 311.1 * t), 0.0)
    x[5000:9000] = 0.0  # a 0.5 s dropout: crosses several blocks
    x[12000:12040] = x[11999]  # a held value
    for i in range(15000, 19000):  # a 0.5 s loop of the 0.195 s before it: one long repeat
        x[i] = x[i - 1560]
    for s in (999, 21999, 26001, 48000):  # clicks at and next to block edges
        x[s : s + 5] += 0.5 * np.exp(-np.arange(5) / 2.0)
    return x


@pytest.mark.parametrize("block", [1000, 2001, 4096])
def test_blocks_find_what_the_whole_channel_finds(block):
    x = _damaged()
    whole = detect_defects(x, RATE)
    assert {d.kind for d in whole} == {"zeros", "hold", "repeat", "click"}, whole
    crossing = [d for d in whole if d.start // block < (d.end - 1) // block]
    assert {"zeros", "repeat"} <= {d.kind for d in crossing}  # the stitching is exercised
    assert any(d.kind == "click" and d.start <= 48000 < d.end for d in whole)
    assert detect_defects(x, RATE, block=block) == whole


def test_blocks_on_real_speech_with_made_clicks():
    speech = read_clip("data/speech_front_left.wav", rate=16000).samples
    loud = np.flatnonzero(
        np.convolve(speech**2, np.ones(320) / 320, "same") > 0.1 * np.max(speech**2)
    )
    for s in loud[:: loud.size // 3][1:3]:  # two: more made clicks make each other usual
        speech[s : s + 8] += 0.3 * np.exp(-np.arange(8) / 3.0)
    whole = detect_defects(speech, 16000)
    assert len(whole) >= 1
    assert detect_defects(speech, 16000, block=3000) == whole


def test_the_run_stitcher_joins_runs_across_blocks():
    rng = np.random.default_rng(1)
    mask = rng.random(5000) < 0.9  # long and short runs
    mask[1000:3000] = True
    want = [(s, e) for s, e in _runs(mask)]
    for sizes in ([1] * 5000, [7, 1, 992] * 4 + [1000], [5000]):
        stitch, got, a = _RunStitcher(), [], 0
        for size in sizes:
            got += stitch.feed(mask[a : a + size], a, lambda s: s)
            a += size
        got += stitch.finish(mask.size)
        assert [(s, e) for s, _, e in got] == want
        assert all(p == s for s, p, _ in got)  # the payload is computed where the run starts


def test_fill_detects_block_by_block_with_bounded_reads(tmp_path, monkeypatch):
    """`fill --detect` in blocks of 0.25 s: the same gaps as with one block per channel, every read
    of detection within a block and its margins, the output equal to the input outside the gaps."""
    import sonode.tasks.detect_blocks as blocks
    import sonode.tasks.fill_scan
    from sonode.tasks.fill import FillSettings
    from sonode.tasks.fill_file import fill_file

    x = _damaged()
    stereo = np.stack([x, np.roll(x, 37) * 0.8], axis=1)
    path = tmp_path / "in.wav"
    sf.write(path, stereo, RATE, subtype="PCM_24")
    settings = FillSettings(method="burg_xfade", context_s=0.6)
    reference = fill_file(path, tmp_path / "whole.wav", [], settings, detect=True)
    reads = []
    real = sonode.tasks.fill_scan.read_channel
    monkeypatch.setattr(
        sonode.tasks.fill_scan,
        "read_channel",
        lambda f, c, a, n: reads.append(n) or real(f, c, a, n),
    )
    monkeypatch.setattr(blocks, "DETECT_BLOCK_S", 0.25)
    report = fill_file(path, tmp_path / "blocks.wav", [], settings, detect=True)
    assert report["detected"] == reference["detected"] and report["gaps"] == reference["gaps"]
    assert {"zeros", "hold", "repeat", "click"} <= {d["kind"] for d in report["detected"]}
    assert reads and max(reads) <= int(0.25 * RATE) + 2 * margin_samples(RATE) < x.size // 2
    a, b = sf.read(tmp_path / "blocks.wav")[0], sf.read(tmp_path / "whole.wav")[0]
    assert np.array_equal(a, b)
    outside = np.ones(x.size, dtype=bool)
    for g in report["gaps"]:
        outside[int(np.floor(g["start_s"] * RATE)) : int(np.ceil(g["end_s"] * RATE)) + 1] = False
    assert np.array_equal(a[outside], sf.read(path)[0][outside])
