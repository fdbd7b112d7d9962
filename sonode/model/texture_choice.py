"""Whether a clip's continuation gets its texture (`sonode.model.texture`), decided on held-back samples.

`extrapolate --texture auto` (and `render`, the API) draws the texture at the amplitude the fit
stored in the model file (``continuation_texture``: 1 or 0). The fit decides it on the clip's
held-back end, where the continuation training already scores the continuation (`sonode.model
.predict`, the last 0.2 s): the probe continuation, identified on the rest with the field and the
cycle chosen there, is continued over the held-back span as its mean and as mean + texture (the
draw `extrapolate`'s default seed gives), and from the switch on (where the texture starts) the two
are compared with the truth. The texture is chosen when both hold:

* **It brings the sound's spectrum closer**: the LSD of the span's average spectrum against the
  truth's falls by more than MIN_LSD_GAIN (a draw's own scatter; `average_spectrum_lsd`). This is
  what the texture is for — a spectrum and a level that last — judged as the issue's 5 s goal is,
  on the samples the fit did not see.
* **It adds no power the sound does not have**: the draw's power over the span is at most the
  mean's error power there. The texture stands for the part of the sound the mean cannot predict;
  where that part is real, the mean's error already holds it (truth = mean + residual, the residual
  at least the lost power), so an independent draw of it at most doubles the error (−3 dB of SNR
  over the span). A draw stronger than the whole error restores power the sound does not have: a
  decaying bass whose mean still predicts the waveform at 43 dB lost 11 dB of 200 ms SNR to it.

A continuation without a switch to late modes (an exact, covariance-method predictor: a noise-free
sum of modes) gets none: it has no lost power to restore, and its texture would start at the end.

The held-back span is 0.2 s, so the texture is judged over 0.15 s: enough for the average spectrum
(≈ 11 frames of 42.7 ms) and for a band the mean lost within 50 ms, too short to see a level trend
of a few dB/s. A longer span would judge the trend (a texture follows the measured late decays), at
the cost of the identification's context on short clips (a 1.5 s clip's probe would see 1 s) and
of a probe further from the end the continuation starts at.
"""

from __future__ import annotations

import math

import numpy as np

from sonode.dsp.spectra import average_spectrum_lsd, lsd_n_fft
from sonode.model.tail import Tail
from sonode.model.texture import TextureModes, texture

CHOICE_SEED = 0  # the draw judged: the one `extrapolate`'s default --seed writes
# bels: a draw's own scatter; the textured LSD's standard deviation over seeds 0-5 was 0.006-0.017
# on four clips (flute, piano, ride, strings): a smaller gain may be the draw's luck
MIN_LSD_GAIN = 0.02


def choose_texture(tail: Tail, history: np.ndarray, future: np.ndarray, rate: int) -> dict:
    """Decide the texture of ``tail``, the continuation identified (and trained, cycle chosen) on
    ``history`` (n,), on the held-back samples ``future`` (m,) that follow it (normalised, at
    ``rate`` Hz).

    Returns:
        {"chosen": bool, "why": str, and when judged: "lsd": [mean, mean + texture] (bels, average
        spectrum from the switch on), "texture_to_error_db": the draw's power over the mean's error
        power there (dB; ≤ 0 allowed), "level_db": [mean, mean + texture, truth] (dB, that span)}.
    """
    first = int(math.ceil(tail.switch_s * rate - 1e-9))
    if tail.switch_s <= 0:
        return {"chosen": False, "why": "no late modes (an exact predictor): nothing lost"}
    if future.shape[0] - first < lsd_n_fft(rate):
        return {"chosen": False, "why": "the held-back span ends before the texture's frame"}
    mean = tail.continue_clip(future.shape[0], rate)
    draw = texture(TextureModes.from_tail(tail, rate, history), mean, rate, seed=CHOICE_SEED)
    truth, mean, draw = future[first:], mean[first:], draw[first:]
    error = float(np.mean((truth - mean) ** 2))
    power = float(np.mean(draw**2))
    if power == 0:
        return {"chosen": False, "why": "the mean lacks no band's power"}
    lsd = [average_spectrum_lsd(truth, run, rate) for run in (mean, mean + draw)]
    ratio_db = 10 * math.log10(power / error) if error > 0 else math.inf
    chosen = lsd[1] < lsd[0] - MIN_LSD_GAIN and ratio_db <= 0
    why = (
        "it brings the held-back spectrum closer within the mean's error"
        if chosen
        else "it adds more power than the mean's error"
        if ratio_db > 0
        else "it does not bring the held-back spectrum closer"
    )
    return {
        "chosen": chosen,
        "why": why,
        "lsd": [round(v, 4) for v in lsd],
        "texture_to_error_db": round(ratio_db, 2) if math.isfinite(ratio_db) else None,
        "level_db": [round(_level_db(v), 2) for v in (mean, mean + draw, truth)],
    }


def choose_texture_on_clip(
    x: np.ndarray, rate: int, held: int, window_samples: int | None, max_order: int
) -> dict:
    """`choose_texture` for a continuation that is identified only (no field, no cycle: the local
    model's), on the normalised clip x (n,): the probe is identified on all but its last ``held``
    samples, as `sonode.model.predict.fit_dynamics` does."""
    from sonode.model.continuation import identify_continuation

    if held < 1 or x.shape[0] - held < 64:
        return {"chosen": False, "why": "the clip is too short to hold back its end"}
    history = x[:-held]
    probe = Tail.from_fit(identify_continuation(history, rate, window_samples, max_order), rate)
    return choose_texture(probe, history, x[-held:], rate)


def _level_db(x: np.ndarray) -> float:
    return 10 * math.log10(float(np.mean(x**2)) + 1e-30)
