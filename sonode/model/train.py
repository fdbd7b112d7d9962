"""Training: fit a SonodeModel to a clip with the engine's adjoint, within a time or step budget."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from sonode.model.adam import Adam
from sonode.model.checkpoint import (
    CheckpointError,
    CheckpointPlan,
    TrainingState,
    fit_identity,
    load_checkpoint,
    save_checkpoint,
)
from sonode.model.checks import (
    DISCRETISATION_GOAL_DB,
    TRAJECTORY_WEIGHT,
    coarse_and_fine,
    consider,
    snr_db,
    trajectory_snr,
)
from sonode.model.decoder import SonodeModel
from sonode.model.init import TRAJECTORY_S, initial_model
from sonode.model.local_fit import choose_variant, fit_local
from sonode.model.options import EpochRecord, FitOptions, FitReport
from sonode.model.predict import train_continuation

FINE_SUBSTEPS = 8  # the discretisation check re-solves with 8 Lawson RK4 steps per sample
WARMUP_EPOCHS = 10
CHECK_EVERY_EPOCHS = 25  # how often the current parameters may become the kept (best) model
FINAL_CHECK_SEGMENTS = 64
CONTINUITY_RAMP_EPOCHS = 50  # the continuity penalty grows to its full weight over these epochs
# The free-run loss is the mean squared error over every TRAJECTORY_STRIDE-th sample, the offset
# rotating from one step to the next: an unbiased estimate of the full mean at a sixteenth of the
# readout's cost (the envelope solve along the run is paid whatever the stride). It is evaluated on
# every step (no longer a cadence): the free run is far more sensitive to the field than the 16 ms
# segments are (one Adam step of the field moved the guitar's free run by up to 6 dB, measured per parameter group; the
# other groups' steps moved it by < 0.1 dB). Evaluated every 4th step (weighted ×4) instead, the
# field took three reconstruction-only steps between corrections and the free run oscillated
# (guitar 22.5 → 8 → 20 → 7.7 dB within 36 steps; after 80 steps 22.7 dB vs 26.1 dB every step,
# celesta 19.2 vs 31.0 dB, reconstruction 46.43 vs 46.79 and 46.24 vs 46.37 dB).
TRAJECTORY_STRIDE = 16
MAX_BAD_STEPS = 6  # consecutive non-finite steps before the fit gives up (best model kept)


class _CountingField(torch.nn.Module):
    """Counts evaluations of the correction field (reported as function evaluations)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def hook(self, module, args, output):
        self.count += 1


#: Peak bytes per clip sample of a fit with the default options (measured: a 300 s clip at 48 kHz,
#: 14.4 M samples, peaked at 2.54 GB; (2.54 GB − the process's 0.77 GB) / 14.4 M = 123, rounded up).
FIT_BYTES_PER_SAMPLE = 128


def max_fit_samples() -> int:
    """Most clip samples a fit may hold within the memory budget (`sonode.limits`)."""
    from sonode.limits import PROCESS_BASELINE_BYTES, memory_budget_bytes

    return max(0, memory_budget_bytes() - PROCESS_BASELINE_BYTES) // FIT_BYTES_PER_SAMPLE


def check_fit_size(n_samples: int, sample_rate: int, options: FitOptions) -> None:
    """Refuse, before any work, a clip that the fit cannot hold in memory, or a hop longer than it.

    Raises:
        sonode.limits.LimitError: one line with the value and the limit.
    """
    from sonode.limits import LimitError, check_memory

    if options.hop_samples > n_samples:
        raise LimitError(
            f"--hop {options.hop_samples} is longer than the clip ({n_samples} samples at {sample_rate} "
            f"Hz), the limit; choose a hop of at most {n_samples} samples (default 256)"
        )
    check_memory(
        f"fitting {n_samples} samples",
        n_samples * FIT_BYTES_PER_SAMPLE,
        "fit a shorter part (--duration) or at a lower rate (--rate)",
    )


