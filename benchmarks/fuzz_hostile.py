"""#30: the fuzz and fault suite in its long mode, the worst cases' peak memory, and signal latency.

    python benchmarks/fuzz_hostile.py --cases 200            # fuzz: mutated audio/models, absurd args, FIFOs
    python benchmarks/fuzz_hostile.py --memory               # peak memory of #30's worst cases
    python benchmarks/fuzz_hostile.py --signals              # SIGINT latency per phase
    python benchmarks/fuzz_hostile.py --memory --before /work/main   # the same cases on another tree

Every case runs as a subprocess under the harness of tests/hostile_support.py (address space capped
at the import footprint + 2 GiB, a timeout) and is scored as the CI suite scores it: exit 0 or 2,
one line, no traceback, peak resident memory <= 2 GiB. Prints one line per case and a summary.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from tests.hostile_cases import make_cases, run_case  # noqa: E402
from tests.hostile_support import FAST, finish, run, start, tone  # noqa: E402


def _model(work: Path) -> Path:
    sf.write(work / "seed.wav", tone(0.5, 16000), 16000, subtype="PCM_16")
    outcome = run(["fit", work / "seed.wav", "-o", work / "seed.sonode", *FAST], timeout_s=600)
    assert outcome.code == 0, outcome.describe()
    return work / "seed.sonode"


def fuzz(work: Path, n_cases: int, seed: int) -> int:
    model = _model(work)
    per = max(1, n_cases // 3)
    cases = make_cases(work / "cases", model, seed=seed, n_audio=per, n_model=per, n_args=per)
    verdicts: Counter = Counter()
    worst_rss, worst_wall = 0, 0.0
    for k, case in enumerate(cases):
        outcome, why = run_case(case, timeout_s=180)
        if outcome is None:
            print(f"[{k + 1}/{len(cases)}] skipped {case.name}: {why}")
            continue
        problems = outcome.problems(codes=case.codes)
        verdicts["clean" if not problems else "FAILED"] += 1
        verdicts[f"exit {outcome.code}"] += 1
        worst_rss = max(worst_rss, outcome.peak_rss_bytes or 0)
        worst_wall = max(worst_wall, outcome.wall_s)
        last = (outcome.error_lines() or [""])[-1][:110]
        print(
            f"[{k + 1}/{len(cases)}] {'ok ' if not problems else 'BAD'} {case.name}: exit {outcome.code}, "
            f"{outcome.wall_s:.1f} s, {(outcome.peak_rss_bytes or 0) / 2**20:.0f} MiB  {last}"
            + (f"  PROBLEMS: {problems}" if problems else ""),
            flush=True,
        )
    print(
        f"\n{len(cases)} cases (seed {seed}): {dict(verdicts)}; worst peak {worst_rss / 2**20:.0f} MiB, "
        f"slowest {worst_wall:.1f} s"
    )
    return verdicts["FAILED"]


def _long_wav(path: Path, seconds: int, rate: int, channels: int) -> Path:
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        block = tone(1.0, rate, channels=channels)
        for _ in range(seconds):
            f.write(block)
    return path


def _long_cases(work: Path) -> list[tuple[str, list]]:
    """The largest inputs the CLI accepts, with the defaults: the longest clip a fit holds (215 s
    at 48 kHz; --steps 1, as more steps reuse the same memory), renders near their limit at
    192 kHz, and a 3600 s stereo file (the longest fill accepts) through every command that reads
    audio."""
    fit_wav = _long_wav(work / "fit215.wav", 215, 48_000, 1)
    hour = _long_wav(work / "hour.wav", 3600, 48_000, 2)
    model = work / "m215.sonode"
    out = ["-o", work / "o.wav", "--force"]
    return [
        ("fit 215 s 48 kHz, --steps 1", ["fit", fit_wav, "-o", model, "--steps", "1", "--force"]),
        ("render 70 s at 192 kHz", ["render", model, "--rate", "192000", "--end", "70", *out]),
        ("upsample 215 s model to 96 kHz", ["upsample", model, "--rate", "96000", *out]),
        ("fit 3600 s stereo 48 kHz", ["fit", hour, "-o", work / "h.sonode", "--force"]),
        ("upsample 3600 s stereo clip", ["upsample", hour, "--rate", "96000", *out]),
        ("fill 3600 s stereo, one gap", ["fill", hour, "--gap", "1800", "1800.02", *out]),
        ("fill 3600 s stereo --detect", ["fill", hour, "--detect", *out]),
        (
            "eval 3600 s stereo --duration 3600",
            ["eval", hour, "--duration", "3600", "-o", work / "ev", "--force"],
        ),
        (
            "eval --task fill 3600 s, 1 position",
            ["eval", hour, "--task", "fill", "--duration", "3600", "--positions", "1"]
            + ["--budget", "2", "-o", work / "evf", "--force"],
        ),
    ]


def memory(work: Path, tree: Path, long: bool = False) -> None:
    """#30's worst cases (peaks it reported before the fixes in brackets); ``long``: also the
    largest inputs accepted (`_long_cases`: about 1 GB of scratch files, many CPU minutes)."""
    model = _model(work)
    long_wav = work / "long.wav"
    with sf.SoundFile(long_wav, "w", samplerate=192_000, channels=6, subtype="PCM_16") as f:
        block = tone(1.0, 192_000, channels=6)
        for _ in range(120):
            f.write(block)
    cases = [
        (
            "upsample --rate 44101 (22.7 GB)",
            ["upsample", model, "--rate", "44101", "-o", work / "u.wav"],
        ),
        ("upsample --rate 48001", ["upsample", model, "--rate", "48001", "-o", work / "u.wav"]),
        (
            "render --rate 50000000 (2.86 GB)",
            ["render", model, "--rate", "50000000", "-o", work / "r.wav"],
        ),
        (
            "render --rate 8000 --end 200 (11 GB)",
            ["render", model, "--rate", "8000", "--end", "200", "-o", work / "r.wav"],
        ),
        (
            "fit --latent-dim 2000000 (11.7 GB)",
            ["fit", work / "seed.wav", "--latent-dim", "2000000", "-o", work / "m.sonode"],
        ),
        (
            "fill 120 s 192 kHz 6 ch (3.77 GB)",
            [
                "fill",
                long_wav,
                "--gap",
                "60",
                "60.01",
                "--method",
                "janssen",
                "-o",
                work / "f.wav",
                "--quiet",
                "--force",
            ],
        ),
    ]
    if long:
        cases += _long_cases(work)
    for name, args in cases:
        outcome = run(args, timeout_s=1800, env={"PYTHONPATH": str(tree)})
        print(
            f"{name:42s} exit {outcome.code}, {outcome.wall_s:6.1f} s, peak "
            f"{(outcome.peak_rss_bytes or 0) / 2**30:.2f} GiB  {(outcome.error_lines() or [''])[-1][:100]}",
            flush=True,
        )


def _latency(
    args, ready, work: Path, timeout_s: float = 600
) -> tuple[float | None, int | None, str]:
    began = time.monotonic()
    proc, fd = start(args, cwd=work, phases=True)  # fits announce their phases
    os.set_blocking(proc.stderr.fileno(), False)
    err = b""
    while proc.poll() is None and not ready(err.decode(errors="replace"), time.monotonic() - began):
        try:
            err += proc.stderr.read() or b""
        except (BlockingIOError, TypeError):
            pass
        if time.monotonic() - began > timeout_s:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return None, proc.returncode, "finished before the signal"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    os.set_blocking(proc.stderr.fileno(), True)
    outcome = finish(proc, fd, args, began, timeout_s)
    return time.monotonic() - sent, outcome.code, (outcome.error_lines() or [""])[-1][:90]


def signals(work: Path, only: str = "") -> None:
    model = _model(work)
    sf.write(work / "long.wav", tone(60.0, 48000), 48000, subtype="PCM_16")
    sf.write(work / "mid.wav", tone(30.0, 16000), 16000, subtype="PCM_16")
    phases = [
        (
            "fit: reading + identification",
            ["fit", work / "long.wav", "-o", work / "a.sonode", "--max-time", "600"],
            lambda e, t: "sonode-phase: identification" in e,
        ),
        (
            "fit: training",
            [
                "fit",
                work / "seed.wav",
                "-o",
                work / "b.sonode",
                "--max-time",
                "600",
                "--latent-dim",
                "16",
                "--lp-order",
                "64",
            ],
            lambda e, t: "sonode-phase: training" in e,
        ),
        (
            "render",
            ["render", model, "--end", "300", "-o", work / "r.wav"],
            lambda e, t: "rendering" in e and "needs" not in e,
        ),
        (
            "fill (sonode_fit)",
            [
                "fill",
                work / "mid.wav",
                "--gap",
                "10",
                "10.2",
                "--method",
                "sonode_fit",
                "--budget-s",
                "120",
                "-o",
                work / "f.wav",
                "--force",
            ],
            lambda e, t: "gap 1/1" in e,
        ),
        (
            "upsample (fit first)",
            [
                "upsample",
                work / "long.wav",
                "--rate",
                "96000",
                "-o",
                work / "u.wav",
                "--max-time",
                "600",
                "--force",
            ],
            lambda e, t: "sonode-phase: identification" in e,
        ),
        (
            "eval (fits)",
            [
                "eval",
                work / "mid.wav",
                "-o",
                work / "ev",
                "--rate",
                "8000",
                "--budget",
                "120",
                "--force",
            ],
            lambda e, t: "step" in e,
        ),
    ]
    for name, args, ready in phases:
        if only not in name:
            continue
        latency, code, last = _latency(args, ready, work)
        shown = "n/a" if latency is None else f"{latency:.2f} s"
        print(f"{name:32s} SIGINT -> exit {code} after {shown}  {last}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=0, help="fuzz cases to run (about a third of each kind)"
    )
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument(
        "--long", action="store_true", help="--memory: also the largest inputs the CLI accepts"
    )
    parser.add_argument("--signals", action="store_true")
    parser.add_argument(
        "--only", default="", help="--signals: only the phases whose name contains this"
    )
    parser.add_argument(
        "--before", type=Path, help="the tree to measure --memory on (default: this one)"
    )
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sonode-fuzz-") as tmp:
        work = Path(tmp)
        if args.cases:
            failed = fuzz(work, args.cases, args.seed)
        if args.memory:
            memory(work, args.before or ROOT, args.long)
        if args.signals:
            signals(work, args.only)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
