"""Where the local model's training gain goes, per clip, in this process (one torch thread, CPU s).

    python benchmarks/local_training.py /work/corpus/music44 --duration 3 --iterations 30
    python benchmarks/local_training.py CLIP.flac --duration 3 --lbfgs-cpu 58 --adam-cpu 58
    python benchmarks/local_training.py /work/corpus/music44 --duration 3 --caps 96,current
    python benchmarks/local_training.py CLIP.flac --duration 3 --entropy 6
    python benchmarks/local_training.py CLIP.flac --duration 3 --iterations 25 \
        --accept held-back,training --min-gain 0.005

Default: the identified start (`identify_tracks`, states by least squares on all samples), then
Gauss–Newton iterations of variable projection (`refine_frequencies`, as `fit --modes local`
trains) with the reconstruction SNR on all samples after 3, 6, 10, 15, 20 and 30 iterations, the
CPU seconds spent, how far the frequencies moved and how many links of a track they moved
apart. ``--accept``: the Gauss–Newton acceptance rules to compare (`refine_frequencies`'s
``accept_on``); ``--min-gain DB``: end at the first kept step gaining less (main's rule before the
eighth turn was 0.005; default: no such stop, as `fit`). ``--lbfgs-cpu S``: L-BFGS on the
frequencies for S CPU seconds instead, its gradient taken through the synthesis at the
least-squares states (the variable-projection gradient), states solved again at every evaluation;
``--adam-cpu S``: Adam on frequencies and states together for S CPU s. ``--caps``: the identified
start per candidate set (``--caps 96,current``: at most 96 modes a node, the fifth turn's, against
the current allocations). ``--entropy N``: after N iterations, the tables rounded as
the fit stores them, and the bytes of their state codes packed by LZMA against their entropy
given the magnitude class in a context (what a context-modelled coder could reach).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.music_capacity_inprocess import read_normalised  # noqa: E402

MARKS = (3, 6, 10, 15, 20, 30, 40, 60)


class Clip:
    """One clip's identified start: tracks, normalised samples, the held-back mask."""

    def __init__(self, path: Path, rate, duration_s):
        from sonode.model.local_identify import identify_tracks
        from sonode.model.local_refine import HOLD_OUT_EVERY

        _, self.rate, _, _, self.xn = read_normalised(path, rate, duration_s)
        began = time.process_time()
        self.hop, found = identify_tracks(self.xn, self.rate)
        self.identify_cpu_s = time.process_time() - began
        self.found = found
        tracks = found.tracks
        self.first, self.length, self.freq0 = tracks.first, tracks.length, tracks.freq_hz
        self.mask = np.ones(self.xn.size)
        self.mask[HOLD_OUT_EVERY // 2 :: HOLD_OUT_EVERY] = 0.0
        self.start_db, self.states0 = self.full(self.freq0)

    def model(self, freq, states):
        from sonode.model.local import LocalConfig, LocalModel

        config = LocalConfig(self.rate, self.xn.size, self.hop, 1.0, 0.0)
        return LocalModel(config, self.first, self.length, freq, *states)

    def synthesise(self, freq, states) -> np.ndarray:
        return self.model(freq, states).reconstruct().numpy()

    def solve(self, freq, mask=None):
        from sonode.model.local_synthesis import chunked_least_squares

        cycles = freq * self.hop / self.rate
        return chunked_least_squares(self.first, self.length, cycles, self.xn, self.hop, mask)

    def full(self, freq):
        """(SNR dB on all samples, states) with the states solved on all samples."""
        from sonode.dsp.metrics import snr_db

        states = self.solve(freq)
        return snr_db(self.xn, self.synthesise(freq, states)), states

    def squared_error(self, model):
        """Σ mask·(x − model)² / Σ mask·x², differentiable in the model's parameters."""
        import torch

        y = model.samples()[: self.xn.size]
        y = torch.cat([y, y.new_zeros(self.xn.size - y.numel())])
        w, x = torch.from_numpy(self.mask), torch.from_numpy(self.xn)
        return ((y - x) ** 2 * w).sum() / (x**2 * w).sum()


def gauss_newton(
    clip: Clip, iterations: int, accept_on: str = "held-back", min_gain_db=None
) -> dict:
    """The training of `fit --modes local`: SNR gains at MARKS, CPU s without the scoring;
    ``accept_on`` as in `refine_frequencies`."""
    from sonode.model.local_refine import refine_frequencies

    began, scoring, marks = time.process_time(), [0.0], {}

    def on_iteration(state) -> bool:
        done = len(state.history)
        if done in MARKS:
            t = time.process_time()
            spent = t - began - scoring[0]
            db, _ = clip.full(state.freq_hz)
            scoring[0] += time.process_time() - t
            marks[done] = {"cpu_s": round(spent, 1), "gain_db": round(db - clip.start_db, 3)}
        return False

    refined = refine_frequencies(
        clip.first, clip.length, clip.freq0, clip.xn, clip.hop, clip.rate, clip.mask,
        clip.synthesise, iterations, None, on_iteration, accept_on=accept_on,
        **({} if min_gain_db is None else {"min_gain_db": min_gain_db}),
    )  # fmt: skip
    cpu = time.process_time() - began - scoring[0]
    db, _ = clip.full(refined.freq_hz)
    moved = np.abs(refined.freq_hz - clip.freq0)
    # links of a track whose two frequencies the training moved beyond the tracking tolerance
    from sonode.model.local_identify import TRACK_TOLERANCE_HZ, TRACK_TOLERANCE_RELATIVE

    ends = np.cumsum(clip.length) - 1
    linked = np.setdiff1d(np.arange(clip.freq0.size - 1), ends)
    f0, f1 = refined.freq_hz[linked], refined.freq_hz[linked + 1]
    apart = np.abs(f1 - f0) > TRACK_TOLERANCE_HZ + TRACK_TOLERANCE_RELATIVE * np.abs(f0)
    history = refined.history
    return {
        "method": f"gauss-newton, accepted on {accept_on}, min gain {min_gain_db}",
        "iterations": len(history),
        "held_back_db": round(refined.held_db, 3),
        "rejected": sum(not h["accepted"] for h in history),
        "cpu_s": round(cpu, 1),
        "gain_db": round(db - clip.start_db, 3),
        "at": marks,
        "links": int(linked.size),
        "links_apart": int(apart.sum()),
        "moved_hz_p50_p90_p99": [round(float(np.percentile(moved, q)), 2) for q in (50, 90, 99)],
        "freq_hz": refined.freq_hz,
    }


def lbfgs(clip: Clip, cpu_s: float) -> dict:
    """L-BFGS (strong Wolfe) on the frequencies; at every evaluation the states are solved on the
    training samples and the gradient is taken at them (the variable-projection gradient)."""
    import torch

    freq = torch.tensor(clip.freq0, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [freq], lr=1.0, max_iter=10**6, history_size=10, line_search_fn="strong_wolfe",
        tolerance_grad=0.0, tolerance_change=0.0,
    )  # fmt: skip
    began, evaluations = time.process_time(), [0]

    class OutOfTime(Exception):
        pass

    def closure():
        if time.process_time() - began > cpu_s:
            raise OutOfTime
        optimiser.zero_grad()
        evaluations[0] += 1
        values = freq.detach().numpy()
        model = clip.model(values, clip.solve(values, clip.mask))
        del model.freq_hz
        model.freq_hz = freq  # the graph runs through the frequencies only
        loss = clip.squared_error(model)
        loss.backward()
        return loss

    try:
        optimiser.step(closure)
    except OutOfTime:
        pass
    db, _ = clip.full(freq.detach().numpy())
    cpu = time.process_time() - began
    return {"method": "l-bfgs", "evaluations": evaluations[0], "cpu_s": round(cpu, 1),
            "gain_db": round(db - clip.start_db, 3)}  # fmt: skip


def adam(clip: Clip, cpu_s: float, lr_hz: float = 0.05, lr_state: float = 1e-3) -> dict:
    """Adam on frequencies (lr Hz) and states (lr, normalised amplitude) from the start."""
    import torch

    from sonode.dsp.metrics import snr_db

    model = clip.model(clip.freq0, clip.states0)
    optimiser = torch.optim.Adam(
        [{"params": [model.freq_hz], "lr": lr_hz},
         {"params": [model.amp_re, model.amp_im], "lr": lr_state}]
    )  # fmt: skip
    began, steps = time.process_time(), 0
    while time.process_time() - began < cpu_s:
        optimiser.zero_grad()
        clip.squared_error(model).backward()
        optimiser.step()
        steps += 1
    cpu = time.process_time() - began
    db = snr_db(clip.xn, model.reconstruct().numpy())
    with_states, _ = clip.full(model.freq_hz.detach().numpy())
    return {"method": "adam", "steps": steps, "cpu_s": round(cpu, 1),
            "gain_db": round(db - clip.start_db, 3),
            "gain_with_solved_states_db": round(with_states - clip.start_db, 3)}  # fmt: skip


def caps(path: Path, rate, duration_s, specs: list[str]) -> list[dict]:
    """The identified start per spec: "96" or "128", that many modes a node at most and the
    allocations "node" and "clip" (the fifth turn had "96"); "current", the module's own (a
    "loud" allocation of up to LOUD_MODES_PER_NODE beside them). Module constants restored."""
    from sonode.model import local_identify as li

    saved = li.MAX_MODES_PER_NODE, li.LOUD_MODES_PER_NODE, li.ALLOCATIONS
    rows = []
    try:
        for spec in specs:
            if spec != "current":
                li.MAX_MODES_PER_NODE = li.LOUD_MODES_PER_NODE = int(spec)
                li.ALLOCATIONS = ("node", "clip")
            clip = Clip(path, rate, duration_s)
            li.MAX_MODES_PER_NODE, li.LOUD_MODES_PER_NODE, li.ALLOCATIONS = saved
            node = np.repeat(clip.first - np.r_[0, np.cumsum(clip.length)[:-1]], clip.length)
            node = node + np.arange(clip.freq0.size)
            rows.append({
                "modes": spec, "hop": clip.hop, "allocation": clip.found.allocation,
                "level_db": clip.found.level_db, "held_back_db": round(clip.found.validation_db, 3),
                "start_db": round(clip.start_db, 3), "entries": int(clip.freq0.size),
                "trained_per_sample": round(3 * clip.freq0.size / clip.xn.size, 4),
                "most_per_node": int(np.bincount(node).max()),
                "identify_cpu_s": round(clip.identify_cpu_s, 1),
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            })  # fmt: skip
    finally:
        li.MAX_MODES_PER_NODE, li.LOUD_MODES_PER_NODE, li.ALLOCATIONS = saved
    return rows


def entropy(clip: Clip, freq_hz: np.ndarray) -> dict:
    """The tables at ``freq_hz`` rounded as `fit` stores them (`_store_compactly`'s target);
    their state codes' LZMA bytes against the entropy (bytes) of their magnitude classes, with
    no context and given the track's frequency-step shift, plus the mantissa and sign bits."""
    from sonode.model.local_codec import NodeTables, choose_steps, encode, pack
    from sonode.model.local_fit import ROUNDING_FLOOR_DB, ROUNDING_MARGIN_DB

    fit_db, states = clip.full(freq_hz)
    tables = NodeTables(clip.first, clip.length, freq_hz, *states, clip.hop, clip.rate)
    target = max(fit_db + ROUNDING_MARGIN_DB, ROUNDING_FLOOR_DB)
    compact = choose_steps(tables, lambda f, r, i: clip.synthesise(f, (r, i)), clip.solve, target)
    streams, *_ = encode(
        clip.first, clip.length, compact.freq_hz, compact.amp_re, compact.amp_im, clip.hop,
        clip.rate, compact.freq_step_hz, compact.state_step, compact.shifts, streams_only=True,
        predict=compact.predict,
    )  # fmt: skip
    offset = np.r_[0, np.cumsum(clip.length)[:-1]]
    later = np.ones(freq_hz.size, dtype=bool)
    later[offset] = False
    shift = np.repeat(compact.shifts, clip.length)
    row = {"fit_db": round(fit_db, 2), "packed_bytes": compact.packed_bytes}
    for name, codes, where in (
        ("first_states", streams[6:8], ~later),
        ("later_states", streams[8:10], later),
    ):
        magnitude = [np.abs(c) for c in codes]
        cls = [np.where(m == 0, 0, np.floor(np.log2(np.maximum(m, 1))) + 1) for m in magnitude]
        plain = sum(float(np.maximum(c - 1, 0).sum() + (c > 0).sum()) for c in cls) / 8
        row[name] = {
            "lzma_bytes": sum(len(pack([c])) for c in codes),
            "class_entropy_bytes": round(sum(_entropy(c) for c in cls) + plain),
            "given_shift_bytes": round(sum(_entropy(c, shift[where]) for c in cls) + plain),
        }
    return row


def _entropy(symbols: np.ndarray, context: np.ndarray | None = None) -> float:
    """Bytes of the symbols under their empirical distribution in each context."""
    context = np.zeros(symbols.size) if context is None else context
    pairs = np.stack([context, symbols], axis=1)
    _, joint_index, joint = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    _, context_index, per_context = np.unique(context, return_inverse=True, return_counts=True)
    p = joint[joint_index.reshape(-1)] / per_context[context_index.reshape(-1)]
    return float(-np.log2(p).sum() / 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a clip, or a folder of clips (searched recursively)")
    parser.add_argument("--rate", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--iterations", type=int, default=30, help="Gauss–Newton iterations")
    parser.add_argument(
        "--accept",
        default="held-back",
        help='Gauss–Newton acceptance rules, comma-separated: "held-back", "training"',
    )
    parser.add_argument(
        "--min-gain", type=float, help="dB: an accepted step gaining less ends the training"
    )
    parser.add_argument("--lbfgs-cpu", type=float, help="also L-BFGS for this many CPU s")
    parser.add_argument("--adam-cpu", type=float, help="also Adam for this many CPU s")
    parser.add_argument("--caps", help='identified starts per spec: "96", "128", "current"')
    parser.add_argument("--entropy", type=int, help="state-code entropy after N iterations")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    root = Path(args.path)
    clips = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg")
    )  # fmt: skip
    for path in clips:
        if args.caps:
            for row in caps(path, args.rate, args.duration, args.caps.split(",")):
                print(json.dumps({"clip": path.name, **row}), flush=True)
            continue
        clip = Clip(path, args.rate, args.duration)
        head = {"clip": path.name, "hop": clip.hop, "entries": int(clip.freq0.size),
                "start_held_back_db": round(clip.found.validation_db, 3),
                "identify_cpu_s": round(clip.identify_cpu_s, 1), "start_db": round(clip.start_db, 3)}  # fmt: skip
        print(json.dumps(head), flush=True)
        runs = [] if args.entropy is not None else [
            gauss_newton(clip, args.iterations, rule, args.min_gain)
            for rule in args.accept.split(",")
        ]  # fmt: skip
        if args.lbfgs_cpu:
            runs.append(lbfgs(clip, args.lbfgs_cpu))
        if args.adam_cpu:
            runs.append(adam(clip, args.adam_cpu))
        for run in runs:
            run.pop("freq_hz", None)
            print(json.dumps({"clip": path.name, **run}), flush=True)
        if args.entropy is not None:
            refined = gauss_newton(clip, args.entropy)["freq_hz"] if args.entropy else clip.freq0
            print(json.dumps({"clip": path.name, **entropy(clip, refined)}), flush=True)


if __name__ == "__main__":
    main()
