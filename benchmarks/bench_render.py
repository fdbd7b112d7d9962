"""Rendering speed: upsampling a fitted 1 s model to 48 kHz, and free-running continuations.

    python benchmarks/bench_render.py          # ~1 minute

Fits the steel-guitar clip (16 kHz, first 1.0 s, 20 steps: render cost does not depend on how
long the model trained), then times, with 1 thread, the median of 3 renders of each kind and
reports the real-time factor (audio seconds produced per second of wall time; > 1 is faster than
real time).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.audio_io import read_clip  # noqa: E402
from sonode.model import FitOptions, fit_samples  # noqa: E402
from sonode.render import extrapolate, render  # noqa: E402


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    clip = read_clip(ROOT / "data" / "decaying_steelguitar_C4.wav", rate=16000, duration_s=1.0)
    model, _ = fit_samples(clip.samples, 16000, FitOptions(steps=20, max_time_s=None))
    cases = [
        ("render 1.0 s at 16 kHz (reconstruction)", 1.0, lambda: render(model)),
        ("upsample 1.0 s to 48 kHz", 1.0, lambda: render(model, rate=48000)),
        ("upsample 1.0 s to 44.1 kHz", 1.0, lambda: render(model, rate=44100)),
        ("extrapolate 1.0 s at 16 kHz", 1.0, lambda: extrapolate(model, 1.0)),
        ("extrapolate 1.0 s at 48 kHz", 1.0, lambda: extrapolate(model, 1.0, rate=48000)),
    ]
    print(f"model: d={model.config.latent_dim}, {model.config.layout.n_segments} segments, 1 thread")
    print(f"{'case':42s} {'wall s':>8s} {'real-time factor':>17s}")
    for name, audio_s, fn in cases:
        wall = timed(fn)
        print(f"{name:42s} {wall:8.3f} {audio_s / wall:17.2f}")


if __name__ == "__main__":
    main()
