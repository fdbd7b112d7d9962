"""How the local model's node entries are shared among the windows (`local_identify.allocate`),
chosen by validation on held-back samples."""

import math

import numpy as np

from sonode.dsp.partials import frame_peaks
from sonode.model import local_identify
from sonode.model.local_identify import allocate, choose_level

RATE = 8000


def test_clip_allocation_keeps_the_clips_strongest_within_the_same_budget():
    rng = np.random.default_rng(0)
    selected = []
    for count in (9, 1, 6, 0, 4):  # per node, strongest first, as `select_peaks` gives them
        mags = np.sort(rng.uniform(0.01, 1.0, count))[::-1]
        selected.append((rng.uniform(50, 3000, count), mags))
    per_node = 3
    node = allocate(selected, per_node * len(selected), "node")
    assert [f.size for f, _ in node] == [3, 1, 3, 0, 3]
    clip = allocate(selected, per_node * len(selected), "clip")
    kept = np.concatenate([m for _, m in clip])
    everything = np.concatenate([m for _, m in selected])
    assert kept.size == per_node * len(selected)  # the same budget
    np.testing.assert_array_equal(np.sort(kept), np.sort(everything)[::-1][: kept.size][::-1])
    for (f, m), (f0, m0) in zip(clip, selected, strict=True):
        np.testing.assert_array_equal(m, m0[: m.size])  # each node keeps its strongest, in order
        np.testing.assert_array_equal(f, f0[: f.size])
    # a budget the peaks do not exceed keeps them all
    assert sum(f.size for f, _ in allocate(selected, 50, "clip")) == everything.size


