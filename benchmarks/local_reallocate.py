"""Re-allocating the local model's node entries during training, against today's training, at
equal CPU (one torch thread, CPU seconds), per clip, in this process.

    python benchmarks/local_reallocate.py /work/corpus/music44/wesnoth_love.flac --duration 3 \
        --cpu 90

Today's training (`fit --modes local`) moves only the frequencies: Gauss–Newton steps of variable
projection (`refine_frequencies`), states solved exactly. The alternative: every ``--every``
Gauss–Newton iterations, a round of swaps. At each node the one-node tracks and the ends of
longer tracks whose state's amplitude is under 1/``--ratio`` of a residual peak at that node
(a Hann window as the identification's, on the training samples' residual, away from every
entry there by the tracking tolerance) take that peak's frequency instead (the weakest entry the
strongest peak), an end leaving its track as a one-node track; the states are solved again and
the round is kept only if the held-back samples (every 8th, never fitted) improve. The entries'
number, so the trained numbers per sample, is unchanged. Both arms get ``--cpu`` seconds; the
scores are the held-back SNR (what would choose) and the SNR on all samples with the states
solved on all of them (what a fit keeps).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.local_training import Clip  # noqa: E402


def swap_round(clip, first, length, freq, states, ratio: float):
    """(first, length, freq) after one round of swaps, sorted as `link_tracks` sorts, or None
    when no entry qualifies. ``states`` are those solved on the training samples."""
    from sonode.dsp.partials import frame_peaks
    from sonode.model.local_identify import (
        TRACK_TOLERANCE_HZ,
        TRACK_TOLERANCE_RELATIVE,
        WINDOW_NODES,
    )

    hop, rate, xn = clip.hop, clip.rate, clip.xn
    n_nodes = max(2, int(np.ceil((xn.size - 1) / hop)) + 1)
    offset = np.r_[0, np.cumsum(length)[:-1]].astype(np.int64)
    node = np.repeat(first - offset, length) + np.arange(freq.size)
    track = np.repeat(np.arange(first.size), length)
    amplitude = np.hypot(*states)
    ends = np.zeros(freq.size, dtype=bool)
    ends[offset] = ends[offset + length - 1] = True  # one-node tracks are both
    residual = (xn - clip.synthesise(freq, states)) * clip.mask
    peaks = frame_peaks(residual, rate, hop, WINDOW_NODES * hop, n_nodes, 16)
    new_freq = freq.copy()
    detached = np.zeros(freq.size, dtype=bool)
    order = np.argsort(node, kind="stable")
    bounds = np.searchsorted(node[order], np.arange(n_nodes + 1))
    for f in range(n_nodes):
        here = order[bounds[f] : bounds[f + 1]]
        cands, mags = peaks[f]
        if here.size == 0 or cands.size == 0:
            continue
        gap = np.abs(cands[:, None] - freq[here][None, :])
        free = (gap > TRACK_TOLERANCE_HZ + TRACK_TOLERANCE_RELATIVE * cands[:, None]).all(axis=1)
        cands, mags = cands[free], mags[free]  # strongest first
        weak = here[ends[here]]
        weak = weak[np.argsort(amplitude[weak], kind="stable")]
        for p, (fc, mc) in zip(weak, zip(cands, mags, strict=True), strict=False):
            if mc <= ratio * amplitude[p]:
                break
            new_freq[p] = fc
            detached[p] = length[track[p]] > 1
    if not (new_freq != freq).any():
        return None
    # rebuild the tracks: a detached end becomes a one-node track of its own
    pieces = []
    for k in range(first.size):
        idx = np.arange(offset[k], offset[k] + length[k])
        keep = idx[~detached[idx]]
        if keep.size:
            pieces.append((int(node[keep[0]]), new_freq[keep]))
        pieces += [(int(node[p]), new_freq[p : p + 1]) for p in idx[detached[idx]]]
    pieces.sort(key=lambda t: (t[0], t[1][0]))
    return (
        np.array([p[0] for p in pieces], dtype=np.int64),
        np.array([p[1].size for p in pieces], dtype=np.int64),
        np.concatenate([p[1] for p in pieces]),
    )


def train(clip, cpu_s: float, every: int | None, ratio: float) -> dict:
    """Gauss–Newton (and, with ``every``, rounds of swaps) for ``cpu_s`` CPU seconds."""
    from sonode.dsp.metrics import snr_db
    from sonode.model.local_refine import refine_frequencies

    began = time.process_time()
    deadline = began + cpu_s
    first, length, freq = clip.first.copy(), clip.length.copy(), clip.freq0.copy()
    held = clip.mask == 0
    rounds = kept = iterations = swaps = 0
    best_held, damping = None, None
    while time.process_time() < deadline:
        clip.first, clip.length = first, length  # synthesise/solve read the tracks from clip
        refined = refine_frequencies(
            first, length, freq, clip.xn, clip.hop, clip.rate, clip.mask, clip.synthesise,
            every, deadline, resume=None if damping is None else (damping, 0),
        )  # fmt: skip
        iterations += len(refined.history)
        freq, states, best_held = refined.freq_hz, refined.states, refined.held_db
        damping = refined.damping  # the swaps change few entries: the damping carries over
        converged = len(refined.history) < every if every else True  # stopped before its quota
        if every is None or time.process_time() >= deadline:
            break
        swapped = swap_round(clip, first, length, freq, states, ratio)
        rounds += 1
        if swapped is None:
            if converged:
                break
            continue
        clip.first, clip.length = swapped[0], swapped[1]
        trial_states = clip.solve(swapped[2], clip.mask)
        trial = snr_db(clip.xn[held], clip.synthesise(swapped[2], trial_states)[held])
        if trial > best_held:
            swaps += int(swapped[2].size - np.isin(swapped[2], freq).sum())
            first, length, freq, best_held = *swapped, trial
            kept += 1
        elif converged:
            break
    cpu = time.process_time() - began
    clip.first, clip.length = first, length
    full_db, _ = clip.full(freq)
    return {
        "method": "gauss-newton" if every is None else f"gn+swaps/{every}",
        "iterations": iterations, "rounds": rounds, "rounds_kept": kept, "swaps": swaps,
        "cpu_s": round(cpu, 1), "held_back_db": round(best_held, 3),
        "gain_db": round(full_db - clip.start_db, 3), "entries": int(freq.size),
        "tracks": int(first.size), "trained_per_sample": round(3 * freq.size / clip.xn.size, 4),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a clip, or a folder of clips (searched recursively)")
    parser.add_argument("--rate", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--cpu", type=float, default=60.0, help="CPU seconds per arm")
    parser.add_argument("--every", type=int, default=3, help="GN iterations between rounds")
    parser.add_argument("--ratio", type=float, default=2.0, help="peak over amplitude to swap")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    # refine_frequencies reads its deadline on time.perf_counter(): CPU seconds instead, so that
    # both arms get the same CPU whatever the load of the shared machine
    time.perf_counter = time.process_time
    root = Path(args.path)
    clips = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg")
    )  # fmt: skip
    for path in clips:
        clip = Clip(path, args.rate, args.duration)
        identified = clip.first, clip.length
        head = {"clip": path.name, "hop": clip.hop, "entries": int(clip.freq0.size),
                "identify_cpu_s": round(clip.identify_cpu_s, 1),
                "start_db": round(clip.start_db, 3)}  # fmt: skip
        print(json.dumps(head), flush=True)
        for every in (None, args.every):
            clip.first, clip.length = identified
            print(json.dumps({"clip": path.name, **train(clip, args.cpu, every, args.ratio)}),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
