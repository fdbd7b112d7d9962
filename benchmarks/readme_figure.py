"""The README's picture: spectrograms of a 16 kHz clip upsampled to 48 kHz, against the truth.

Fits the first second of the bundled steel guitar at 16 kHz (``--budget`` seconds), upsamples it to
48 kHz with sonode and with the sinc baseline, and draws the three spectrograms on one colour scale,
with the input's 8 kHz Nyquist frequency dashed. Run from the repository root:

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/readme_figure.py --budget 60 \
        -o docs/img/upsample_guitar.png
"""

from __future__ import annotations

import argparse

import sonode
from sonode.dsp.resample import upsample_sinc
from sonode.io.clip import read_clip
from sonode.plot.figures import plot_spectrograms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="data/decaying_steelguitar_C4.wav")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of fitting")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds of the clip")
    parser.add_argument("--low-rate", type=int, default=16000)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("-o", "--out", default="docs/img/upsample_guitar.png")
    args = parser.parse_args()

    truth = read_clip(args.clip, duration_s=args.duration, rate=args.rate).samples
    fitted = sonode.fit(
        args.clip, rate=args.low_rate, duration_s=args.duration, max_time_s=args.budget, threads=1
    )
    low = fitted.fitted_samples().samples
    ours = fitted.upsample(args.rate)
    sinc = upsample_sinc(low, args.low_rate, args.rate)
    n = min(len(truth), len(ours), len(sinc))
    signals = {
        f"truth ({args.rate // 1000} kHz)": truth[:n],
        f"sinc from {args.low_rate // 1000} kHz": sinc[:n],
        f"sonode from {args.low_rate // 1000} kHz": ours[:n],
    }
    plot_spectrograms(
        args.out, signals, args.rate, freq_marker_hz=args.low_rate / 2, dynamic_range_db=90.0
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
