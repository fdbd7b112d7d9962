"""Quality benchmark: `sonode eval` over the bundled clips (and any folders given).

    python benchmarks/quality.py                      # data/*.wav, 60 s per fit, report in outputs/eval
    python benchmarks/quality.py --budget 20 my_clips/

Prints the result tables (medians across clips, then per clip) that README.md quotes under
"How good is it?". Two fits per clip (upsampling input, continuation history) of --budget seconds.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

from sonode.evaluation.evaluate import EvalOptions, evaluate, results_markdown

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, help="extra folders of WAV/FLAC/OGG clips")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per fit")
    parser.add_argument(
        "--rate", type=int, default=16000, help="input rate of the upsampling task (Hz)"
    )
    parser.add_argument("--horizon", type=float, default=0.2, help="continuation length (s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "outputs" / "eval")
    args = parser.parse_args()
    clips = sorted((ROOT / "data").glob("*.wav"))
    for folder in args.folders:
        clips += sorted(
            p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg")
        )
    torch.set_num_threads(args.threads)
    options = EvalOptions(
        low_rate=args.rate, budget_s=args.budget, horizon_s=args.horizon, threads=args.threads
    )
    results = evaluate(
        clips, args.output, options, on_clip=lambda c: print(f"evaluating {c}", flush=True)
    )
    print(f"\n{datetime.date.today()}, torch {torch.__version__}, {args.threads} threads\n")
    print(results_markdown(results))


if __name__ == "__main__":
    main()
