"""The training objective: what one optimiser step minimises, which segments it solves, and each
parameter group's learning rate (used by `sonode.model.train.fit_samples`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from sonode.model.checks import TRAJECTORY_WEIGHT, snr_db
from sonode.model.decoder import SonodeModel
from sonode.model.device import on
from sonode.model.fit_size import step_run_segments  # torch-free: the size estimate uses it too
from sonode.model.modal import modal_readout
from sonode.model.options import FitOptions

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


def step_loss(
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
    weight = options.continuity_weight * min(1.0, (epoch + 1) / CONTINUITY_RAMP_EPOCHS)
    defects, states, column = [], [], 0
    if weight > 0 and layout.n_segments > 1:
        # one envelope solve gives the read-out and the states at the hop (the defects' ends);
        # the defects z_m(hop) − z_{m+1}(0) within each piece of ≥ 2 segments (a sample's wrapped
        # piece may be split): `SonodeModel.defects` of each piece, from those ends
        chosen = torch.arange(layout.n_segments) if segments is None else segments
        part, estimate, ends = piece_reconstruction(model, target, chosen, options.gradient, True)
        for first, count in pieces(chosen):
            if count > 1:
                piece = slice(first, first + count)
                defects.append(model.defects(segments=piece, ends=ends[column : column + count]))
                states.append(model.states[first + 1 : first + count].detach())
            column += count
    elif segments is None:
        part, (estimate, _) = target, model.reconstruct(gradient=options.gradient)
    else:
        part, estimate = piece_reconstruction(model, target, segments, options.gradient)
    terms = [(1.0, torch.mean((estimate - part) ** 2) / (torch.mean(part**2) + 1e-12))]
    if defects:
        defects, states = torch.cat(defects), torch.cat(states)
        terms.append((weight, torch.sum(defects**2) / (torch.sum(states**2) + 1e-12)))
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


def run_segments(layout, n_modes: int, requested: int | None = None) -> int:
    """Segments per optimiser step: ``requested`` if given, else the memory rule.

    A clip of at most WHOLE_CLIP_SEGMENTS segments is solved whole on every step (as always). A
    longer one is trained on random runs whose readout temporaries, STEP_TEMPORARIES × run ×
    window_samples × n_modes complex128 values, fit STEP_RUN_BYTES: the step's memory then stays
    bounded while the clip's own memory grows (at d = 256, hop 256: 85 segments, 1.4 s).

    Args:
        layout: the clip's `SegmentLayout` (n_segments, window_samples).
        n_modes: K oscillators (d = 2K) of the model.
        requested: `FitOptions.batch_segments`; None for the rule.
    Returns:
        segments per step, ≥ 2.
    """
    if requested is not None:
        return requested
    return step_run_segments(layout.n_segments, layout.window_samples, n_modes)


def pieces(segments: torch.Tensor) -> list[tuple[int, int]]:
    """The contiguous runs of a sorted index tensor, as (first segment, count) pairs."""
    breaks = (torch.nonzero(segments[1:] - segments[:-1] != 1).flatten() + 1).tolist()
    bounds = [0, *breaks, segments.shape[0]]
    return [(int(segments[i]), j - i) for i, j in zip(bounds[:-1], bounds[1:], strict=True)]


def piece_reconstruction(
    model: SonodeModel,
    target: torch.Tensor,
    segments: torch.Tensor,
    gradient: str | None,
    with_ends: bool = False,
):
    """The target and the reconstruction over the samples each piece of ``segments`` (sorted
    segment indices, see `pieces`) determines alone (`SegmentLayout.complete_span`), the pieces'
    samples concatenated: ((n,), (n,)) normalised. All pieces are solved as one batch.

    ``with_ends``: also the segments' states at the hop, (len(segments), d), from the same solve
    (`modal_readout`'s end_s): the continuity defects' ends."""
    layout = model.config.layout
    like = on(model.states)  # the model's device and dtype
    local = torch.arange(layout.window_samples, **like) / layout.sample_rate
    end_s = layout.hop_samples / layout.sample_rate if with_ends else None
    # the chosen rows with a sparse gradient: a dense one of all states was 77 MB on a 600 s clip
    # for a step's 85 rows (`sonode.model.adam` updates the rows it names)
    rows = segments.to(like["device"])
    states = torch.nn.functional.embedding(rows, model.states, sparse=True)
    solved = modal_readout(
        model.bank, model.field, states, local, model.readout, gradient, end_s=end_s
    )
    per_segment, ends = solved if with_ends else (solved, None)
    per_segment = (per_segment + model.readout_bias) * layout.training_weights(rows, like["dtype"])
    parts, estimates, column = [], [], 0
    for first, count in pieces(segments):
        signal = layout.overlap_add(per_segment[:, column : column + count], first)
        begin, end = layout.complete_span(first, count)
        offset = first * layout.hop_samples
        parts.append(target[begin:end])
        estimates.append(signal[begin - offset : end - offset])
        column += count
    if with_ends:
        return torch.cat(parts), torch.cat(estimates), ends
    return torch.cat(parts), torch.cat(estimates)


#: Segments in each piece of a step's sample of a long clip (8 × hop 256 = 128 ms at 16 kHz): long
#: enough that a piece's unshared samples (all but its first fade-in) are most of its windows.
PIECE_SEGMENTS = 8


class SegmentBatches:
    """Which segments each optimiser step solves: all, or ``batch_segments`` of them in pieces
    spread over the whole clip.

    A contiguous run of a long clip is one passage (one note, one attack): trained on one passage
    per step, the shared parameters (modes, field, readout) followed whichever passage the step
    drew and the whole clip's reconstruction fell (a 10 s clip: 22.2 → 17.7 dB in 25 steps; a 1 s
    clip in runs of 16 segments: 41.4 → 33.8 dB, where the whole clip per step gained 1.7 dB).
    So a step's segments are a stratified sample: the clip is cut into equal strata, one piece of
    at most PIECE_SEGMENTS per stratum, each piece moving on by its length from one step to the next
    (from a seeded start, wrapping round its stratum), so that every segment is trained once in
    every ⌈stratum / piece⌉ steps (9 on a 10 s clip at 85 segments per step).
    """

    def __init__(self, layout, batch_segments: int, seed: int):
        self.n_segments = layout.n_segments
        self.size = batch_segments
        generator = torch.Generator().manual_seed(seed * 1_000_003)
        self.count = -(-batch_segments // PIECE_SEGMENTS)  # pieces per step
        strata = torch.linspace(0, self.n_segments, self.count + 1).round().long()
        self.starts, self.ends = strata[:-1], strata[1:]
        self.phase = torch.randint(0, self.n_segments, (self.count,), generator=generator)

    def pick(self, epoch: int) -> torch.Tensor | None:
        """None (every segment) or the step's sorted segment indices; a function of (seed, epoch)."""
        if self.n_segments <= self.size:
            return None
        chosen = []
        for i in range(self.count):
            length = int(self.ends[i] - self.starts[i])
            piece = min(length, self.size // self.count + (i < self.size % self.count))
            # the piece moves on by its length each step, wrapping round its stratum
            shift = int(self.phase[i]) + epoch * piece + torch.arange(piece)
            chosen.append(int(self.starts[i]) + shift % length)
        return torch.sort(torch.cat(chosen)).values


def param_groups(
    model: SonodeModel, lr: float, horizon_s: float, sampled: bool = False
) -> list[dict[str, Any]]:
    """Adam moves every parameter by ≈ lr per step in absolute terms, so each group's rate is
    scaled to its parameters' natural size: states to the state RMS; frequencies (rad/s) and decay
    rates (1/s) to 1/horizon_s, the longest span one solve covers. A frequency error δω becomes a
    phase error δω·T after T seconds, so over the one-trajectory free run (T = horizon_s) a step of
    lr rad/s per second of horizon is a phase step of ≈ lr rad, as small as the field's steps; the
    segments alone (16 ms) would tolerate steps 60 times larger, and took them (×100) before the
    free run was trained, which knocked the trajectory off its phase on every step.

    ``sampled``: the steps train a sample of the segments (a long clip), so each segment's state
    moves only on the steps that train it (`sonode.model.adam`'s "sparse_rows")."""
    state_scale = float(torch.sqrt(torch.mean(model.states.detach() ** 2))) or 1.0
    return [
        {"params": model.field.parameters(), "lr": lr},
        {
            "params": [model.states, model.trajectory_state],
            "lr": lr * state_scale * 0.1,
            **({"sparse_rows": True} if sampled else {}),
        },
        {"params": [model.readout, model.readout_bias], "lr": lr * 0.1},
        {"params": [model.bank.omega_rad_per_s], "lr": lr / horizon_s},
        {"params": [model.bank.raw_damping], "lr": lr / horizon_s},
    ]  # the continuation ODE is identified in closed form (sonode.model.continuation), not trained here


class CountingField:
    """Counts evaluations of the correction field (reported as function evaluations)."""

    count = 0

    def hook(self, module, args, output):
        self.count += 1
