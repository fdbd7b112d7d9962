"""Continue a note past the end of its recording.

    python examples/continue_note.py data/decaying_steelguitar_C4.wav outputs/guitar_longer.wav \
        --duration 1.0 --seconds 1.0 --budget 30

Writes the fitted clip followed by ``--seconds`` of continuation, integrated from the state the
model reaches at the clip's end (docs/continuation.md); ``--only-continuation`` writes just that.
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
        "--rate", type=int, default=None, help="fit and output rate (default: the file's)"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of the clip (default: all)"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the continuation")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of fitting")
    parser.add_argument("--only-continuation", action="store_true")
    args = parser.parse_args()

    fitted = sonode.fit(args.clip, rate=args.rate, duration_s=args.duration, max_time_s=args.budget)
    audio = fitted.extrapolate(args.seconds, with_context=not args.only_continuation)
    sf.write(args.out, audio.astype(np.float32), fitted.sample_rate, subtype="FLOAT")
    print(
        f"wrote {args.out}: {audio.size / fitted.sample_rate:.3f} s at {fitted.sample_rate} Hz "
        f"({'continuation only' if args.only_continuation else 'clip, then continuation'})"
    )


if __name__ == "__main__":
    main()
