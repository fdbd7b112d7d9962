"""Training: fit a SonodeModel to a clip with the engine's adjoint, within a time or step budget."""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch

from sonode.model.adam import Adam, gradient_values
from sonode.model.budget import NO_TIME_FOR_CONTINUATION, FitBudget
from sonode.model.checkpoint import (
    CheckpointError,
    CheckpointPlan,
    TrainingState,
    fit_identity,
    load_checkpoint,
    save_checkpoint,
)
from sonode.model.checks import (
    CHECK_SEGMENTS,
    CHECK_SUBSTEPS,
    DISCRETISATION_GOAL_DB,
    coarse_and_fine,
    consider,
    continuity_defect_db,
    fast_vs_reference_db,
    reconstruction_estimate_s,
    snr_db,
    state_trajectory_snr,
    stoppable_check_db,
    trajectory_snr,
)
from sonode.model.decoder import SonodeModel
from sonode.model.fit_size import check_fit_size
from sonode.model.heap import retained_heap
from sonode.model.init import TRAJECTORY_S, initial_from_options
from sonode.model.linear_step import solve_run_states, whole_solve_estimate_s
from sonode.model.local_fit import fit_auto, fit_local
from sonode.model.objective import (
    CountingField,
    SegmentBatches,
    param_groups,
    run_segments,
    step_loss,
)
from sonode.model.options import EpochRecord, FitOptions, FitReport
from sonode.model.placement import Placement
from sonode.model.predict import train_continuation
from sonode.model.stopping import abandonable, unless_abandoned

FINE_SUBSTEPS = 8  # the discretisation check re-solves with 8 Lawson RK4 steps per sample
WARMUP_EPOCHS = 10
CHECK_EVERY_EPOCHS = 25  # how often the current parameters may become the kept (best) model
FINAL_CHECK_SEGMENTS = 64
MAX_BAD_STEPS = 6  # consecutive non-finite steps before the fit gives up (best model kept)


