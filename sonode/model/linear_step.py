"""Least-squares steps for the parameters the reconstruction is linear in, once the modes are given.

Segment m's read-out is x_m(t) = Re Σ_k c_{m,k} r_k q_{m,k}(t) + b, with c_m = u_m + i v_m its
start state, r_k = C_u,k − i C_v,k the readout and q = exp(λt + Γ(t)) (`modal_factors`). With the
envelope Γ held fixed it is linear in the start state, so the states that minimise the
reconstruction error for the current modes, field and readout are a least-squares problem, not
something for Adam to creep towards at a rate fixed by the parameters' scale. Γ depends on the
state through the mode energies only, weakly while the field is small, so the solve is a
fixed-point step; the caller keeps its result only if the measured objective improved.

The objective is training's: the error of the cross-faded sum of all segments. Neighbouring
segments overlap, so it is solved by block Gauss–Seidel in two colours: the even segments (whose
windows do not overlap one another) each solve exactly given their odd neighbours, then the odd
ones given the new even ones. Each half-sweep is an exact minimisation over its block, so for the
frozen Γ the error never grows.
"""

from __future__ import annotations

import time

import torch

from sonode.dsp.lpc import ridge_solve
from sonode.model.decoder import SonodeModel
from sonode.model.device import on
from sonode.model.modal import modal_factors
from sonode.model.objective import pieces

# the identification's ridge (`sonode.model.init.initial_model`): the same conditioning
REL_RIDGE = 1e-6
CHUNK_SEGMENTS = 64  # segments whose bases (window × 2K each) are held at once: bounds memory


def _extended(layout, run: torch.Tensor) -> torch.Tensor:
    """The run and one fixed neighbour on each side: their sum is complete over the run's windows."""
    return torch.arange(max(0, int(run[0]) - 1), min(layout.n_segments, int(run[-1]) + 2))


@torch.no_grad()
def refit_segment_states(
    model: SonodeModel,
    target: torch.Tensor,
    segments: torch.Tensor | None = None,
    rel_ridge: float = REL_RIDGE,
    signal: torch.Tensor | None = None,
) -> torch.Tensor:
    """Start states of ``segments`` that minimise the cross-faded reconstruction error for the
    current modes, field, readout and the other segments' states (Γ frozen at the current states):
    one red–black Gauss–Seidel sweep over the run.

    Args:
        model: the model (not modified).
        target: the normalised clip, (n_samples,).
        segments: a contiguous run of segment indices, or None for all; the segments outside it
            stay as they are and count as fixed neighbours.
        rel_ridge: relative ridge of each block's normal matrix (see `ridge_solve`).
        signal: the run's reconstruction at the current states, `run_signal` (None: computed),
            which the caller has often just measured.

    Returns:
        The run's refitted states, (len(run), 2K) float64, the whole clip's (n_segments, 2K) for
        None (a copy of all states was 77 MB on a 600 s clip for a 64-segment cost probe).
    """
    layout = model.config.layout
    k = model.config.n_modes
    like = on(model.states)  # the model's device and dtype
    local = torch.arange(layout.window_samples, **like) / layout.sample_rate
    readout = torch.complex(model.readout[:k], -model.readout[k:]).detach()
    run = torch.arange(layout.n_segments) if segments is None else segments
    states = model.states[run].detach()  # a copy of the run's rows; row i is segment run[0] + i
    begin = int(_extended(layout, run)[0]) * layout.hop_samples
    if signal is None:
        signal = run_signal(model, segments)
    residual = target[begin : begin + signal.shape[0]] - signal  # complete over the run's windows
    for colour in (0, 1):
        chosen = run[(run % 2) == colour]
        for first in range(0, chosen.shape[0], CHUNK_SEGMENTS):
            block = chosen[first : first + CHUNK_SEGMENTS].to(like["device"])
            # Γ held at the states the solve starts from (model.states, not the updated ones)
            basis = modal_factors(model.bank, model.field, model.states[block], local)
            basis = basis * readout  # (W, B, K): segment b's columns are Re/Im of this
            weights = layout.training_weights(block, like["dtype"])  # (W, B)
            _solve_block(states, residual, begin, basis, block, weights, layout, rel_ridge, run[0])
    return states


def _solve_block(states, residual, begin, basis, block, w, layout, rel_ridge, first) -> None:
    """One exact block update, in place: ``states[block − first]`` (the run's rows, from segment
    ``first``) and the ``residual`` (starting at clip sample ``begin``) it leaves.

    The segments of ``block`` are of one colour, so their windows are disjoint: each solves
    min_c Σ_j (ρ_j − w_j Re Σ_k c_k basis_jk)² with ρ the residual of everything else; w (W, B)
    are the block's training weights."""
    k = basis.shape[-1]
    j = torch.arange(layout.window_samples, device=block.device)
    index = block[None, :] * layout.hop_samples + j[:, None]
    index = index - begin
    inside = index < residual.shape[0]
    index = torch.where(inside, index, 0)
    rows = block - first
    old = torch.complex(states[rows, :k], states[rows, k:])
    y_old = torch.einsum("bk,wbk->wb", old, basis).real
    rho = torch.where(inside, residual[index], 0.0) + w * y_old  # what this block should explain
    # x = Re Σ c_k β_k = Σ Re c_k Re β_k − Im c_k Im β_k: real columns [Re β, −Im β], weighted
    columns = (w[..., None] * torch.cat([basis.real, -basis.imag], dim=-1)).permute(1, 0, 2)
    # the normal equations in float64 (a float32 model's too: its ridge, 1e-6, is near float32's
    # precision), solved by numpy on the CPU
    columns, rho = columns.to(torch.float64), rho.to(torch.float64)
    gram = columns.transpose(1, 2) @ columns  # (B, 2K, 2K)
    rhs = torch.einsum("bwd,wb->bd", columns, rho)
    solution = torch.from_numpy(ridge_solve(gram.cpu().numpy(), rhs.cpu().numpy(), rel_ridge))
    solution = solution.to(**on(states))
    new = torch.complex(solution[:, :k], solution[:, k:])
    y_new = torch.einsum("bk,wbk->wb", new, basis).real
    change = torch.where(inside, w * (y_new - y_old), 0.0)
    residual.index_add_(0, index.reshape(-1), -change.reshape(-1))
    states[rows] = solution