def fit_samples(
    x: np.ndarray,
    sample_rate: int,
    options: FitOptions = FitOptions(),
    on_epoch: Callable[[EpochRecord, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint: CheckpointPlan | None = None,
) -> tuple[SonodeModel, FitReport]:
    """Fit a model to one clip.

    Each optimiser step minimises the reconstruction error of a run of segments (all of them when
    the clip has at most ``options.batch_segments``) plus the continuity penalty, with gradients
    from the engine's adjoint (or backprop) through the fast modal solver.

    Args:
        x: the clip in file amplitude, shape (n_samples,), finite, not constant.
        sample_rate: Hz.
        options: see `FitOptions`.
        on_epoch: called after each step with (record, kept SNR so far in dB), e.g. a progress bar.
        should_stop: polled every step; True ends training early (e.g. on SIGINT) with the kept model.
        checkpoint: write a resumable checkpoint every ``checkpoint.every_s`` seconds and when
            stopped by ``should_stop``, and/or resume from one (see `CheckpointPlan`). A resumed
            fit takes exactly the steps the uninterrupted one would have taken (same parameters,
            bit for bit, on the same machine and thread count), and its wall-clock budget
            ``max_time_s`` counts the time spent before the interruption. The checkpoint is left
            in place: the caller deletes it once the model is safely saved.

    Returns:
        (model, report): the kept model (best training SNR among the checked parameters) and the
        fit report.

    Raises:
        CheckpointError: ``checkpoint.resume`` and the checkpoint is missing, damaged, or was made
            for another clip or other options.
    """
    check_fit_size(int(x.shape[0]), sample_rate, options)
    if options.modes != "global":  # modes that follow the notes, or the choice by validation
        variant = (
            choose_variant(
                x, sample_rate, lambda: _initial(x, sample_rate, options, continuation=False)[0]
            )
            if options.modes == "auto"
            else "local"
        )
        if variant == "local":
            return fit_local(x, sample_rate, options, on_epoch, should_stop, checkpoint)
    identity = None
    resumed = None
    if checkpoint is not None:
        identity = fit_identity(x, sample_rate, asdict(options), checkpoint.source)
        if checkpoint.resume:  # before the costly initialisation, so that a mismatch fails fast
            resumed = load_checkpoint(checkpoint.path, identity)
    t_start = time.perf_counter()
    torch.manual_seed(options.seed)
    model, identification = _initial(x, sample_rate, options)
    if should_stop is not None:
        # Identification is done: a model exists from here on. Polling tells a caller whose signal
        # handling depends on the phase (sonode.cli.fit aborts before this point, stops gracefully
        # after it) that the phase changed, also when no training step follows (steps=0).
        should_stop()
    target = torch.from_numpy((x - model.config.offset) / model.config.gain)
    layout = model.config.layout
    counter = _CountingField()
    handle = model.field.register_forward_hook(counter.hook)
    clip = torch.from_numpy(x)
    batches = _Batches(layout, options.batch_segments, options.seed)
    n_trajectory = min(layout.n_samples, int(TRAJECTORY_S * sample_rate))
    trajectory_power = float(torch.mean(target[:n_trajectory] ** 2)) + 1e-12

    def clip_snr(signal: torch.Tensor) -> float:
        # SNR in file amplitude, as a user measures the rendered WAV (the offset counts as signal)
        return snr_db(clip, signal.detach() * model.config.gain + model.config.offset)

    def free_run_snr(current: SonodeModel, state: dict | None = None) -> float:
        # the one free run's SNR of the current parameters, or of ``state`` (the model is restored)
        if state is None:
            return trajectory_snr(current, target)
        now = copy.deepcopy(current.state_dict())
        current.load_state_dict(state)
        try:
            return trajectory_snr(current, target)
        finally:
            current.load_state_dict(now)

    optimiser = Adam(_param_groups(model, options.lr, n_trajectory / sample_rate))
    for group in optimiser.param_groups:  # the rate before warm-up (halved on every rollback)
        group["base_lr"] = group["lr"]
    history: list[EpochRecord] = []
    bad_steps = rejected = 0
    epoch = 0
    if resumed is None:
        with torch.no_grad():
            initial_snr = clip_snr(model.reconstruct()[0])
        best_snr, best_state = initial_snr, copy.deepcopy(model.state_dict())
        best_trajectory = free_run_snr(model)
        initial_trajectory = (
            best_trajectory  # the untrained start's, for the report's training gain
        )
    else:
        try:
            model.load_state_dict(resumed.model)
            optimiser.load_state_dict(resumed.optimiser)
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(
                f"cannot resume: {checkpoint.path} does not fit this model ({err}); delete it "
                "and run without --resume"
            ) from None
        torch.set_rng_state(resumed.rng_state)
        initial_trajectory = resumed.initial_trajectory_snr_db
        initial_snr, best_snr, best_state = (
            resumed.initial_snr_db,
            resumed.best_snr_db,
            resumed.best_model,
        )
        best_trajectory = free_run_snr(model, best_state)  # not in the checkpoint: recomputed
        history = [EpochRecord(**r) for r in resumed.history]
        epoch, rejected, bad_steps = resumed.epoch, resumed.rejected_steps, resumed.bad_steps
        counter.count = resumed.function_evaluations
        t_start = time.perf_counter() - resumed.elapsed_s  # --max-time covers the whole fit

    def save(elapsed_s: float) -> None:
        save_checkpoint(
            checkpoint.path,
            TrainingState(
                epoch=epoch,
                model=model.state_dict(),
                optimiser=optimiser.state_dict(),
                best_model=best_state,
                best_snr_db=best_snr,
                initial_snr_db=initial_snr,
                history=[asdict(r) for r in history],
                rejected_steps=rejected,
                bad_steps=bad_steps,
                function_evaluations=counter.count,
                elapsed_s=elapsed_s,
                rng_state=torch.get_rng_state(),
                initial_trajectory_snr_db=initial_trajectory,
            ),
            identity,
        )

    periodic = checkpoint is not None and checkpoint.every_s > 0
    last_checkpoint = time.perf_counter()
    stop_reason = "steps"
    while True:
        # Between steps the state is complete (no half-taken step), so this is where it is saved.
        elapsed = time.perf_counter() - t_start
        if periodic and time.perf_counter() - last_checkpoint >= checkpoint.every_s:
            save(elapsed)
            last_checkpoint = time.perf_counter()
        if options.steps is not None and epoch >= options.steps:
            stop_reason = "steps"
            break
        if options.max_time_s is not None and elapsed >= options.max_time_s:
            stop_reason = "max_time"
            break
        if options.target_snr_db is not None and best_snr >= options.target_snr_db:
            stop_reason = "target_snr"
            break
        if should_stop is not None and should_stop():
            stop_reason = "interrupted"
            if periodic:
                save(elapsed)
            break
        good_state = copy.deepcopy(model.state_dict())
        # Adam's first steps move every parameter by about its full rate; ramping the rate up over
        # WARMUP_EPOCHS keeps them from knocking the identified model far off its optimum.
        for group in optimiser.param_groups:
            group["lr"] = group["base_lr"] * min(1.0, (epoch + 1) / WARMUP_EPOCHS)
        optimiser.zero_grad(set_to_none=True)
        try:
            log_objective, loss, epoch_snr = _step_loss(
                model, target, options, epoch, batches.pick(epoch), n_trajectory, trajectory_power
            )
        except (
            RuntimeError
        ):  # the engine refused a non-finite or stalled solve: a bad step like any other
            log_objective, loss, epoch_snr = None, math.nan, math.nan
        if math.isfinite(loss):
            log_objective.backward()
        finite = math.isfinite(loss) and all(
            p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters()
        )
        if not finite:
            # roll back to the last good parameters and halve the step size
            rejected += 1
            bad_steps += 1
            model.load_state_dict(good_state)
            for group in optimiser.param_groups:
                group["base_lr"] *= 0.5
            optimiser.state.clear()
            if bad_steps >= MAX_BAD_STEPS:
                stop_reason = "diverged"
                break
            continue
        bad_steps = 0
        optimiser.step()
        epoch += 1
        if epoch % CHECK_EVERY_EPOCHS == 0:
            (best_snr, best_trajectory, best_state), passed = consider(
                model, clip_snr, free_run_snr, (best_snr, best_trajectory, best_state)
            )
            if (
                not passed
            ):  # the fast solve disagrees with the reference: back to the last checked model
                rejected += 1
                model.load_state_dict(best_state)
                for group in optimiser.param_groups:
                    group["base_lr"] *= 0.5
                optimiser.state.clear()
        record = EpochRecord(
            epoch=epoch,
            loss=loss,
            snr_db=epoch_snr,
            elapsed_s=time.perf_counter() - t_start,
            kept_snr_db=best_snr,
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, best_snr)
    train_time = time.perf_counter() - t_start
    (best_snr, best_trajectory, best_state), _ = consider(  # the last parameters
        model, clip_snr, free_run_snr, (best_snr, best_trajectory, best_state)
    )
    model.load_state_dict(best_state)
    handle.remove()
    coarse, fine_check = coarse_and_fine(model, FINE_SUBSTEPS, FINAL_CHECK_SEGMENTS)
    # Enforce a genuine ODE: the fast solver must agree with the engine's reference solver run
    # finely (docs/design.md). The identified linear model is solved exactly, so it always passes.
    fell_back = fine_check < DISCRETISATION_GOAL_DB
    if fell_back:
        model, _ = _initial(x, sample_rate, options)
        coarse, fine_check = coarse_and_fine(model, FINE_SUBSTEPS, FINAL_CHECK_SEGMENTS)
    continuation_training = {}
    if options.continuation_training_steps > 0:
        continuation_training = train_continuation(
            model,
            target.numpy(),
            options.continuation_training_steps,
            seed=options.seed,
            window_samples=options.continuation_samples,
            max_order=options.lp_order,
        )
    with torch.no_grad():
        defects = model.defects()
        defect_db = (
            10
            * math.log10(
                float(torch.sum(defects**2)) / float(torch.sum(model.states[1:] ** 2)) + 1e-300
            )
            if layout.n_segments > 1
            else math.nan
        )
    report = FitReport(
        options=asdict(options),
        gradient=options.gradient,
        initial_snr_db=initial_snr,
        snr_db=clip_snr(coarse),
        discretisation_snr_db=fine_check,
        epochs=epoch,
        wall_time_s=time.perf_counter() - t_start,
        seconds_per_epoch=train_time / max(epoch, 1),
        function_evaluations=counter.count,
        rejected_steps=rejected,
        stop_reason=stop_reason,
        history=history,
        discretisation_fallback=fell_back,
        identification=identification,
        trajectory_snr_db=trajectory_snr(model, target),
        initial_trajectory_snr_db=initial_trajectory,
        continuity_defect_db=defect_db,
        continuation_training=continuation_training,
    )
    return model, report


def _step_loss(
    model: SonodeModel,
    target: torch.Tensor,
    options: FitOptions,
    epoch: int,
    segments: torch.Tensor | None,
    n_trajectory: int,
    trajectory_power: float,
) -> tuple[torch.Tensor, float, float]:
    """The log-objective of one optimiser step (with its graph), the objective's value, and the
    step's reconstruction SNR (dB).

    The terms are relative squared errors of very different sizes: the segments reconstruct the
    clip to 40–50 dB while one free run through it reaches 20–30 dB, a thousand times more error.
    Summed, the larger term's gradient decides every shared parameter (frequencies, decays,
    readout) and the reconstruction falls by 20 dB within 60 steps (measured on the steel guitar).
    So the objective is their weighted geometric mean, optimised through its logarithm: each term's
    gradient is divided by its own size, and a weight w means one dB of that term is worth w dB of
    reconstruction. The objective's value (positive) is what the loss curve shows.

    Terms: reconstruction error of the chosen run of segments (relative to its power); the
    continuity penalty (if weighted); the one-trajectory free-run error over the clip's first
    TRAJECTORY_S."""
    layout = model.config.layout
    signal, _ = model.reconstruct(gradient=options.gradient, segments=segments)
    begin, end = (
        layout.complete_span(int(segments[0]), len(segments))
        if segments is not None
        else (0, layout.n_samples)
    )
    offset = 0 if segments is None else int(segments[0]) * layout.hop_samples
    part, estimate = target[begin:end], signal[begin - offset : end - offset]
    terms = [(1.0, torch.mean((estimate - part) ** 2) / (torch.mean(part**2) + 1e-12))]
    weight = options.continuity_weight * min(1.0, (epoch + 1) / CONTINUITY_RAMP_EPOCHS)
    if weight > 0 and (segments is None or len(segments) > 1) and layout.n_segments > 1:
        states = model.states if segments is None else model.states[segments]
        defects = model.defects(gradient=options.gradient, segments=segments)
        terms.append(
            (weight, torch.sum(defects**2) / (torch.sum(states.detach()[1:] ** 2) + 1e-12))
        )
    if TRAJECTORY_WEIGHT > 0:
        # the long-horizon term: one free run from the trajectory state over the clip's start
        phase = epoch % TRAJECTORY_STRIDE
        free = model.trajectory(n_trajectory, options.gradient, TRAJECTORY_STRIDE, phase)
        terms.append(
            (
                TRAJECTORY_WEIGHT,
                torch.mean((free - target[phase:n_trajectory:TRAJECTORY_STRIDE]) ** 2)
                / trajectory_power,
            )
        )
    log_objective = sum(w * torch.log(term + 1e-30) for w, term in terms)
    shown = math.exp(float(log_objective.detach()) / sum(w for w, _ in terms))
    return log_objective, shown, snr_db(part, estimate.detach())


class _Batches:
    """Which segments each optimiser step solves: all, or a random contiguous run of them."""

    def __init__(self, layout, batch_segments: int, seed: int):
        self.n_segments = layout.n_segments
        self.size = batch_segments
        self.seed = seed

    def pick(self, epoch: int) -> torch.Tensor | None:
        """None (every segment) or the run's segment indices; reproducible from (seed, epoch)."""
        if self.n_segments <= self.size:
            return None
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        first = int(torch.randint(0, self.n_segments - self.size + 1, (1,), generator=generator))
        return torch.arange(first, first + self.size)


def _initial(
    x: np.ndarray, sample_rate: int, options: FitOptions, continuation: bool = True
) -> tuple[SonodeModel, dict]:
    fixed = None if options.latent_dim is None else options.latent_dim // 2
    return initial_model(
        x,
        sample_rate,
        fixed,
        options.hop_samples,
        options.overlap_samples,
        options.hidden,
        options.layers,
        options.lp_order,
        continuation_samples=options.continuation_samples if continuation else 0,
        max_modes=options.max_latent_dim // 2,
    )


def _param_groups(model: SonodeModel, lr: float, horizon_s: float) -> list[dict[str, Any]]:
    """Adam moves every parameter by ≈ lr per step in absolute terms, so each group's rate is
    scaled to its parameters' natural size: states to the state RMS; frequencies (rad/s) and decay
    rates (1/s) to 1/horizon_s, the longest span one solve covers. A frequency error δω becomes a
    phase error δω·T after T seconds, so over the one-trajectory free run (T = horizon_s) a step of
    lr rad/s per second of horizon is a phase step of ≈ lr rad, as small as the field's steps; the
    segments alone (16 ms) would tolerate steps 60 times larger, and took them (×100) before the
    free run was trained, which knocked the trajectory off its phase on every step."""
    state_scale = float(torch.sqrt(torch.mean(model.states.detach() ** 2))) or 1.0
    return [
        {"params": model.field.parameters(), "lr": lr},
        {"params": [model.states, model.trajectory_state], "lr": lr * state_scale * 0.1},
        {"params": [model.readout, model.readout_bias], "lr": lr * 0.1},
        {"params": [model.bank.omega_rad_per_s], "lr": lr / horizon_s},
        {"params": [model.bank.raw_damping], "lr": lr / horizon_s},
    ]  # the continuation ODE is identified in closed form (sonode.model.continuation), not trained here
