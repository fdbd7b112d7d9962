"""Running `sonode` as a hostile user would: a real subprocess with a wall-clock timeout, an
address-space limit (resource.setrlimit in the child) and its peak memory measured.

Used by tests/test_hostile_*.py and benchmarks/fuzz_hostile.py. Every case must end in exit 0 or 2
(or the code the case expects), with no traceback and, when it fails, exactly one line on stderr.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.cli_support import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]
#: What a sonode process maps before any work (torch, numpy, soundfile, matplotlib): VmPeak measured
#: at import, 3.4 GB of address space for 0.63 GB resident. The child's address space is capped at
#: this plus the 2 GiB goal, so a runaway allocation fails inside the child instead of swapping.
IMPORT_ADDRESS_SPACE_BYTES = 3_600 << 20
GOAL_PEAK_BYTES = 2 << 30
ADDRESS_SPACE_LIMIT_BYTES = IMPORT_ADDRESS_SPACE_BYTES + GOAL_PEAK_BYTES
#: A hang net, not a bound on speed: a child still running after this long is killed and reported as
#: hung. The CI runs on a loaded 2-core machine where a fit of FAST's size takes tens of seconds
#: (torch's import alone: seconds), so no test asserts how long a command took; a test that needs
#: "at once" checks that no further work began (phases, files), see tests/held_child.py.
HANG_S = 600.0
DEFAULT_TIMEOUT_S = HANG_S
RATE = 16000
#: One optimiser step of the tiny model, without progress output: the fits of the hostile cases.
#: No continuation training (30 steps by default: 2.8 of a fit's 4.4 CPU s): no case is about it.
FAST = ["--steps", "1", *TINY_MODEL, "--continuation-training-steps", "0", "--quiet"]
# A child that reports its own peak resident memory (ru_maxrss, KiB on Linux) on fd 3 at exit.
_WRAPPER = (
    "import atexit, os, resource, runpy, sys\n"
    "fd = int(os.environ.pop('SONODE_TEST_RSS_FD'))\n"
    "atexit.register(lambda: os.write(fd, str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).encode()))\n"
    "import tests.phase_trace\n"
    "if os.environ.pop('SONODE_TEST_PHASES', ''):\n"
    "    tests.phase_trace.install()\n"
    "imports = os.environ.pop('SONODE_TEST_IMPORTS', '')\n"
    "if imports:\n"
    "    tests.phase_trace.announce_imports(imports.split(','))\n"
    "sys.argv = ['sonode'] + sys.argv[1:]\n"
    "runpy.run_module('sonode', run_name='__main__')\n"
)


@dataclass
class Outcome:
    args: list[str]
    code: int | None
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int | None
    timed_out: bool

    def error_lines(self) -> list[str]:
        """stderr's lines, progress lines (rewritten with \\r) reduced to their last state."""
        return [
            line.split("\r")[-1]
            for line in self.stderr.splitlines()
            if line.split("\r")[-1].strip()
        ]

    def problems(self, codes=(0, 2)) -> list[str]:
        """What is wrong with this outcome (empty when it is clean)."""
        out = []
        if self.timed_out:
            out.append(f"hung (killed after {self.wall_s:.0f} s)")
        elif self.code not in codes:
            out.append(f"exit {self.code}, expected one of {codes}")
        if "Traceback" in self.stderr:
            out.append("traceback")
        marker = "interrupted" if self.code == 130 else "sonode: error"
        verdicts = [ln for ln in self.error_lines() if marker in ln]
        if self.code not in (0, None) and len(verdicts) != 1:
            out.append(f"{len(verdicts)} lines with {marker!r} on stderr, not one")
        if self.peak_rss_bytes is not None and self.peak_rss_bytes > GOAL_PEAK_BYTES:
            out.append(f"peak memory {self.peak_rss_bytes / 2**30:.2f} GiB > 2 GiB")
        return out

    def describe(self) -> str:
        return (
            f"sonode {' '.join(self.args)} -> exit {self.code} in {self.wall_s:.1f} s, peak "
            f"{(self.peak_rss_bytes or 0) / 2**20:.0f} MiB; stderr: {self.stderr[-600:]!r}"
        )


