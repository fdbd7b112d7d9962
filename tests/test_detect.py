"""--detect: each kind of synthetic defect is found, clean audio gives no alarm."""

import numpy as np
import pytest

from sonode.io.clip import read_clip
from sonode.tasks.click_checks import EventIsolation, events_of
from sonode.tasks.detect import _Loudness, clicks, detect_defects

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


def _tone(seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.1 * sum(np.sin(2 * np.pi * 147.3 * k * t + k) / k for k in range(1, 6))
    return t, x + 1e-3 * np.random.default_rng(0).standard_normal(t.size)


def test_an_attack_is_a_new_sound_not_a_click():
    """A louder note plucked over a held one: its onset is an isolated residual burst (the check
    before click_checks flagged it), but the sound after it is 13 dB louder and goes on."""
    t, x = _tone()
    onset = np.where(t >= 1.0, np.exp(-(t - 1.0) / 0.4), 0.0)
    x = x + 0.5 * onset * sum(np.sin(2 * np.pi * 311.1 * k * t + k) / k for k in range(1, 6))
    rejected: list = []
    assert clicks(x, RATE, _Loudness(x, RATE), rejected) == []
    assert [d.kind for d in rejected] == ["click"] and "a new sound" in rejected[0].reason
    assert detect_defects(x, RATE) == []


def test_the_recordings_own_ticks_are_not_clicks():
    """A short resonant tick every 100 ms (a percussive part): each stands alone within 20 ms as a
    click does (all 19 were flagged before), but the recording makes many as isolated; a click
    is rarer than its own events. The most isolated of 19 alike sits at about one expected."""
    _, x = _tone()
    n = 32
    tick = 0.15 * np.exp(-np.arange(n) / 6) * np.sin(2 * np.pi * 3000 * np.arange(n) / RATE)
    for k in range(1, 20):
        start = int(k * 0.1 * RATE) + 37
        x[start : start + n] += tick
    rejected: list = []
    found = clicks(x, RATE, _Loudness(x, RATE), rejected)
    assert len(found) <= 1 and len(found) + len(rejected) == 19


def test_the_tail_model_counts_the_events_of_white_noise():
    """The exponential tail of the events' isolation, checked against the events themselves: in
    white noise, how many events are at least as isolated as a level, against the model's count."""
    e = np.abs(np.random.default_rng(1).standard_normal(400_000))
    events = EventIsolation(events_of(e, 320, 16, 48)[1])
    ratios = np.exp(events.threshold + events.excess)
    for level in np.quantile(ratios, [0.5, 0.8]):
        observed = int(np.sum(ratios >= level))
        assert 0.6 * observed < events.expected(level) < 1.6 * observed


def test_a_short_clip_has_a_tail_to_judge_by():
    """1.5 s (about 37 events): the 90th percentile left ~3 events and the check was skipped (a
    candidate of a short clip was judged by nothing); the threshold now drops until 8 exceed it."""
    e = np.abs(np.random.default_rng(4).standard_normal(24_000))
    events = EventIsolation(events_of(e, 320, 16, 48)[1])
    assert 20 <= events.n_events <= 60 and events.excess.size >= 8
    ratios = np.sort(np.exp(events.threshold + events.excess))
    assert events.expected(ratios[-1]) < 2.0  # the most isolated event: about one expected
    assert events.expected(ratios[len(ratios) // 2]) >= 2.0  # a middling one: several


def test_the_tail_model_without_events_does_not_judge():
    """No events (silence) or too few to model a tail: nothing to compare, no count."""
    silent = EventIsolation(events_of(np.zeros(20_000), 320, 16, 48)[1])
    assert silent.n_events == 0 and np.isnan(silent.expected(5.0))
    few = EventIsolation(
        events_of(np.abs(np.random.default_rng(2).standard_normal(3000)), 320, 16, 48)[1]
    )
    assert np.isnan(few.expected(50.0))


def test_dropout_edges_are_not_the_recordings_own_events():
    """Four 25 ms dropouts and a click: each dropout's two edges are isolated residual bursts. Counted
    as the recording's own events they made the click look usual (it was missed); they are the
    defect, so they are left out of the events' tail and the click is found."""
    x = _voice(1.5) + 1e-2 * np.random.default_rng(5).standard_normal(int(1.5 * RATE))
    for s in (3000, 7000, 11000, 15000):
        x[s : s + 400] = 0.0
    x[19000:19004] += 0.3 * np.exp(-np.arange(4) / 2.0)
    found = detect_defects(x, RATE)
    assert [d.kind for d in found] == ["zeros"] * 4 + ["click"] and found[-1].start <= 19000
