"""Find dropouts and clicks in a recording, for `sonode fill --detect`.

Three kinds of defect, each only inside a sounding passage (both sides at least SOUNDING_DB below
the clip's loudest 20 ms, so pauses, fades and digital silence between sounds are left alone):
- "zeros" / "hold": a run of identical samples (digital silence, or a held value) at least
  MIN_RUN_S long — real sounding audio crosses a value, it does not stay on it (here one side
  may be quiet down to QUIET_DB, as when a dropout runs into the end of a word);
- "repeat": a stretch that is an exact copy of the audio up to MAX_REPEAT_LAG_S earlier (packet
  loss concealment by repetition): windows of MIN_RUN_S are compared by hash, then exactly;
- "click": a short burst far above the local linear-prediction error. An order-LP_ORDER
  predictor is fitted per block (autocorrelation method); samples whose residual exceeds CLICK_FACTOR × the local median
  |residual| are grouped, and a group counts when it is short (≤ MAX_CLICK_S) and isolated: its
  peak is DOMINANCE times the largest residual within ISOLATION_S around it (the predictor's
  ring after the burst excepted) — voiced speech and brass have a residual peak every pitch
  period, each as strong as the next; a click stands alone. A burst that passes is then judged
  by `sonode.tasks.click_checks`: it must be more isolated than the recording's own events are
  expected to be, and not the start of a new sound (an attack).

The parts live in `sonode.tasks.detect_parts` and `sonode.tasks.detect_clicks` (re-exported
here); `sonode.tasks.detect_blocks` runs them over a channel block by block (bounded memory on
files of any length).
"""

from __future__ import annotations

import numpy as np

from sonode.tasks.detect_blocks import detect_channel
from sonode.tasks.detect_clicks import (  # noqa: F401  (the detection API, used by tests and benchmarks)
    CLICK_FACTOR,
    CLICK_PAD_S,
    DOMINANCE,
    ISOLATION_S,
    MAX_CLICK_S,
    Candidate,
    click_candidates,
    clicks,
    judge_candidates,
)
from sonode.tasks.detect_parts import (  # noqa: F401  (the detection API, used by tests and benchmarks)
    BLOCK_S,
    LP_ORDER,
    MAX_REPEAT_LAG_S,
    MIN_RUN_S,
    QUIET_DB,
    SOUNDING_DB,
    Defect,
    _Loudness,
    _runs,
    batched_levinson,
    prediction_residual,
    repeat_mask,
)


def detect_defects(samples: np.ndarray, rate: int, block: int | None = None) -> list[Defect]:
    """All defects in ``samples`` (n,) or (n, channels) at ``rate`` Hz, merged across channels
    and kinds (overlapping or touching spans become one, keeping the first kind), sorted.
    ``block``: detect in core blocks of that many samples (`sonode.tasks.detect_blocks`; None:
    the whole channel at once, the same detections)."""
    x = np.asarray(samples, dtype=np.float64)
    found: list[Defect] = []
    for channel in x.reshape(x.shape[0], -1).T:
        found += detect_channel(lambda a, b, c=channel: c[a:b], channel.size, rate, block)
    return merge_defects(found)


def merge_defects(found: list[Defect]) -> list[Defect]:
    """Overlapping or touching defects as one (the first kind and reason kept), sorted by start."""
    merged: list[Defect] = []
    for d in sorted(found, key=lambda d: (d.start, d.end)):
        if merged and d.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Defect(last.start, max(last.end, d.end), last.kind, last.reason)
        else:
            merged.append(d)
    return merged
