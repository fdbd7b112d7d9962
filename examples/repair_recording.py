"""Repair a recording: cut a dropout into a clean clip, fill it, and score the repair.

    python examples/repair_recording.py data/sustained_horn_As3.wav outputs/horn_repair \
        --gap-start 0.6 --gap-ms 40

Writes ``damaged.wav`` (the clip with ``--gap-ms`` of silence from ``--gap-start``),
``repaired.wav`` and its report ``repaired.fill.json`` into the output folder, and prints the SNR
over the gap against the original. The same repair from the shell:
``sonode fill damaged.wav -o repaired.wav --gap START END`` (docs/fill.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from sonode.dsp.metrics import snr_db
from sonode.tasks.fill import FillSettings
from sonode.tasks.fill_file import fill_file
from sonode.tasks.fill_methods import DEFAULT_FILL_METHOD, FILL_METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="a clean WAV/FLAC file (it is only read)")
    parser.add_argument("out_dir", help="folder for damaged.wav, repaired.wav and the report")
    parser.add_argument("--gap-start", type=float, default=0.5, help="seconds")
    parser.add_argument("--gap-ms", type=float, default=40.0, help="dropout length in milliseconds")
    parser.add_argument("--method", choices=list(FILL_METHODS), default=DEFAULT_FILL_METHOD)
    args = parser.parse_args()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean, rate = sf.read(args.clip, dtype="float64", always_2d=True)
    start = round(args.gap_start * rate)
    end = start + round(args.gap_ms * rate / 1000)
    if not 0 < start < end < clean.shape[0]:
        parser.error(f"the gap {args.gap_start} s + {args.gap_ms} ms does not fit inside the clip")
    damaged = clean.copy()
    damaged[start:end] = 0.0  # a dropout
    damaged_path, repaired_path = out_dir / "damaged.wav", out_dir / "repaired.wav"
    sf.write(damaged_path, damaged, rate, subtype="FLOAT")

    report = fill_file(
        damaged_path, repaired_path, [(start / rate, end / rate)], FillSettings(method=args.method)
    )
    repaired, _ = sf.read(repaired_path, dtype="float64", always_2d=True)
    gap_snr_db = snr_db(clean[start:end].ravel(), repaired[start:end].ravel())
    print(
        f"filled {len(report['gaps'])} gap of {end - start} samples with {args.method}: "
        f"SNR over the gap {gap_snr_db:.1f} dB; wrote {repaired_path}"
    )


if __name__ == "__main__":
    main()
