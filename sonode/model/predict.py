"""Training the continuation for the task: predict the clip H ahead, validated on its held-back end.

The continuation ODE (`sonode.model.continuation`, run as `sonode.model.tail.Tail`) is identified
in closed form; its field (`sonode.model.limit_cycle`) starts at zero. Here it is trained with the
engine's adjoint:

* **Task loss.** From states at many times a of the clip (the modes' least-squares fit to the W
  samples before a, as the continuation state is fitted before the clip's end), the ODE — early
  modes, switching to the late ones SWITCH after a, exactly as `extrapolate` runs it — is
  integrated H ahead and compared with the clip. The loss is the mean over the anchors of the log
  relative error (`loss="db"`: every anchor counts in dB, a quiet one as much as a loud one) or the
  log of the pooled relative error (`loss="mse"`).
* **Curriculum.** H grows geometrically from H_MIN_S to the longest horizon the clip allows (at most
  H_MAX_S) over the first CURRICULUM_FRACTION of the steps: the field first learns what a few ms
  show, then carries it further.
* **Floor.** The clip's last HOLD_S are held back: the continuation is identified and trained on
  the rest, and both its untrained and trained continuations are scored on the held-back samples —
  exactly what `extrapolate` delivers from that shorter clip. The trained field is kept (the same
  recipe re-run on the whole clip) only if it scores better; otherwise the field stays zero and
  the continuation is the identified one, so training never makes it worse on that test.
* **Held notes** get the limit cycle (`LimitCycle`) when the clip's late modes say the note is held
  (energy-weighted late decay above −HELD_DB_PER_S) and the cycle's held-back level is no worse.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from sonode.model import mode_fit
from sonode.model.continuation import FRAME_PER_ORDER, identify_continuation
from sonode.model.cycle_level import hold_note_level
from sonode.model.glide_fit import (
    MIN_GLIDE_PHASE_RAD,
    fit_glide,
    glide_phase_rad,
    measure_end_decays,
    restore_late_decays,
)
from sonode.model.heap import released_heap
from sonode.model.held_back import (
    LEVEL_FRAME_S,
    contradicts_trend,
    level_slope_db_per_s,
    score,
)
from sonode.model.limit_cycle import ContinuationField, phase_field
from sonode.model.modal import modal_solve
from sonode.model.tail import Tail
from sonode.model.task_loss import train_field
from sonode.model.texture_choice import choose_texture

HOLD_S = 0.2  # held-back end: the horizon the task is scored on
# the rest must still identify the continuation (4p = 0.26 s of context at order 1024 and 16 kHz,
# plus its own 50 ms validation) and give anchors some room
MIN_CLIP_PER_HOLD = 3
HELD_DB_PER_S = (
    3.0  # a note whose late modes fall slower than this (energy-weighted) is a held-note candidate
)
MIN_LEVEL_FRAMES = 2
VALIDATE_EVERY = (
    5  # steps between held-back tests (early stopping: the best count of steps is kept)
)
MAX_LOSS_DB = 0.3  # a field may not lose more than this at any horizon of the held-back test...
MIN_GAIN_DB = 0.1  # ...and must gain more than this on their mean
# ...and its level trend from 1 to 2 s after the end must agree with the untrained one's
# (`held_back.contradicts_trend`)
FIT_GLIDE = True  # fit the shared pitch glide by L-BFGS before the level MLP (`glide_fit`)
FIT_MODES = True  # first train the modes themselves for H-step prediction (`mode_fit`)
# with a kept glide, the late decays at the end's level (`glide_fit.measure_end_decays`)
FIT_END_DECAYS = True


def is_held(tail: Tail) -> bool:
    """The late modes' energy-weighted decay (at the state) falls slower than HELD_DB_PER_S."""
    k = tail.early.n_modes
    energy = (tail.state[0, :k] ** 2 + tail.state[0, k:] ** 2).numpy()
    if energy.sum() <= 0:
        return False
    decay_db_per_s = (
        -20
        / math.log(10)
        * float(np.sum(energy * tail.late.decay_per_s.detach().numpy()) / energy.sum())
    )
    return decay_db_per_s < HELD_DB_PER_S


