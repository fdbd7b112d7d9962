"""`sonode upsample` of a whole song: a 3-minute 16 kHz file to 48 kHz, real-time factor.

    python benchmarks/bench_upsample_song.py                  # 180 s, this tree's CLI only
    python benchmarks/bench_upsample_song.py --seconds 30 --fit-path 30
    python benchmarks/bench_upsample_song.py --song /work/corpus/song/SONG.flac   # a real song

The song is the bundled and data/more clips at 16 kHz, concatenated and repeated to --seconds
(written to a temporary directory, never to git), or --song FILE (any rate; read at 16 kHz and cut
to --seconds when longer). `sonode upsample SONG --rate 48000` runs in a
fresh process, timed from the command's start to its exit (imports included), wall and CPU time (the child's
user + system seconds: the work done, which the machine's load changes far less than the wall). With --fit-path S
the same command also runs with --model-out and --max-time S, i.e. the path that fits a model
first (what `upsample CLIP` always did before), side by side in the same run; its time is a lower
bound, the budget being capped. Prints seconds, real-time factors (audio seconds per wall second;
goal ≥ 2) and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.io.clip import read_clip  # noqa: E402

RATE_HZ = 16000


def song(seconds: float, path: Path | None = None) -> np.ndarray:
    """The song at ``path`` at 16 kHz, or the bundled and held-out clips concatenated and repeated:
    (at most seconds·16000,)."""
    if path is not None:
        return read_clip(path, rate=RATE_HZ).samples[: int(seconds * RATE_HZ)]
    paths = sorted((ROOT / "data").glob("*.wav")) + sorted((ROOT / "data" / "more").glob("*.wav"))
    whole = np.concatenate([read_clip(p, rate=RATE_HZ).samples for p in paths])
    n = int(seconds * RATE_HZ)
    return np.tile(whole, 1 + n // whole.shape[0])[:n]


def timed_cli(*args: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child process, all threads) of `sonode ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sonode", *args], check=True, env=env, capture_output=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument(
        "--fit-path",
        type=float,
        default=None,
        metavar="S",
        help="also time the fit-first path with --max-time S",
    )
    parser.add_argument("--song", type=Path, default=None, help="a real song instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "song.wav"
        samples = song(args.seconds, args.song)
        args.seconds = samples.shape[0] / RATE_HZ
        sf.write(wav, samples, RATE_HZ, subtype="PCM_16")
        print(
            f"{args.seconds:.0f} s at 16 kHz -> 48 kHz; load average {os.getloadavg()[0]:.1f} (2 cores)"
        )
        seconds, cpu = timed_cli(
            "upsample", str(wav), "--rate", "48000", "-o", str(Path(tmp) / "up.wav"), "--quiet"
        )
        out, rate = sf.read(Path(tmp) / "up.wav")
        assert (
            rate == 48000 and out.shape[0] == int(args.seconds * 48000) and np.all(np.isfinite(out))
        )
        print(
            f"upsample (identification only): {seconds:7.1f} s wall, {args.seconds / seconds:5.2f}x real time "
            f"(goal ≥ 2x); {cpu:.1f} s CPU, {args.seconds / cpu:.2f}x real time per CPU second; "
            f"output peak {np.max(np.abs(out)):.3f}"
        )
        if args.fit_path is not None:
            fitted, fitted_cpu = timed_cli(
                "upsample",
                str(wav),
                "--rate",
                "48000",
                "-o",
                str(Path(tmp) / "up_fit.wav"),
                "--model-out",
                str(Path(tmp) / "song.sonode"),
                "--max-time",
                str(args.fit_path),
                "--quiet",
            )
            print(
                f"upsample fitting first (--max-time {args.fit_path:.0f}): {fitted:7.1f} s, "
                f"{args.seconds / fitted:5.2f}x real time, {fitted_cpu:.1f} s CPU; ratio {fitted / seconds:.1f} "
                f"(CPU {fitted_cpu / cpu:.1f})"
            )
        print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