def _limits(address_space_bytes: int | None):
    def apply():
        os.setsid()  # its own process group: a timeout kills the whole tree
        if address_space_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def start(
    args,
    *,
    env: dict | None = None,
    cwd: str | Path | None = None,
    address_space_bytes: int | None = ADDRESS_SPACE_LIMIT_BYTES,
    phases: bool = False,
    imports: tuple[str, ...] = (),
    hold: bool = False,
) -> tuple[subprocess.Popen, int]:
    """Start `sonode ARGS` (returns the process and the read end of its peak-memory pipe); with
    ``phases`` a fit prints ``sonode-phase: NAME`` lines on stderr, and ``sonode-phase: importing
    NAME`` as the import of each module in ``imports`` begins (tests/phase_trace.py); with ``hold``
    it stops after each such line until it is sent SIGCONT (`release`)."""
    read_fd, write_fd = os.pipe()
    child_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "SONODE_TEST_RSS_FD": str(write_fd),
        **({"SONODE_TEST_PHASES": "1"} if phases else {}),
        **({"SONODE_TEST_IMPORTS": ",".join(imports)} if imports else {}),
        **({"SONODE_TEST_HOLD": "1"} if hold else {}),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRAPPER, *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
        cwd=cwd,
        pass_fds=(write_fd,),
        preexec_fn=_limits(address_space_bytes),
    )
    os.close(write_fd)
    return proc, read_fd


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP), as /proc says."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except FileNotFoundError:
        return False


def release(proc: subprocess.Popen) -> None:
    """Continue ``proc`` if it has stopped itself (a ``hold`` after an announcement)."""
    if stopped(proc.pid):
        try:
            os.kill(proc.pid, signal.SIGCONT)
        except ProcessLookupError:  # it has ended meanwhile
            pass


def finish(proc: subprocess.Popen, read_fd: int, args, started: float, timeout_s: float) -> Outcome:
    timed_out = False
    try:
        stdout, stderr = proc.communicate(
            timeout=max(0.1, timeout_s - (time.monotonic() - started))
        )
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    wall = time.monotonic() - started
    with os.fdopen(read_fd, "rb") as f:
        rss = f.read().decode() or None
    return Outcome(
        [str(a) for a in args],
        proc.returncode,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
        wall,
        int(rss) * 1024 if rss else None,
        timed_out,
    )


def run(
    args,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: dict | None = None,
    cwd=None,
    address_space_bytes: int | None = ADDRESS_SPACE_LIMIT_BYTES,
    phases: bool = False,
) -> Outcome:
    """Run `sonode ARGS` to the end (or kill it after ``timeout_s``); ``phases`` as in `start`."""
    started = time.monotonic()
    proc, read_fd = start(
        args, env=env, cwd=cwd, address_space_bytes=address_space_bytes, phases=phases
    )
    return finish(proc, read_fd, args, started, timeout_s)


def tone(seconds: float = 0.3, rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Two decaying partials plus a little noise: (n,) or (n, channels), peak < 1."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.exp(-3 * t) * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)
    x = x + 1e-3 * np.random.default_rng(seed).standard_normal(t.size)
    return x if channels == 1 else np.stack([x * (0.5 + 0.1 * c) for c in range(channels)], axis=1)


def fit_take(root: Path, seconds: float) -> Path:
    """``root``/take.wav (`tone` of ``seconds`` at RATE, 16-bit) and ``root``/take.sonode fitted from
    it with FAST, in this process; returns ``root``."""
    import soundfile as sf

    from tests.cli_support import run as cli

    sf.write(root / "take.wav", tone(seconds, RATE), RATE, subtype="PCM_16")
    result = cli("fit", root / "take.wav", "-o", root / "take.sonode", *FAST)
    assert result.exit_code == 0, result.output
    return root


def pcm16_wav_bytes(x: np.ndarray, rate: int) -> bytes:
    """A PCM_16 mono WAV in memory (standard library only: the bytes a fuzzer mutates)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def small_tmpfs(size: str = "1m") -> tuple[Path | None, str]:
    """Mount a tmpfs of ``size`` (needs root); returns (mount point, "") or (None, why not)."""
    point = Path(tempfile.mkdtemp(prefix="sonode-full-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        point.rmdir()
        return None, f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'})"
    return point, ""


def unmount(point: Path) -> None:
    subprocess.run(["umount", str(point)], capture_output=True)
    point.rmdir()


# Tasks for `sonode.batch.child.map_in_children` in tests (importable by name in the child process).
def square_task(item, threads):
    return item * item


def failing_task(item, threads):
    raise ValueError(f"item {item} is bad")


def dying_task(item, threads):
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def waiting_task(pid_file, threads):
    """Writes its pid to ``pid_file``, then waits forever."""
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(0.05)
