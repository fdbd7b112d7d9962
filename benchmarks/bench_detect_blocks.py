"""Block-wise detection (`sonode.tasks.detect_blocks`): the same detections, and bounded memory.

    PYTHONPATH=. python benchmarks/bench_detect_blocks.py same data data/more \
        /work/corpus/short48 /work/corpus/music44 /work/corpus/speech8k /work/corpus/song
    PYTHONPATH=. python benchmarks/bench_detect_blocks.py memory --seconds 600 --rate 48000

``same``: every WAV/FLAC of the folders, first channel, clean and damaged (``--clicks`` clicks and
one 10 ms dropout at seeded random places): `detect_defects` on the whole channel against blocks
of ``--block-s`` seconds (small, so that every file is cut several times). Prints the files whose
detections differ (kind, span or reason) and the CPU seconds of both, measured side by side.

``memory``: a ``--seconds`` long 16-bit stereo WAV at ``--rate`` (the folder's clips joined, one
click per ``--click-every-s`` in one channel, a 20 ms dropout per ``--dropout-every-s`` in both),
then ``python -m sonode fill WAV --detect -o OUT`` in a fresh process under ``/usr/bin/time -v``:
its peak RSS, CPU seconds, the made defects found, and OUT equal to WAV bit for bit outside the filled gaps.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_fill_song import audio_files  # noqa: E402
from sonode.tasks.detect import detect_defects  # noqa: E402


def _damage(x: np.ndarray, rate: int, clicks: int, rng) -> np.ndarray:
    y = x.copy()
    edge = int(0.05 * rate)
    if y.size < 4 * edge:
        return y
    for s in rng.integers(edge, y.size - edge, clicks):
        n = max(1, int(rng.uniform(0.0001, 0.002) * rate))
        y[s : s + n] += (
            rng.uniform(0.1, 0.5) * np.abs(x).max() * np.exp(-np.arange(n) / (n / 3 + 1))
        )
    s = int(rng.integers(edge, y.size - edge))
    y[s : s + int(0.01 * rate)] = 0.0
    return y


def same_benchmark(args) -> None:
    rng = np.random.default_rng(args.seed)
    differ, counted, cpu = [], 0, [0.0, 0.0]
    for path in audio_files(args.folders):
        x = sf.read(path, always_2d=True)[0][:, 0].copy()
        rate = sf.info(str(path)).samplerate
        block = max(1, int(args.block_s * rate))
        for label, y in (("clean", x), ("damaged", _damage(x, rate, args.clicks, rng))):
            t0 = time.process_time()
            whole = detect_defects(y, rate)
            t1 = time.process_time()
            blocks = detect_defects(y, rate, block=block)
            cpu[0] += t1 - t0
            cpu[1] += time.process_time() - t1
            counted += len(whole)
            if blocks != whole:
                differ.append(f"{path} ({label}): whole {whole} blocks {blocks}")
    print(
        f"{len(audio_files(args.folders))} files, clean and damaged; {counted} detections on the whole channel"
    )
    print(f"files whose detections differ with {args.block_s} s blocks: {len(differ)}")
    for line in differ:
        print("  ", line)
    print(
        f"CPU s: whole {cpu[0]:.1f}, blocks {cpu[1]:.1f} (ratio {cpu[1] / max(cpu[0], 1e-9):.2f})"
    )


def _long_file(args, out: Path) -> list[tuple[int, int, str]]:
    """Writes the damaged file; returns the made defects [(start, end, kind)]."""
    rng, rate = np.random.default_rng(args.seed), args.rate
    clips = [sf.read(p, always_2d=True)[0] for p in audio_files([args.folder])]
    clips = [np.repeat(c, 2, axis=1)[:, :2] if c.shape[1] == 1 else c[:, :2] for c in clips]
    n = int(args.seconds * rate)
    x = np.zeros((n, 2))
    pos, k = 0, 0
    while pos < n:  # the clips back to back (their own rate ignored: only the content matters)
        c = clips[k % len(clips)]
        m = min(c.shape[0], n - pos)
        x[pos : pos + m] = 0.9 * c[:m] / max(np.abs(c).max(), 1e-9)
        pos, k = pos + m, k + 1
    made = []
    for s in range(int(2.5 * rate), n - rate, int(args.click_every_s * rate)):  # one channel
        c, w = int(rng.integers(2)), max(1, int(0.0005 * rate))
        x[s : s + w, c] += 0.4 * np.exp(-np.arange(w) / (w / 3 + 1))
        made.append((s, s + w, "click"))
    for s in range(int(11.0 * rate), n - rate, int(args.dropout_every_s * rate)):  # 20 ms
        x[s : s + int(0.02 * rate)] = 0.0
        made.append((s, s + int(0.02 * rate), "dropout"))
    sf.write(out, np.clip(x, -1, 1 - 2**-15), rate, subtype="PCM_16")
    return made


def memory_benchmark(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    wav, out = (
        args.out / f"long_{int(args.seconds)}s.wav",
        args.out / f"long_{int(args.seconds)}s_filled.wav",
    )
    made = _long_file(args, wav)
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "sonode",
        "fill",
        str(wav),
        "--detect",
        "-o",
        str(out),
        "--quiet",
        "--force",
        "--method",
        args.method,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    stats = dict(re.findall(r"^\s*(.+?): (.+)$", run.stderr, re.M))
    print(
        f"exit {run.returncode}; {run.stdout.strip()[-300:]} {run.stderr.strip().splitlines()[0][:200]}"
    )
    rss = int(stats.get("Maximum resident set size (kbytes)", 0)) / 2**20
    cpu = float(stats.get("User time (seconds)", 0)) + float(stats.get("System time (seconds)", 0))
    print(
        f"{args.seconds:.0f} s stereo at {args.rate} Hz: peak RSS {rss:.2f} GiB, CPU {cpu:.1f} s, wall "
        f"{stats.get('Elapsed (wall clock) time (h:mm:ss or m:ss)')}"
    )
    if run.returncode:
        return
    report = json.loads(Path(str(out).replace(".wav", ".fill.json")).read_text())
    gaps = [
        (round(g["start_s"] * args.rate), round(g["end_s"] * args.rate)) for g in report["gaps"]
    ]
    found = sum(any(a < e and s < b for a, b in gaps) for s, e, _ in made)
    print(f"made {len(made)} defects, {found} inside a filled gap; {len(gaps)} gaps filled")
    a, b = sf.read(wav, dtype="int16")[0], sf.read(out, dtype="int16")[0]
    outside = np.ones(a.shape[0], dtype=bool)
    for s, e in gaps:
        outside[max(0, s - 1) : e + 1] = False
    print(f"output equals input outside the gaps: {bool(np.array_equal(a[outside], b[outside]))}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    same = sub.add_parser("same")
    same.add_argument("folders", nargs="+", type=Path)
    same.add_argument("--block-s", type=float, default=0.5)
    same.add_argument("--clicks", type=int, default=4)
    same.add_argument("--seed", type=int, default=1)
    memory = sub.add_parser("memory")
    memory.add_argument("--folder", type=Path, default=REPO / "data")
    memory.add_argument("--seconds", type=float, default=600.0)
    memory.add_argument("--rate", type=int, default=48_000)
    memory.add_argument("--method", default="burg_xfade")
    memory.add_argument("--seed", type=int, default=1)
    memory.add_argument("--click-every-s", type=float, default=20.0)
    memory.add_argument("--dropout-every-s", type=float, default=60.0)
    memory.add_argument("-o", "--out", type=Path, default=REPO / "outputs" / "detect_blocks")
    args = parser.parse_args()
    same_benchmark(args) if args.mode == "same" else memory_benchmark(args)


if __name__ == "__main__":
    main()