@torch.no_grad()
def run_signal(model: SonodeModel, segments: torch.Tensor | None) -> torch.Tensor:
    """The reconstruction of the run (None: all segments) and one neighbour on each side, from the
    start of the first one's window (`SonodeModel.reconstruct`'s signal)."""
    layout = model.config.layout
    run = torch.arange(layout.n_segments) if segments is None else segments
    return model.reconstruct(segments=_extended(layout, run))[0]


@torch.no_grad()
def run_error(
    model: SonodeModel,
    target: torch.Tensor,
    segments: torch.Tensor | None,
    signal: torch.Tensor | None = None,
) -> float:
    """Squared reconstruction error over the samples the run and its neighbours determine alone
    (the whole clip for None): what `refit_segment_states` changes. ``signal``: `run_signal`, if
    the caller has it."""
    layout = model.config.layout
    run = torch.arange(layout.n_segments) if segments is None else segments
    extended = _extended(layout, run)
    if signal is None:
        signal = run_signal(model, segments)
    begin, end = layout.complete_span(int(extended[0]), extended.shape[0])
    offset = int(extended[0]) * layout.hop_samples
    return float(torch.sum((target[begin:end] - signal[begin - offset : end - offset]) ** 2))


def solve_states(
    model: SonodeModel,
    target: torch.Tensor,
    segments: torch.Tensor | None = None,
    iterations: int = 2,
) -> tuple[float, float]:
    """Replace the run's states by their least-squares solution if it lowers the measured error.

    Each iteration re-solves with Γ recomputed at the previous iteration's states (a fixed-point
    iteration: the frozen-Γ solve can overshoot once the field is non-zero); the best measured
    states are kept, the current ones if none is better.

    Returns:
        (error before, error after): squared errors over the run's span (`run_error`).
    """
    # each reconstruction serves twice: its error, and the next refit's residual (a refit of the
    # quickstart's guitar reconstructed the states the error had just been measured at: 3 of 5)
    signal = run_signal(model, segments)
    before = best = run_error(model, target, segments, signal)
    # only the run's rows change: copies of all states were 4 × 77 MB on a 600 s 16 kHz clip for
    # the 64-segment cost probe (`whole_solve_estimate_s`)
    rows = slice(None) if segments is None else slice(int(segments[0]), int(segments[-1]) + 1)
    best_states = model.states[rows].detach().clone()
    for _ in range(iterations):
        with torch.no_grad():
            model.states[rows] = refit_segment_states(model, target, segments, signal=signal)
        signal = run_signal(model, segments)
        error = run_error(model, target, segments, signal)
        if not error < best:
            break
        best, best_states = error, model.states[rows].detach().clone()
    with torch.no_grad():
        model.states[rows] = best_states
    return before, best


def reset_moments(optimiser, parameters) -> None:
    """Forget Adam's moments of ``parameters`` after a jump: momentum gathered on the way to the
    old values would carry them off the least-squares solution."""
    for p in parameters:
        optimiser.state.pop(p, None)


def whole_solve_estimate_s(model: SonodeModel, target: torch.Tensor, probe_segments: int = 64):
    """Seconds `solve_states` of the whole clip would take, extrapolated from solving its first
    ``probe_segments`` (a run solved for real: kept only where it lowers the error, as always).
    The solve's cost is linear in the segments; a fixed share of another measurement was not: a
    60 s clip's evaluation cost 1.2x a 15 s clip's while its solve cost 3.7x."""
    n = model.config.layout.n_segments
    start = time.perf_counter()
    solve_states(model, target, torch.arange(min(n, probe_segments)))
    return (time.perf_counter() - start) * n / min(n, probe_segments)


def solve_run_states(model: SonodeModel, target: torch.Tensor, segments, optimiser) -> bool:
    """`solve_states` on each contiguous piece of a step's ``segments`` (None: the whole clip),
    and Adam's moments of the states forgotten if any piece's states changed; returns whether
    any did."""
    runs = [None] if segments is None else [torch.arange(f, f + c) for f, c in pieces(segments)]
    errors = [solve_states(model, target, run) for run in runs]  # (before, after) each
    changed = any(after < before for before, after in errors)
    if changed:
        reset_moments(optimiser, [model.states])
    return changed
