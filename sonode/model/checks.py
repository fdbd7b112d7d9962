"""Checks of a model in training: the fast solver against the engine's reference, one trajectory."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from sonode.dsp.metrics import snr_from_energies
from sonode.model.decoder import SonodeModel
from sonode.model.device import on
from sonode.model.fit_size import EVALUATION_SEGMENTS
from sonode.model.init import TRAJECTORY_S
from sonode.model.stopping import abandonable

DISCRETISATION_GOAL_DB = 40.0  # fast solve vs reference solve: below this the model is not kept
CHECK_SUBSTEPS = 2  # the in-training check's reference solve (Lawson RK4 steps per sample)...
CHECK_SEGMENTS = 8  # ...on this many segments spread over the clip
REFERENCE_PIECE_SAMPLES = 16  # outputs per piece of a stoppable reference solve
TRAJECTORY_WEIGHT = 0.1  # dB of the one-trajectory free run worth one dB of reconstruction (training and kept model)


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """10·log10(Σ ref² / Σ (ref − est)²) in dB of two tensors, by `sonode.dsp.metrics`'s
    `snr_from_energies`: +inf for a perfect estimate, nan for a silent reference or NaN estimate."""
    return float(
        snr_from_energies(
            np.float64(float(torch.sum(reference**2))),  # float(): a GPU tensor has no __array__
            np.float64(float(torch.sum((reference - estimate) ** 2))),
        )
    )


def check_segments(model: SonodeModel, count: int) -> torch.Tensor:
    """Up to ``count`` segment indices spread evenly over the clip."""
    m = model.config.layout.n_segments
    return torch.unique(torch.linspace(0, m - 1, min(count, m)).round().long())


@torch.no_grad()
def fast_vs_reference_db(model: SonodeModel, substeps: int, count: int) -> float:
    """SNR (dB) between the fast solve and the reference Lawson RK4 solve with ``substeps`` steps
    per sample, over the windows of up to ``count`` segments spread over the clip."""
    layout = model.config.layout
    local = torch.arange(layout.window_samples, **on(model.states)) / layout.sample_rate
    states = model.states[check_segments(model, count)]
    fast = model.read(model.solve(states, local))
    reference = model.read(model.solve(states, local, 1.0 / (layout.sample_rate * substeps)))
    return snr_db(reference, fast)


@torch.no_grad()
def stoppable_check_db(
    model: SonodeModel, substeps: int, count: int, should_stop: Callable[[], bool] | None
) -> tuple[float, int]:
    """`fast_vs_reference_db` with the reference solved in pieces of REFERENCE_PIECE_SAMPLES
    (the field is autonomous: each piece continues from the last one's end state), so that a stop
    acts within one piece: the final check at 8 substeps took 16 s on a loaded machine.

    Returns:
        (SNR in dB, window samples checked): all of them unless ``should_stop()`` turned True
        (none, and a NaN SNR, when it was True from the start).
    """
    if should_stop is not None and should_stop():  # stopped before it began: nothing checked
        return math.nan, 0  # (one piece took 0.9 s at load 11; the kept model passed its check)
    layout = model.config.layout
    window = layout.window_samples
    local = torch.arange(window, **on(model.states)) / layout.sample_rate
    states = model.states[check_segments(model, count)]
    fast = model.read(model.solve(states, local))
    step_s = 1.0 / (layout.sample_rate * substeps)
    pieces, z, begin = [], states, 0
    while begin < window - 1:
        end = min(begin + REFERENCE_PIECE_SAMPLES, window - 1)
        trajectory = model.solve(z, local[begin : end + 1] - local[begin], step_s)
        pieces.append(model.read(trajectory[:-1]))
        z, begin = trajectory[-1], end
        if should_stop is not None and should_stop():
            break
    if begin == window - 1:
        pieces.append(model.read(z[None]))
    reference = torch.cat(pieces)
    return snr_db(reference, fast[: reference.shape[0]]), int(reference.shape[0])


def kept_score_db(snr: float, trajectory_db: float) -> float:
    """The score by which the kept model is chosen (dB; higher is better): the training objective
    (see `sonode.model.objective.step_loss`) measured on the whole clip, reconstruction SNR plus
    TRAJECTORY_WEIGHT × the one free run's SNR. So a checkpoint is kept only if its reconstruction
    gain outweighs what its free run lost at the rate training itself trades them (with weight 0.1,
    +1 dB of reconstruction cannot buy 10 dB of free run). A free run that is not finite scores −inf."""
    if math.isnan(trajectory_db):
        trajectory_db = -math.inf
    return snr + TRAJECTORY_WEIGHT * trajectory_db if TRAJECTORY_WEIGHT > 0 else snr


def consider(
    model: SonodeModel,
    clip_snr: Callable[[torch.Tensor], float],
    trajectory_db: Callable[[SonodeModel], float],
    kept: tuple[float, float, dict],
    should_stop: Callable[[], bool] | None = None,
) -> tuple[tuple[float, float, dict], bool]:
    """Make the current parameters the kept ones if they score better (`kept_score_db`), do not
    reconstruct worse, and pass the solver check.

    Only checked parameters are ever kept, so the fit can never end on a model whose fast solve
    disagrees with the engine's reference solve. The in-training check is cheaper than the final
    one (CHECK_SUBSTEPS on CHECK_SEGMENTS segments).

    Args:
        clip_snr: reconstruction (normalised, (n_samples,)) → SNR in dB.
        trajectory_db: model → SNR (dB) of its one free run (e.g. `trajectory_snr`).
        kept: (reconstruction SNR dB, free-run SNR dB, state dict) of the kept parameters.
        should_stop: polled between the three solves, and a `sonode.model.stopping.StopRequest`
            abandons the check on the spot; a stop leaves ``kept`` as it is (reported as passed).

    Returns:
        (the kept triple, whether the current parameters passed the check).
    """

    with abandonable(should_stop):  # a signal abandons it at once: it changes nothing until its end
        return _consider(model, clip_snr, trajectory_db, kept, should_stop)
    return kept, True


def _consider(model, clip_snr, trajectory_db, kept, should_stop):
    def stopped() -> bool:
        return should_stop is not None and should_stop()

    coarse = _reconstruct(model, stopped)
    if coarse is None:
        return kept, True
    passed = fast_vs_reference_db(model, CHECK_SUBSTEPS, CHECK_SEGMENTS) >= DISCRETISATION_GOAL_DB
    if not passed or stopped():
        return kept, passed
    current = clip_snr(coarse)
    # ...and never at the cost of reconstruction: the kept model's SNR (the training curve's
    # green line, the fit report's figure) then only rises. A worse reconstruction is refused
    # before the free run is solved (a third of the check's cost, and its answer could not help)
    if not current >= kept[0]:  # (a NaN too)
        return kept, passed
    free_run = trajectory_db(model)
    if kept_score_db(current, free_run) > kept_score_db(kept[0], kept[1]):
        return (current, free_run, copy.deepcopy(model.state_dict())), passed
    return kept, passed


@torch.no_grad()
def _reconstruct(model: SonodeModel, stopped: Callable[[], bool]) -> torch.Tensor | None:
    """``model.reconstruct()[0]``, a run of EVALUATION_SEGMENTS segments at a time with ``stopped``
    polled between runs (None once it is True): a trained field's reconstruction of a 60 s clip at
    48 kHz took 111 s on a loaded machine, and a signal waited for all of it. The overlap-add is
    linear, so the runs' sum is the whole reconstruction (to rounding)."""
    layout = model.config.layout
    out = torch.zeros(layout.n_samples, **on(model.states))
    for first in range(0, layout.n_segments, EVALUATION_SEGMENTS):
        run = torch.arange(first, min(layout.n_segments, first + EVALUATION_SEGMENTS))
        part = model.reconstruct(segments=run)[0]
        begin = first * layout.hop_samples
        out[begin : begin + part.shape[0]] += part
        if stopped():
            return None
    return out


@torch.no_grad()
def coarse_and_fine(model: SonodeModel, substeps: int, count: int) -> tuple[torch.Tensor, float]:
    """The reconstruction by the fast solver, and its agreement (dB) with the reference solve."""
    return model.reconstruct()[0], fast_vs_reference_db(model, substeps, count)


@torch.no_grad()
def trajectory_snr(model: SonodeModel, target: torch.Tensor) -> float:
    """SNR (dB) of the one free run from ``trajectory_state`` over (up to TRAJECTORY_S of) the
    clip: how far the learned dynamics carry the sound without restarting."""
    n = min(target.shape[0], int(TRAJECTORY_S * model.config.sample_rate))
    return snr_db(target[:n], model.trajectory(n))


def state_trajectory_snr(
    target: torch.Tensor, model: SonodeModel, state: dict | None = None
) -> float:
    """`trajectory_snr` of the current parameters, or of ``state`` (a state dict; the model's own
    parameters are restored afterwards)."""
    if state is None:
        return trajectory_snr(model, target)
    now = copy.deepcopy(model.state_dict())
    model.load_state_dict(state)
    try:
        return trajectory_snr(model, target)
    finally:
        model.load_state_dict(now)


@torch.no_grad()
def continuity_defect_db(model: SonodeModel) -> float:
    """The segment-boundary continuity defects relative to the states (dB; nan for one segment)."""
    if model.config.layout.n_segments <= 1:
        return math.nan
    defects = model.defects()
    return 10 * math.log10(
        float(torch.sum(defects**2)) / float(torch.sum(model.states[1:] ** 2)) + 1e-300
    )


@torch.no_grad()
def reconstruction_estimate_s(model: SonodeModel) -> float:
    """Seconds of the whole clip's graph-free reconstruction (`consider`'s largest part), from
    reconstructing its first EVALUATION_SEGMENTS segments: the cost is linear in the runs."""
    n = model.config.layout.n_segments
    start = time.perf_counter()
    model.reconstruct(segments=torch.arange(min(n, EVALUATION_SEGMENTS)))
    return (time.perf_counter() - start) * -(-n // EVALUATION_SEGMENTS)
