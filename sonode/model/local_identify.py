"""Identifying the local model's tracks: steps 1–2 of `sonode.model.local_fit` (peaks per window,
tracking, the number of modes per window chosen by validation on held-back samples)."""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from sonode.dsp.metrics import snr_db
from sonode.dsp.partials import Tracks, frame_peaks, link_tracks
from sonode.model.local import LocalConfig, LocalModel
from sonode.model.local_refine import HOLD_OUT_EVERY
from sonode.model.local_synthesis import chunked_least_squares

# node spacings tried, shortest first, while the held-back SNR improves: 10 ms follows an attack
# or a syllable within ~1 node; 20 and 40 ms give each node 2 and 4 times the modes at the same
# numbers per sample, and windows that resolve partials 25 and 12 Hz apart (a bass note's)
NODE_SPACINGS_S = (0.010, 0.020, 0.040)
WINDOW_NODES = 4  # analysis window, in node spacings (40 ms at 10 ms: partials ~50 Hz apart)
# a longer spacing is tried only if ~this many times the last one's identification time fits
# before the deadline (twice the modes per node in half the nodes: ~4× the work)
SPACING_COST_GROWTH = 4.0
PARAMETERS_PER_SAMPLE = 0.5  # the node tables' budget: 3 numbers per mode per node
# and at most this many modes per node, whatever the spacing and rate: the least squares keeps one
# (3·modes)² coupling per node of a run (`chunked_least_squares`), 0.66 MB here (73 at 10 ms and
# 44.1 kHz; 294 at 40 ms would be 6.2 MB a node, GBs a run)
MAX_MODES_PER_NODE = 96
# ... except in the "loud" allocation (1.2 MB a node; a run's length adapts, `RUN_BYTES`)
LOUD_MODES_PER_NODE = 128
LEVELS_DB = (20.0, 35.0, 50.0, 65.0, 80.0)  # candidate levels of the per-window validation
# how the node entries' budget (the per-node cap times the nodes) is shared, also chosen by the
# validation: "node" gives every node at most the cap; "clip" gives the budget to the clip's
# strongest peaks, so a loud chord's node may take up to MAX_MODES_PER_NODE and a quiet one fewer
# (the SNR is an energy ratio over the clip: a loud window's weaker partials can outweigh a quiet
# window's strongest); "loud" does the same with up to LOUD_MODES_PER_NODE (it wins on some dense
# music by 1–3 dB and loses on other clips, where concentrating the budget starves the rest)
ALLOCATIONS = ("node", "clip", "loud")
QUIET_DB = 20.0  # a window this much quieter than the clip's loudest keeps its level
TRACK_TOLERANCE_HZ = 15.0  # a peak continues a track within 15 Hz + 2 % of its frequency
TRACK_TOLERANCE_RELATIVE = 0.02


class Identified(NamedTuple):
    """The tracks the validation chose, its level (dB), the allocation (one of ALLOCATIONS) and
    their held-back SNR (dB)."""

    tracks: Tracks
    level_db: float
    validation_db: float
    allocation: str


def identify_tracks(xn: np.ndarray, sample_rate: int, deadline: float | None = None):
    """(hop in samples, `Identified`) of a normalised clip: steps 1–2 of
    `sonode.model.local_fit`, at the node spacing of NODE_SPACINGS_S whose held-back SNR is best.
    Longer spacings are tried while the score improves and, with a ``deadline``
    (time.perf_counter()), while their predicted cost fits before it."""
    best = None
    for spacing_s in NODE_SPACINGS_S:
        began = time.perf_counter()
        hop = max(8, int(round(spacing_s * sample_rate)))
        n_nodes = max(2, math.ceil((xn.size - 1) / hop) + 1)
        if best is not None and n_nodes < 3:
            break  # one interval: the clip is too short for a longer spacing
        peaks = frame_peaks(xn, sample_rate, hop, WINDOW_NODES * hop, n_nodes, LOUD_MODES_PER_NODE)
        try:
            found = choose_level(xn, sample_rate, hop, peaks)
        except ValueError:  # no peaks at all
            if best is None:
                raise
            break
        if best is not None and not found.validation_db > best[1].validation_db:
            break  # the longer windows lose more in time than they gain in frequency
        best = (hop, found)
        cost = SPACING_COST_GROWTH * (time.perf_counter() - began)
        if deadline is not None and time.perf_counter() + cost > deadline:
            break
    return best


def node_budget(n_samples: int) -> int:
    """Node entries within PARAMETERS_PER_SAMPLE (3 numbers per entry) over a clip of n_samples:
    the same at every node spacing, so that the validation compares spacings at one budget."""
    return max(1, int(PARAMETERS_PER_SAMPLE * n_samples / 3))


