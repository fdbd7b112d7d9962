"""Click candidates (stage 1) and their judging (`sonode.tasks.detect` describes the method; the
checks of stage 2 are `sonode.tasks.click_checks`). Moved from `sonode.tasks.detect_parts`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal
import scipy.stats

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
# The second scale's window: 0.5 ms, the geometric middle of clicks' 0.1-2 ms (a vinyl tick to a
# scratch). Its threshold is set by CLICK_FACTOR (`window_factor`), its isolation by DOMINANCE.
WINDOW_S = 0.0005
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
    window: int = 1  # found at the scale of single samples (1) or of windows of this many


def click_candidates(
    x: np.ndarray, rate: int, loud: _Loudness, own: tuple[int, int] | None = None
) -> tuple[list[Candidate], tuple[np.ndarray, np.ndarray]]:
    """(candidates, (channel positions, log-isolations) of the residual's events) of ``x`` (n,),
    samples [loud.origin, loud.origin + n) of the channel. With ``own`` = (a, b) (channel
    positions), only bursts and events starting in [a, b): a block of a long file, whose margins
    make these exact. Bursts are looked for at two scales: the residual's samples, and its RMS over
    windows of WINDOW_S (`window_samples`), which finds a burst of several samples in noise whose
    single samples do not stand out (`distinct` drops those a sample's burst overlaps)."""
    origin = loud.origin
    a, b = (origin, origin + x.size) if own is None else own
    e = np.abs(prediction_residual(x, rate, origin))
    gap, isolation = max(1, int(0.001 * rate)), int(ISOLATION_S * rate)
    lo = max(a, isolation) - origin  # events as `EventIsolation` takes them on the whole channel
    hi = min(b, loud.total - LP_ORDER - gap - isolation) - origin
    at, log_isolation = events_of(e, isolation, gap, LP_ORDER + gap, max(lo, 0), hi)
    events = (at + origin, log_isolation)
    found = _bursts(x, rate, loud, (a, b), e, e, 1)
    w = window_samples(rate)
    if w > 1:
        power = np.concatenate([[0.0], np.cumsum(e**2)])
        ends = np.minimum(np.arange(e.size) + w, e.size)
        rms = np.sqrt(np.maximum(power[ends] - power[: e.size], 0.0) / (ends - np.arange(e.size)))
        found += _bursts(x, rate, loud, (a, b), rms, e, w)
    return found, events


def window_samples(rate: int) -> int:
    """Samples of the second scale's window (WINDOW_S, at least 1)."""
    return max(1, int(round(WINDOW_S * rate)))


def window_factor(w: int) -> float:
    """The threshold over the local median for the RMS of ``w`` residual samples that Gaussian
    noise exceeds as rarely as one sample exceeds CLICK_FACTOR × its median (equal false-candidate
    rates at both scales): √(χ²_w's upper quantile / its median), 8 at w = 1, 1.85 at w = 24."""
    p = 2 * scipy.stats.norm.sf(CLICK_FACTOR * scipy.stats.norm.isf(0.25))
    return float(np.sqrt(scipy.stats.chi2.isf(p, w) / scipy.stats.chi2.median(w)))


def _local_scale(stat: np.ndarray, rate: int, origin: int) -> np.ndarray:
    """Local scale of ``stat`` (n,): its median per 5 ms, then the median of 9 such medians around
    each (45 ms); the 5 ms hops start at multiples of 5 ms of the channel (a block's first one is
    partial)."""
    hop = max(1, int(0.005 * rate))
    lead = origin % hop
    ep = np.concatenate([np.full(lead, stat[0]), stat]) if lead else stat
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
    return np.repeat(np.maximum(local, 1e-12), hop)[lead : lead + stat.size]


def _bursts(
    x: np.ndarray,
    rate: int,
    loud: _Loudness,
    own: tuple[int, int],
    stat: np.ndarray,
    e: np.ndarray,
    w: int,
) -> list[Candidate]:
    """Candidates of one scale: ``stat`` (n,) is |residual| ``e`` (w = 1) or its RMS over the ``w``
    samples from each position; bursts of ``stat`` above `window_factor` × its local scale."""
    origin = loud.origin
    a, b = own
    scale = _local_scale(stat, rate, origin)
    # a burst of MAX_CLICK_S plus the predictor's ring of LP_ORDER samples after it
    gap, isolation = max(1, int(0.001 * rate)), int(ISOLATION_S * rate)
    longest = int(MAX_CLICK_S * rate) + LP_ORDER
    hits = np.flatnonzero(stat > window_factor(w) * scale)
    if hits.size == 0:
        return []
    # Group exceedances closer than 1 ms into one burst.
    splits = np.flatnonzero(np.diff(hits) > gap) + 1
    pad_before, pad_after = int(CLICK_PAD_S[0] * rate), int(CLICK_PAD_S[1] * rate)
    found = []
    for group in np.split(hits, splits):
        start, end = int(group[0]), int(group[-1]) + 1
        singled_out = end - start <= longest
        if not singled_out:  # a burst inside a run of the sound's own exceedances (a stroke)
            if end - start > 2 * isolation:  # not a burst: a sustained sound's residual
                continue
            start, end = _core(stat, group, gap)
            if end - start > longest:
                continue
        if not a <= start + origin < b:
            continue
        # Dominance over the neighbourhood (the predictor's ring after the burst excepted): pitch
        # pulses of voiced speech and brass are as strong as their neighbours, a click is not.
        # A window at p covers e[p : p + w]: those reaching into the burst are not its neighbours.
        ring = end + w - 1 + LP_ORDER + gap
        around = np.concatenate(
            [
                stat[max(0, start - isolation) : max(0, start - gap - w + 1)],
                stat[ring : ring + isolation],
            ]
        )
        peak = float(stat[start:end].max())
        if around.size > 0 and peak < DOMINANCE * around.max():
            continue
        factor = peak / scale[start]
        end += w - 1  # the samples of e the burst's windows cover
        burst = end - start
        # its isolation as the recording's events are measured (single samples), for the rarity
        ring = end + LP_ORDER + gap
        near = np.concatenate(
            [e[max(0, start - isolation) : max(0, start - gap)], e[ring : ring + isolation]]
        )
        top = float(e[start:end].max())
        ratio = top / near.max() if near.size and near.max() > 0 else float("inf")
        start, end = max(0, start - pad_before), min(x.size, end + pad_after)
        if not loud.sounding_around(start + origin, end + origin):
            if not loud.sounding_around(start + origin, end + origin, one_side=True):
                continue
            singled_out = False  # next to a pause: a click there, or the start of a sound
        change = new_sound(x, rate, start, end, burst)
        if not singled_out and (change is None or not change[2] >= STRONG_EXCESS):
            continue  # the second way in: a burst beyond any sound's own power (click_checks)
        found.append(Candidate(start + origin, end + origin, factor, ratio, change, singled_out, w))
    return found


def _core(e: np.ndarray, group: np.ndarray, gap: int) -> tuple[int, int]:
    """[start, end) of the samples of ``group`` (positions into ``e``) at least 1/DOMINANCE of
    its peak, joined across gaps ≤ ``gap``, around the peak: what of a long run of exceedances
    stands out as a click's burst would (the rest is at most half its peak, as isolation asks)."""
    top = group[e[group] >= e[group].max() / DOMINANCE]
    pieces = np.split(top, np.flatnonzero(np.diff(top) > gap) + 1)
    peak = int(group[np.argmax(e[group])])
    core = next(p for p in pieces if p[0] <= peak <= p[-1])
    return int(core[0]), int(core[-1]) + 1


def distinct(candidates: list[Candidate]) -> list[Candidate]:
    """``candidates`` less those of the window scale that overlap one of single samples (the same
    burst). Done on all of a channel's candidates: in block-wise detection the two may start in
    different blocks."""
    samples = [c for c in candidates if c.window == 1]
    starts = np.sort([c.start for c in samples]).astype(np.int64)
    ends = np.sort([c.end for c in samples]).astype(np.int64)
    # sample spans starting before c ends, less those ending by its start: the overlapping ones
    return [
        c
        for c in candidates
        if c.window == 1
        or not np.searchsorted(starts, c.end) - np.searchsorted(ends, c.start, "right")
    ]


def judge_candidates(
    candidates: list[Candidate], events: EventIsolation, rejected: list[Defect] | None = None
) -> list[Defect]:
    """The `distinct` candidates `sonode.tasks.click_checks.judge` takes for clicks, as defects
    with their reason; the others are appended to ``rejected`` if given."""
    found = []
    for c in distinct(candidates):
        is_click, why = judge(c.change, c.ratio, events, c.singled_out)
        what = "isolated burst" if c.singled_out else "burst in a run of exceedances or by a pause"
        error = (
            "prediction error"
            if c.window == 1
            else f"prediction error's RMS over {c.window} samples"
        )
        reason = (
            f"{what}: {error} {c.factor:.0f}x the local median, "
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
