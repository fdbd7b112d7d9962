"""The batch summary: one row per clip (`summary_row`), written as <out_dir>/sonode-batch.csv and
.json (`write_summary`), and the one status line per clip that `sonode fit CLIP... / DIR` prints.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sonode.batch.outputs import FitJob
from sonode.io.fileutil import SUMMARY_CSV_COLUMNS, atomic_write, write_json

SUMMARY_STEM = "sonode-batch"


def summary_row(
    job: FitJob,
    status: str,
    report: dict | None = None,
    error: str = "",
    wall_time_s: float | None = None,
    resumed: bool = False,
) -> dict[str, Any]:
    """One row of the batch summary (columns `SUMMARY_CSV_COLUMNS`); SNR in dB, times in seconds."""
    paths = job.paths()
    fit = report.get("fit") if isinstance(report, dict) else None
    fit = (
        {k: v for k, v in fit.items() if _is_number(v)} if isinstance(fit, dict) else {}
    )  # an edited report
    done = status in ("ok", "skipped")
    return {
        "clip": job.clip,
        "status": status,
        "snr_db": fit.get("snr_db"),
        "epochs": fit.get("epochs"),
        "wall_time_s": wall_time_s if wall_time_s is not None else fit.get("wall_time_s"),
        "resumed": resumed,
        "model": str(paths["model"]) if done else "",
        "recon": str(paths["recon"]) if done else "",
        "report": str(paths["report"]) if done else "",
        "curve": str(paths["curve"]) if done and paths["curve"].exists() else "",
        "error": error,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def skipped_row(job: FitJob) -> dict[str, Any]:
    """The row of a clip whose outputs are already complete (its figures come from its report; a
    report that is not a JSON object of numbers gives an empty row, never an error)."""
    try:
        report = json.loads(job.paths()["report"].read_text())
    except (OSError, ValueError, RecursionError):
        report = None
    return summary_row(job, "skipped", report)


def summary_paths(out_dir: str | Path) -> tuple[Path, Path]:
    """<out_dir>/sonode-batch.csv and .json."""
    return Path(out_dir) / f"{SUMMARY_STEM}.csv", Path(out_dir) / f"{SUMMARY_STEM}.json"


def write_summary(
    rows: list[dict[str, Any]], out_dir: str | Path, force: bool
) -> tuple[Path, Path]:
    """Write <out_dir>/sonode-batch.csv and .json (one row per clip, in input order), atomically.

    Returns:
        (csv path, json path).
    """
    from sonode.io.wav import check_output_path

    csv_path, json_path = summary_paths(out_dir)
    for path in (csv_path, json_path):
        check_output_path(path, force=force)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=SUMMARY_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_value(v) for k, v in row.items()} for row in rows)
    with atomic_write(csv_path) as tmp:
        tmp.write_text(text.getvalue())
    counts = {
        status: sum(r["status"] == status for r in rows) for status in ("ok", "skipped", "failed")
    }
    write_json(json_path, {"counts": counts, "clips": rows})
    return csv_path, json_path


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else value


def status_line(index: int, total: int, row: dict[str, Any]) -> str:
    """ "[3/8] ok       a.wav: SNR 21.40 dB, 120 epochs, 8.1 s" (the error for a failed clip)."""
    head = f"[{index}/{total}] {row['status']:<8} {row['clip']}"
    if row["status"] == "failed":
        return f"{head}: {row['error']}"
    snr = f"SNR {row['snr_db']:.2f} dB, " if row["snr_db"] is not None else ""
    wall = f", {row['wall_time_s']:.1f} s" if row["wall_time_s"] is not None else ""
    return f"{head}: {snr}{row['epochs']} epochs{wall}" + (
        " (resumed from its checkpoint)" if row["resumed"] else ""
    )
