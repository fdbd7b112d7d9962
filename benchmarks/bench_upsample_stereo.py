"""Stereo upsampling: is the image above the input's Nyquist frequency kept, and how fast is it?

    python benchmarks/bench_upsample_stereo.py /work/corpus/music44 --duration 10
    python benchmarks/bench_upsample_stereo.py /work/corpus/song --duration 180

Each stereo file (the first --duration seconds at --truth-rate = the truth) is band-limited to
--rate per channel (`sonode.io.clip.resample`) and upsampled back with
`sonode.tasks.upsample.upsample_channels` (the `sonode upsample CLIP` path for a stereo file,
oscillators identified on the mix). Per clip: the inter-channel coherence (magnitude-squared,
Welch over 2048-sample frames) of the input's top band (0.5–0.875 × its Nyquist frequency), of the
output above the input's Nyquist frequency (1.1 Nyquist to 20 kHz) and of the truth there; the
mean over channels of ssr_eval's LSD above the input's Nyquist frequency for sonode and the shaped
noise baseline (channel by channel); wall seconds and the real-time factor (audio seconds per
wall second) of the upsampling alone, on this machine, under its current load (printed).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from sonode.dsp.metrics import lsd_ssr
from sonode.evaluation.baselines import upsample_shaped_noise
from sonode.io.clip import read_clip, resample
from sonode.tasks.upsample import clip_modes, upsample_channels

FRAME = 2048


def coherence(left: np.ndarray, right: np.ndarray, rate: int, lo_hz: float, hi_hz: float) -> float:
    """Magnitude-squared coherence of two channels, pooled over [lo_hz, hi_hz)."""
    window = np.hanning(FRAME)
    spectra = [
        np.fft.rfft(np.lib.stride_tricks.sliding_window_view(c, FRAME)[:: FRAME // 4] * window)
        for c in (left, right)
    ]
    freqs = np.fft.rfftfreq(FRAME, 1 / rate)
    sel = (freqs >= lo_hz) & (freqs < hi_hz)
    a, b = spectra[0][:, sel], spectra[1][:, sel]
    power = np.sum(np.abs(a) ** 2) * np.sum(np.abs(b) ** 2)
    return float(np.abs(np.sum(a * np.conj(b))) ** 2 / power) if power > 0 else float("nan")


def run(path: Path, args) -> dict | None:
    info = sf.info(path)
    if info.channels != 2:
        return None
    seconds = min(args.duration, info.duration)
    truth = np.stack(
        [
            read_clip(path, channel=c, duration_s=seconds, rate=args.truth_rate).samples
            for c in range(2)
        ],
        axis=1,
    )
    low = np.stack([resample(truth[:, c], args.truth_rate, args.rate) for c in range(2)], axis=1)
    start = time.perf_counter()
    modes = clip_modes(low.mean(axis=1), args.rate)
    out, _ = upsample_channels(low, args.rate, args.truth_rate, modes)
    wall = time.perf_counter() - start
    n = min(out.shape[0], truth.shape[0])
    nyquist = args.rate / 2
    above = (1.1 * nyquist, min(20000.0, 0.45 * args.truth_rate))

    def lsd(x: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    lsd_ssr(truth[:n, c], x[:n, c], args.truth_rate, nyquist)["lsd_above"]
                    for c in range(2)
                ]
            )
        )

    noise = np.stack(
        [upsample_shaped_noise(low[:, c], args.rate, args.truth_rate, seed=c) for c in range(2)],
        axis=1,
    )
    return {
        "clip": path.name,
        "seconds": seconds,
        "coh_input_top": coherence(low[:, 0], low[:, 1], args.rate, 0.5 * nyquist, 0.875 * nyquist),
        "coh_sonode_above": coherence(out[:n, 0], out[:n, 1], args.truth_rate, *above),
        "coh_truth_above": coherence(truth[:n, 0], truth[:n, 1], args.truth_rate, *above),
        "lsd_above_sonode": lsd(out),
        "lsd_above_sinc_noise": lsd(noise),
        "wall_s": wall,
        "realtime_x": seconds / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--truth-rate", type=int, default=48000)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    paths = sorted(args.folder.glob("*.flac")) + sorted(args.folder.glob("*.wav"))
    rows = [r for r in (run(p, args) for p in paths) if r is not None]
    print(
        f"load average {os.getloadavg()[0]:.1f}, input {args.rate} Hz, truth {args.truth_rate} Hz\n"
    )
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|---" * len(keys) + "|")
    for r in rows:
        print("| " + " | ".join(v if isinstance(v, str) else f"{v:.2f}" for v in r.values()) + " |")


if __name__ == "__main__":
    main()
