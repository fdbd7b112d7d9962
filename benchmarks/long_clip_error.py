"""Where a long clip's training loses its gain (issue #22: a 10 s clip gains in 60 s what a 1 s clip does).

    python benchmarks/long_clip_error.py [--folder DIR] [--long 10] [--steps 10] [--excerpt-s 0]

Builds the clip `bench_long_gain.py` fits (the folder's clips at 16 kHz concatenated and repeated
to ``--long`` seconds), identifies it as a fit does, and prints:

- the segment states' energy against their window's power (Σ_k |c_k|² / mean x² over the window):
  about 1-2 where the modes fit the window, thousands where near-collinear modes cancel each other
  (a window holding a tail and an onset, close poles);
- the whole clip's SNR at the linear start and after ``--steps`` sampled optimiser steps (default
  options, no state solves, so the steps' own effect), and how the error is then spread over the
  hops: the share held by the worst 1 % / 5 % of hops, and the worst hops' error / power with
  their states' energy ratio at the start (``--steps 0``: the start only);
- the share of segments whose window the previous segment's state, carried by the modes, fits
  within 1 dB of their own state (what states as corrections to a carried trajectory would save).

``--excerpt-s S`` identifies the modes on the clip's first S seconds only (the states are still
fitted on the whole clip); 0, the default, on the whole clip as a fit does. 1 thread.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_long_gain import RATE_HZ, concatenated  # noqa: E402

import sonode.model.init as init  # noqa: E402
import sonode.model.train as train  # noqa: E402
from sonode.dsp.lpc import modal_basis  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402


def energy_ratio(model, xn: np.ndarray) -> np.ndarray:
    """Each segment's state energy over its window's mean power: (n_segments,)."""
    layout, k = model.config.layout, model.config.n_modes
    states = model.states.detach().numpy()
    energy = np.sum(states[:, :k] ** 2 + states[:, k:] ** 2, axis=1)
    hop, window = layout.hop_samples, layout.window_samples
    power = np.array(
        [np.mean(xn[m * hop : m * hop + window] ** 2) for m in range(layout.n_segments)]
    )
    return energy / np.maximum(power, 1e-12)


def carried_share(model, xn: np.ndarray, tolerance_db: float = 1.0) -> float:
    """Share of segments (after the first) whose window the state carried from the previous
    segment by the linear modes (c_{m-1}·p^hop) fits within ``tolerance_db`` of their own
    least-squares state: segments that would need no correction if states were corrections to the
    carried trajectory (issue #25 item 3)."""
    layout, k = model.config.layout, model.config.n_modes
    poles = (
        torch.exp(
            torch.complex(model.bank.decay_per_s, model.bank.omega_rad_per_s) / layout.sample_rate
        )
        .detach()
        .numpy()
    )
    basis = modal_basis(poles, layout.window_samples)  # (W, 2K)
    weights = layout.training_weights().numpy().T  # (M, W)
    windows = layout.split(torch.from_numpy(xn)).numpy().T
    states = model.states.detach().numpy()
    c = states[:, :k] + 1j * states[:, k:]
    carried = c[:-1] * poles**layout.hop_samples
    carried = np.concatenate([carried.real, carried.imag], axis=1)

    def error(s: np.ndarray, rows: slice) -> np.ndarray:
        return np.sum(weights[rows] * (windows[rows] - s @ basis.T) ** 2, axis=1)

    own, by_carry = error(states[1:], slice(1, None)), error(carried, slice(1, None))
    return float(np.mean(by_carry <= own * 10 ** (tolerance_db / 10)))


def hop_errors(model, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The whole clip's squared error and power per hop: two (n_hops,) arrays."""
    hop = model.config.layout.hop_samples
    n = target.shape[0] // hop
    with torch.no_grad():
        error = (target - model.reconstruct()[0])[: n * hop] ** 2
    return error.reshape(n, hop).sum(1).numpy(), (target[: n * hop] ** 2).reshape(n, hop).sum(
        1
    ).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "data", help="clips to concatenate")
    parser.add_argument("--long", type=float, default=10.0, help="length of the clip (s)")
    parser.add_argument("--steps", type=int, default=10, help="sampled steps before the look")
    parser.add_argument("--excerpt-s", type=float, default=0.0, help="modes from the first S s")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = concatenated(args.long, args.folder)
    if args.excerpt_s > 0:
        whole = init.identify_modes
        n_excerpt = int(args.excerpt_s * RATE_HZ)
        init.identify_modes = lambda xn, rate, *a, **k: whole(xn[:n_excerpt], rate, *a, **k)
    looks = []
    kept_consider = train.consider

    def look(model, *a, **k):  # the current parameters at the check after the last step
        looks.append(
            hop_errors(model, torch.from_numpy((x - model.config.offset) / model.config.gain))
        )
        return kept_consider(model, *a, **k)

    train.consider = look
    train.CHECK_EVERY_EPOCHS = args.steps
    start, _ = init.initial_from_options(x, RATE_HZ, FitOptions(), continuation=False)
    xn = (x - start.config.offset) / start.config.gain
    ratio = energy_ratio(start, xn)
    top = np.argsort(-ratio)[:6]
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.folder.name}, {args.long:g} s, modes from "
        f"{'the whole clip' if args.excerpt_s <= 0 else f'the first {args.excerpt_s:g} s'}, "
        f"{start.config.layout.n_segments} segments, K = {start.config.n_modes}"
    )
    print(
        f"state energy / window power: median {np.median(ratio):.1f}, 99th percentile "
        f"{np.percentile(ratio, 99):.0f}, largest {', '.join(f'{ratio[m]:.0f} (segment {m})' for m in top)}"
    )
    print(
        f"segments the previous state carried by the modes fits within 1 dB of their own: "
        f"{100 * carried_share(start, xn):.0f} %"
    )
    target = torch.from_numpy(xn)
    start_error, power = hop_errors(start, target)
    print(f"linear start: whole-clip SNR {10 * np.log10(power.sum() / start_error.sum()):.2f} dB")
    if args.steps == 0:  # the start only
        return
    options = FitOptions(steps=args.steps, state_solve_every=0, continuation_training_steps=0)
    fit_samples(x, RATE_HZ, options)
    error, _ = looks[0]
    order = np.argsort(-error)
    worst = order[: max(1, len(error) // 100)]
    rest = np.setdiff1d(np.arange(len(error)), worst)
    share = 100 * error[worst].sum() / error.sum()

    def db(e: np.ndarray, hops: np.ndarray) -> float:
        return 10 * np.log10(power[hops].sum() / e[hops].sum())

    print(
        f"after {args.steps} steps: whole-clip SNR {db(error, order):.2f} dB; the worst 1 % of hops "
        f"hold {share:.0f} % of the error; the other 99 %: {db(start_error, rest):.2f} dB at the "
        f"start, {db(error, rest):.2f} dB now"
    )
    print(
        "worst hops (hop: error / power at the start and now, its segment's energy ratio): "
        + ", ".join(
            f"{h}: {start_error[h] / max(power[h], 1e-300):.3f} -> {error[h] / max(power[h], 1e-300):.2f}, "
            f"{ratio[min(h, len(ratio) - 1)]:.0f}"
            for h in order[:6]
        )
    )


if __name__ == "__main__":
    main()
