"""The level a held note's limit cycle holds: the note's, over the clip's last 0.5 s.

The continuation's state is fitted on the clip's last W samples, 1-2 predictor orders (64-128 ms at
order 1024 and 16 kHz), and the cycle (`sonode.model.limit_cycle`) used to hold the energy that
state reached at the switch. Two things made that level wrong over seconds, by 2-3.7 dB on held
voices and a choir (docs/continuation_texture.md):

* **The window's wander.** A held note's level wanders over 64-128 ms by a few dB (vibrato,
  beating partials, a bow or a breath); its last NOTE_LEVEL_S (0.5 s) averages the wander. Where
  the window is louder than that, the cycle's energy is lowered by the power ratio of the two spans
  (`window_to_note_ratio`). It is never raised: a louder 0.5 s can also be a sound still decaying
  (raised to its 0.5 s average, a slap bass whose cycle the held-back test chose lost 5 dB of 200 ms
  SNR, its continuation 2-5 dB above the clip's end), and a mean below the note is what the
  texture fills, band by band, at the measured trend.
* **The modes' beats.** Late modes closer than the late-decay measurement resolves are merged to one
  frequency with the phases they had at the switch, and groups a few Hz apart beat: the mean's level
  over seconds is not its level at the switch (held voices: +0.7 dB at the switch, +2.1 dB on
  average over the next 2 s, ±1.4 dB of beats). So the cycle's own output is measured over
  CAP_SPAN_S, past its attraction, and its energy lowered until that average is at most the note's:
  a mean louder than the note cannot be corrected by the texture (noise adds power, never removes
  it), while a mean below it is filled by the texture wherever it lacks.

The energy scales the output's power in proportion past the attraction (the cycle multiplies every
mode by one real factor), so one measurement sets it.
"""

from __future__ import annotations

import numpy as np

from sonode.model.continuation import terminal_fade_samples
from sonode.model.texture import REFERENCE_S

NOTE_LEVEL_S = REFERENCE_S  # the note's level: the span the texture restores, 0.5 s
# after the clip's end: past the cycle's attraction (≈ 0.1 s), averaging beats of ≥ 0.6 Hz
CAP_SPAN_S = (0.25, 2.0)


def hold_note_level(tail, x: np.ndarray, rate: int) -> None:
    """Set the active cycle of ``tail`` (a `sonode.model.tail.Tail`) to the note's level of the
    normalised clip x (n,) at ``rate`` Hz: its energy lowered by `window_to_note_ratio` (never
    raised), then until the continuation's mean power over CAP_SPAN_S is at most that of x's last
    NOTE_LEVEL_S."""
    cycle = tail.cycle
    cycle.energy.mul_(min(1.0, window_to_note_ratio(tail, x, rate)))
    first, last = (round(t * rate) for t in CAP_SPAN_S)
    mean_power = float(np.mean(tail.continue_clip(last, rate)[first:] ** 2))
    note_power = float(np.mean(_note(x, rate) ** 2))
    if mean_power > note_power > 0:
        cycle.energy.mul_(note_power / mean_power)


def window_to_note_ratio(tail, x: np.ndarray, rate: int) -> float:
    """The power of the clip x (n,) over its last NOTE_LEVEL_S over that of the samples the
    continuation's state was fitted on (its last W; a terminal fade left out of both)."""
    fade = terminal_fade_samples(x, rate)
    fitted = x[max(0, x.shape[0] - tail.window) : x.shape[0] - fade]
    fitted_power, note_power = float(np.mean(fitted**2)), float(np.mean(_note(x, rate) ** 2))
    return note_power / fitted_power if fitted_power > 0 and note_power > 0 else 1.0


def _note(x: np.ndarray, rate: int) -> np.ndarray:
    """x's last NOTE_LEVEL_S before a terminal fade."""
    end = x.shape[0] - terminal_fade_samples(x, rate)
    return x[max(0, end - round(NOTE_LEVEL_S * rate)) : end]