def hold_cycle(tail: Tail, rate: int, x: np.ndarray | None = None) -> None:
    """Switch the cycle on at the energy the continuation has at its switch; given the clip x (n,)
    (normalised), at the note's level over its last 0.5 s instead (`cycle_level.hold_note_level`)."""
    k = tail.early.n_modes
    with torch.no_grad():
        z = modal_solve(
            tail.early,
            ContinuationField(phase_field(tail.field, False), None, tail.early),
            tail.early.expm_apply(tail.window / rate, tail.state),  # at the clip's end
            torch.tensor([0.0, tail.switch_s], dtype=torch.float64),
        )[-1]
    tail.cycle.hold(float(torch.sum(z[0, :k] ** 2 + z[0, k:] ** 2)), tail.late.decay_per_s.detach())
    if x is not None:
        hold_note_level(tail, x, rate)


@released_heap  # its blocks are not a training step's: the kept heap only grew (docs/memory.md)
def train_continuation(
    model,
    x: np.ndarray,
    steps: int,
    loss: str = "db",
    seed: int = 0,
    cycle: bool = True,
    window_samples: int | None = None,
    max_order: int = 1024,
    should_stop: Callable[[], bool] | None = None,
    order: int | None = None,
) -> dict:
    """`fit_dynamics` of a fitted model's continuation (its tail_field and tail_cycle, in place);
    ``order``: its identification's predictor order (None: identified again if needed).

    ``should_stop()`` (e.g. --max-time ran out, or a signal) True skips or ends the training: the
    field then stays untrained (its training on the whole clip would not finish in time) and the
    report says "skipped" or "stopped"."""
    if model.config.tail_modes == 0:
        return {
            "steps": steps,
            "field_kept": False,
            "cycle": False,
            "skipped": "no continuation ODE",
        }
    if should_stop is not None and should_stop():
        return {"steps": steps, "field_kept": False, "cycle": False, "skipped": "stopped"}
    report = fit_dynamics(
        Tail.from_model(model),
        x,
        model.config.sample_rate,
        steps,
        loss,
        seed,
        cycle,
        window_samples,
        max_order,
        should_stop,
        order,
    )
    store_texture_choice(model, report.get("texture"))
    return report


def store_texture_choice(model, choice: dict | None) -> None:
    """Record in ``model``'s configuration (either variant; saved with it) the texture amplitude
    `--texture auto` draws: 1 where ``choice`` (`texture_choice.choose_texture`) chose it, else 0."""
    chosen = choice is not None and choice.get("chosen", False)
    model.config = replace(model.config, continuation_texture=1.0 if chosen else 0.0)


