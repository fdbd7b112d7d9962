"""The exact solution of the local-mode ODE, and the least squares of its node states.

Mode k's complex coordinate c_k(t) obeys dc_k/dt = λ_k(t)·c_k with λ_k(t) = iω_k(t) + ȧ_k/a_k:
its frequency ω_k is linear between nodes (t_f = f·hop/rate) and its rotating-frame amplitude a_k
is linear between the node states c_k(t_f). On an interval, with s ∈ [0, 1) its fraction and
Δ = hop/rate,

    ψ(s) = Δ·(ω_L s + (ω_R − ω_L) s²/2),   c(t_f + sΔ) = e^{iψ(s)}·((1 − s)·c_L + s·c_R·e^{−iψ(1)}),

which meets c_L at s = 0 and c_R at s = 1: the node states are the trajectory's values, carried
between nodes by the dynamics (the cubic-phase synthesis of sinusoidal modelling, here with the
phase quadratic). A mode born at node f rises from zero over the interval before it, one that
dies falls to zero over the interval after. The signal is x(t) = Σ_k Re c_k(t).

Every (track, interval) pair is a *piece*; `Pieces` indexes them by interval, so a run of
intervals is read with one batched evaluation, and `node_least_squares` solves all node states at
once for given frequencies (block-tridiagonal normal equations: a state touches two intervals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sonode.dsp.partials import block_tridiagonal_solve


@dataclass(frozen=True)
class Pieces:
    """Pieces sorted by interval. Each array is (Q,) int64; entries index the tracks' node arrays.

    Attributes:
        interval: the interval f (between nodes f and f+1).
        left, right: the entry at node f / f+1 (−1: the mode is silent there).
        freq_left, freq_right: the entries whose frequencies bound the interval (a mode keeps its
            frequency where it is silent).
        start: (n_intervals + 1,) pieces of interval f are start[f]..start[f+1]−1.
    """

    interval: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    freq_left: torch.Tensor
    freq_right: torch.Tensor
    start: torch.Tensor

    @classmethod
    def build(cls, first: np.ndarray, length: np.ndarray, n_nodes: int) -> Pieces:
        """Pieces of tracks starting at node first[k] with length[k] nodes, over n_nodes nodes."""
        offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
        per_track = length + 1  # intervals f0−1 .. f0+L−1
        track = np.repeat(np.arange(first.size), per_track)
        step = np.arange(per_track.sum()) - np.repeat(np.cumsum(per_track) - per_track, per_track)
        interval = first[track] - 1 + step
        last = length[track] - 1
        left_pos, right_pos = step - 1, step  # position of node f / f+1 within the track
        left = np.where(left_pos >= 0, offset[track] + left_pos, -1)
        right = np.where(right_pos <= last, offset[track] + right_pos, -1)
        freq_left = offset[track] + np.clip(left_pos, 0, last)
        freq_right = offset[track] + np.clip(right_pos, 0, last)
        keep = (interval >= 0) & (interval < n_nodes - 1)
        order = np.argsort(interval[keep], kind="stable")
        arrays = [a[keep][order] for a in (interval, left, right, freq_left, freq_right)]
        start = np.searchsorted(arrays[0], np.arange(n_nodes))
        return cls(
            *(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays),
            torch.from_numpy(start.astype(np.int64)),
        )

    def of_intervals(self, first: int, last: int) -> torch.Tensor:
        """Indices (Q',) of the pieces of intervals first..last−1."""
        return torch.arange(int(self.start[first]), int(self.start[last]))


def piece_values(
    pieces: Pieces,
    which: torch.Tensor,
    freq_hz: torch.Tensor,
    amp_re: torch.Tensor,
    amp_im: torch.Tensor,
    fraction: torch.Tensor,
    interval_s: float,
) -> torch.Tensor:
    """Re c(t) of the pieces ``which`` (Q,) at interval fractions ``fraction`` ((Q, m) or (1, m)).

    Args:
        freq_hz, amp_re, amp_im: (P,) node frequencies and states (differentiable).
        interval_s: Δ, seconds between nodes.

    Returns:
        (Q, m) float64.
    """
    left, right = pieces.left[which], pieces.right[which]
    w_l = (2 * math.pi * interval_s) * freq_hz[pieces.freq_left[which]][:, None]
    w_r = (2 * math.pi * interval_s) * freq_hz[pieces.freq_right[which]][:, None]
    s = fraction
    psi = w_l * s + (w_r - w_l) * (0.5 * s * s)
    psi1 = 0.5 * (w_l + w_r)
    has_l, has_r = (left >= 0)[:, None], (right >= 0)[:, None]
    zero = torch.zeros((), dtype=freq_hz.dtype)
    al_re = torch.where(has_l, amp_re[left.clamp(min=0)][:, None], zero)
    al_im = torch.where(has_l, amp_im[left.clamp(min=0)][:, None], zero)
    ar_re = torch.where(has_r, amp_re[right.clamp(min=0)][:, None], zero)
    ar_im = torch.where(has_r, amp_im[right.clamp(min=0)][:, None], zero)
    cos1, sin1 = torch.cos(psi1), torch.sin(psi1)
    br_re, br_im = ar_re * cos1 + ar_im * sin1, ar_im * cos1 - ar_re * sin1  # c_R·e^{−iψ(1)}
    a = (1 - s) * al_re + s * br_re
    b = (1 - s) * al_im + s * br_im
    return a * torch.cos(psi) - b * torch.sin(psi)


def interval_samples(
    pieces: Pieces,
    freq_hz: torch.Tensor,
    amp_re: torch.Tensor,
    amp_im: torch.Tensor,
    first: int,
    last: int,
    hop: int,
    rate: int,
) -> torch.Tensor:
    """The signal on the clip's grid (``rate`` Hz, nodes ``hop`` samples apart) over intervals
    first..last−1: ((last − first)·hop,)."""
    which = pieces.of_intervals(first, last)
    fraction = (torch.arange(hop, dtype=torch.float64) / hop)[None, :]
    values = piece_values(pieces, which, freq_hz, amp_re, amp_im, fraction, hop / rate)
    out = torch.zeros(last - first, hop, dtype=values.dtype)
    out = out.index_add(0, pieces.interval[which] - first, values)
    return out.reshape(-1)


def node_least_squares(
    pieces: Pieces,
    freq_cycles: np.ndarray,
    node_of_entry: np.ndarray,
    x: np.ndarray,
    hop: int,
    mask: np.ndarray | None = None,
    rel_ridge: float = 1e-7,
    states: tuple[np.ndarray, np.ndarray] | None = None,
    damping: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """The node states c (P,) minimising Σ mask·(x − Σ_k Re c_k)² for fixed frequencies; with
    ``states``, also the Gauss–Newton step of the frequencies.

    Args:
        freq_cycles: (P,) frequencies in cycles per interval (f_hz · hop / rate).
        node_of_entry: (P,) node of each entry.
        x: (n,) target samples (normalised); mask: (n,) weights (0 = held back), None for all.
        rel_ridge: ridge relative to each block's mean diagonal (keeps silent columns solvable).
        states: (amp_re, amp_im) (P,) at which the signal is linearised in the frequencies: a
            third unknown per entry, its frequency change, whose column is ∂x/∂f at these states.
            The joint linear least squares is the Gauss–Newton step of the variable-projection
            problem (eliminating the states leaves Jᵀ P⊥ J δf = Jᵀ P⊥ r, Kaufman's form).
        damping: Levenberg–Marquardt factor: the frequency columns' diagonal is scaled by
            (1 + damping).

    Returns:
        (amp_re, amp_im), each (P,); with ``states`` also (delta_cycles (P,)).
    """
    n_nodes = int(pieces.start.numel())
    width = 2 if states is None else 3
    # entries of each node, and each entry's position within its node's block
    order = np.argsort(node_of_entry, kind="stable")
    counts = np.bincount(node_of_entry, minlength=n_nodes)
    block_start = np.concatenate([[0], np.cumsum(counts)])
    position = np.empty_like(order)
    position[order] = np.arange(order.size) - block_start[node_of_entry[order]]
    system = _System(pieces, freq_cycles, position, x, hop, mask, states, width)
    solution = block_tridiagonal_solve(_normal_blocks(system, counts, rel_ridge, damping))
    flat = np.concatenate(solution) if solution else np.zeros(0)
    # block order lists entries by node; map back to entry order
    columns = flat.reshape(-1, width)
    out = tuple(np.empty(node_of_entry.size) for _ in range(width))
    for j in range(width):
        out[j][order] = columns[:, j]
    return out


@dataclass(frozen=True)
class _System:
    """What the normal equations are built from (see `node_least_squares`)."""

    pieces: Pieces
    freq_cycles: np.ndarray
    position: np.ndarray
    x: np.ndarray
    hop: int
    mask: np.ndarray | None
    states: tuple[np.ndarray, np.ndarray] | None
    width: int


def _normal_blocks(system: _System, counts, rel_ridge, damping):
    """The normal equations' blocks (D_f, E_f, r_f), node after node: block f is complete once
    intervals f − 1 and f are added, and is handed to the solver before interval f + 1 is built,
    so memory holds two blocks, not the whole system."""
    width, n_int = system.width, counts.size - 1
    s = np.arange(system.hop) / system.hop

    def regularise(d):
        if d.size:
            scale = max(float(np.trace(d)) / d.shape[0], 1e-12)
            d[np.diag_indices_from(d)] += rel_ridge * scale
            if width == 3:  # Levenberg–Marquardt on the frequency columns
                index = np.arange(2, d.shape[0], 3)
                d[index, index] *= 1.0 + damping
        return d

    diagonal = np.zeros((width * counts[0],) * 2)
    rhs = np.zeros(width * counts[0])
    for f in range(n_int):
        n_l, n_r = width * counts[f], width * counts[f + 1]
        gram, proj = _interval_gram(system, f, n_l, n_r, s)
        diagonal += gram[:n_l, :n_l]
        rhs += proj[:n_l]
        yield regularise(diagonal), gram[:n_l, n_l:], rhs
        diagonal, rhs = gram[n_l:, n_l:].copy(), proj[n_l:].copy()
    yield regularise(diagonal), np.zeros((diagonal.shape[0], 0)), rhs


def _interval_gram(system: _System, f, n_l, n_r, s):
    """Gram matrix and projection of interval f's basis: columns [Re, −Im(, ∂/∂f)] of the entries
    at node f (n_l) then f + 1 (n_r); samples past the clip and held-back ones weigh 0."""
    pieces, x, hop, mask, width = system.pieces, system.x, system.hop, system.mask, system.width
    position = system.position
    begin, end = f * hop, min((f + 1) * hop, x.size)
    target = np.zeros(hop)
    w = np.zeros(hop)
    if end > begin:
        target[: end - begin] = x[begin:end]
        w[: end - begin] = 1.0 if mask is None else mask[begin:end]
    basis = np.zeros((hop, n_l + n_r))
    which = pieces.of_intervals(f, f + 1).numpy()
    if which.size:
        left, right = pieces.left[which].numpy(), pieces.right[which].numpy()
        w_l = 2 * math.pi * system.freq_cycles[pieces.freq_left[which].numpy()][:, None]
        w_r = 2 * math.pi * system.freq_cycles[pieces.freq_right[which].numpy()][:, None]
        psi = w_l * s + (w_r - w_l) * (0.5 * s * s)
        psi_r = psi - 0.5 * (w_l + w_r)
        for rows, entries, phase, ramp, base in (
            (left >= 0, left, psi, 1 - s, 0),
            (right >= 0, right, psi_r, s, n_l),
        ):
            col = base + width * position[entries[rows]]
            basis[:, col] = (ramp * np.cos(phase[rows])).T
            basis[:, col + 1] = (-ramp * np.sin(phase[rows])).T
        if system.states is not None:
            _frequency_columns(system, basis, left, right, psi, psi_r, s, n_l)
    weighted = basis * w[:, None]
    return weighted.T @ basis, weighted.T @ target


def _frequency_columns(system, basis, left, right, psi, psi_r, s, n_l):
    """∂x/∂f (per cycle per interval) of each piece's two bounding frequencies, at the states:
    with u_L = s − s²/2 and u_R = s²/2 (∂ψ/∂ω_L, ∂ψ/∂ω_R) and ∂ψ(1)/∂ω = ½,
    ∂x/∂ω = −(1 − s)·u·Im(e^{iψ}c_L) − s·(u − ½)·Im(e^{i(ψ−ψ(1))}c_R)."""
    re, im = system.states
    position = system.position
    has_l, has_r = left >= 0, right >= 0
    l_, r_ = left.clip(min=0), right.clip(min=0)
    im_l = np.where(
        has_l[:, None], re[l_][:, None] * np.sin(psi) + im[l_][:, None] * np.cos(psi), 0
    )
    im_r = np.where(
        has_r[:, None], re[r_][:, None] * np.sin(psi_r) + im[r_][:, None] * np.cos(psi_r), 0
    )
    # the bounding frequencies are the entries at f / f + 1, or the one entry of a birth / death
    col_l = np.where(has_l, 3 * position[l_] + 2, n_l + 3 * position[r_] + 2)
    col_r = np.where(has_r, n_l + 3 * position[r_] + 2, 3 * position[l_] + 2)
    for col, u in ((col_l, s - 0.5 * s * s), (col_r, 0.5 * s * s)):
        d = -2 * math.pi * ((1 - s) * u * im_l + s * (u - 0.5) * im_r)
        basis[:, col] += d.T


# runs of the chunked least squares: a run keeps one (width·modes)² float64 coupling per node
# (width 2 for the states, 3 with the Gauss–Newton frequency steps), so its length is set from
# this many bytes, between RUN_NODES nodes (3× the overlap .. a clip of 15 s at 10 ms in one run)
RUN_BYTES = 256 << 20
RUN_NODES = (300, 1500)


def chunked_least_squares(
    first: np.ndarray,
    length: np.ndarray,
    freq_cycles: np.ndarray,
    x: np.ndarray,
    hop: int,
    mask: np.ndarray | None = None,
    chunk_nodes: int | None = None,
    overlap_nodes: int = 100,
    states: tuple[np.ndarray, np.ndarray] | None = None,
    damping: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """`node_least_squares` of a whole clip in runs of ``chunk_nodes`` nodes that overlap by
    2·``overlap_nodes``: each run keeps the states of its middle nodes, where the states beyond it
    no longer matter, so memory stays that of one run at any length. A state couples only to its
    neighbours and the coupling decays along the chain, by ≈ 0.74 per node on a melody (states 10,
    20, 30 nodes from a run's end off by 8e-2, 4e-3, 3e-5 of full scale): 100 nodes leave ~1e-13.
    A clip of at most ``chunk_nodes`` nodes is solved in one run; by default a run holds about
    RUN_BYTES of couplings, whatever the node spacing and the modes per node.

    Args:
        first, length: (K,) the tracks (see `Pieces.build`); freq_cycles: (P,) their frequencies in
            cycles per interval; x, hop, mask, states, damping: as in `node_least_squares`.

    Returns:
        (amp_re, amp_im), each (P,); with ``states`` also the frequency step (cycles per
        interval, (P,)).
    """
    n_nodes = max(2, math.ceil((x.size - 1) / hop) + 1)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    node = np.repeat(first - offset, length) + np.arange(freq_cycles.size)
    track = np.repeat(np.arange(first.size), length)
    width = 2 if states is None else 3
    out = tuple(np.zeros(freq_cycles.size) for _ in range(width))
    if chunk_nodes is None:
        per_node = int(np.bincount(node).max(initial=1))
        chunk_nodes = RUN_BYTES // (8 * (width * per_node) ** 2)
        chunk_nodes = int(min(RUN_NODES[1], max(RUN_NODES[0], chunk_nodes)))
    stride = max(1, chunk_nodes - 2 * overlap_nodes)
    begin = 0
    while True:
        a = max(0, begin - overlap_nodes)
        b = min(n_nodes - 1, begin + stride + overlap_nodes)
        inside = (node >= a) & (node <= b)
        # the tracks clipped to nodes a..b, renumbered from node a
        _, first_index, sub_length = np.unique(track[inside], return_index=True, return_counts=True)
        pieces = Pieces.build(node[inside][first_index] - a, sub_length, b - a + 1)
        sub_x = x[a * hop : b * hop]
        sub_mask = None if mask is None else mask[a * hop : b * hop]
        sub_states = None if states is None else tuple(a_[inside] for a_ in states)
        solved = node_least_squares(
            pieces,
            freq_cycles[inside],
            node[inside] - a,
            sub_x,
            hop,
            sub_mask,
            states=sub_states,
            damping=damping,
        )
        last = b >= n_nodes - 1
        keep = (node[inside] >= begin) & ((node[inside] < begin + stride) | last)
        index = np.nonzero(inside)[0][keep]
        for whole, part in zip(out, solved, strict=True):
            whole[index] = part[keep]
        if last:
            return out
        begin += stride
