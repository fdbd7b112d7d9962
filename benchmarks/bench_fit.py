"""Training cost of `sonode fit`: adjoint vs backprop per epoch, throughput, profile, peak memory.

    python benchmarks/bench_fit.py            # ~2 minutes

1. Seconds per epoch with the engine's checkpointed adjoint and with backprop, measured side by
   side (interleaved, median of 7) on the steel-guitar clip at 16 kHz (1.0 s), 1 thread; and the
   audio seconds processed per second of training.
2. Where an adjoint epoch's time goes (cProfile, top entries by cumulative time).
3. Peak resident memory (Linux VmHWM, fresh subprocess each) of a 5-epoch fit on 0.5 s and 2 s
   of audio (the tuba clip, repeated to reach 2 s), for both gradient methods.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.audio_io import read_clip  # noqa: E402
from sonode.model import FitOptions  # noqa: E402
from sonode.model.init import initial_model  # noqa: E402


def _epoch(model, target, gradient):
    model.zero_grad(set_to_none=True)
    signal, _ = model.reconstruct(gradient=gradient)
    torch.mean((signal - target) ** 2).backward()


def epoch_times() -> None:
    clip = read_clip(ROOT / "data" / "decaying_steelguitar_C4.wav", rate=16000, duration_s=1.0)
    o = FitOptions()  # the defaults of `sonode fit`
    model = initial_model(clip.samples, 16000, o.latent_dim // 2, o.hop_samples, o.overlap_samples, o.hidden,
                          o.layers, o.lp_order)
    target = torch.from_numpy((clip.samples - model.config.offset) / model.config.gain)
    times = {"adjoint": [], "backprop": []}
    for _ in range(8):
        for method in times:
            start = time.perf_counter()
            _epoch(model, target, method)
            times[method].append(time.perf_counter() - start)
    med = {m: statistics.median(t[1:]) for m, t in times.items()}  # first round warms up
    layout = model.config.layout
    print(f"1. seconds per epoch (1.0 s clip at 16 kHz, d={model.config.latent_dim}, {layout.n_segments} segments "
          f"of {layout.window_samples} samples, 1 thread)")
    for m, t in med.items():
        print(f"   {m:9s} {t:.3f} s/epoch   {clip.duration_s / t:5.2f} audio-s per s")
    print(f"   ratio adjoint/backprop: {med['adjoint'] / med['backprop']:.2f}")
    print("\n2. profile of one adjoint epoch (cumulative time)")
    profiler = cProfile.Profile()
    profiler.enable()
    _epoch(model, target, "adjoint")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(14)
    print("\n".join("   " + line for line in out.getvalue().splitlines()[6:24]))


CHILD = """
import sys, numpy as np, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from sonode.audio_io import read_clip
from sonode.model import FitOptions, fit_samples
clip = read_clip({path!r}, rate=16000)
x = np.tile(clip.samples, 3)[: int({seconds} * 16000)]
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) / 1024
fit_samples(x, 16000, FitOptions(steps=5, max_time_s=None, gradient={gradient!r}, continuation_steps=2))
print(hwm())
"""


def peak_memory() -> None:
    print("\n3. peak RSS of a 5-epoch fit (MiB, fresh process each)")
    path = str(ROOT / "data" / "sustained_tuba_Cs3.wav")
    rows = {}
    for gradient in ("adjoint", "backprop"):
        for seconds in (0.5, 2.0):
            code = CHILD.format(root=str(ROOT), path=path, seconds=seconds, gradient=gradient)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            rows[gradient, seconds] = float(out.stdout.strip().splitlines()[-1])
    for gradient in ("adjoint", "backprop"):
        a, b = rows[gradient, 0.5], rows[gradient, 2.0]
        print(f"   {gradient:9s} 0.5 s: {a:7.1f}   2.0 s: {b:7.1f}   ratio {b / a:.2f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    epoch_times()
    peak_memory()