def fit_dynamics(
    final: Tail,
    x: np.ndarray,
    rate: int,
    steps: int,
    loss: str = "db",
    seed: int = 0,
    cycle: bool = True,
    window_samples: int | None = None,
    max_order: int = 1024,
    should_stop: Callable[[], bool] | None = None,
    final_order: int | None = None,
) -> dict:
    """Train the field (and choose the limit cycle) of ``final``, the continuation ODE identified on
    the whole normalised clip x (n,), where the same recipe validates on x's held-back end.
    ``final_order`` is that identification's predictor order (None: the whole clip is identified
    again, with ``window_samples`` and ``max_order``, if the end decays need its frame).

    Returns the report: held-back scores of the untrained and trained continuations, whether the
    field and the cycle were kept, the losses, and the time taken."""
    t0 = time.perf_counter()
    # a short clip holds back a third of itself (for a cycle to be judged, the held-back span must
    # reach MIN_LEVEL_FRAMES level frames past the switch)
    held = min(int(HOLD_S * rate), x.shape[0] // MIN_CLIP_PER_HOLD)
    report: dict = {
        "steps": steps,
        "loss": loss,
        "held_back_s": held / rate,
        "field_kept": False,
        "cycle": False,
    }
    if held < (final.switch_s + MIN_LEVEL_FRAMES * LEVEL_FRAME_S) * rate:
        report["skipped"] = (
            f"clip too short to hold back {final.switch_s + MIN_LEVEL_FRAMES * LEVEL_FRAME_S:.3f} s"
        )
        return report
    torch.manual_seed(seed)
    probe_fit = identify_continuation(x[:-held], rate, window_samples, max_order)
    probe = Tail.from_fit(probe_fit, rate)
    future = x[-held:]
    untrained = score(probe, future, rate)
    zero_state = copy.deepcopy(probe.field.state_dict())
    best = {"steps": 0, "gain_db": 0.0, "state": zero_state, "score": untrained}
    final_start = copy.deepcopy(
        final.field.state_dict()
    )  # its own size: K may differ from the probe's
    # the identified long-run trends, before training moves the fields
    trend = {
        "held_back": level_slope_db_per_s(probe, rate),
        "final": level_slope_db_per_s(final, rate),
    }
    report["trend_db_per_s"] = {"identified": trend["held_back"]}

    def consider(step: int) -> bool:  # keep the field as it is after ``step`` steps if it is better
        now = score(probe, future, rate)
        gains = [now[k] - untrained[k] for k in untrained if k.startswith("snr")]
        if min(gains) < -MAX_LOSS_DB or np.mean(gains) <= best["gain_db"] + MIN_GAIN_DB:
            return False
        slope = level_slope_db_per_s(probe, rate)
        if contradicts_trend(slope, trend["held_back"]):
            report["trend_db_per_s"]["rejected"] = slope
            return False
        best.update(
            steps=step,
            gain_db=float(np.mean(gains)),
            state=copy.deepcopy(probe.field.state_dict()),
            score=now,
        )
        return True

    def validate(step: int) -> None:  # the held-back score of the field after ``step`` steps
        if step % VALIDATE_EVERY == 0 or step == steps:
            consider(step)

    modes_kept = False
    # the held-back test vouches for the whole clip's mode fit only if both continuations are the
    # same kind of ODE: on the synthetic string the probe's (covariance, no late modes) gained
    # 7.3 dB there while the whole clip's (Burg with late modes) lost 10.9 dB at 200 ms
    same_kind = (probe.switch_s > 0) == (final.switch_s > 0)
    if FIT_MODES and steps > 0 and not same_kind:
        report["modes"] = {"skipped": "the held-back probe and the clip identify different ODEs"}
    elif FIT_MODES and steps > 0:  # first the modes themselves, by output error (`mode_fit`)
        identified = mode_fit.snapshot(probe)
        cpu_s = time.process_time()
        report["modes"] = mode_fit.fit_modes(probe, x[:-held], rate, should_stop=should_stop)
        modes_kept = not report["modes"].get("stopped") and consider(0)
        report["modes"]["cpu_s"] = time.process_time() - cpu_s
        if not modes_kept:
            mode_fit.restore(probe, identified)
    glide_kept = False
    # then the shared pitch glide, by L-BFGS (`glide_fit`), where the pitch track shows one
    phase_rad = glide_phase_rad(probe, x[:-held], rate) if FIT_GLIDE and steps > 0 else 0.0
    if FIT_GLIDE and steps > 0 and phase_rad < MIN_GLIDE_PHASE_RAD:
        report["glide"] = {"skipped": "no glide in the pitch track", "phase_rad": phase_rad}
    elif FIT_GLIDE and steps > 0:
        cpu_s = time.process_time()
        report["glide"] = fit_glide(
            probe, x[:-held], rate, window_samples, max_order, should_stop=should_stop
        )
        report["glide"] |= {"phase_rad": phase_rad, "cpu_s": time.process_time() - cpu_s}
        glide_kept = "glide" in report["glide"] and consider(0)
        if not glide_kept:
            probe.field.load_state_dict(zero_state)
    # a kept glide shows the dynamics depend on the level: the late decays at the end's, kept if
    # the held-back test improves again (a probe without late modes leaves it to the whole clip)
    end_saved = end_decays = None
    if glide_kept and FIT_END_DECAYS:
        frame = FRAME_PER_ORDER * probe_fit.order
        end_saved = measure_end_decays(probe, x[:-held], rate, frame)
        end_decays = end_saved is None and probe.switch_s <= 0
        if end_saved is not None:  # the trend is now that of the late decays at the end's level
            averaged = trend["held_back"]
            trend["held_back"] = _slope(probe, zero_state, rate)
            end_decays = consider(0)
            if not end_decays:
                restore_late_decays(probe, end_saved)
                trend["held_back"] = averaged
    losses = train_field(
        probe, x[:-held], rate, steps, loss, seed, on_step=validate, should_stop=should_stop
    )
    stopped = should_stop is not None and should_stop()
    if stopped:  # the held-back training or the final one would not finish: the untrained field
        best.update(steps=0, gain_db=0.0, state=zero_state, score=untrained)
        glide_kept = modes_kept = end_decays = False
        restore_late_decays(probe, end_saved)
        report["stopped"] = True
    probe.field.load_state_dict(best["state"])
    report |= {
        "untrained": untrained,
        "trained": best["score"],
        "losses": losses[:: max(1, len(losses) // 20)],
        "held_back_gain_db": best["gain_db"],
        "kept_steps": best["steps"],
        "glide_kept": glide_kept,
        "modes_kept": modes_kept,
        "end_decays": bool(end_decays),
    }
    if modes_kept:  # the same output-error fit of the modes on the whole clip
        modes_kept = _final_modes(final, x, rate, trend["final"], report, should_stop)
    final_end = None
    if glide_kept or best["steps"] > 0:  # the same recipe on the whole clip
        report["field_kept"] = True
        if end_decays and final.switch_s > 0:  # (the frame is the whole clip's identification's)
            if final_order is None:
                final_order = identify_continuation(x, rate, window_samples, max_order).order
            final_end = measure_end_decays(final, x, rate, FRAME_PER_ORDER * final_order)
            if final_end is not None:
                trend["final"] = level_slope_db_per_s(final, rate)
                report["trend_db_per_s"]["end_decays"] = trend["final"]
        if glide_kept:
            report["final_glide"] = fit_glide(final, x, rate, window_samples, max_order)
        if best["steps"] > 0:
            report["final_losses"] = train_field(
                final, x, rate, steps, loss, seed, stop_after=best["steps"]
            )[:: max(1, steps // 20)]
        slope = level_slope_db_per_s(final, rate)
        report["trend_db_per_s"]["final"] = [trend["final"], slope]
        if contradicts_trend(slope, trend["final"]):  # the whole clip's run went elsewhere
            final.field.load_state_dict(final_start)
            restore_late_decays(final, final_end)
            report["field_kept"] = False
            report["field_rejected"] = "level trend"
    if cycle and not stopped and is_held(probe):
        without = score(probe, future, rate)
        # the cycle is judged at the level it starts at (hold against the late modes' decays, from
        # the same state); the note's level it then holds (`cycle_level`) is a 0.5 s average that
        # 0.15 s of held-back samples, which still carry the state window's wander, cannot judge
        hold_cycle(probe, rate)
        with_cycle = score(probe, future, rate)
        report["cycle_level_error_db"] = [without["level_error_db"], with_cycle["level_error_db"]]
        # a tie (within 0.1 dB: frame levels of a held note wobble by that much) goes to the cycle:
        # both hold the level over the held-back span, and only the cycle is stable past it
        if not with_cycle["level_error_db"] > without["level_error_db"] + 0.1:
            report["cycle"] = True
            hold_cycle(probe, rate, x[:-held])
            hold_cycle(final, rate, x)
        else:
            probe.cycle.release()
    if not stopped:  # the texture, judged on the same held-back end (`texture_choice`)
        report["texture"] = choose_texture(probe, x[:-held], future, rate)
    report["wall_time_s"] = time.perf_counter() - t0
    return report


def _slope(tail: Tail, untrained: dict, rate: int) -> float:
    """`level_slope_db_per_s` of ``tail`` with its field's state ``untrained`` (then put back)."""
    trained = copy.deepcopy(tail.field.state_dict())
    tail.field.load_state_dict(untrained)
    slope = level_slope_db_per_s(tail, rate)
    tail.field.load_state_dict(trained)
    return slope


def _final_modes(
    final: Tail, x: np.ndarray, rate: int, identified_db_per_s: float, report: dict, should_stop
) -> bool:
    """Fit ``final``'s modes on the whole clip x as they were on the held-back probe; undone (and
    False returned) if stopped or if their 1-2 s level trend contradicts the identified one."""
    identified = mode_fit.snapshot(final)
    report["final_modes"] = mode_fit.fit_modes(final, x, rate, should_stop=should_stop)
    slope = level_slope_db_per_s(final, rate)
    report["trend_db_per_s"]["final_modes"] = [identified_db_per_s, slope]
    # (keeping the early modes' training alone when the late ones contradict the trend was
    # measured on the synthetic string: 200 ms SNR 12.4 -> 11.7 dB, worse than untrained)
    if report["final_modes"].get("stopped") or contradicts_trend(slope, identified_db_per_s):
        mode_fit.restore(final, identified)
        report["modes_kept"] = False
        report["modes_rejected"] = (
            "stopped" if report["final_modes"].get("stopped") else "level trend"
        )
        return False
    return True
