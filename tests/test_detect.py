"""--detect: each kind of synthetic defect is found, clean audio gives no alarm."""

import numpy as np
import pytest

from sonode.io.clip import read_clip
from sonode.tasks.detect import detect_defects

RATE = 16000


def _voice(seconds: float = 1.0) -> np.ndarray:
    """A harmonic tone with a non-integer period (no exact repeats), vibrato and a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * 147.3 * t + 0.8 * np.sin(2 * np.pi * 5 * t)
    x = sum(0.3 / k * np.sin(k * phase + k) for k in range(1, 12))
    return x + 1e-3 * np.random.default_rng(0).standard_normal(t.size)


def _found(x: np.ndarray, start: int, end: int, rate: int = RATE) -> list:
    return [d for d in detect_defects(x, rate) if d.start < end and start < d.end]


def test_clean_audio_gives_no_alarm():
    assert detect_defects(_voice(), RATE) == []
    speech = read_clip("data/speech_front_left.wav", rate=RATE).samples
    assert detect_defects(speech, RATE) == []


@pytest.mark.parametrize("ms", [1, 5, 50])
def test_dropouts_of_zeros_are_found(ms):
    x = _voice()
    start, n = 7000, int(ms * RATE / 1000)
    x[start : start + n] = 0.0
    hits = _found(x, start, start + n)
    assert (
        [h.kind for h in hits] == ["zeros"] and hits[0].start <= start and hits[0].end >= start + n
    )


def test_a_held_value_and_an_exact_repeat_are_found():
    x = _voice()
    x[3000:3100] = x[2999]
    x[9000:9320] = x[8680:9000]  # a 20 ms packet played twice
    assert [h.kind for h in _found(x, 3000, 3100)] == ["hold"]
    assert [h.kind for h in _found(x, 9000, 9320)] == ["repeat"]


@pytest.mark.parametrize("n", [1, 8, 30])
def test_isolated_clicks_are_found(n):
    x = _voice()
    start = 11000
    x[start : start + n] += 0.2 * np.exp(-np.arange(n) / 4.0)
    hits = _found(x, start, start + n)
    assert [h.kind for h in hits] == ["click"] and hits[0].start <= start < start + n <= hits[0].end


def test_defects_in_real_speech_and_stereo_input():
    speech = read_clip("data/speech_front_left.wav", rate=RATE).samples
    damaged = speech.copy()
    loud = np.flatnonzero(
        np.convolve(speech**2, np.ones(320) / 320, "same") > 0.1 * np.max(speech**2)
    )
    damaged[loud[100] : loud[100] + 160] = 0.0  # 10 ms dropout at the start of the first word
    damaged[loud[-100]] += 0.3  # a click near the end of the last loud passage
    stereo = np.stack([speech, damaged], axis=1)  # a defect in one channel is a defect of the file
    kinds = [d.kind for d in detect_defects(stereo, RATE)]
    assert kinds == ["zeros", "click"]


def test_silence_between_sounds_is_not_a_dropout():
    x = _voice()
    x[:2000] = 0.0  # leading digital silence
    x[-2000:] = 0.0  # trailing digital silence
    assert detect_defects(x, RATE) == []
