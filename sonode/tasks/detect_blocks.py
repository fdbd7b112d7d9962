"""`sonode.tasks.detect` on a channel of any length, block by block, with bounded memory.

Detection needs two things of the whole channel: the loudest 20 ms (what "sounding" means) and the
isolation of all the residual's events (how isolated the recording's own transients are,
`sonode.tasks.click_checks.EventIsolation`). Everything else is local: a run or repeat at a sample
depends on the audio up to MAX_REPEAT_LAG_S before it, a click's decision on about 0.1 s around it.
So a channel is read twice, block by block:

1. the loudest 20 ms (blocks overlapping by 20 ms);
2. each *core* block [a, b) with a margin on each side (`margin_samples`): the runs of identical
   samples and the repeats inside the core (a run or repeat that reaches the core's end continues
   into the next block: `_RunStitcher`), the click candidates that start inside the core with
   their local measurements, and the log-isolation of the events inside the core.

Then the candidates are judged against the events of the whole channel. The linear predictor's
50 ms blocks and the scale's 5 ms hops keep the channel's grid (`prediction_residual`'s
``origin``), so away from the channel's ends every figure is computed on the same samples as on
the whole channel: the detections are the same (tests/test_detect_blocks.py compares them; the
only differences possible are round-off in running sums, measured in docs/fill_detection.md).
Memory: one block and its margins at a time, plus a few numbers per candidate and event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sonode.tasks.click_checks import (
    CHANGE_GUARD_S,
    CHANGE_ORDER,
    CHANGE_WINDOW_S,
    EventIsolation,
)
from sonode.tasks.detect_clicks import (
    CLICK_PAD_S,
    ISOLATION_S,
    MAX_CLICK_S,
    Candidate,
    click_candidates,
    judge_candidates,
    window_samples,
)
from sonode.tasks.detect_parts import (
    BLOCK_S,
    LP_ORDER,
    MAX_REPEAT_LAG_S,
    Defect,
    _Loudness,
    loudest_mean_square,
    min_run_samples,
    repeat_defect,
    repeat_mask,
    repeat_width,
    run_defect,
)

#: Core block of block-wise detection (`sonode fill --detect`): 20 s is ~125 MB of detection's
#: working memory at 48 kHz (DETECT_BYTES_PER_SAMPLE), and its margins add 2-5 % of work.
DETECT_BLOCK_S = 20.0

Reader = Callable[[int, int], np.ndarray]  # (start, stop) -> the channel's samples [start, stop)


def margin_samples(rate: int) -> int:
    """Samples read on each side of a core block so that everything decided inside the core sees
    the audio it would see in the whole channel: the repeat finder's lag and window, two predictor
    blocks (the one cut by the margin's edge and its successor's history), the scale's medians
    (9 hops of 5 ms, one partial), a click's span, padding and neighbourhood, and the new-sound
    windows, and the second scale's window; each term rounded up."""
    lp_block = max(4 * LP_ORDER, int(BLOCK_S * rate))
    click = (
        int(MAX_CLICK_S * rate)
        + 2 * LP_ORDER
        + 2 * int(ISOLATION_S * rate)
        + int(CLICK_PAD_S[1] * rate)
        + int((CHANGE_WINDOW_S + CHANGE_GUARD_S) * rate)
        + CHANGE_ORDER
        + window_samples(rate)
    )
    scale = 11 * max(1, int(0.005 * rate))
    repeat = int(MAX_REPEAT_LAG_S * rate) + 2 * repeat_width(rate)
    return max(repeat, 2 * lp_block + scale + click) + 16


class _RunStitcher:
    """Runs of True of a boolean mask given core block by core block (channel positions): a run
    reaching a block's end stays open until a later block ends it. Each run carries the value
    ``payload_at(start)`` computed in the block where it starts."""

    def __init__(self, shortest: int = 1) -> None:
        self.open: tuple[int, Any] | None = None
        # runs inside one block shorter than this are dropped unseen: in quiet 16-bit audio the
        # mask of repeated samples has millions of short runs, and each one's payload cost time
        self.shortest = shortest

    def feed(self, mask: np.ndarray, offset: int, payload_at: Callable[[int], Any]) -> list:
        """The runs that end in this block (or at its first sample): [(start, end, payload)]."""
        out = []
        if self.open is not None and (mask.size == 0 or not mask[0]):
            out.append((*self.open, offset))  # the open run ended where this block starts
            self.open = None
        edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        keep = (ends - starts >= self.shortest) | (starts == 0) | (ends == mask.size)
        for s, e in zip(
            (starts[keep] + offset).tolist(), (ends[keep] + offset).tolist(), strict=True
        ):
            if s == offset and self.open is not None:
                start, payload = self.open
                self.open = None
            else:
                start, payload = s, payload_at(s)
            if e == offset + mask.size:
                self.open = (start, payload)
            else:
                out.append((start, payload, e))
        return out

    def finish(self, n: int) -> list:
        """The run still open at the channel's end ``n``."""
        out = [] if self.open is None else [(self.open[0], self.open[1], n)]
        self.open = None
        return out


