"""#30: peak memory of every command (fit's training aside) at the largest inputs the CLI accepts.

    nice -n 10 python benchmarks/memory_survey.py                  # every case, a table at the end
    python benchmarks/memory_survey.py --only render,fill          # cases whose name has a word
    python benchmarks/memory_survey.py --work /tmp/survey --keep   # keep the generated inputs

The inputs are synthetic (`tests.hostile_support.tone`, 16-bit, written block by block) in a
scratch folder deleted at the end: a 3600 s 48 kHz stereo file (the longest `fill` accepts,
0.7 GB), a 600 s 192 kHz 8-channel file (the longest clip the reader accepts at its highest rate,
1.8 GB), a 400 s 48 kHz stereo file and a 20 s 48 kHz model. Spans and rates that the commands
size against the memory budget (`sonode.limits`) are set at 95 % of what the budget admits, so
each case is the largest that runs, and once more just past it (the refusal's own cost).

Every case but the batches is one child process at nice 10, one thread, its address space capped at the import
footprint + 4 GiB (so a runaway allocation fails instead of swapping, while peaks up to ~4 GiB are
still measured), killed after --timeout seconds. Its peak resident set and CPU seconds come from
wait4 (the kernel's figures, also when the child is killed). A batch runs worker processes: its
peak is the sum of resident sets over its process tree, sampled every 0.1 s
(`benchmarks/tree_memory.py`, no address-space cap; the PSS sum is printed beside it). Goal: peak
<= 2 GiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from tree_memory import measure as measure_tree  # noqa: E402

from sonode.limits import PROCESS_BASELINE_BYTES, memory_budget_bytes  # noqa: E402
from sonode.model.fit_size import max_fit_samples  # noqa: E402
from sonode.tasks.fill_scan import DETECT_BYTES_PER_SAMPLE  # noqa: E402
from sonode.tasks.render import RENDER_BYTES_PER_OUTPUT_SAMPLE  # noqa: E402
from tests.hostile_support import IMPORT_ADDRESS_SPACE_BYTES, tone  # noqa: E402

GOAL_BYTES = 2 << 30
GUARD_BYTES = IMPORT_ADDRESS_SPACE_BYTES + (4 << 30)


def write_long(path: Path, seconds: int, rate: int, channels: int) -> Path:
    """``seconds`` of `tone` at ``rate`` Hz, 16-bit, one second at a time (bounded memory)."""
    if not path.exists():
        block = tone(1.0, rate, channels=channels)
        with sf.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
            for _ in range(seconds):
                f.write(block)
    return path


def run_child(args: list, timeout_s: float) -> dict:
    """`sonode ARGS` (`python -c CODE` for ARGS ["-c", CODE]) in a child (nice 10, 1 thread, address
    space capped): its exit code, peak RSS (bytes), CPU seconds (user + sys, from wait4) and the
    last line of its stderr."""

    def limits():
        os.setsid()
        os.nice(max(0, 10 - os.nice(0)))  # nice 10, not 10 more than a niced parent
        resource.setrlimit(resource.RLIMIT_AS, (GUARD_BYTES, GUARD_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    err = tempfile.TemporaryFile()
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *([] if args[0] == "-c" else ["-m", "sonode"]), *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=env,
        preexec_fn=limits,
    )
    killed = threading.Event()

    def kill():
        killed.set()
        os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    lines = [
        ln.split("\r")[-1] for ln in err.read().decode(errors="replace").splitlines() if ln.strip()
    ]
    return {
        "code": "timeout" if killed.is_set() else proc.returncode,
        "peak": usage.ru_maxrss * 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": time.monotonic() - began,
        "line": (lines or [""])[-1].strip(),
        "traceback": any("Traceback" in ln for ln in lines),
    }


def run_tree(args: list) -> dict:
    """A command with worker processes (a batch): its peak is the sum of the resident sets of its
    whole process tree, sampled (`benchmarks/tree_memory.py`); the PSS sum goes in its last line."""
    r = measure_tree([str(a) for a in args], 0.1)
    return {
        "code": r["code"],
        "peak": r["rss"],
        "cpu_s": r["cpu_s"],
        "wall_s": r["wall_s"],
        "line": f"tree of {r['n_rss']} processes, PSS sum {r['pss'] / 2**30:.2f} GiB; "
        + next((ln for ln in reversed(r["lines"]) if "%" not in ln), ""),
        "traceback": any("Traceback" in ln for ln in r["lines"]),
    }


def largest(bytes_per_sample: float, fraction: float = 0.95) -> int:
    """Samples an operation of ``bytes_per_sample`` may hold within the budget, times ``fraction``."""
    return int(fraction * (memory_budget_bytes() - PROCESS_BASELINE_BYTES) / bytes_per_sample)


def cases(work: Path) -> list[tuple[str, list]]:
    """(name, argv) of every case, cheapest inputs first; makes the inputs it needs."""
    fast = ["--steps", "1", "--continuation-training-steps", "0", "--quiet", "--force"]
    model = work / "m2.sonode"
    src = write_long(work / "m2.wav", 2, 48_000, 1)
    q = ["--force", "--quiet"]
    out = ["-o", work / "out.wav", *q]
    n_render = largest(RENDER_BYTES_PER_OUTPUT_SAMPLE)
    t768 = f"{n_render / 768_000:.2f}"
    t48 = f"{n_render / 48_000:.1f}"
    over = f"{1.1 * n_render / 0.95 / 768_000:.2f}"
    hour = write_long(work / "hour48x2.wav", 3600, 48_000, 2)
    det_s = int(largest(DETECT_BYTES_PER_SAMPLE) / 48_000)
    det = write_long(work / f"det{det_s}.wav", det_s, 48_000, 2)
    hi = write_long(work / "hi192x8.wav", 600, 192_000, 8)
    read16 = f"from sonode.io.clip import read_clip; read_clip({str(hi)!r}, rate=16000)"
    small = [write_long(work / f"b{k}.wav", 1, 16_000, 1) for k in range(2)]
    fit_s = int(0.95 * max_fit_samples(48_000) / 48_000)  # the longest clip a fit accepts, 95 %
    big = [write_long(work / f"fit{fit_s}_{k}.wav", fit_s, 48_000, 1) for k in range(2)]
    return [
        ("upsample 600 s 192k 8ch --rate 768000", ["upsample", hi, "--rate", 768_000, *out]),
        ("eval 3600 s 48k 2ch --duration 600", ["eval", hour, "--duration", 600, "--budget", 2, "-o", work / "ev", *q]),
        ("read_clip 600 s 192k 8ch at 16 kHz (fit's and report's reading)", ["-c", read16]),
        ("report 600 s 192k 8ch CLIP --steps 1", ["report", hi, "--steps", 1, "-o", work / "rep2", *q]),
        ("fill 3600 s 48k 2ch, 1 gap, --context 10", ["fill", hour, "--gap", 1800, 1800.05, "--context", 10, *out]),
        ("fill 600 s 192k 8ch, 1 gap, --context 10", ["fill", hi, "--gap", 300, 300.05, "--context", 10, *out]),
        ("fill 3600 s 48k 2ch --detect (past the bound)", ["fill", hour, "--detect", *out]),
        ("fit 2 s 48 kHz (the model; training skipped)", ["fit", src, "-o", model, *fast]),
        ("info MODEL", ["info", model]),
        (f"render --rate 768000 --end {t768}", ["render", model, "--rate", 768_000, "--end", t768, *out]),
        (f"render --rate 768000 --end {over} (past the bound)", ["render", model, "--rate", 768_000, "--end", over]
         + out),
        (f"extrapolate --seconds {t768} --rate 768000", ["extrapolate", model, "--seconds", t768, "--rate", 768_000]
         + out),
        ("extrapolate --seconds 3600 (past the bound)", ["extrapolate", model, "--seconds", 3600, *out]),
        (f"render --rate 8000 --end {t48} (decimation)", ["render", model, "--rate", 8000, "--end", t48, *out]),
        ("upsample MODEL --rate 768000", ["upsample", model, "--rate", 768_000, *out]),
        (f"fill {det_s} s 48k 2ch --detect", ["fill", det, "--detect", *out]),
        ("plot MODEL", ["plot", model, "-o", work / "p.png", "--force"]),
        ("report MODEL", ["report", model, "-o", work / "rep", "--force", "--quiet"]),
        ("eval 600 s 192k 8ch (defaults: 1 s)", ["eval", hi, "--budget", 2, "-o", work / "ev", *q]),
        ("batch: fit 2 clips of 1 s", ["fit", *small, "--out-dir", work / "batch", *fast]),
        (f"batch: fit 2 clips of {fit_s} s 48 kHz (95 % of a fit's bound)", ["fit", *big, "--out-dir", work / "batch",
                                                                          *fast]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated words; run cases naming one")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    a = parser.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="sonode-survey-"))
    work.mkdir(parents=True, exist_ok=True)
    words = [w for w in a.only.split(",") if w]
    rows = []
    try:
        print(
            f"budget {memory_budget_bytes() / 2**30:.2f} GiB, guard {GUARD_BYTES / 2**30:.1f} GiB of address space"
        )
        for name, args in cases(work):
            is_fit = name.startswith("fit 2 s")  # the model the later cases read
            if (is_fit and (work / "m2.sonode").exists()) or (
                words and not is_fit and not any(w in name for w in words)
            ):
                continue
            r = run_tree(args) if name.startswith("batch") else run_child(args, a.timeout)
            (work / "out.wav").unlink(missing_ok=True)  # outputs of up to 1.8 GB: free the disk
            flag = "OVER" if r["peak"] > GOAL_BYTES else ("TRACEBACK" if r["traceback"] else "")
            rows.append((name, r, flag))
            print(
                f"| {name} | {r['peak'] / 2**30:.2f} GiB | {r['cpu_s']:.1f} | {r['code']} | "
                f"{r['line'][:140]} | {flag}",
                flush=True,
            )
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}; goal: peak <= 2 GiB\n")
    print("| case | peak RSS | CPU s | exit | last line |\n|---|---|---|---|---|")
    for name, r, flag in rows:
        print(f"| {name} | {r['peak'] / 2**30:.2f} GiB{' **' + flag + '**' if flag else ''} | "
              f"{r['cpu_s']:.1f} | {r['code']} | {r['line'][:120]} |")  # fmt: skip


if __name__ == "__main__":
    main()
