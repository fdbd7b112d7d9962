"""The tables of benchmarks/bench_fill_wide.py: its records summarised per rate, gap length,
category and method against the reference (`summary`, `markdown`), and the offline re-weighing of
a ``--method parts --save-fills`` run's candidate fills (`analyse`, its ``--analyse`` mode)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from sonode.dsp.metrics import snr_db
from sonode.evaluation.evaluate_fill import gap_lsd

REFERENCE = "janssen20"
RESIDUAL_GAINS = (0.0, 0.25, 0.5, 0.75, 1.0)  # analyse: levels of the residual scanned offline


def summary(records: list[dict]) -> list[dict]:
    """Per (rate, length, category incl. "all", method): n, median SNR, median LSD, wins vs the
    reference on the same gaps, median paired SNR difference to the reference."""
    ref = {
        (r["clip"], r["rate"], r["length_ms"], r["start"]): r
        for r in records
        if r["method"] == REFERENCE
    }
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        for category in (r["category"], "all"):
            groups.setdefault((r["rate"], r["length_ms"], category, r["method"]), []).append(r)
    rows = []
    for (rate, length, category, method), rs in sorted(groups.items()):
        paired = [
            (r, ref[key])
            for r in rs
            if (key := (r["clip"], r["rate"], r["length_ms"], r["start"])) in ref
        ]
        rows.append(
            {
                "rate": rate,
                "length_ms": length,
                "category": category,
                "method": method,
                "n": len(rs),
                "snr_db": statistics.median(r["snr_db"] for r in rs),
                "lsd": statistics.median(r["lsd"] for r in rs),
                "wins": sum(r["snr_db"] > q["snr_db"] for r, q in paired),
                "paired": len(paired),
                "delta_db": statistics.median(r["snr_db"] - q["snr_db"] for r, q in paired)
                if paired
                else float("nan"),
                "time_s": statistics.median(r["time_s"] for r in rs),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """`summary`'s rows as a markdown table, by rate, each rate's "all" rows first."""
    lines = [
        f"Median SNR over the gap dB / median LSD / wins vs {REFERENCE} (of n) / median paired "
        "ΔSNR dB / median s per gap",
        "",
        "| rate | gap | category | method | SNR | LSD | wins | ΔSNR | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["rate"], r["category"] != "all", r["category"])):
        lines.append(
            f"| {r['rate']} | {r['length_ms']} ms | {r['category']} | {r['method']} | "
            f"{r['snr_db']:.2f} | {r['lsd']:.2f} | {r['wins']}/{r['paired']} | "
            f"{r['delta_db']:+.2f} | {r['time_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def analyse(folder: Path) -> str:
    """Re-weigh the saved candidate fills of a ``--method parts --save-fills`` run (OUT/fills):
    median SNR of the 1/err² average over subsets of the candidates, against the reference's.
    The mean only (no residual): how much each candidate adds to the combination."""
    results = json.loads((folder / "results.json").read_text())["gaps"]
    reference = {
        (r["clip"], r["rate"], r["length_ms"], r["start"]): r["snr_db"]
        for r in results
        if r["method"] == REFERENCE
    }
    stems = {Path(r["clip"]).stem: r["clip"] for r in results}
    subsets = {  # label: (which candidates, exponent of 1/err in the weights)
        "orders (the method before)": (lambda n: n.startswith("cand_order"), 2),
        "orders + janssen": (lambda n: n.startswith("cand_order") or n == "cand_janssen", 2),
        "orders + reestimate": (
            lambda n: n.startswith("cand_order") or n == "cand_reestimate",
            2,
        ),
        "all (the method)": (lambda n: True, 2),
        "all, weights 1/err": (lambda n: True, 1),
        "all, weights 1/err^4": (lambda n: True, 4),
        "all, equal weights": (lambda n: True, 0),
        "janssen + reestimate": (lambda n: n in ("cand_janssen", "cand_reestimate"), 2),
    }
    table: dict[tuple, list] = {}
    for path in sorted((folder / "fills").glob("*.npz")):
        stem, rate, length, start = path.stem.rsplit("_", 3)
        key = (stems.get(stem, stem), int(rate), int(length), int(start))
        if key not in reference:
            continue
        data = np.load(path)
        # validation order: orders ascending then the extras, as interpolate_gap names them
        snr_val = data["validation_snr_db"]
        ordered = [n for n in data.files if n.startswith("cand_")]
        for label, (keep, power) in subsets.items():
            chosen = [i for i, n in enumerate(ordered) if keep(n)]
            w = 10 ** (power * snr_val[chosen] / 10)  # ∝ 1/err^power (the same energy for all)
            if not np.all(np.isfinite(w)) or w.sum() == 0:
                w = np.ones(len(chosen))
            mean = (w / w.sum()) @ np.array([data[ordered[i]] for i in chosen])
            delta = snr_db(data["truth"], mean) - reference[key]
            table.setdefault((int(rate), int(length), label), []).append(delta)
        if "residual" in data.files:  # the residual's level: fill = mean + gain · residual
            for gain in RESIDUAL_GAINS:
                fill = data["mean"] + gain * data["residual"]
                row = (snr_db(data["truth"], fill) - reference[key], gap_lsd(data["truth"], fill))
                table.setdefault((int(rate), int(length), f"residual x {gain:g}"), []).append(row)
        each = [snr_db(data["truth"], data[n]) for n in ordered]
        best_validated = each[int(np.nanargmax(snr_val))]
        table.setdefault((int(rate), int(length), "one: best on the pseudo-gaps"), []).append(
            best_validated - reference[key]
        )
        table.setdefault((int(rate), int(length), "one: best in hindsight (oracle)"), []).append(
            max(each) - reference[key]
        )
    lines = [
        f"Median paired ΔSNR (dB) of the 1/err² mean over candidate subsets, against {REFERENCE}; "
        "wins / n",
        "",
        "| rate | gap | candidates | ΔSNR | wins |",
        "|---|---|---|---|---|",
    ]
    for (rate, length, label), deltas in sorted(table.items()):
        lsd = ""
        if isinstance(deltas[0], tuple):  # residual rows: (ΔSNR, LSD)
            lsd = f" (median LSD {np.median([d[1] for d in deltas]):.2f})"
            deltas = [d[0] for d in deltas]
        wins = sum(d > 0 for d in deltas)
        lines.append(
            f"| {rate} | {length} ms | {label}{lsd} | {np.median(deltas):+.2f} | "
            f"{wins}/{len(deltas)} |"
        )
    return "\n".join(lines) + "\n"
