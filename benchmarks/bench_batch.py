"""Batch fits on the embedded Dask cluster vs the same fits run one after another.

    python benchmarks/bench_batch.py            # 5 to 50 minutes, depending on the machine's load

Eight clips of bundled length: the five in data/ and three 1.25 s excerpts of them (from 0.25 s),
each fitted at 16 kHz with the same fixed step budget (--steps) and small model options, so that
both runs do the same training work:

- sequential: `sonode fit CLIP -o ... --threads <cores>` once per clip, one after another (what a
  script looping over a library does, every fit using all cores);
- batch: one `sonode fit DIR --out-dir ...` on the embedded LocalCluster (one single-thread
  worker per core);
- for reference, the sequential loop again with `--threads 1`.

Both are timed in this one run (wall clock, including process start-up and, for the batch, the
cluster's), the batch first and last around the sequential run so that a change of the machine's
load shows; the ratio uses the mean of the two batch runs. The load average is printed with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CLIPS = sorted((ROOT / "data").glob("*.wav"))
EXCERPT_START_S, EXCERPT_DURATION_S = 0.25, 1.25
OPTIONS = [
    "--rate",
    "16000",
    "--steps",
    "5",
    "--latent-dim",
    "8",
    "--hidden",
    "8",
    "--lp-order",
    "32",
    "--continuation-steps",
    "2",
    "--quiet",
]
GOAL_RATIO = 0.6


def _sonode(*args) -> list[str]:
    return [sys.executable, "-m", "sonode.cli", *map(str, args)]


def _timed(commands: list[list[str]]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for clip in CLIPS:
            (inputs / clip.name).write_bytes(clip.read_bytes())
        for clip in CLIPS[:3]:
            info = sf.info(clip)
            x, rate = sf.read(
                clip,
                start=int(EXCERPT_START_S * info.samplerate),
                frames=int(EXCERPT_DURATION_S * info.samplerate),
            )
            sf.write(inputs / f"{clip.stem}_excerpt.wav", x, rate, subtype="PCM_16")
        clips = sorted(inputs.glob("*.wav"))
        print(
            f"{len(clips)} clips, options {' '.join(OPTIONS)}, {cores} cores; load average before: "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )
        batch_s = [_timed([_sonode("fit", inputs, "--out-dir", Path(tmp) / "batch1", *OPTIONS)])]
        load_seq = os.getloadavg()[0]
        print(f"batch, first: {batch_s[0]:.1f} s", flush=True)  # as it comes: the runs are long
        sequential_s = _timed(
            [
                _sonode(
                    "fit",
                    clip,
                    "-o",
                    Path(tmp) / "seq" / f"{clip.stem}.sonode",
                    "--threads",
                    cores,
                    *OPTIONS,
                )
                for clip in clips
            ]
        )
        print(f"sequential: {sequential_s:.1f} s", flush=True)
        # Not the goal's reference, but it separates the gain of whole fits side by side from the
        # cost of 2-thread torch on a loaded machine (threads waiting on descheduled siblings).
        sequential_1_s = _timed(
            [
                _sonode(
                    "fit",
                    clip,
                    "-o",
                    Path(tmp) / "seq1" / f"{clip.stem}.sonode",
                    "--threads",
                    1,
                    *OPTIONS,
                )
                for clip in clips
            ]
        )
        print(f"sequential, 1 thread: {sequential_1_s:.1f} s", flush=True)
        batch_s.append(
            _timed([_sonode("fit", inputs, "--out-dir", Path(tmp) / "batch2", *OPTIONS)])
        )
        mean_batch_s = sum(batch_s) / len(batch_s)
        ratio = mean_batch_s / sequential_s
        print(
            f"| run | wall time s | load average at start |\n|---|---:|---:|\n"
            f"| batch (embedded cluster), first | {batch_s[0]:.1f} | |\n"
            f"| sequential (`--threads {cores}`) | {sequential_s:.1f} | {load_seq:.2f} |\n"
            f"| sequential (`--threads 1`, for reference) | {sequential_1_s:.1f} | |\n"
            f"| batch (embedded cluster), second | {batch_s[1]:.1f} | |\n"
            f"ratio batch / sequential = {ratio:.2f} "
            f"(goal ≤ {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'MISSED'}); "
            f"batch / sequential with 1 thread = {mean_batch_s / sequential_1_s:.2f};"
            f" load average after: {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