@retained_heap  # a step's large temporaries reused, not faulted in again every step
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
    from the engine's adjoint (or backprop) through the fast modal solver. Every
    ``options.state_solve_every`` steps the states of the step's segments are solved by least
    squares for the modes and field it left (`sonode.model.linear_step`).

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
    t_start = time.perf_counter()  # the choice of --modes auto counts against --max-time
    if options.modes == "local":  # modes that follow the notes
        return fit_local(x, sample_rate, options, on_epoch, should_stop, checkpoint)
    if options.modes == "auto":  # the local model if it beats the global start, else global
        start = lambda: initial_from_options(x, sample_rate, options, continuation=False)[0]  # noqa: E731
        local = fit_auto(x, sample_rate, options, start, should_stop, checkpoint)
        if local is not None:
            return local
    identity = None
    resumed = None
    if checkpoint is not None:
        identity = fit_identity(x, sample_rate, asdict(options), checkpoint.source)
        if checkpoint.resume:  # before the costly initialisation, so that a mismatch fails fast
            resumed = load_checkpoint(checkpoint.path, identity)
    torch.manual_seed(options.seed)
    model, identification = initial_from_options(x, sample_rate, options)
    placed = Placement(model, options.device, options.dtype)  # float64 CPU unless asked otherwise
    target = placed.tensor((x - model.config.offset) / model.config.gain)
    layout = model.config.layout
    counter = CountingField()
    handle = model.field.register_forward_hook(counter.hook)
    clip = placed.tensor(x, torch.float64)
    batch_segments = run_segments(layout, model.config.n_modes, options.batch_segments)
    batches = SegmentBatches(layout, batch_segments, options.seed)
    n_trajectory = min(layout.n_samples, int(TRAJECTORY_S * sample_rate))
    trajectory_power = float(torch.mean(target[:n_trajectory] ** 2)) + 1e-12

    def clip_snr(signal: torch.Tensor) -> float:
        # SNR in file amplitude, as a user measures the rendered WAV (the offset counts as signal)
        return snr_db(clip, signal.detach() * model.config.gain + model.config.offset)

    free_run_snr = functools.partial(state_trajectory_snr, target)  # (model, state=None) -> dB
    sampled = layout.n_segments > batch_segments  # each step trains a sample of the segments
    optimiser = Adam(param_groups(model, options.lr, n_trajectory / sample_rate, sampled))
    for group in optimiser.param_groups:  # the rate before warm-up (halved on every rollback)
        group["base_lr"] = group["lr"]
    history: list[EpochRecord] = []
    bad_steps = rejected = 0
    epoch = 0
    evaluation_start = time.perf_counter()
    identified = None
    if resumed is None:
        with torch.no_grad():
            initial_snr = clip_snr(model.reconstruct()[0])
        best_snr, best_state = initial_snr, copy.deepcopy(model.state_dict())
        identified = best_state  # the fallback below (never modified: best_state is replaced)
        best_trajectory = free_run_snr(model)
        initial_trajectory = best_trajectory  # the untrained start's, for the report's gain
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

    evaluation_s = time.perf_counter() - evaluation_start
    check_start = time.perf_counter()
    # timed (the final checks' cost); also the final check of an untrained kept model
    counted = counter.count  # a measurement, not training: left out of the reported evaluations
    start_check_db = fast_vs_reference_db(model, CHECK_SUBSTEPS, CHECK_SEGMENTS)
    counter.count = counted
    check_s = time.perf_counter() - check_start
    breakdown_s = identification.get("time_breakdown_s", {})
    budget = FitBudget(
        t_start,
        options.max_time_s,
        evaluation_s,
        check_s,
        -(-layout.n_segments // batch_segments),
        options.continuation_training_steps > 0 and model.config.tail_modes > 0,
        breakdown_s.get("continuation", 0.0),
    )
    if sampled and options.state_solve_every and resumed is None:
        # a long clip's states solved jointly first, if that fits (docs/training.md: +0.15-0.4 dB)
        fits = budget.solve_fits(lambda: whole_solve_estimate_s(model, target))
        if fits and solve_run_states(model, target, None, optimiser):
            check_start = time.perf_counter()
            kept = consider(model, clip_snr, free_run_snr, (best_snr, best_trajectory, best_state))
            (best_snr, best_trajectory, best_state), _ = kept
            model.load_state_dict(best_state)
            budget.consider_took(time.perf_counter() - check_start)
    if should_stop is not None:  # evaluated and checked: a model to keep exists from here on;
        should_stop()  # polling tells a caller (sonode.cli.fit) that the phase changed, steps=0 too
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
        if not budget.train_more():  # --max-time: the rest of the fit must fit too (FitBudget)
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
        step_start = time.perf_counter()
        # Adam's first steps move every parameter by about its full rate; ramping the rate up over
        # WARMUP_EPOCHS keeps them from knocking the identified model far off its optimum.
        for group in optimiser.param_groups:
            group["lr"] = group["base_lr"] * min(1.0, (epoch + 1) / WARMUP_EPOCHS)
        optimiser.zero_grad(set_to_none=True)
        with abandonable(should_stop) as step:  # a signal abandons it: nothing kept changed yet
            try:
                segments = batches.pick(epoch)
                log_objective, loss, epoch_snr = step_loss(
                    model, target, options, epoch, segments, n_trajectory, trajectory_power
                )
            except RuntimeError:  # the engine refused a non-finite or stalled solve: a bad step
                log_objective, loss, epoch_snr = None, math.nan, math.nan
            if math.isfinite(loss):
                log_objective.backward()
        if step.abandoned:  # as if the stop had come just before it: the poll above ends it
            continue
        finite = math.isfinite(loss) and all(
            p.grad is None or bool(torch.isfinite(gradient_values(p.grad)).all())
            for p in model.parameters()
        )
        if not finite:
            # halve the step size; the parameters are still the last good ones (Adam has not run:
            # a copy of them before every step cost a 600 s clip 77 MB and bought nothing)
            rejected += 1
            bad_steps += 1
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
        budget.step_took(time.perf_counter() - step_start)
        if sampled:  # what a check costs once the field is trained, measured once
            budget.measure_reconstruction(lambda: reconstruction_estimate_s(model))
        if options.state_solve_every and epoch % options.state_solve_every == 0:
            # a sampled clip's every segment (the untrained ones' states lag the shared parameters)
            # if it fits: a 60 s 48 kHz clip's whole solve was estimated at ~160 CPU s
            if not sampled or budget.solve_fits(lambda: whole_solve_estimate_s(model, target)):
                solve_run_states(model, target, None if sampled else segments, optimiser)
        check_start = time.perf_counter()
        if epoch % CHECK_EVERY_EPOCHS == 0:
            (best_snr, best_trajectory, best_state), passed = consider(
                model, clip_snr, free_run_snr, (best_snr, best_trajectory, best_state), should_stop
            )
            budget.consider_took(time.perf_counter() - check_start)
            if not passed:  # the fast solve disagrees with the reference: back to the last kept
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
    # Steps since the last check: the last parameters are checked if that and the final check fit.
    # Stopped by a signal, or no time for the final check: the kept (checked) parameters as they
    # are, and the final check at the in-training check's size (seconds, not tens of seconds).
    stopped = stop_reason == "interrupted" or (should_stop is not None and should_stop())
    check_last = not stopped and epoch % CHECK_EVERY_EPOCHS != 0 and budget.check_last()
    hurry = stopped or not budget.check_last(consider=check_last)
    if check_last:
        (best_snr, best_trajectory, best_state), _ = consider(
            model, clip_snr, free_run_snr, (best_snr, best_trajectory, best_state), should_stop
        )
    model.load_state_dict(best_state)
    handle.remove()
    substeps, segments = (
        (CHECK_SUBSTEPS, CHECK_SEGMENTS)
        if hurry or not budget.fine_final
        else (FINE_SUBSTEPS, FINAL_CHECK_SEGMENTS)
    )
    checked_samples = layout.window_samples
    if substeps == CHECK_SUBSTEPS and best_state is identified:
        fine_check = start_check_db  # the same check of the same parameters
    else:  # a signal during it ends it (the report gives the samples checked)
        fine_check, checked_samples = stoppable_check_db(model, substeps, segments, should_stop)
    coarse = None  # the kept parameters' reconstruction and free run: best_snr, best_trajectory
    # A genuine ODE: the fast solver agrees with the engine's fine reference (docs/design.md)
    fell_back = fine_check < DISCRETISATION_GOAL_DB
    if fell_back:  # the identified model, kept from the start (identified again after a resume)
        if identified is None:
            model, _ = initial_from_options(x, sample_rate, options)
        else:
            model.load_state_dict(identified)
        coarse, fine_check = coarse_and_fine(model, substeps, segments)
    # released: Adam's moments, the gradient, 2 state copies (5 × 77 MB on a 600 s clip)
    optimiser.state.clear()
    optimiser.zero_grad(set_to_none=True)
    best_state = identified = None
    model, clip, target, coarse = placed.back(model, x, clip, target, coarse)  # float64, CPU
    continuation_training = {}
    if options.continuation_training_steps > 0 and not budget.continuation_fits:
        skipped = NO_TIME_FOR_CONTINUATION  # stopped by the deadline, it would keep nothing
        continuation_training = {"field_kept": False, "cycle": False, "skipped": skipped}
    elif options.continuation_training_steps > 0:  # a signal abandons it: the identified one stays
        continuation_training = unless_abandoned(
            should_stop,
            lambda: train_continuation(
                model,
                target.numpy(),
                options.continuation_training_steps,
                seed=options.seed,
                window_samples=options.continuation_samples,
                max_order=options.lp_order,
                order=identification.get("continuation", {}).get("order"),
                # ends in time for the work after it; starts only if its identification fits too
                should_stop=lambda: (
                    budget.out_of_time(evaluation_s + breakdown_s.get("continuation", 0.0))
                    or (should_stop is not None and should_stop())
                ),
            ),
            model,
        ) or {"field_kept": False, "cycle": False, "skipped": "stopped"}
    kept_snr = best_snr if coarse is None else clip_snr(coarse)
    if history:  # after the last step the kept model is the one returned (final check, fallback)
        history[-1].kept_snr_db = kept_snr
    report = FitReport(
        options=asdict(options),
        gradient=options.gradient,
        initial_snr_db=initial_snr,
        snr_db=kept_snr,
        discretisation_snr_db=fine_check,
        discretisation_check={
            "substeps_per_sample": substeps,
            "segments": segments,
            "window_samples": checked_samples,
        },
        epochs=epoch,
        wall_time_s=time.perf_counter() - t_start,
        seconds_per_epoch=train_time / max(epoch, 1),
        function_evaluations=counter.count,
        rejected_steps=rejected,
        stop_reason=stop_reason,
        history=history,
        discretisation_fallback=fell_back,
        identification=identification,
        trajectory_snr_db=best_trajectory if coarse is None else trajectory_snr(model, target),
        initial_trajectory_snr_db=initial_trajectory,
        continuity_defect_db=continuity_defect_db(model),
        continuation_training=continuation_training,
    )
    return model, report
