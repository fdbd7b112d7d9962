"""The continuation ODE: the clip's final dynamics, identified locally, order and window validated.

A sound is continued by integrating, from the state it is in at the end of the clip, the dynamics
it follows there. Both are estimated from the clip's end: Burg's linear predictor of order p on
the last 4p samples gives the discrete poles (all of them become the modes of a linear ODE,
s = sample_rate · log p, none allowed to grow), and the state is the least-squares fit of those
modes to the last W samples.

Burg rather than the covariance method (which identifies the model's own modes, unbiased on
damped sinusoids): Burg's poles sit slightly closer to the unit circle, i.e. they under-estimate
decay, and its filter is stable by construction. Measured on 0.8 s → 0.2 s continuations
(benchmarks/continuation_clips.py), it predicted better on both the bundled clips (median SNR at
5 / 20 / 50 ms 33.4 / 32.1 / 26.3 dB against the covariance method's 30.6 / 30.0 / 24.7) and
twelve other recordings (18.9 / 16.7 / 11.6 against 18.3 / 14.5 / 9.0): past the clip's end, a
slowly decaying partial that is kept too long costs less than one cut short, and the bias also
keeps the sound's noise floor. The covariance method is kept for the one case it is right for
(`EXACT_MARGIN_DB`). This is what high-order linear-prediction extrapolation does (an order-p
predictor run from its last p samples is this ODE with W = p, sampled), in continuous time, so
the continuation can be read at any rate.

Over seconds Burg's decays are wrong both ways: its context (4p samples, 0.26 s at order 1024 and
16 kHz) is too short to resolve decays of a few dB/s, so the partials of a held note come out
decaying by 10-16 dB/s and a celesta's nearly neutral (2 s continuations: horn −12.6 dB/s, celesta
−4.3 dB/s where the clip decays 18 dB/s). So the continuation ODE has *late* modes, taken over
`SWITCH_AFTER_END_S` after the clip's end — the horizon over which Burg's modes are validated on
the clip (below) and predict best (with the late modes from the start, the guitar's 20 / 50 ms
SNR falls from 39.6 / 35.1 to 36.9 / 30.7 dB: Burg resolves its beating string polarisations,
the envelope frames do not). The late modes have
- each mode's decay measured on the clip's last `ENVELOPE_SPAN_S` (`envelope_decays`): the slope of
  the log-amplitude of the clip demodulated at the mode's frequency, in frames of 2p samples (the
  predictor's own frequency resolution); a second averages out the wander of a held note;
- modes that would beat more slowly than once per that span merged into one (`merge_beating`): the
  measurement saw their sum as one envelope, and a beat it could not see is not continued
  (the celesta's 554.3 / 554.8 Hz pair otherwise dips 10 dB in 0.4 s and recovers).
The ODE stays linear, with a piecewise-constant matrix. Measured on seventeen recordings, late modes
hold sustained sounds within ±6 dB for 2 s and follow decaying ones, and lower the 200 ms LSD
(docs/results.md, benchmarks/continuation_clips.py); the SNR over the first 50 ms is Burg's by
construction.

Which p and W suit a clip are not guessed: they are chosen by validation on the clip itself — the
same procedure is run on the clip minus its last `VALIDATION_S`, and the candidate that predicts
those held-back samples best is used on the whole clip. "Best" is the mean in dB of its SNR over
the first 5, 20 and 50 ms (`VALIDATION_HORIZONS_S`): a pooled SNR over the 50 ms let the late,
large errors decide, and picked candidates 5-13 dB worse at 5 ms (docs/continuation_modes.md).
(The whole clip as context, validated against the last 4p samples, helped two of seventeen
recordings, cost the bundled speech clip its 5 ms lead and doubled the identification time.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sonode.dsp.linalg import polynomial_roots
from sonode.dsp.lpc import (
    burg,
    covariance_predictor,
    modal_basis,
    modal_gram,
    predictor_run,
    ridge_solve,
    stable_poles,
)
from sonode.dsp.metrics import prediction_snr_db
from sonode.model.late_modes import (
    envelope_decays,
    merge_beating,
)

CANDIDATE_ORDERS = (16, 32, 64, 128, 256, 512, 1024)
CONTEXT_PER_ORDER = 4  # samples of context per predictor coefficient (4096 for order 1024)
VALIDATION_S = 0.05  # held-back end of the clip that scores the candidates
# Each candidate is scored on the last VALIDATION_S by its SNR over each of VALIDATION_HORIZONS_S,
# averaged in dB: the 5 and 20 ms horizons count as much as the 50 ms, which a pooled SNR over 50 ms
# lets decide alone. Three held-back spans (the last 150 ms) chose worse than the last alone on 23
# recordings (horn −1.9 dB at 5 ms, celesta −2.5 dB at 50 ms; better on one bell) at twice the CPU:
# the earlier spans are further from the state the continuation starts in
# (docs/continuation_modes.md).
VALIDATION_HORIZONS_S = (0.005, 0.02, 0.05)
STATE_RIDGE = 1e-9
ESTIMATORS = {"burg": burg, "covariance": covariance_predictor}
# The covariance method is used only when it predicts the held-back samples this much better than
# Burg: then the clip is a noise-free sum of modes, which it identifies exactly and Burg does not
# (a clean two-tone clip: 39.6 dB over 50 ms by Burg). On 17 recordings the covariance method's
# validation SNR was at most 4.5 dB above Burg's while Burg continued them better; on noise-free
# synthetic sums of modes it is tens of dB above.
EXACT_MARGIN_DB = 10.0
FRAME_PER_ORDER = 2  # envelope frame length per predictor coefficient
SWITCH_AFTER_END_S = (
    VALIDATION_S  # the late modes take over where validation stops vouching for Burg's
)
# A terminal fade-out (`terminal_fade_samples`): at most 50 ms (editors' fades are 5-50 ms; a
# longer one is left to the sound), ending 20 dB down, starting where the sound is within 1 dB of
# its level just before.
MAX_FADE_S = 0.05
FADE_END_RATIO = 0.1
FADE_START_RATIO = 0.9


@dataclass(frozen=True)
class ContinuationFit:
    """The identified continuation ODE.

    Attributes:
        decay_per_s, omega_rad_per_s: modes (K,), decay ≤ 0.
        state: (2K,) [u; v] at the start of the window, i.e. (n_samples − window_samples)/rate.
        order: predictor order p; window_samples: W.
        validation_snr_db: SNR of the chosen candidate on the held-back samples (nan if too short).
        validation_score_db: what chose it: its SNR on the held-back samples at each of
            VALIDATION_HORIZONS_S, averaged in dB (nan if too short; absent from older files).
        estimator: "burg" or "covariance", the predictor whose poles are the modes.
        late_decay_per_s, late_omega_rad_per_s: (K,) each, the modes from ``switch_after_end_s``
            past the clip's end on (None: the early ones throughout).
        switch_after_end_s: when the late modes take over, in seconds after the clip's end
            (its last sample + 1/rate is the continuation's first).
        fade_samples: length of the fade-out the clip ends in, not identified (the state is
            fitted on the W − fade_samples samples before it).
    """

    decay_per_s: np.ndarray
    omega_rad_per_s: np.ndarray
    state: np.ndarray
    order: int
    window_samples: int
    validation_snr_db: float
    estimator: str = "burg"
    late_decay_per_s: np.ndarray | None = None  # None: decay_per_s throughout
    late_omega_rad_per_s: np.ndarray | None = None  # None: omega_rad_per_s throughout
    switch_after_end_s: float = 0.0
    fade_samples: int = 0  # the clip's terminal fade-out, left out of the identification
    validation_score_db: float = math.nan  # mean held-back SNR over the horizons

    def summary(self) -> dict:
        """What a fit report records of it (``identification["continuation"]``)."""
        return {
            "order": self.order,
            "window_samples": self.window_samples,
            "modes": int(self.decay_per_s.shape[0]),
            "validation_snr_db": self.validation_snr_db,
            "validation_score_db": self.validation_score_db,
            "estimator": self.estimator,
            "switch_after_end_s": self.switch_after_end_s,
            "fade_samples": self.fade_samples,
        }

    def samples(self, n_samples: int, sample_rate: int) -> np.ndarray:
        """The continuation's n_samples (normalised) following the clip's last sample, at its rate:
        the early modes up to the switch, then the late ones from the state they reached."""
        late = self.decay_per_s if self.late_decay_per_s is None else self.late_decay_per_s
        late_omega = (
            self.omega_rad_per_s if self.late_omega_rad_per_s is None else self.late_omega_rad_per_s
        )
        early_poles = np.exp((self.decay_per_s + 1j * self.omega_rad_per_s) / sample_rate)
        late_poles = np.exp((late + 1j * late_omega) / sample_rate)
        n_early = min(n_samples, int(math.ceil(self.switch_after_end_s * sample_rate - 1e-9)))
        start = _amplitudes(
            self.state, early_poles, self.window_samples
        )  # at the continuation's first sample
        switch = start * early_poles**n_early
        x = np.empty(n_samples)
        x[:n_early] = modal_basis(early_poles, n_early) @ np.concatenate([start.real, start.imag])
        x[n_early:] = modal_basis(late_poles, n_samples - n_early) @ np.concatenate(
            [switch.real, switch.imag]
        )
        return x


def _amplitudes(state: np.ndarray, poles: np.ndarray, n_samples: int) -> np.ndarray:
    """Complex mode amplitudes (K,) n_samples after those of ``state`` = [Re; Im] (2K,)."""
    k = poles.shape[0]
    return (state[:k] + 1j * state[k:]) * poles**n_samples


def _poles(predictor: np.ndarray) -> np.ndarray:
    return stable_poles(polynomial_roots(predictor))


def _state(x: np.ndarray, poles: np.ndarray, window: int) -> np.ndarray:
    return ridge_solve(
        modal_gram(poles, window), x[-window:] @ modal_basis(poles, window), STATE_RIDGE
    )


def _candidates(n_history: int, fixed_window: int | None, max_order: int) -> list[tuple[int, int]]:
    pairs = []
    for order in [o for o in CANDIDATE_ORDERS if o <= max_order]:
        if n_history < 2 * order + 2 or n_history < order * 2:
            continue
        windows = (fixed_window,) if fixed_window else (order, 2 * order)
        pairs += [(order, w) for w in windows if w <= n_history]
    return pairs


def terminal_fade_samples(x: np.ndarray, sample_rate: int) -> int:
    """Length of the fade-out a clip ends in (an edit, not the sound), 0 if it ends sounding.

    A clip is taken to end in a fade when its last millisecond peaks below FADE_END_RATIO of its
    peak in the 25 ms before the last MAX_FADE_S; the fade then covers the samples after the last
    one that reaches FADE_START_RATIO of that peak (MAX_FADE_S at most). A sound that truly stops
    within MAX_FADE_S is taken for a fade too: its continuation carries on the sound before.

    Args:
        x: the clip, (n_samples,). sample_rate: Hz.

    Returns:
        Samples of the fade at the clip's end, in [0, MAX_FADE_S·sample_rate].
    """
    search, before, last = (
        int(round(MAX_FADE_S * sample_rate)),
        int(round(0.025 * sample_rate)),
        max(1, int(round(0.001 * sample_rate))),
    )
    if x.shape[0] < 4 * (search + before):
        return 0
    # only the end is read: |x| of a whole 600 s clip was a 77 MB temporary on every call
    magnitude = np.abs(np.asarray(x[-search - before :], dtype=np.float64))
    level = magnitude[-search - before : -search].max()
    if level == 0 or magnitude[-last:].max() > FADE_END_RATIO * level:
        return 0
    backward_peak = np.maximum.accumulate(
        magnitude[::-1][:search]
    )  # [j]: peak of the last j + 1 samples
    reached = np.nonzero(backward_peak >= FADE_START_RATIO * level)[0]
    return int(reached[0]) if reached.size else search


def _validate(
    x: np.ndarray, sample_rate: int, held: int, window_samples: int | None, max_order: int
) -> tuple[dict[tuple, float], dict[tuple, float]]:
    """Score the candidates on the clip's last ``held`` samples, each identified on what precedes
    them: a candidate's score is the mean over VALIDATION_HORIZONS_S of its SNR (dB).

    Returns ({(estimator, order, window): score}, {(estimator, order, window): SNR over the whole
    span}).
    """
    n = x.shape[0]
    horizons = sorted({min(held, int(round(h * sample_rate))) for h in VALIDATION_HORIZONS_S})
    history, future = x[: n - held], x[n - held :]
    candidates = _candidates(n - held, window_samples, max_order)
    keys = [("burg", o, w) for o, w in candidates] + [
        ("covariance", o, o)
        for o in sorted({o for o, _ in candidates})
        if window_samples is None or window_samples == o
    ]
    scores: dict[tuple, float] = {}
    pooled: dict[tuple, float] = {}
    for order in sorted({k[1] for k in keys}):
        context = history[-min(history.shape[0], CONTEXT_PER_ORDER * order) :]
        poles = None
        for estimator, _, window in [k for k in keys if k[1] == order]:
            if estimator == "burg":
                poles = _poles(burg(context, order)) if poles is None else poles
                prediction = modal_basis(poles, held, first=window) @ _state(history, poles, window)
            else:  # the covariance method is only a check for an exact predictor: scored by
                # running it as a filter (the modal continuation with W = p, poles
                # unclamped), its roots are found only if it is chosen
                prediction = predictor_run(covariance_predictor(context, order), history, held)
            key = (estimator, order, window)
            scores[key] = float(
                np.mean([prediction_snr_db(future[:h], prediction[:h]) for h in horizons])
            )
            pooled[key] = prediction_snr_db(future, prediction)
    return scores, pooled


def identify_continuation(
    x: np.ndarray, sample_rate: int, window_samples: int | None = None, max_order: int = 1024
) -> ContinuationFit:
    """Identify the continuation ODE of a (normalised) clip.

    Args:
        x: the clip, shape (n_samples,), n_samples ≥ 64.
        sample_rate: Hz.
        window_samples: W fixed by the user; None to choose it by validation with the order.
        max_order: the largest predictor order tried (CANDIDATE_ORDERS up to it).

    Returns:
        A `ContinuationFit`. A clip that ends in a fade-out (`terminal_fade_samples`) is identified
        without it, and its continuation carries on the sound from before the fade.
    """
    x = np.asarray(x, dtype=np.float64)
    fade = terminal_fade_samples(x, sample_rate)
    fit = _identify(x[: x.shape[0] - fade], sample_rate, window_samples, max_order)
    # the state stays where it was fitted, before the fade: the continuation carries the sound on
    # through the fade's span, as if it had not been faded
    return replace(fit, window_samples=fit.window_samples + fade, fade_samples=fade)


def _identify(
    x: np.ndarray, sample_rate: int, window_samples: int | None, max_order: int
) -> ContinuationFit:
    """`identify_continuation` of a clip that ends sounding."""
    # a clip shorter than 5 VALIDATION_S holds back its last fifth (enough to tell an exact
    # predictor from Burg's: without validation, Burg's is used)
    held = min(int(round(VALIDATION_S * sample_rate)), x.shape[0] // 5)
    scores, pooled = (
        _validate(x, sample_rate, held, window_samples, max_order) if held >= 16 else ({}, {})
    )
    if scores:
        # the exactness check compares the pooled 50 ms SNRs, where an exact predictor stands out
        # by tens of dB (at 5 ms Burg's SNR is high too, and the mean score narrows the gap)
        best_pooled = {e: max(v for k, v in pooled.items() if k[0] == e) for e, *_ in pooled}
        exact = "covariance" in best_pooled and (
            best_pooled["covariance"] > best_pooled.get("burg", -math.inf) + EXACT_MARGIN_DB
        )
        estimator = "covariance" if exact else "burg"
        candidates = [k for k in scores if k[0] == estimator]
        key = max(candidates, key=pooled.get if exact else scores.get)
        _, order, window = key
        score, pooled_snr_db = scores[key], pooled[key]
    else:  # too short to validate: the largest order the clip supports, W = p
        order = max(
            [o for o in CANDIDATE_ORDERS if x.shape[0] >= 2 * o + 2 and o <= max_order]
            or [min(CANDIDATE_ORDERS)]
        )
        order = min(order, max(2, (x.shape[0] - 2) // 2))
        estimator, score, window = "burg", math.nan, window_samples or order
        pooled_snr_db = math.nan
    window = min(window, x.shape[0])
    context = x[-min(x.shape[0], CONTEXT_PER_ORDER * order) :]
    poles = _poles(ESTIMATORS[estimator](context, order))
    s = np.log(poles) * sample_rate
    omega = np.abs(s.imag)
    state = _state(x, poles, window)
    # an exact (covariance) predictor's decays are right at every horizon; Burg's are re-measured
    late_decay = (
        envelope_decays(x, sample_rate, omega, FRAME_PER_ORDER * order)
        if estimator == "burg"
        else None
    )
    late_omega = None
    if late_decay is not None:
        energy_at_end = np.abs(_amplitudes(state, poles, window)) ** 2
        late_decay, late_omega = merge_beating(omega, late_decay, energy_at_end)
    return ContinuationFit(
        decay_per_s=np.minimum(s.real, 0.0),
        omega_rad_per_s=omega,
        state=state,
        order=order,
        window_samples=window,
        validation_snr_db=pooled_snr_db,
        validation_score_db=score,
        estimator=estimator,
        late_decay_per_s=late_decay,
        late_omega_rad_per_s=late_omega,
        switch_after_end_s=SWITCH_AFTER_END_S if late_decay is not None else 0.0,
    )
