"""#30: peak memory of a whole command, summed over its process tree (a batch fit runs workers).

    python benchmarks/tree_memory.py -- fit a.wav b.wav --out-dir /tmp/o --steps 1
    python benchmarks/tree_memory.py --interval 0.2 -- fit DIR --out-dir /tmp/o
    git archive db05a0d sonode | tar -x -C /tmp/base   # then --tree /tmp/base: the code before

Runs `python -m sonode ARGS` in a new session at nice 10 (one torch thread) and samples every
process of that session and every descendant (the CLI, Dask's worker processes, a batch's child
fits in sessions of their own) every --interval seconds:

- the sum of their resident sets (RSS: shared libraries such as torch's counted once per process,
  an upper bound of what the command holds), and
- the sum of their proportional set sizes (PSS, /proc/PID/smaps_rollup: a shared page counts
  1/n in each of the n processes mapping it; processes outside the command that map the same
  libraries, e.g. other torch programs, lower it), and
- the pages private to each process summed, plus the largest process's shared pages once
  ("private + shared once": the workers share torch's libraries, ~0.23 GiB resident): what the
  command takes from the machine, the figure the batch's worker count is sized against.

Prints each peak with the process count at it, the command's exit code, its last stderr line and
the CPU seconds of the whole tree (wait4 of the session leader: its waited-for children included).
A peak between two samples can be missed: the largest single-process RSS is the kernel's
(ru_maxrss of the children) and is printed too.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 1 << 30


def session_pids(sid: int) -> list[int]:
    """Processes of the session ``sid`` (field 6 of /proc/PID/stat) and every descendant of its
    leader, also those in a session of their own (a batch's child fits)."""
    parent_of, session_of = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(name)], session_of[int(name)] = int(fields[1]), int(fields[3])
    found = {pid for pid, s in session_of.items() if s == sid}
    for pid in parent_of:
        ancestor = pid
        while ancestor > 1 and ancestor not in found:
            ancestor = parent_of.get(ancestor, 0)
        if ancestor in found:
            found.add(pid)
    return sorted(found)


def sizes_of(pid: int) -> tuple[int, int, int, int]:
    """(RSS, PSS, private, shared) bytes of one process (/proc/PID/smaps_rollup); zeros once gone."""
    found = dict.fromkeys(("Rss", "Pss", "Private_Clean", "Private_Dirty", "Shared_Clean"), 0)
    found["Shared_Dirty"] = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key = line.split(":")[0]
                if key in found:
                    found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    private = found["Private_Clean"] + found["Private_Dirty"]
    return found["Rss"], found["Pss"], private, found["Shared_Clean"] + found["Shared_Dirty"]


def measure(args: list[str], interval_s: float, env: dict | None = None, tree: Path = ROOT) -> dict:
    """Run `python -m sonode ARGS` and return its tree's peaks (bytes), exit code and last line."""

    def child():
        os.setsid()
        os.nice(max(0, 10 - os.nice(0)))

    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        **(env or {}),
    }
    err = tempfile.TemporaryFile()
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonode", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=env,
        cwd=tree,  # `python -m` puts the working folder first on sys.path: give absolute paths
        preexec_fn=child,
    )
    peak = {"rss": 0, "pss": 0, "unique": 0, "n_rss": 0, "n_pss": 0, "n_unique": 0, "procs": 0}
    each: dict[int, list] = {}  # pid -> [peak RSS, peak PSS, what it runs]
    done = threading.Event()

    def sample():
        while not done.is_set():
            pids = session_pids(proc.pid)
            sizes = [sizes_of(p) for p in pids]
            for pid, (rss, pss, _, _) in zip(pids, sizes, strict=True):
                mine = each.setdefault(pid, [0, 0, command_of(pid)])
                mine[0], mine[1] = max(mine[0], rss), max(mine[1], pss)
            rss, pss = sum(s[0] for s in sizes), sum(s[1] for s in sizes)
            # Pages private to each process, plus the shared ones (torch's libraries, mapped by
            # every worker) once: what the command takes from the machine.
            unique = sum(s[2] for s in sizes) + max((s[3] for s in sizes), default=0)
            if unique > peak["unique"]:
                peak["unique"], peak["n_unique"] = unique, len(pids)
            if rss > peak["rss"]:
                peak["rss"], peak["n_rss"] = rss, len(pids)
            if pss > peak["pss"]:
                peak["pss"], peak["n_pss"] = pss, len(pids)
            peak["procs"] = max(peak["procs"], len(pids))
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.monotonic() - began
    time.sleep(2 * interval_s)  # workers the leader did not wait for are still sampled
    done.set()
    sampler.join()
    err.seek(0)
    lines = [
        ln.split("\r")[-1].strip()
        for ln in err.read().decode(errors="replace").splitlines()
        if ln.strip()
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        **peak,
        "code": os.waitstatus_to_exitcode(status),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_single_rss": max(usage.ru_maxrss, children.ru_maxrss) * 1024,
        "wall_s": wall_s,
        "lines": lines,
        "each": sorted(each.values(), reverse=True),
    }


def command_of(pid: int) -> str:
    """A short name of what the process runs (its command line's last words)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return " ".join(w for w in words if w)[-60:]


def show(r: dict) -> str:
    return (
        f"tree peak: private + shared once {r['unique'] / GIB:.2f} GiB ({r['n_unique']} processes); "
        f"RSS sum {r['rss'] / GIB:.2f} GiB ({r['n_rss']} processes), PSS sum "
        f"{r['pss'] / GIB:.2f} GiB ({r['n_pss']} processes); largest process {r['max_single_rss'] / GIB:.2f}"
        f" GiB; exit {r['code']}; {r['cpu_s']:.1f} CPU s (leader), {r['wall_s']:.1f} s wall at load "
        f"{os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="sonode tree to run (e.g. an older commit's export)"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then sonode's arguments")
    a = parser.parse_args()
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    r = measure(args, a.interval, tree=a.tree)
    for line in r["lines"]:
        if "%" not in line:  # progress bars
            print("  |", line[:200])
    for rss, pss, what in r["each"]:
        print(f"  process peak RSS {rss / GIB:.2f} GiB, PSS {pss / GIB:.2f} GiB: {what}")
    print(show(r))


if __name__ == "__main__":
    main()