def select_peaks(peaks, level_db: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window, the peaks within level_db of its strongest and within level_db + QUIET_DB of
    the clip's strongest (a quiet passage keeps its own notes, silence keeps nothing)."""
    loudest = max((float(m[0]) for _, m in peaks if m.size), default=0.0)
    out = []
    for freqs, mags in peaks:
        strongest = float(mags[0]) if mags.size else 0.0
        floor = max(
            strongest * 10 ** (-level_db / 20), loudest * 10 ** (-(level_db + QUIET_DB) / 20)
        )
        keep = mags >= floor
        out.append((freqs[keep], mags[keep]))
    return out


def allocate(
    selected: list[tuple[np.ndarray, np.ndarray]], budget: int, allocation: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The peaks kept of ``selected`` (per node, strongest first) within ``budget`` entries in
    all: at most budget // nodes (and MAX_MODES_PER_NODE) at each node ("node"), or the clip's
    strongest ``budget`` wherever they are, at most MAX_MODES_PER_NODE ("clip") or
    LOUD_MODES_PER_NODE ("loud") at a node. The per-node caps bound memory (`RUN_BYTES`), not
    the parameters: where a node's share is over them (40 ms at 16 kHz: 102 against 96), "clip"
    and "loud" still pool the whole budget."""
    cap = _cap(budget, len(selected), allocation)
    selected = [(f[:cap], m[:cap]) for f, m in selected]
    if allocation == "node":
        return selected
    mags = np.concatenate([m for _, m in selected])
    if mags.size <= budget:
        return selected
    keep = np.zeros(mags.size, dtype=bool)
    keep[np.argsort(-mags, kind="stable")[:budget]] = True
    parts = np.split(keep, np.cumsum([f.size for f, _ in selected])[:-1])
    return [(f[k], m[k]) for (f, m), k in zip(selected, parts, strict=True)]


def _cap(budget: int, n_nodes: int, allocation: str) -> int:
    """Most entries an allocation gives one node of n_nodes sharing ``budget`` entries."""
    caps = {
        "node": max(1, min(budget // max(1, n_nodes), MAX_MODES_PER_NODE)),
        "clip": MAX_MODES_PER_NODE,
        "loud": LOUD_MODES_PER_NODE,
    }
    if allocation not in caps:
        raise ValueError(f"unknown allocation {allocation!r}")
    return caps[allocation]


def choose_level(xn, rate, hop, peaks) -> Identified:
    """The tracks of the level and allocation with the best held-back SNR.

    ``xn``: the normalised clip (n,); ``rate`` in Hz; ``hop``: node spacing in samples;
    ``peaks``: per node, (frequencies in Hz, magnitudes), strongest first (`frame_peaks`).

    Every candidate, at every node spacing, shares the same budget (`node_budget`): held-back
    samples penalise entries that the whole clip's reconstruction rewards (3 numbers per entry
    fitted on 7 of 8 samples at ~0.5 numbers per sample), so a candidate with fewer entries wins
    held back and loses in full (a choir note: 40 ms nodes with 8 % fewer entries than 20 ms ones
    won by 0.01 dB held back, lost 0.49 dB in full)."""
    mask = np.ones(xn.size)
    mask[HOLD_OUT_EVERY // 2 :: HOLD_OUT_EVERY] = 0.0
    held = mask == 0
    budget = node_budget(xn.size)
    best = None
    previous_count = -1
    for level in LEVELS_DB:
        selected = select_peaks(peaks, level)
        count = sum(f.size for f, _ in selected)
        if count == previous_count:  # every window already keeps its most peaks: same tracks
            break
        previous_count = count
        level_best = -np.inf
        most = max(f.size for f, _ in selected)
        for i, allocation in enumerate(ALLOCATIONS):
            if i and most <= _cap(budget, len(peaks), ALLOCATIONS[i - 1]):
                break  # no node over the last one's cap: this one keeps the same peaks
            tracks = _tracks(allocate(selected, budget, allocation))
            if tracks.first.size == 0:
                break
            states = _solve_states(tracks, xn, hop, rate, mask)
            fit = _synthesise(tracks, states, xn.size, hop, rate)
            score = snr_db(xn[held], fit[held])
            level_best = max(level_best, score)
            if best is None or score > best.validation_db:
                best = Identified(tracks, level, score, allocation)
        if best is not None and level_best < best.validation_db - 1.0:
            break  # past the best level: more modes only fit the noise
    if best is None:
        raise ValueError("the clip has no spectral peaks: nothing for local modes to follow")
    return best


def _tracks(peaks) -> Tracks:
    return link_tracks(peaks, TRACK_TOLERANCE_HZ, TRACK_TOLERANCE_RELATIVE)


def _solve_states(tracks: Tracks, xn, hop, rate, mask=None):
    """(amp_re, amp_im), each (P,): the node states by least squares."""
    cycles = tracks.freq_hz * hop / rate
    return chunked_least_squares(tracks.first, tracks.length, cycles, xn, hop, mask)


def _synthesise(tracks: Tracks, states, n, hop, rate) -> np.ndarray:
    config = LocalConfig(rate, n, hop, 1.0, 0.0)
    model = LocalModel(config, tracks.first, tracks.length, tracks.freq_hz, *states)
    return model.reconstruct().numpy()