def chord_then_tone(seed=0):
    """0.5 s of a loud chord of 20 partials, then 0.5 s of one quiet tone: more partials at once
    than a node's share of the budget holds, then far fewer."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE // 2) / RATE
    freqs = 110.0 * np.arange(1, 21) * (1 + 0.003 * rng.standard_normal(20))
    chord = sum(np.cos(2 * np.pi * f * t + p) / (1 + 0.1 * k) for k, (f, p) in enumerate(
        zip(freqs, rng.uniform(0, 2 * np.pi, 20), strict=True)))  # fmt: skip
    tone = 0.05 * np.cos(2 * np.pi * 523.0 * t)
    x = np.concatenate([chord, tone])
    x = x / np.abs(x).max()
    return x + 1e-5 * rng.standard_normal(x.size)


def test_validation_gives_a_loud_chord_the_quiet_windows_share():
    """At 10 ms nodes a node may hold 13 modes (0.5 numbers per sample); the chord needs 20. The
    clip allocation moves the tone's unused share to the chord and wins on held-back samples, by
    decibels."""
    xn = chord_then_tone()
    hop = int(0.010 * RATE)
    n_nodes = math.ceil((xn.size - 1) / hop) + 1
    peaks = frame_peaks(xn, RATE, hop, 4 * hop, n_nodes, local_identify.MAX_MODES_PER_NODE)
    found = choose_level(xn, RATE, hop, peaks)
    assert found.allocation == "clip"
    budget = local_identify.node_budget(xn.size)  # 0.5 numbers per sample, 3 per entry
    per_node = budget // n_nodes
    assert per_node == 13
    assert found.tracks.freq_hz.size <= budget
    chord_nodes = found.tracks.node < n_nodes // 2 - 2
    counts = np.bincount(found.tracks.node[chord_nodes])
    assert np.median(counts[counts > 0]) > per_node  # the chord's nodes are over the cap
    original = local_identify.ALLOCATIONS
    try:
        local_identify.ALLOCATIONS = ("node",)
        capped = choose_level(xn, RATE, hop, peaks)
    finally:
        local_identify.ALLOCATIONS = original
    assert capped.allocation == "node"
    assert found.validation_db > capped.validation_db + 20.0  # 34 against 4 dB


def test_each_allocation_keeps_at_most_its_cap_at_a_node(monkeypatch):
    """The clip allocation gives a node at most MAX_MODES_PER_NODE, the loud one up to
    LOUD_MODES_PER_NODE, both within the same budget (entries in all: 4 a node here); with few
    peaks all keep them all."""
    monkeypatch.setattr(local_identify, "MAX_MODES_PER_NODE", 5)
    monkeypatch.setattr(local_identify, "LOUD_MODES_PER_NODE", 8)
    mags = np.linspace(1.0, 0.5, 10)
    selected = [(np.arange(10.0), mags), (np.zeros(0), np.zeros(0)), (np.zeros(0), np.zeros(0))]
    assert [f.size for f, _ in allocate(selected, 12, "node")] == [4, 0, 0]
    assert [f.size for f, _ in allocate(selected, 12, "clip")] == [5, 0, 0]
    assert [f.size for f, _ in allocate(selected, 12, "loud")] == [8, 0, 0]
    assert [f.size for f, _ in allocate(selected, 6, "loud")] == [6, 0, 0]  # the budget
    few = [(np.arange(3.0), mags[:3])] * 3
    assert all(f.size == 3 for a in ("node", "clip", "loud") for f, _ in allocate(few, 12, a))


def test_validation_takes_the_loud_allocation_where_a_chord_needs_it(monkeypatch):
    """A chord of 20 partials with "clip" capped at 16 modes a node and "loud" at 24 (the real
    caps are 96 and 128): the loud allocation holds the whole chord and wins held back; with the
    loud cap no higher than the clip one it is never scored and "clip" is chosen."""
    xn = chord_then_tone()
    hop = int(0.010 * RATE)
    n_nodes = math.ceil((xn.size - 1) / hop) + 1
    peaks = frame_peaks(xn, RATE, hop, 4 * hop, n_nodes, 24)
    monkeypatch.setattr(local_identify, "MAX_MODES_PER_NODE", 16)
    monkeypatch.setattr(local_identify, "LOUD_MODES_PER_NODE", 24)
    loud = choose_level(xn, RATE, hop, peaks)
    assert loud.allocation == "loud"
    counts = np.bincount(loud.tracks.node[loud.tracks.node < n_nodes // 2 - 2])
    assert counts.max() > 16
    monkeypatch.setattr(local_identify, "LOUD_MODES_PER_NODE", 16)
    clip = choose_level(xn, RATE, hop, [(f[:16], m[:16]) for f, m in peaks])
    assert clip.allocation == "clip"
    assert loud.validation_db > clip.validation_db + 3.0, (loud.validation_db, clip.validation_db)


def test_every_spacing_and_allocation_shares_one_budget_of_the_clip(monkeypatch):
    """The budget is 0.5 numbers per sample of the clip (1333 entries in 1 s at 8 kHz), at any
    node spacing: where a node's share (13 at 10 ms) is over the per-node cap (monkeypatched to
    10, as 96 caps 102 at 40 ms and 16 kHz), "clip" and "loud" still pool the whole budget, not
    the cap's total, so that spacings are compared held back at the same budget. "node" stays
    within the cap."""
    xn = chord_then_tone()
    hop = int(0.010 * RATE)
    n_nodes = math.ceil((xn.size - 1) / hop) + 1
    peaks = frame_peaks(xn, RATE, hop, 4 * hop, n_nodes, 24)
    monkeypatch.setattr(local_identify, "MAX_MODES_PER_NODE", 10)
    monkeypatch.setattr(local_identify, "LOUD_MODES_PER_NODE", 24)
    found = choose_level(xn, RATE, hop, peaks)
    assert found.allocation == "loud"
    assert 10 * n_nodes < found.tracks.freq_hz.size <= local_identify.node_budget(xn.size)
    assert local_identify.node_budget(xn.size) == 1333
    selected = [(np.arange(20.0), np.linspace(1.0, 0.5, 20))] * 3
    assert [f.size for f, _ in allocate(selected, 39, "node")] == [10, 10, 10]
    assert sum(f.size for f, _ in allocate(selected, 39, "loud")) == 39
