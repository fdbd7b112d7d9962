"""Sinusoidal partials measured frame by frame and linked into tracks (SMS-style analysis).

Each analysis frame is a Hann window centred on a node time; its spectral peaks (parabolic
interpolation of the log magnitude) are candidate partials. Peaks of consecutive frames are linked
greedily, strongest first, to the nearest unclaimed peak within a frequency tolerance; a peak left
over starts a track and a track left over ends. The block-tridiagonal solver below is the normal
equations' shape when every unknown touches only its own node's neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.linalg


@dataclass(frozen=True)
class Tracks:
    """Partial tracks over nodes 0..n_nodes−1.

    Attributes:
        first: (K,) int, the node where track k starts.
        length: (K,) int ≥ 1, its number of nodes.
        freq_hz: (P,) the frequency at each of the tracks' nodes, track after track
            (P = Σ length); entry p of track k is node first[k] + (p − offset[k]).
        magnitude: (P,) the peak magnitude there (linear, for ranking).
    """

    first: np.ndarray
    length: np.ndarray
    freq_hz: np.ndarray
    magnitude: np.ndarray

    @property
    def offset(self) -> np.ndarray:
        """(K,) index of each track's first entry."""
        return np.concatenate([[0], np.cumsum(self.length)[:-1]]).astype(np.int64)

    @property
    def node(self) -> np.ndarray:
        """(P,) the node of every entry."""
        return np.repeat(self.first - self.offset, self.length) + np.arange(self.freq_hz.size)


def frame_peaks(
    x: np.ndarray, rate: int, hop: int, window: int, n_nodes: int, max_peaks: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The strongest spectral peaks of a Hann window of ``window`` samples centred on each node.

    Args:
        x: signal (n,), normalised amplitude.
        rate: Hz. hop: samples between nodes (node f at sample f·hop). window: samples per frame.
        n_nodes: number of nodes. max_peaks: most peaks kept per frame.

    Returns:
        Per node: (freqs_hz, magnitudes), strongest first, each (≤ max_peaks,).
    """
    padded = np.pad(x, (window // 2, window // 2 + (n_nodes + 1) * hop))
    n_fft = 1 << int(math.ceil(math.log2(2 * window)))
    taper = np.hanning(window + 2)[1:-1]
    frames = np.lib.stride_tricks.sliding_window_view(padded, window)[::hop][:n_nodes]
    out = []
    for start in range(0, n_nodes, 64):  # a block of frames at a time: bounded memory
        spectra = np.abs(np.fft.rfft(frames[start : start + 64] * taper, n=n_fft, axis=1))
        for mag in spectra:
            out.append(_peaks(mag, rate, n_fft, max_peaks, 2.0 / taper.sum()))
    return out


def _peaks(mag: np.ndarray, rate: int, n_fft: int, max_peaks: int, scale: float):
    """Local maxima of one magnitude spectrum, parabolically interpolated on the log magnitude."""
    is_peak = (mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])
    idx = np.nonzero(is_peak)[0] + 1
    idx = idx[np.argsort(mag[idx])[::-1][:max_peaks]]
    if idx.size == 0:
        return np.zeros(0), np.zeros(0)
    a, b, c = (np.log(mag[i] + 1e-300) for i in (idx - 1, idx, idx + 1))
    denom = a - 2 * b + c
    shift = np.where(denom < 0, 0.5 * (a - c) / np.where(denom < 0, denom, -1.0), 0.0)
    freqs = (idx + np.clip(shift, -0.5, 0.5)) * rate / n_fft
    return freqs, np.exp(b - 0.25 * (a - c) * shift) * scale


def link_tracks(
    peaks: list[tuple[np.ndarray, np.ndarray]], tolerance_hz: float, relative: float
) -> Tracks:
    """Link per-node peaks into tracks: a peak continues the nearest track of the node before
    within tolerance_hz + relative·f (strongest peaks choose first); others start new tracks.
    Tracks are returned sorted by first node, then by first frequency."""
    tracks: list[list] = []  # [first node, [freqs], [mags]]
    alive: list[int] = []  # indices of tracks with an entry at the previous node
    for node, (freqs, mags) in enumerate(peaks):
        last = np.array([tracks[t][1][-1] for t in alive]) if alive else np.zeros(0)
        claimed = np.zeros(len(alive), dtype=bool)
        now = []
        for f, m in zip(freqs, mags, strict=True):
            match = -1
            if last.size:
                gap = np.where(claimed, np.inf, np.abs(last - f))
                best = int(np.argmin(gap))
                if gap[best] <= tolerance_hz + relative * f:
                    match = best
            if match >= 0:
                claimed[match] = True
                track = tracks[alive[match]]
                track[1].append(f)
                track[2].append(m)
                now.append(alive[match])
            else:
                tracks.append([node, [f], [m]])
                now.append(len(tracks) - 1)
        alive = now
    if not tracks:
        empty = np.zeros(0)
        return Tracks(empty.astype(np.int64), empty.astype(np.int64), empty, empty)
    # by first node, then first frequency: the compact file codes a track's first frequency as
    # its increment over the previous track's at the same node (`sonode.model.local_codec`)
    tracks.sort(key=lambda t: (t[0], t[1][0]))
    return Tracks(
        np.array([t[0] for t in tracks], dtype=np.int64),
        np.array([len(t[1]) for t in tracks], dtype=np.int64),
        np.concatenate([t[1] for t in tracks]).astype(np.float64),
        np.concatenate([t[2] for t in tracks]).astype(np.float64),
    )


def block_tridiagonal_solve(
    blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> list[np.ndarray]:
    """Solve a symmetric positive definite block-tridiagonal system (block Thomas / Cholesky).

    Args:
        blocks: (D_f (n_f, n_f), E_f (n_f, n_{f+1}), r_f (n_f,)) for f = 0..F−1 in order, E_f
            coupling f and f + 1 (the lower blocks are Eᵀ; the last E has n_{f+1} = 0). An
            iterator may build each block just before it is eliminated: only the eliminated
            couplings (Σ n_f n_{f+1} numbers) are kept.

    Returns:
        x_f (n_f,) per block. Cost O(Σ n_f³).
    """
    carry, solved = [], []
    previous_upper = None
    for d, upper, r in blocks:
        if previous_upper is not None:
            d = d - previous_upper.T @ carry[-1]
            r = r - previous_upper.T @ solved[-1]
        if d.shape[0] == 0:
            carry.append(np.zeros((0, upper.shape[1])))
            solved.append(np.zeros(0))
        else:
            factor = scipy.linalg.cho_factor(d, check_finite=False)
            carry.append(scipy.linalg.cho_solve(factor, upper, check_finite=False))
            solved.append(scipy.linalg.cho_solve(factor, r, check_finite=False))
        previous_upper = upper
    out = [np.zeros(0)] * len(solved)
    for f in range(len(solved) - 1, -1, -1):
        out[f] = solved[f] - (carry[f] @ out[f + 1] if f < len(solved) - 1 else 0.0)
        carry[f] = None  # back substitution frees what it has used
    return out
