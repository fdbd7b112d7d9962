"""Import cost of `sonode.ode` and `sonode` beyond `import torch` (issue #26 goal: < 1 s).

Each figure is the median over --runs fresh interpreters of the wall time of the import statements,
measured inside the interpreter (interpreter start-up excluded). Run:

    PYTHONPATH=$PWD python benchmarks/bench_import.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = """import time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
{extra}
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def timed(extra: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(extra=extra)], capture_output=True, text=True, check=True
    )
    torch_s, extra_s = map(float, out.stdout.split())
    return torch_s, extra_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    for statement in ("import sonode.ode", "import sonode", "import sonode; sonode.fit"):
        torch_s, extra_s = zip(*(timed(statement) for _ in range(runs)), strict=False)
        print(
            f"{statement:28s} import torch {statistics.median(torch_s):.3f} s, "
            f"then {statistics.median(extra_s):.3f} s more (median of {runs})"
        )


if __name__ == "__main__":
    main()
