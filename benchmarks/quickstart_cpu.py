"""The README quickstart (`sonode fit data/decaying_steelguitar_C4.wav -r 16000 -t 60`) through the
CLI's own code path, with the budget counted in CPU seconds of the process (`budget_clock.py`), so
that two trees measured one after the other on a loaded machine are comparable (issue #22).

    python benchmarks/quickstart_cpu.py [TREE ...]   # default: this tree

Each tree runs in its own fresh process (its sonode on the path). The CLI's wall-clock --max-time
alarm only acts before training starts and while writing, so on a loaded machine the
reconstruction and curve may be reported unwritten; the fit itself is what is measured. Prints the
steps, the linear start's and the kept SNR, the final check's size and the continuation's time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import os, sys, tempfile, time
root = sys.argv[1]
sys.path[:0] = [root, root + "/benchmarks"]
from budget_clock import use_cpu_clock
use_cpu_clock()
import sonode.api as api
seen = {}
real = api.fit
def fit(*a, **k):
    fitted = real(*a, **k)
    seen.update(fitted.info["fit"])
    return fitted
api.fit = fit
from sonode.cli import main
out = tempfile.mkdtemp()
args = ["fit", root + "/data/decaying_steelguitar_C4.wav", "-r", "16000", "-t", "60",
        "-o", out + "/m.sonode", "--quiet"]
start = time.process_time()
try:
    main(args, standalone_mode=False)
except SystemExit:
    pass
f, c = seen, seen.get("continuation_training", {})
print(f"{root}: {f.get('epochs')} steps, {f.get('initial_snr_db'):.2f} -> {f.get('snr_db'):.2f} dB, "
      f"final check {f.get('discretisation_check', {}).get('substeps_per_sample')} substeps, "
      f"continuation {c.get('wall_time_s') or 0:.1f} wall s (kept {c.get('field_kept')}, "
      f"stopped {bool(c.get('stopped') or c.get('skipped'))}), "
      f"process {time.process_time() - start:.1f} CPU s, load {os.getloadavg()[0]:.1f}")
"""


def main() -> None:
    trees = sys.argv[1:] or [str(ROOT)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for tree in trees:
        env["PYTHONPATH"] = tree
        with tempfile.TemporaryDirectory() as cwd:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, tree],
                env=env,
                cwd=cwd,
                capture_output=True,
                text=True,
            )
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(tree)]
        print(lines[-1] if lines else f"{tree}: failed\n{done.stderr[-2000:]}", flush=True)


if __name__ == "__main__":
    main()