def loudest_by_blocks(read: Reader, n: int, rate: int, block: int) -> float:
    """`loudest_mean_square` of the channel, read in blocks of ``block`` samples overlapping by
    20 ms (every 20 ms window lies wholly in one of them)."""
    w20 = max(1, int(0.02 * rate))
    if n <= w20 or block >= n:
        return loudest_mean_square(read(0, n), rate)
    return max(
        loudest_mean_square(read(a, min(n, a + block + w20)), rate)
        for a in range(0, n - w20 + 1, block)
    )


def detect_channel(read: Reader, n: int, rate: int, block: int | None = None) -> list[Defect]:
    """Defects of one channel of ``n`` samples at ``rate`` Hz, ``read(start, stop)`` giving its
    samples [start, stop) as float64; in core blocks of ``block`` samples (None: one block, the
    whole channel), each read with `margin_samples` on both sides. Sorted by start, not merged."""
    if n == 0:
        return []
    block = n if block is None else max(1, int(block))
    margin = margin_samples(rate)
    scan = _BlockScan(rate, n, loudest_by_blocks(read, n, rate, block))
    for a in range(0, n, block):
        b = min(n, a + block)
        lo, hi = max(0, a - margin), min(n, b + margin)
        scan.block(np.asarray(read(lo, hi), dtype=np.float64), lo, a, b)
    # A dropout makes residual bursts at its edges: a click inside or next to one is that dropout,
    # and so is an event there (not one of the recording's own: left out of the events' tail).
    near = int(0.002 * rate)
    starts = np.array(sorted(d.start for d in scan.dropouts), dtype=np.int64)
    ends = np.array(sorted(d.end for d in scan.dropouts), dtype=np.int64)
    at = np.concatenate([p for p, _ in scan.events])
    own = ~_touches(at, at + 1, starts, ends, near)
    events = EventIsolation(np.concatenate([v for _, v in scan.events])[own])
    clicks = judge_candidates(scan.candidates, events)
    clicks = [c for c in clicks if not _touches(c.start, c.end, starts, ends, near)]
    return sorted(scan.dropouts + clicks, key=lambda d: (d.start, d.end))


class _BlockScan:
    """What `detect_channel` gathers block by block: dropouts, click candidates, events."""

    def __init__(self, rate: int, n: int, loudest: float) -> None:
        self.rate, self.n, self.loudest = rate, n, loudest
        # a run of `same` of L samples is a run of L + 1 identical samples (run_defect's minimum)
        self.runs = _RunStitcher(min_run_samples(rate) - 1)
        self.repeats = _RunStitcher()
        self.dropouts: list[Defect] = []
        self.candidates: list[Candidate] = []
        self.events: list[tuple[np.ndarray, np.ndarray]] = []

    def block(self, x: np.ndarray, lo: int, a: int, b: int) -> None:
        """Scan ``x``, samples [lo, lo + x.size) of the channel, for what starts in [a, b)."""
        rate, n = self.rate, self.n
        loud = _Loudness(x, rate, self.loudest, origin=lo, total=n)
        core = x[a - lo : b - lo]
        same = np.empty(core.size, dtype=bool)  # same[i]: sample i repeats sample i − 1
        same[1:] = core[1:] == core[:-1]
        same[:1] = a > 0 and x[a - lo] == x[a - lo - 1]  # (never the channel's first sample)

        def run_start(s: int) -> tuple[float, float]:  # a run of `same` from s: samples from s − 1
            return _before(loud, s - 1), float(x[s - 1 - lo])

        ended = self.runs.feed(same, a, run_start) + (self.runs.finish(n) if b == n else [])
        for s, (before, value), e in ended:
            d = run_defect(s - 1, e, value, rate, loud, before, _after(loud, e))
            self.dropouts += [d] if d else []
        mask, lag = repeat_mask(x, rate)

        def repeat_start(s: int) -> tuple[float, int]:
            return _before(loud, s), int(lag[s - lo])

        ended = self.repeats.feed(mask[a - lo : b - lo], a, repeat_start)
        for s, (before, at), e in ended + (self.repeats.finish(n) if b == n else []):
            d = repeat_defect(s, e, at, rate, loud, before, _after(loud, e))
            self.dropouts += [d] if d else []
        found, events = click_candidates(x, rate, loud, own=(a, b))
        self.candidates += found
        self.events.append(events)


def _touches(start, end, starts: np.ndarray, ends: np.ndarray, near: int):
    """Whether some dropout [starts, ends) comes within ``near`` samples of [start, end) (scalars
    or arrays): the dropouts starting before end + near, less those ending by start − near (all of
    which start before it too), by binary search in the sorted starts and ends."""
    return (
        np.searchsorted(starts, np.add(end, near), "left")
        - np.searchsorted(ends, np.subtract(start, near), "right")
        > 0
    )


def _before(loud: _Loudness, start: int) -> float:
    """Mean square of the 10 ms before ``start`` (0 where they would leave the channel: such a
    run is not inside a sounding passage anyway, `_Loudness.sounding`)."""
    return loud.before(start) if start >= loud.window else 0.0


def _after(loud: _Loudness, end: int) -> float:
    return loud.after(end) if end + loud.window <= loud.total else 0.0
