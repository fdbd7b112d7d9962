"""Click detection's widened stage 1 and the strong-excess rule (issue #21, session 9): a burst far
beyond any sound's own power is a click before an onset or next to a pause, the second scale
finds a burst of several samples in noise, and its threshold keeps noise alone quiet."""

import numpy as np
import scipy.stats

from sonode.tasks.click_checks import STRONG_EXCESS, EventIsolation, judge
from sonode.tasks.detect import _Loudness, click_candidates, detect_defects
from sonode.tasks.detect_clicks import (
    CLICK_FACTOR,
    Candidate,
    _core,
    distinct,
    window_factor,
    window_samples,
)

RATE = 16000


def _tone(seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.1 * sum(np.sin(2 * np.pi * 147.3 * k * t + k) / k for k in range(1, 6))
    return t, x + 1e-3 * np.random.default_rng(0).standard_normal(t.size)


def _click(x: np.ndarray, start: int, level: float, n: int = 5) -> None:
    x[start : start + n] += level * np.exp(-np.arange(n) / 2.0)


def _hits(x: np.ndarray, start: int, n: int) -> list:
    return [d for d in detect_defects(x, RATE) if d.start < start + n and start < d.end]


def test_a_strong_burst_skips_the_rise_and_the_rarity_but_not_the_change():
    """Judged with a 12 dB rise after it and a tail of the recording's events that makes its
    isolation usual: refused just under STRONG_EXCESS, a click just over it; a spectral change
    still refuses it, and a burst stage 1 did not single out needs the strong excess."""
    events = EventIsolation(np.log(np.linspace(1.0, 3.0, 200)))  # 3x isolation is common here
    assert events.expected(2.5) >= 1
    for rise, change in ((12.0, 0.5), (0.0, 0.5)):
        below = judge((rise, change, 0.9 * STRONG_EXCESS), 2.5, events)
        above = judge((rise, change, 1.1 * STRONG_EXCESS), 2.5, events)
        assert not below[0] and above[0] and "beyond any sound's own power" in above[1]
    assert not judge((0.0, 8.0, 10 * STRONG_EXCESS), 2.5, events)[0]  # the spectrum changes
    quiet = EventIsolation(np.array([]))  # no tail: only the singled-out flag decides
    assert judge((0.0, 0.5, 1000.0), 2.5, quiet)[0]
    assert not judge((0.0, 0.5, 1000.0), 2.5, quiet, singled_out=False)[0]
    assert judge((0.0, 0.5, 1.1 * STRONG_EXCESS), 2.5, quiet, singled_out=False)[0]


def test_a_click_just_before_an_onset_is_found():
    """A louder note rising over 2 ms (no step: its own residual burst is small) starts 4 ms after
    a click of 2.0: the 10 ms after the click are 13 dB louder, which refused it as a new sound;
    its power beyond the fill is beyond any sound's. The onset alone is no defect."""
    t, x = _tone()
    rise = np.clip((t - 1.0) / 0.002, 0.0, 1.0)
    x += 0.5 * (0.5 - 0.5 * np.cos(np.pi * rise)) * np.sin(2 * np.pi * 311.1 * t)
    assert detect_defects(x, RATE) == []
    start = 16000 - 64
    _click(x, start, level=2.0)
    hits = _hits(x, start, 5)
    assert [h.kind for h in hits] == ["click"] and "rise not asked" in hits[0].reason


def test_a_click_next_to_a_pause_is_found():
    """A click 1 ms before a note stops (fading over 5 ms; after it only the room's noise, −38 dB:
    not a sounding passage, not digital silence): stage 1 asked both sides to sound."""
    t, x = _tone()
    noise = 1e-3 * np.random.default_rng(0).standard_normal(t.size)  # _tone's own noise
    fade = np.clip((1.0 - t) / 0.005, 0.0, 1.0)
    x = noise + (x - noise) * (0.5 - 0.5 * np.cos(np.pi * fade))
    start = 16000 - 16
    _click(x, start, level=2.0)
    hits = _hits(x, start, 5)
    assert [h.kind for h in hits] == ["click"]


def test_the_core_of_a_long_run_of_exceedances():
    """`_core`: of a run of exceedances, the samples at least half its peak, joined across short
    gaps, around the peak."""
    e = np.zeros(200)
    e[10:150] = 1.0  # the sound's own run
    e[80:86] = [3.0, 6.0, 10.0, 7.0, 2.0, 6.0]  # a burst inside it; 2.0 is under half the peak
    group = np.arange(10, 150)
    assert _core(e, group, 2) == (81, 86)  # joined across the one sample under half the peak
    assert _core(e, group, 1) == (81, 84)


def test_the_window_scale_threshold_matches_the_sample_scale():
    """`window_factor`: 8 at one sample (CLICK_FACTOR itself), and at w samples the level whose
    χ²_w tail probability equals one sample's beyond 8× its median."""
    assert abs(window_factor(1) - CLICK_FACTOR) < 1e-9
    w = window_samples(48000)
    tail = 2 * scipy.stats.norm.sf(CLICK_FACTOR * scipy.stats.norm.isf(0.25))
    level = window_factor(w) ** 2 * scipy.stats.chi2.median(w)
    assert w == 24 and abs(scipy.stats.chi2.sf(level, w) / tail - 1) < 1e-6
    assert 1.5 < window_factor(w) < 2.5


def _noise(seconds: float = 2.0) -> np.ndarray:
    return 0.05 * np.random.default_rng(3).standard_normal(int(seconds * RATE))


def test_a_burst_in_noise_is_a_candidate_at_the_window_scale_only():
    """White noise with a 0.5 ms burst of 5 σ per sample: no single sample stands 8× its median
    and 2× its neighbours (the largest of 640 noise samples is ~3.9 σ), the burst's RMS over
    0.5 ms does (the noise's RMS over 8 samples stays under ~1.8 σ); the noise alone has no
    candidate at either scale."""
    x = _noise()
    assert click_candidates(x, RATE, _Loudness(x, RATE))[0] == []
    w = window_samples(RATE)
    start = 16000
    signs = np.random.default_rng(5).choice([-1.0, 1.0], w)
    x[start : start + w] += 5 * 0.05 * signs
    found = [
        c
        for c in click_candidates(x, RATE, _Loudness(x, RATE))[0]
        if c.start < start + w and start < c.end
    ]
    assert [c.window for c in found] == [w]


def test_a_window_burst_overlapping_a_sample_burst_is_the_same_one():
    """`distinct` keeps every sample-scale candidate and the window-scale ones no sample-scale
    span overlaps (touching end to start is not overlapping)."""
    sample = [Candidate(100, 150, 9.0, 3.0, None), Candidate(400, 450, 9.0, 3.0, None)]
    windows = [
        Candidate(140, 200, 3.0, 2.0, None, window=8),  # overlaps the first
        Candidate(150, 210, 3.0, 2.0, None, window=8),  # starts where the first ends
        Candidate(300, 410, 3.0, 2.0, None, window=8),  # overlaps the second
    ]
    kept = distinct(windows + sample)
    assert sorted((c.start, c.window) for c in kept) == [(100, 1), (150, 8), (400, 1)]
