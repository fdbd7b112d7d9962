"""Upsample a recording: fit it at a low rate, then read the fitted signal at a higher one.

    python examples/upsample_file.py data/mallet_celesta_Cs5.wav outputs/celesta_48k.wav \
        --fit-rate 16000 --rate 48000 --duration 1.0 --budget 30

The input band is kept (band-limited interpolation of the fitted samples) and the band above the
fitting rate's Nyquist frequency is synthesised from the fitted modes (docs/upsampling.md).
"""

from __future__ import annotations

import argparse

import numpy as np
import soundfile as sf

import sonode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="WAV/FLAC/OGG file")
    parser.add_argument("out", help="output WAV file")
    parser.add_argument(
        "--fit-rate", type=int, default=16000, help="rate the clip is fitted at (Hz)"
    )
    parser.add_argument("--rate", type=int, default=48000, help="output rate (Hz)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of the clip (default: all)"
    )
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of fitting")
    args = parser.parse_args()

    fitted = sonode.fit(
        args.clip, rate=args.fit_rate, duration_s=args.duration, max_time_s=args.budget
    )
    report = fitted.report
    print(
        f"fitted {fitted.duration_s:.3f} s at {fitted.sample_rate} Hz: reconstruction "
        f"{report.snr_db:.1f} dB after {report.epochs} steps"
    )
    high = fitted.upsample(args.rate)  # (round(duration_s * rate),) float64, file amplitude
    sf.write(args.out, high.astype(np.float32), args.rate, subtype="FLOAT")
    print(f"wrote {args.out}: {high.size} samples at {args.rate} Hz")


if __name__ == "__main__":
    main()
