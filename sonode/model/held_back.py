"""The continuation's held-back test and its long-run trend check (`sonode.model.predict` keeps a
trained part only where both agree): SNR over the held-back end at SCORE_HORIZONS_S, the level error
after the switch, and the level slope 1-2 s after the end against the identified one's.
"""

from __future__ import annotations

import math

import numpy as np

from sonode.dsp.metrics import (
    frame_levels_db,
    prediction_snr_db as snr,  # the held-back test's SNR (dB)
)
from sonode.model.tail import Tail

LEVEL_FRAME_S = 0.025
SCORE_HORIZONS_S = (0.005, 0.02, 0.05, 0.2)  # the held-back test: SNR over each
# A trained field's level trend from 1 to 2 s after the end must agree with the untrained one's
# (the late modes' measured decays) within a factor TREND_RATIO or TREND_FLOOR_DB_PER_S
# (`contradicts_trend`)
TREND_SPAN_S = (1.0, 2.0)
TREND_FRAME_S = 0.05
TREND_RATIO = 2.0
TREND_FLOOR_DB_PER_S = 1.0  # 1 dB over the 1 s span: the wander of a 50 ms frame level


def score(tail: Tail, future: np.ndarray, rate: int) -> dict[str, float]:
    """SNR (dB) over the first SCORE_HORIZONS_S of the continuation against ``future``, and the level
    error (dB RMS over LEVEL_FRAME_S frames) after the switch."""
    prediction = tail.continue_clip(future.shape[0], rate)
    out = {
        f"snr_{int(round(h * 1000))}ms_db": snr(
            future[: int(h * rate)], prediction[: int(h * rate)]
        )
        for h in SCORE_HORIZONS_S
        if int(h * rate) <= future.shape[0]
    }
    out["level_error_db"] = level_error_db(
        future, prediction, int(tail.switch_s * rate), int(LEVEL_FRAME_S * rate)
    )
    return out


def level_error_db(truth: np.ndarray, estimate: np.ndarray, first: int, frame: int) -> float:
    """RMS over frames (from sample ``first``) of the dB difference of the two signals' frame levels."""
    if (truth.shape[0] - first) // frame < 1:
        return math.nan
    return float(
        np.sqrt(
            np.mean(
                (frame_levels_db(truth, first, frame) - frame_levels_db(estimate, first, frame))
                ** 2
            )
        )
    )


def level_slope_db_per_s(tail: Tail, rate: int) -> float:
    """The continuation's level trend: the least-squares slope (dB/s) of its TREND_FRAME_S frame
    levels over TREND_SPAN_S after the clip's end (nan if the ODE cannot be integrated there)."""
    first, last = (int(t * rate) for t in TREND_SPAN_S)
    try:
        y = tail.continue_clip(last, rate)
    except RuntimeError:  # the engine refused a non-finite solve
        return math.nan
    frame = int(TREND_FRAME_S * rate)
    levels = frame_levels_db(y, first, frame)
    times_s = (first + frame * (np.arange(levels.shape[0]) + 0.5)) / rate
    return float(np.polyfit(times_s, levels, 1)[0])


def contradicts_trend(trained_db_per_s: float, identified_db_per_s: float) -> bool:
    """A trained field's level trend past the held-back test disagrees with the identified one.

    The held-back test scores 0.2 s; past it the field meets levels the clip never showed, where
    the only evidence is the late modes' decays, measured on the clip's last second. A trained
    continuation may decay at up to twice or half that rate (a string's decay slows as its level
    falls), and within TREND_FLOOR_DB_PER_S of it (a near-held note): it may not hold a decaying
    note or silence a held one (a kept field held a decaying harpsichord level for 2 s, where the
    identified continuation fell 4 dB/s over 1-2 s and the trained one 0.8 dB/s)."""
    if not math.isfinite(trained_db_per_s):
        return True
    s = identified_db_per_s
    low = min(TREND_RATIO * s, s - TREND_FLOOR_DB_PER_S)
    high = max(s / TREND_RATIO, s + TREND_FLOOR_DB_PER_S)
    return not low <= trained_db_per_s <= high
