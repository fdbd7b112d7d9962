"""Speed of a 48 kHz continuation: `sonode extrapolate`'s render of the continuation ODE.

    python benchmarks/bench_continuation_speed.py [CLIP] [--seconds 2] [--profile]

Identifies a model on the clip's first 1.0 s at 48 kHz (no training steps), then times, with 1
thread, `extrapolate` of ``--seconds`` at 48 kHz for three continuation ODEs of the same model,
side by side: linear (field zero, no cycle: closed form), the same with its texture (the default of
`sonode extrapolate`: `sonode.model.texture`), with a non-zero trained field (the
per-mode gain set to a small level dependence), and with that field and the limit cycle on.
Prints the real-time factor (audio seconds per wall second; the goal is ≥ 2) and the CPU time
of each; ``--profile`` adds the top of cProfile's cumulative listing for the field + cycle case.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402
from sonode.model.rendering import continuation_switch_state  # noqa: E402
from sonode.tasks.render import extrapolate  # noqa: E402

RATE = 48000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "clip", nargs="?", type=Path, default=ROOT / "data" / "sustained_horn_As3.wav"
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = read_clip(args.clip, duration_s=1.0, rate=RATE)
    start = time.perf_counter()
    model, _ = fit_samples(
        clip.samples, RATE, FitOptions(steps=0, max_time_s=None, continuation_training_steps=0)
    )
    print(
        f"{args.clip.name}: identified in {time.perf_counter() - start:.1f} s, "
        f"{model.tail_bank.n_modes} continuation modes"
    )
    runs = [("linear (field zero, no cycle)", None), ("linear + texture", "texture")]
    runs.append(("trained field (gain)", "field"))
    runs.append(("trained field + limit cycle", "cycle"))
    for label, kind in runs:
        with torch.no_grad():
            if kind not in (None, "texture"):
                k = model.tail_bank.n_modes
                model.tail_field.gain.zero_()
                model.tail_field.gain[:k] = -0.5  # 5/s more decay per unit of relative energy
                model.tail_field.gain[k:] = 0.1
            if kind == "cycle":
                z = continuation_switch_state(model)
                model.tail_cycle.hold(
                    float(torch.sum(z[0] ** 2)), model.tail_late_bank.decay_per_s.detach()
                )
        profiler = cProfile.Profile() if args.profile and kind == "cycle" else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        out = extrapolate(model, args.seconds, RATE, texture=float(kind == "texture")).samples
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"  {label:32s} {args.seconds / wall:6.2f}x real time (wall {wall:.2f} s, "
            f"CPU {cpu:.2f} s, {out.size} samples, peak {abs(out).max():.3f})"
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)


if __name__ == "__main__":
    main()
