"""Listening-report benchmark: the cost of `sonode report` next to the fit it reports, and its size.

    python benchmarks/bench_report.py                                  # the guitar, 1 s, 60 s fit
    python benchmarks/bench_report.py data/more/sustained_flute_F4.wav --budget 30

Runs `sonode report CLIP --duration D --budget B -o OUT` in this process (the fit at 16 kHz, then
the page) and prints, from OUT/report.json, the fit's and the report's wall and CPU seconds side by
side, their ratios (goal: the report under 10 % of the fit) and the folder's size (goal: < 5 MB
for a 1 s clip). On a shared machine a fit's wall time is its budget while the report's stretches
with the load, so the CPU ratio is the fairer of the two; both are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from sonode.cli import main


def run(clip: str, out: Path, duration_s: float, budget_s: float) -> dict:
    if out.exists():
        shutil.rmtree(out)
    result = CliRunner().invoke(
        main,
        [
            "report",
            clip,
            "-o",
            str(out),
            "--duration",
            str(duration_s),
            "--budget",
            str(budget_s),
            "--quiet",
            "--threads",
            "1",
        ],
    )
    if result.exit_code != 0:
        raise SystemExit(result.output)
    timings = json.loads((out / "report.json").read_text())["clips"][0]["timings"]
    page_bytes = sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".sonode"
    )
    return {**timings, "page_bytes": page_bytes}


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", default="data/decaying_steelguitar_C4.wav")
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=Path("outputs/bench_report"))
    args = parser.parse_args()
    r = run(args.clip, args.output, args.duration, args.budget)
    print(f"{Path(args.clip).name}, {args.duration:g} s, budget {args.budget:g} s")
    print(f"  fit     wall {r['fit_s']:7.1f} s   CPU {r['fit_cpu_s']:7.1f} s")
    print(f"  report  wall {r['report_s']:7.1f} s   CPU {r['report_cpu_s']:7.1f} s")
    print(
        f"  report / fit: wall {100 * r['report_s'] / r['fit_s']:.1f} %, CPU "
        f"{100 * r['report_cpu_s'] / r['fit_cpu_s']:.1f} %  (goal < 10 %)"
    )
    print(f"  page folder (without the model file): {r['page_bytes'] / 1e6:.2f} MB  (goal < 5 MB)")


if __name__ == "__main__":
    main_()
