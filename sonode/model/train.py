"""Training: fit a SonodeModel to a clip with the engine's adjoint, within a time or step budget."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from sonode.model.checkpoint import (CheckpointError, CheckpointPlan, TrainingState, fit_identity,
                                     load_checkpoint, save_checkpoint)
from sonode.model.decoder import GRADIENT_METHODS, SonodeModel
from sonode.model.init import initial_model

FINE_SUBSTEPS = 8  # the discretisation check re-solves with 8 Lawson steps per sample
DISCRETISATION_GOAL_DB = 40.0  # training solve vs fine solve: below this the model is not kept
WARMUP_EPOCHS = 10
CHECK_EVERY_EPOCHS = 10  # how often the current parameters may become the kept (best) model
CHECK_SUBSTEPS = 4  # the in-training discretisation check's fine solve
MAX_BAD_STEPS = 6  # consecutive non-finite steps before the fit gives up (best model kept)


@dataclass(frozen=True)
class FitOptions:
    """Options of `fit_samples` (units in the names; defaults suit a 1–2 s clip).

    Attributes:
        latent_dim: d = 2K, even; K damped oscillators.
        hop_samples: segment hop; each segment has its own start state (multiple shooting).
        overlap_samples: cross-fade length between segments.
        hidden, layers: the correction MLP.
        max_time_s: wall-clock budget of the training loop (seconds); None for no limit.
        steps: maximum optimiser steps; None for no limit.
        target_snr_db: stop once the reconstruction reaches this SNR; None to use the whole budget.
        lr: Adam learning rate of the MLP (other groups are scaled from it, see `_param_groups`).
        gradient: "adjoint" (engine's checkpointed adjoint) or "backprop".
        free_run_samples: each segment is also integrated this many samples past its window and
            scored against the clip there, so the dynamics learn to continue the sound.
        free_run_weight: weight of that term relative to the reconstruction loss.
        lp_order: order of the linear predictor used for system identification.
        continuation_samples: the clip's last samples that determine the state continuing the
            sound past its end (0: the last segment continues, seeing as few as overlap+1 samples).
        continuation_steps: optimiser steps fitting that state once the dynamics are trained.
        seed: seeds torch's generator (MLP initialisation).
    """

    latent_dim: int = 128
    hop_samples: int = 256
    overlap_samples: int = 32
    hidden: int = 64
    layers: int = 2
    max_time_s: float | None = 120.0
    steps: int | None = None
    target_snr_db: float | None = None
    lr: float = 1e-2
    gradient: str = "adjoint"
    free_run_samples: int = 0
    free_run_weight: float = 0.1
    lp_order: int = 256
    continuation_samples: int = 512
    continuation_steps: int = 10
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.latent_dim < 2 or self.latent_dim % 2:
            problems.append(f"latent_dim must be an even number ≥ 2, got {self.latent_dim}")
        if self.hop_samples < 8:
            problems.append(f"hop_samples must be ≥ 8, got {self.hop_samples}")
        if not 0 <= self.overlap_samples <= self.hop_samples:
            problems.append(f"overlap_samples must be in [0, hop_samples], got {self.overlap_samples}")
        if self.hidden < 1 or self.layers < 1:
            problems.append(f"hidden and layers must be ≥ 1, got {self.hidden}, {self.layers}")
        if self.max_time_s is not None and not self.max_time_s > 0:
            problems.append(f"max_time_s must be > 0, got {self.max_time_s}")
        if self.steps is not None and self.steps < 0:
            problems.append(f"steps must be ≥ 0, got {self.steps}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.gradient not in GRADIENT_METHODS:
            problems.append(f"gradient must be one of {GRADIENT_METHODS}, got {self.gradient!r}")
        if self.free_run_samples < 0 or self.free_run_weight < 0:
            problems.append("free_run_samples and free_run_weight must be ≥ 0")
        if self.continuation_samples < 0 or self.continuation_steps < 0:
            problems.append("continuation_samples and continuation_steps must be ≥ 0")
        if self.lp_order < 2:
            problems.append(f"lp_order must be ≥ 2, got {self.lp_order}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    snr_db: float
    elapsed_s: float


@dataclass
class FitReport:
    """What happened during a fit (written to <stem>.fit.json by the CLI)."""

    options: dict[str, Any]
    gradient: str
    initial_snr_db: float
    snr_db: float  # reconstruction SNR of the kept (best) model, training solve
    fine_snr_db: float  # the same model solved with FINE_SUBSTEPS Lawson steps per sample
    discretisation_snr_db: float  # training solve vs fine solve
    epochs: int
    wall_time_s: float
    seconds_per_epoch: float
    function_evaluations: int
    rejected_steps: int  # non-finite steps, and checks failed by learning the discretisation
    stop_reason: str
    history: list[EpochRecord] = field(default_factory=list)
    discretisation_fallback: bool = False  # the trained model failed the check; the linear one was kept

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """10·log10(Σ ref² / Σ (ref − est)²) in dB (+inf for a perfect estimate)."""
    err = float(torch.sum((reference - estimate) ** 2))
    return math.inf if err == 0 else 10.0 * math.log10(float(torch.sum(reference ** 2)) / err)


class _CountingField(torch.nn.Module):
    """Counts evaluations of the correction field (reported as function evaluations)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def hook(self, module, args, output):
        self.count += 1


def fit_samples(x: np.ndarray, sample_rate: int, options: FitOptions = FitOptions(),
                on_epoch: Callable[[EpochRecord, float], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                checkpoint: CheckpointPlan | None = None) -> tuple[SonodeModel, FitReport]:
    """Fit a model to one clip.

    Args:
        x: the clip in file amplitude, shape (n_samples,), finite, not constant.
        sample_rate: Hz.
        options: see `FitOptions`.
        on_epoch: called after each epoch with (record, best SNR so far in dB), e.g. a progress bar.
        should_stop: polled every epoch; True ends training early (e.g. on SIGINT) with the best model.
        checkpoint: write a resumable checkpoint every ``checkpoint.every_s`` seconds and when
            stopped by ``should_stop``, and/or resume from one (see `CheckpointPlan`). A resumed
            fit takes exactly the steps the uninterrupted one would have taken (same parameters,
            bit for bit, on the same machine and thread count), and its wall-clock budget
            ``max_time_s`` counts the time spent before the interruption. The checkpoint is left
            in place: the caller deletes it once the model is safely saved.

    Returns:
        (model, report): the best model seen (by training SNR) and the fit report.

    Raises:
        CheckpointError: ``checkpoint.resume`` and the checkpoint is missing, damaged, or was made
            for another clip or other options.
    """
    identity = None
    resumed = None
    if checkpoint is not None:
        identity = fit_identity(x, sample_rate, asdict(options), checkpoint.source)
        if checkpoint.resume:  # before the costly initialisation, so that a mismatch fails fast
            resumed = load_checkpoint(checkpoint.path, identity)
    t_start = time.perf_counter()
    torch.manual_seed(options.seed)
    model = _initial(x, sample_rate, options)
    target = torch.from_numpy((x - model.config.offset) / model.config.gain)
    layout = model.config.layout
    counter = _CountingField()
    handle = model.field.register_forward_hook(counter.hook)
    free = options.free_run_samples
    free_target, free_mask = _free_run_target(target, layout, free)
    power = float(torch.mean(target ** 2))
    clip = torch.from_numpy(x)

    def clip_snr(signal: torch.Tensor) -> float:
        # SNR in file amplitude, as a user measures the rendered WAV (the offset counts as signal)
        return snr_db(clip, signal.detach() * model.config.gain + model.config.offset)

    optimiser = torch.optim.Adam(_param_groups(model, options.lr))
    for group in optimiser.param_groups:  # the rate before warm-up (halved on every rollback)
        group["base_lr"] = group["lr"]
    history: list[EpochRecord] = []
    bad_steps = rejected = 0
    epoch = 0
    if resumed is None:
        with torch.no_grad():
            initial_snr = clip_snr(model.reconstruct()[0])
        best_snr, best_state = initial_snr, copy.deepcopy(model.state_dict())
    else:
        try:
            model.load_state_dict(resumed.model)
            optimiser.load_state_dict(resumed.optimiser)
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot resume: {checkpoint.path} does not fit this model ({err}); delete it "
                                  "and run without --resume") from None
        torch.set_rng_state(resumed.rng_state)
        initial_snr, best_snr, best_state = resumed.initial_snr_db, resumed.best_snr_db, resumed.best_model
        history = [EpochRecord(**r) for r in resumed.history]
        epoch, rejected, bad_steps = resumed.epoch, resumed.rejected_steps, resumed.bad_steps
        counter.count = resumed.function_evaluations
        t_start = time.perf_counter() - resumed.elapsed_s  # --max-time covers the whole fit

    def save(elapsed_s: float) -> None:
        save_checkpoint(checkpoint.path, TrainingState(
            epoch=epoch, model=model.state_dict(), optimiser=optimiser.state_dict(), best_model=best_state,
            best_snr_db=best_snr, initial_snr_db=initial_snr, history=[asdict(r) for r in history],
            rejected_steps=rejected, bad_steps=bad_steps, function_evaluations=counter.count,
            elapsed_s=elapsed_s, rng_state=torch.get_rng_state()), identity)

    periodic = checkpoint is not None and checkpoint.every_s > 0
    last_checkpoint = time.perf_counter()
    stop_reason = "steps"
    while True:
        # Between epochs the state is complete (no half-taken step), so this is where it is saved.
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
        signal, per_segment = model.reconstruct(gradient=options.gradient, extra_samples=free)
        loss = torch.mean((signal - target) ** 2) / power
        if free:
            tail = per_segment[layout.window_samples:]
            loss = loss + options.free_run_weight * torch.sum(((tail - free_target) * free_mask) ** 2) / (
                power * max(1.0, float(free_mask.sum())))
        epoch_snr = clip_snr(signal)
        if math.isfinite(float(loss.detach())):
            loss.backward()
        finite = math.isfinite(float(loss.detach())) and all(
            p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
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
            best_snr, best_state, passed = _consider(model, clip_snr, best_snr, best_state)
            if not passed:  # learning its discretisation: back to the best genuine ODE, smaller steps
                rejected += 1
                model.load_state_dict(best_state)
                for group in optimiser.param_groups:
                    group["base_lr"] *= 0.5
                optimiser.state.clear()
        record = EpochRecord(epoch=epoch, loss=float(loss.detach()), snr_db=epoch_snr,
                             elapsed_s=time.perf_counter() - t_start)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, best_snr)
    train_time = time.perf_counter() - t_start
    best_snr, best_state, _ = _consider(model, clip_snr, best_snr, best_state)  # the last parameters
    model.load_state_dict(best_state)
    handle.remove()
    coarse, fine = _coarse_and_fine(model)
    # Enforce a genuine ODE: a model whose output changes when solved finely has learned its
    # discretisation (theory.md §6), and upsampling it would be meaningless. The identified
    # linear model is integrated exactly, so it always passes.
    fell_back = snr_db(fine, coarse) < DISCRETISATION_GOAL_DB
    if fell_back:
        model = _initial(x, sample_rate, options)
        coarse, fine = _coarse_and_fine(model)
    if model.config.continuation_samples and options.continuation_steps:
        fit_continuation(model, target, options.continuation_steps, options.gradient)
    report = FitReport(
        options=asdict(options), gradient=options.gradient, initial_snr_db=initial_snr,
        snr_db=clip_snr(coarse), fine_snr_db=clip_snr(fine),
        discretisation_snr_db=snr_db(fine, coarse), epochs=epoch, wall_time_s=time.perf_counter() - t_start,
        seconds_per_epoch=train_time / max(epoch, 1), function_evaluations=counter.count,
        rejected_steps=rejected, stop_reason=stop_reason, history=history, discretisation_fallback=fell_back)
    return model, report


def _consider(model: SonodeModel, clip_snr: Callable[[torch.Tensor], float], best_snr: float,
              best_state: dict) -> tuple[float, dict, bool]:
    """Make the current parameters the best if they fit better and pass the discretisation check.

    Only checked parameters are ever kept, so the fit can never end on a model that learned its
    discretisation. The in-training check uses CHECK_SUBSTEPS (cheaper than the final check).

    Returns:
        (best SNR, best state, whether the current parameters passed the check).
    """
    with torch.no_grad():
        coarse = model.reconstruct()[0]
        passed = snr_db(model.reconstruct(substeps=CHECK_SUBSTEPS)[0], coarse) >= DISCRETISATION_GOAL_DB
    current = clip_snr(coarse)
    if passed and current > best_snr:
        return current, copy.deepcopy(model.state_dict()), passed
    return best_snr, best_state, passed


def _initial(x: np.ndarray, sample_rate: int, options: FitOptions) -> SonodeModel:
    return initial_model(x, sample_rate, options.latent_dim // 2, options.hop_samples, options.overlap_samples,
                         options.hidden, options.layers, options.lp_order,
                         continuation_samples=options.continuation_samples)


@torch.no_grad()
def _coarse_and_fine(model: SonodeModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The reconstruction solved on the training grid and with FINE_SUBSTEPS steps per sample."""
    return model.reconstruct()[0], model.reconstruct(substeps=FINE_SUBSTEPS)[0]


def fit_continuation(model: SonodeModel, target: torch.Tensor, steps: int, gradient: str) -> None:
    """Fit the continuation state to the clip's last samples under the trained dynamics.

    The state starts from its linear least-squares value; only it is optimised (Adam, rate
    relative to its size), so the dynamics, and with them the reconstruction, stay as trained.

    Args:
        model: a trained model with ``config.continuation_samples > 0``.
        target: the normalised clip, (n_samples,).
        steps: optimiser steps.
        gradient: "adjoint" or "backprop".
    """
    n = model.config.continuation_samples
    window = target[-n:]
    local = torch.arange(n, dtype=torch.float64) / model.config.sample_rate
    step_s = 1.0 / model.config.sample_rate
    state = model.continuation_state
    frozen = [p for p in model.parameters() if p is not state]
    for p in frozen:
        p.requires_grad_(False)
    try:
        optimiser = torch.optim.Adam([state], lr=0.05 * float(state.detach().abs().mean()) + 1e-12)
        best_err, best = math.inf, state.detach().clone()
        for _ in range(steps + 1):
            optimiser.zero_grad(set_to_none=True)
            err = torch.mean((model.read(model.solve(state, local, step_s, gradient)[:, 0]) - window) ** 2)
            if float(err.detach()) < best_err:
                best_err, best = float(err.detach()), state.detach().clone()
            err.backward()
            optimiser.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    with torch.no_grad():
        state.copy_(best)


def _param_groups(model: SonodeModel, lr: float) -> list[dict[str, Any]]:
    """Adam moves every parameter by ≈ lr per step in absolute terms, so each group's rate is
    scaled to its parameters' natural size: states to the state RMS, frequencies to rad/s."""
    state_scale = float(model.field.state_scale)
    return [
        {"params": model.field.parameters(), "lr": lr},
        {"params": [model.states], "lr": lr * state_scale * 0.1},
        {"params": [model.readout, model.readout_bias], "lr": lr * 0.1},
        {"params": [model.bank.omega_rad_per_s], "lr": lr * 100.0},
        {"params": [model.bank.raw_damping], "lr": lr * 10.0},
    ]  # the continuation state is not trained here: it is fitted once the dynamics are, see fit_continuation


def _free_run_target(target: torch.Tensor, layout, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip samples following each segment's window (extra, M) and a mask of those that exist."""
    start = torch.arange(layout.n_segments) * layout.hop_samples + layout.window_samples
    index = start[None, :] + torch.arange(extra)[:, None]
    mask = index < layout.n_samples
    values = torch.where(mask, target[torch.clamp(index, max=layout.n_samples - 1)], torch.zeros(()))
    return values, mask.to(target.dtype)
