"""Find dropouts and clicks in a recording, for `sonode fill --detect`.

Three kinds of defect, each only inside a sounding passage (both sides at least SOUNDING_DB below
the clip's loudest 20 ms, so pauses, fades and digital silence between sounds are left alone):
- "zeros" / "hold": a run of identical samples (digital silence, or a held value) at least
  MIN_RUN_S long — real sounding audio crosses a value, it does not stay on it (here one side
  may be quiet down to QUIET_DB, as when a dropout runs into the end of a word);
- "repeat": a stretch that is an exact copy of the audio up to MAX_REPEAT_LAG_S earlier (packet
  loss concealment by repetition): windows of MIN_RUN_S are compared by hash, then exactly;
- "click": a short burst far above the local linear-prediction error. An order-LP_ORDER Burg
  predictor is fitted per block; samples whose residual exceeds CLICK_FACTOR × the local median
  |residual| are grouped, and a group counts when it is short (≤ MAX_CLICK_S) and isolated: its
  peak is DOMINANCE times the largest residual within ISOLATION_S around it (the predictor's
  ring after the burst excepted) — voiced speech and brass have a residual peak every pitch
  period, each as strong as the next; a click stands alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from sonode.dsp.lpc import burg

SOUNDING_DB = -30.0
QUIET_DB = -60.0
MIN_RUN_S = 0.0005
MAX_REPEAT_LAG_S = 0.2
LP_ORDER = 32
BLOCK_S = 0.05
CLICK_FACTOR = 8.0
MAX_CLICK_S = 0.003
ISOLATION_S = 0.02
DOMINANCE = 2.0
CLICK_PAD_S = (0.0005, 0.001)  # widen a click's span (before, after): its start and ring-out


@dataclass(frozen=True)
class Defect:
    """Samples [start, end) of one defect and its kind ("zeros", "hold", "repeat", "click")."""

    start: int
    end: int
    kind: str


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=False)
    )


class _Loudness:
    """Local RMS over 10 ms windows, to tell sounding passages from pauses."""

    def __init__(self, x: np.ndarray, rate: int):
        self.window = max(1, int(0.01 * rate))
        self.energy = np.concatenate([[0.0], np.cumsum(x**2)])
        w20 = max(1, int(0.02 * rate))
        loudest = (
            np.max(self.energy[w20:] - self.energy[:-w20]) / w20 if x.size > w20 else np.mean(x**2)
        )
        self.threshold = loudest * 10 ** (SOUNDING_DB / 10)
        self.quiet = loudest * 10 ** (QUIET_DB / 10)

    def sounding_around(self, start: int, end: int, one_side: bool = False) -> bool:
        """The 10 ms before ``start`` and the 10 ms after ``end`` are sounding; with ``one_side``,
        one of them is and the other is at least QUIET_DB re the loudest (not digital silence:
        a dropout may run from a note into the quiet end of a word)."""
        n = self.energy.size - 1
        before = (self.energy[start] - self.energy[max(0, start - self.window)]) / self.window
        after = (self.energy[min(n, end + self.window)] - self.energy[end]) / self.window
        if start < self.window or end + self.window > n:
            return False
        if one_side:
            return max(before, after) >= self.threshold and min(before, after) >= self.quiet
        return min(before, after) >= self.threshold


def constant_runs(x: np.ndarray, rate: int, loud: _Loudness) -> list[Defect]:
    """Runs of ≥ MIN_RUN_S identical samples with sounding audio on both sides."""
    min_run = max(4, int(round(MIN_RUN_S * rate)))
    same = np.concatenate([[False], x[1:] == x[:-1]])  # same[n]: x[n] repeats x[n-1]
    found = []
    for start, end in _runs(same):
        start -= 1  # the run includes the first sample of the repeated value
        if end - start >= min_run and loud.sounding_around(start, end, one_side=True):
            found.append(Defect(start, end, "zeros" if x[start] == 0 else "hold"))
    return found


def exact_repeats(x: np.ndarray, rate: int, loud: _Loudness) -> list[Defect]:
    """Stretches equal to the audio at most MAX_REPEAT_LAG_S earlier (later copy reported)."""
    width = max(8, int(round(MIN_RUN_S * rate)))
    if x.size < 2 * width:
        return []
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    # A random linear hash of each window (int64 arithmetic wraps; equal windows, equal hashes).
    weights = np.random.default_rng(0).integers(1, 2**62, size=width, dtype=np.int64)
    with np.errstate(over="ignore"):
        hashes = np.lib.stride_tricks.sliding_window_view(bits, width) @ weights
    order = np.argsort(hashes, kind="stable")
    same = hashes[order[1:]] == hashes[order[:-1]]
    later, earlier = order[1:][same], order[:-1][same]
    close = (later - earlier > 0) & (later - earlier <= MAX_REPEAT_LAG_S * rate)
    mask = np.zeros(x.size, dtype=bool)
    for p, q in zip(later[close].tolist(), earlier[close].tolist(), strict=False):
        window = x[p : p + width]
        if np.ptp(window) > 0 and np.array_equal(window, x[q : q + width]):
            mask[p : p + width] = True
    return [Defect(s, e, "repeat") for s, e in _runs(mask) if loud.sounding_around(s, e)]


def prediction_residual(x: np.ndarray, rate: int) -> np.ndarray:
    """Forward prediction error (n,) of an order-LP_ORDER Burg predictor fitted per BLOCK_S block
    (on the block and LP_ORDER samples before it, so the filter starts with its true history)."""
    block = max(4 * LP_ORDER, int(BLOCK_S * rate))
    residual = np.zeros_like(x)
    for start in range(0, x.size, block):
        lo = max(0, start - LP_ORDER)
        segment = x[lo : start + block]
        if segment.size <= LP_ORDER or not np.any(segment):
            continue
        a = burg(segment, LP_ORDER)
        residual[start : start + block] = scipy.signal.lfilter(a, [1.0], segment)[start - lo :]
    return residual


def clicks(x: np.ndarray, rate: int, loud: _Loudness) -> list[Defect]:
    """Short isolated bursts far above the local prediction error (see the module docstring)."""
    e = np.abs(prediction_residual(x, rate))
    # Local scale: median |e| per 5 ms, then the median of 9 such medians around each (45 ms).
    hop = max(1, int(0.005 * rate))
    n_hops = -(-x.size // hop)
    padded = np.concatenate([e, np.full(n_hops * hop - x.size, np.nan)])
    medians = np.nanmedian(padded.reshape(n_hops, hop), axis=1)
    local = scipy.signal.medfilt(medians, 9) if n_hops >= 9 else np.full(n_hops, np.median(medians))
    scale = np.repeat(np.maximum(local, 1e-12), hop)[: x.size]
    strong = e > CLICK_FACTOR * scale
    # Group exceedances closer than 1 ms into one burst.
    gap = max(1, int(0.001 * rate))
    hits = np.flatnonzero(strong)
    if hits.size == 0:
        return []
    splits = np.flatnonzero(np.diff(hits) > gap) + 1
    # a burst of MAX_CLICK_S plus the predictor's ring of LP_ORDER samples after it
    isolation, longest = int(ISOLATION_S * rate), int(MAX_CLICK_S * rate) + LP_ORDER
    pad_before, pad_after = int(CLICK_PAD_S[0] * rate), int(CLICK_PAD_S[1] * rate)
    found = []
    for group in np.split(hits, splits):
        start, end = int(group[0]), int(group[-1]) + 1
        if end - start > longest:
            continue
        # Dominance over the neighbourhood (the predictor's ring after the burst excepted): pitch
        # pulses of voiced speech and brass are as strong as their neighbours, a click is not.
        ring = end + LP_ORDER + gap
        around = np.concatenate(
            [e[max(0, start - isolation) : max(0, start - gap)], e[ring : ring + isolation]]
        )
        nearby = around.size > 0 and e[start:end].max() < DOMINANCE * around.max()
        start, end = max(0, start - pad_before), min(x.size, end + pad_after)
        if not nearby and loud.sounding_around(start, end):
            found.append(Defect(start, end, "click"))
    return found


def detect_defects(samples: np.ndarray, rate: int) -> list[Defect]:
    """All defects in ``samples`` (n,) or (n, channels) at ``rate`` Hz, merged across channels
    and kinds (overlapping or touching spans become one, keeping the first kind), sorted."""
    x = np.asarray(samples, dtype=np.float64)
    channels = x.reshape(x.shape[0], -1).T
    found: list[Defect] = []
    for channel in channels:
        loud = _Loudness(channel, rate)
        dropouts = constant_runs(channel, rate, loud) + exact_repeats(channel, rate, loud)
        found += dropouts
        # A dropout makes residual bursts at its edges: a click inside or next to one is that dropout.
        near = int(0.002 * rate)
        found += [
            c
            for c in clicks(channel, rate, loud)
            if not any(c.start < r.end + near and r.start < c.end + near for r in dropouts)
        ]
    merged: list[Defect] = []
    for d in sorted(found, key=lambda d: (d.start, d.end)):
        if merged and d.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Defect(last.start, max(last.end, d.end), last.kind)
        else:
            merged.append(d)
    return merged
