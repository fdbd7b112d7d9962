"""Refining the local model's frequencies by variable projection (Golub–Pereyra).

For given frequencies the node states are a linear least-squares optimum
(`sonode.model.local_synthesis.chunked_least_squares`), so the only thing left to train is the
frequency trajectory that the 40 ms windows measured. Each iteration:

1. linearises the signal in the frequencies at the current states and solves the joint linear
   least squares in (states, frequency steps) — block-tridiagonal like the states' own, since an
   entry's frequency touches only the two intervals beside its node. Eliminating the states from
   it leaves Jᵀ P⊥ J δf = Jᵀ P⊥ r: the Gauss–Newton step of the projected residual (Kaufman's
   variant of variable projection); a Levenberg–Marquardt factor damps it;
2. projects: solves the states exactly for the new frequencies;
3. keeps the step only if the SNR on held-back samples (never fitted) improves, and otherwise
   rejects it and raises the damping; the refinement ends when the damping passes DAMPING_LIMIT
   (steps too small to matter), after ``iterations`` or at the deadline, not on a small gain.

Both solves use the samples not held back; the caller solves the final states on all samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sonode.dsp.metrics import snr_db
from sonode.model.local import LocalConfig, LocalModel
from sonode.model.local_synthesis import chunked_least_squares
from sonode.model.options import EpochRecord

HOLD_OUT_EVERY = 8  # every 8th sample is held back for the validation
MAX_STEP_HZ = 10.0  # a step larger than ~ half a 40 ms window's bin is not a refinement
DAMPING_START = 1e-3
DAMPING_UP, DAMPING_DOWN = 8.0, 3.0
DAMPING_LIMIT = 1e4  # beyond this the steps are too small to matter: stop
# No stop on a small held-back gain: the held-back score plateaus and rises again (wesnoth_love,
# 3 s: +0.885 dB after 6 iterations, where a 0.005 dB floor stopped it, +0.92 at 10, +1.24 at 25;
# docs/music_capacity.md). The refinement ends at the damping limit, its steps or its budget.
MIN_GAIN_DB = None
# an iteration costs ~4 state solves (the joint one has 1.5× the unknowns); after the last one the
# caller still solves once on all samples and rounds the tables (~2 solves): both are budgeted
ITERATION_SOLVES, RESERVE_SOLVES = 4.0, 2.0


@dataclass
class Refinement:
    """The refinement's state: frequencies (P,) Hz and their states fitted on the training samples,
    the held-back SNR (dB) they reach, and one record per iteration."""

    freq_hz: np.ndarray
    states: tuple[np.ndarray, np.ndarray]
    held_db: float
    damping: float = DAMPING_START
    history: list[dict] = field(default_factory=list)


def refine_frequencies(
    first: np.ndarray,
    length: np.ndarray,
    freq_hz: np.ndarray,
    xn: np.ndarray,
    hop: int,
    rate: int,
    mask: np.ndarray,
    synthesise: Callable[[np.ndarray, tuple[np.ndarray, np.ndarray]], np.ndarray],
    iterations: int | None,
    deadline: float | None,
    on_iteration: Callable[[Refinement], bool] | None = None,
    resume: tuple[float, int] | None = None,
    accept_on: str = "held-back",
    min_gain_db: float | None = MIN_GAIN_DB,
) -> Refinement:
    """Gauss–Newton steps of variable projection on the frequencies; see the module docstring.

    Args:
        first, length: (K,) the tracks; freq_hz: (P,) their node frequencies (Hz).
        xn: (n,) the normalised clip; mask: (n,) 1 for training samples, 0 for held-back ones.
        synthesise: (freq_hz, states) → the model's (n,) samples.
        iterations: most Gauss–Newton iterations (None: until converged or the deadline).
        deadline: time.perf_counter() value by which the refinement and the caller's final solve
            should be done: an iteration starts only if its predicted cost (the last one's, or
            ITERATION_SOLVES state solves) and RESERVE_SOLVES more fit before it (None: none).
        on_iteration: called after every iteration; returning True stops.
        resume: (damping, iterations done) of an interrupted refinement that had reached
            ``freq_hz``: it continues as it would have.

        accept_on: "held-back": a step is kept only if the held-back SNR improves; "training":
            if the training samples' SNR (the objective the step minimises) improves, as in
            Levenberg–Marquardt, and the iterate with the best held-back SNR is returned.
        min_gain_db: an accepted step that gains less than this (dB) ends the refinement
            (None: none does; the refinement ends at DAMPING_LIMIT, ``iterations`` or ``deadline``).

    Returns:
        The best refinement found (the start if no step helped).
    """
    held = mask == 0
    train = ~held
    nyquist = 0.5 * rate

    def solve(freq, states=None, damping=0.0):
        return chunked_least_squares(
            first, length, freq * hop / rate, xn, hop, mask, states=states, damping=damping
        )

    def score(freq, states):
        """(held-back SNR, training SNR) in dB."""
        y = synthesise(freq, states)
        return snr_db(xn[held], y[held]), snr_db(xn[train], y[train])

    started = time.perf_counter()
    states = solve(freq_hz)
    held_db, train_db = score(freq_hz, states)
    best = Refinement(freq_hz.copy(), states, held_db)
    current = Refinement(freq_hz.copy(), states, train_db)  # its held_db: the training SNR
    if resume is not None:
        best.damping = resume[0]
        best.history = [{"resumed": True}] * resume[1]  # counted against ``iterations``
    solve_seconds = time.perf_counter() - started
    last_seconds = ITERATION_SOLVES * solve_seconds  # the first iteration's cost, predicted
    while iterations is None or len(best.history) < iterations:
        reserve = RESERVE_SOLVES * solve_seconds
        if deadline is not None and time.perf_counter() + last_seconds + reserve > deadline:
            break
        if best.damping > DAMPING_LIMIT:
            break
        started = time.perf_counter()
        at = best if accept_on == "held-back" else current
        *_, step_cycles = solve(at.freq_hz, at.states, best.damping)
        step_hz = np.clip(step_cycles * rate / hop, -MAX_STEP_HZ, MAX_STEP_HZ)
        trial = np.clip(at.freq_hz + step_hz, 0.0, nyquist)
        trial_states = solve(trial)
        trial_db, trial_train_db = score(trial, trial_states)
        if accept_on == "held-back":
            gain = trial_db - best.held_db
        else:
            gain = trial_train_db - current.held_db
        accepted = math.isfinite(trial_db) and gain > 0
        if accepted:
            if accept_on != "held-back":
                current.freq_hz, current.states = trial, trial_states
                current.held_db = trial_train_db
            if trial_db > best.held_db:
                best.freq_hz, best.states, best.held_db = trial, trial_states, trial_db
            best.damping /= DAMPING_DOWN
        else:
            best.damping *= DAMPING_UP
        last_seconds = time.perf_counter() - started
        best.history.append(
            {
                "held_back_snr_db": best.held_db,
                "trial_snr_db": trial_db,
                "trial_training_snr_db": trial_train_db,
                "accepted": accepted,
                "damping": best.damping,
                "median_step_hz": float(np.median(np.abs(step_hz))) if step_hz.size else 0.0,
                "seconds": last_seconds,
            }
        )
        if on_iteration is not None and on_iteration(best):
            break
        if accepted and min_gain_db is not None and gain < min_gain_db:
            break
    return best


def train_tables(
    model: LocalModel, xn, options, initial, started, on_epoch, should_stop, save=None, resume=None
):
    """Refine the frequencies by variable projection (`sonode.model.local_refine`) on the samples
    not held back, then solve the states on all of them; the refined model is kept only if it
    reconstructs the clip better than the identified start (``model``'s frequencies).

    ``save(refinement, history, force)`` is called after every iteration (a checkpoint, forced
    when interrupted); ``resume`` (a `LocalResume`) continues an interrupted refinement."""
    history: list[EpochRecord] = [] if resume is None else list(resume.history)
    if options.steps is not None and len(history) >= options.steps:
        return history, initial, "steps"
    hop, rate, n = model.config.hop_samples, model.config.sample_rate, xn.size
    first, length = model.track_first.numpy(), model.track_length.numpy()
    mask = np.ones(n)
    mask[HOLD_OUT_EVERY // 2 :: HOLD_OUT_EVERY] = 0.0
    stop = ["converged"]

    def synthesise(freq_hz, states):
        probe = LocalModel(LocalConfig(rate, n, hop, 1.0, 0.0), first, length, freq_hz, *states)
        return probe.reconstruct().numpy()

    def on_iteration(state) -> bool:
        last = state.history[-1]
        record = EpochRecord(
            len(history) + 1,
            10 ** (-last["trial_snr_db"] / 10),
            last["trial_snr_db"],
            time.perf_counter() - started,
            state.held_db,
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, initial)
        if options.target_snr_db is not None and state.held_db >= options.target_snr_db:
            stop[0] = "target"
            return True
        interrupted = should_stop is not None and should_stop()
        if save is not None:
            save(state, history, interrupted)
        if interrupted:
            stop[0] = "interrupted"
            return True
        return False

    deadline = None if options.max_time_s is None else started + options.max_time_s
    if resume is None and deadline is not None and time.perf_counter() >= deadline:
        return history, initial, "time"  # identification used the budget
    identified = model.freq_hz.detach().numpy().copy()
    refined = refine_frequencies(
        first,
        length,
        identified if resume is None else resume.freq_hz,
        xn,
        hop,
        rate,
        mask,
        synthesise,
        options.steps,
        deadline,
        on_iteration,
        None if resume is None else (resume.damping, len(resume.history)),
    )
    if stop[0] == "converged":
        if options.steps is not None and len(history) >= options.steps:
            stop[0] = "steps"
        elif deadline is not None and refined.damping <= DAMPING_LIMIT:
            stop[0] = "time"  # the next iteration would not have fitted the budget
    if np.array_equal(refined.freq_hz, identified):  # no step was accepted
        return history, initial, stop[0]
    before = model.freq_hz.detach().clone()
    with torch.no_grad():
        model.freq_hz.copy_(torch.from_numpy(refined.freq_hz))
    _resolve_states(model, xn)
    score = snr_db(xn, model.reconstruct().numpy())
    if score <= initial:  # the held-back gain did not carry over to the whole clip
        with torch.no_grad():
            model.freq_hz.copy_(before)
        _resolve_states(model, xn)
        return history, initial, stop[0]
    return history, score, stop[0]


@torch.no_grad()
def _resolve_states(model: LocalModel, xn: np.ndarray) -> None:
    """The exact least-squares node states, on all samples, for the model's current frequencies."""
    hop, rate = model.config.hop_samples, model.config.sample_rate
    re, im = chunked_least_squares(
        model.track_first.numpy(),
        model.track_length.numpy(),
        model.freq_hz.numpy() * hop / rate,
        xn,
        hop,
    )
    model.amp_re.copy_(torch.from_numpy(re))
    model.amp_im.copy_(torch.from_numpy(im))
