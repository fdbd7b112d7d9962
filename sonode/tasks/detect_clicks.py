"""Click candidates (stage 1) and their judging (`sonode.tasks.detect` describes the method; the
checks of stage 2 are `sonode.tasks.click_checks`). Moved from `sonode.tasks.detect_parts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal

from sonode.tasks.click_checks import (
    STRONG_EXCESS,
    EventIsolation,
    events_of,
    judge,
    new_sound,
)
from sonode.tasks.detect_parts import LP_ORDER, Defect, _Loudness, prediction_residual

CLICK_FACTOR = 8.0
MAX_CLICK_S = 0.003
ISOLATION_S = 0.02
DOMINANCE = 2.0
CLICK_PAD_S = (0.0005, 0.002)  # widen a click's span (before, after): its start and its tail, which
# sinks below the prediction error before it ends (a 30-sample burst: its last 20 samples unseen)


@dataclass(frozen=True)
class Candidate:
    """A residual burst that passed the first stage of `clicks`: its padded span [start, end)
    (channel positions), prediction error over the local median (``factor``), over the largest
    within ISOLATION_S (``ratio``), and `sonode.tasks.click_checks.new_sound` across it."""

    start: int
    end: int
    factor: float
    ratio: float
    change: tuple[float, float, float] | None
    singled_out: bool = True  # isolated, in a sounding passage; else only STRONG_EXCESS admits it


def click_candidates(
    x: np.ndarray, rate: int, loud: _Loudness, own: tuple[int, int] | None = None
) -> tuple[list[Candidate], tuple[np.ndarray, np.ndarray]]:
    """(candidates, (channel positions, log-isolations) of the residual's events) of ``x`` (n,), samples [loud.origin,
    loud.origin + n) of the channel. With ``own`` = (a, b) (channel positions), only bursts and
    events starting in [a, b): a block of a long file, whose margins make these exact."""
    origin = loud.origin
    a, b = (origin, origin + x.size) if own is None else own
    e = np.abs(prediction_residual(x, rate, origin))
    # Local scale: median |e| per 5 ms, then the median of 9 such medians around each (45 ms);
    # the 5 ms hops start at multiples of 5 ms of the channel (a block's first one is partial).
    hop = max(1, int(0.005 * rate))
    lead = origin % hop
    ep = np.concatenate([np.full(lead, e[0]), e]) if lead else e
    n_hops = -(-ep.size // hop)
    padded = np.concatenate([ep, np.full(n_hops * hop - ep.size, np.nan)])
    whole = ep.size // hop  # np.median on the full hops: nanmedian over all took 1.1 s of 3 minutes
    medians = np.concatenate(
        [
            np.median(ep[: whole * hop].reshape(whole, hop), axis=1),
            np.nanmedian(padded[whole * hop :].reshape(-1, hop), axis=1),
        ]
    )
    local = scipy.signal.medfilt(medians, 9) if n_hops >= 9 else np.full(n_hops, np.median(medians))
    scale = np.repeat(np.maximum(local, 1e-12), hop)[lead : lead + x.size]
    # a burst of MAX_CLICK_S plus the predictor's ring of LP_ORDER samples after it
    gap = max(1, int(0.001 * rate))
    isolation, longest = int(ISOLATION_S * rate), int(MAX_CLICK_S * rate) + LP_ORDER
    lo = max(a, isolation) - origin  # events as `EventIsolation` takes them on the whole channel
    hi = min(b, loud.total - LP_ORDER - gap - isolation) - origin
    at, log_isolation = events_of(e, isolation, gap, LP_ORDER + gap, max(lo, 0), hi)
    events = (at + origin, log_isolation)
    strong = e > CLICK_FACTOR * scale
    # Group exceedances closer than 1 ms into one burst.
    hits = np.flatnonzero(strong)
    if hits.size == 0:
        return [], events
    splits = np.flatnonzero(np.diff(hits) > gap) + 1
    pad_before, pad_after = int(CLICK_PAD_S[0] * rate), int(CLICK_PAD_S[1] * rate)
    found = []
    for group in np.split(hits, splits):
        start, end = int(group[0]), int(group[-1]) + 1
        singled_out = end - start <= longest
        if not singled_out:  # a burst inside a run of the sound's own exceedances (a stroke)
            if end - start > 2 * isolation:  # not a burst: a sustained sound's residual
                continue
            start, end = _core(e, group, gap)
            if end - start > longest:
                continue
        if not a <= start + origin < b:
            continue
        # Dominance over the neighbourhood (the predictor's ring after the burst excepted): pitch
        # pulses of voiced speech and brass are as strong as their neighbours, a click is not.
        ring = end + LP_ORDER + gap
        around = np.concatenate(
            [e[max(0, start - isolation) : max(0, start - gap)], e[ring : ring + isolation]]
        )
        peak = float(e[start:end].max())
        if around.size > 0 and peak < DOMINANCE * around.max():
            continue
        burst = end - start
        start, end = max(0, start - pad_before), min(x.size, end + pad_after)
        if not loud.sounding_around(start + origin, end + origin):
            if not loud.sounding_around(start + origin, end + origin, one_side=True):
                continue
            singled_out = False  # next to a pause: a click there, or the start of a sound
        change = new_sound(x, rate, start, end, burst)
        if not singled_out and (change is None or not change[2] >= STRONG_EXCESS):
            continue  # the second way in: a burst beyond any sound's own power (click_checks)
        ratio = peak / around.max() if around.size and around.max() > 0 else float("inf")
        found.append(
            Candidate(
                start + origin, end + origin, peak / scale[group[0]], ratio, change, singled_out
            )
        )
    return found, events


def _core(e: np.ndarray, group: np.ndarray, gap: int) -> tuple[int, int]:
    """[start, end) of the samples of ``group`` (positions into ``e``) at least 1/DOMINANCE of
    its peak, joined across gaps ≤ ``gap``, around the peak: what of a long run of exceedances
    stands out as a click's burst would (the rest is at most half its peak, as isolation asks)."""
    top = group[e[group] >= e[group].max() / DOMINANCE]
    pieces = np.split(top, np.flatnonzero(np.diff(top) > gap) + 1)
    peak = int(group[np.argmax(e[group])])
    core = next(p for p in pieces if p[0] <= peak <= p[-1])
    return int(core[0]), int(core[-1]) + 1


def judge_candidates(
    candidates: list[Candidate], events: EventIsolation, rejected: list[Defect] | None = None
) -> list[Defect]:
    """The candidates `sonode.tasks.click_checks.judge` takes for clicks, as defects with their
    reason; the others are appended to ``rejected`` if given."""
    found = []
    for c in candidates:
        is_click, why = judge(c.change, c.ratio, events, c.singled_out)
        reason = (
            f"isolated burst: prediction error {c.factor:.0f}x the local median, "
            f"{c.ratio:.1f}x the largest within {ISOLATION_S * 1000:.0f} ms; {why}"
        )
        d = Defect(c.start, c.end, "click", reason)
        if is_click:
            found.append(d)
        elif rejected is not None:
            rejected.append(d)
    return found


def clicks(
    x: np.ndarray, rate: int, loud: _Loudness, rejected: list[Defect] | None = None
) -> list[Defect]:
    """Short isolated bursts far above the local prediction error in all of ``x`` (see the module
    docstring) that `sonode.tasks.click_checks.judge` takes for clicks; the bursts it takes for
    sounds of the recording are appended to ``rejected`` (with the reason) if given."""
    candidates, (_, events) = click_candidates(x, rate, loud)
    return judge_candidates(candidates, EventIsolation(events), rejected)
