"""The result tables of `sonode eval` (sonode.evaluation.evaluate) as Markdown: medians over the
clips per task and method, then the reconstruction, free-run and per-clip tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from sonode.evaluation.scores import SNR_WINDOWS_MS


def medians(per_clip: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{method: {metric: median over the clips}} of per-clip {method: {metric: value}} tables."""
    return {
        method: {
            metric: statistics.median(c[method][metric] for c in per_clip) for metric in scores
        }
        for method, scores in per_clip[0].items()
    }


def _table(title: str, header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A Markdown table under a "### title" heading: the header, then one line per row of cells."""
    return [
        f"### {title}",
        "",
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def results_markdown(results: dict[str, Any]) -> str:
    """The result tables: one per task, a row per method (median over clips), then per clip."""
    opts = results["options"]
    lines = [
        f"Input rate {opts['low_rate']} Hz, fit budget {opts['budget_s']:g} s per fit, "
        f"continuation horizon {opts['horizon_s']:g} s, {len(results['clips'])} clip(s). Medians over clips.",
        "",
    ]
    tables = [
        (
            "Upsampling (to each clip's own rate; LSD as ssr_eval, gains matched)",
            "upsampling",
            ["snr_db", "lsd", "lsd_below", "lsd_above", "energy_above_vs_truth_db"],
        ),
        ("Continuation", "continuation", [f"snr_{ms}ms_db" for ms in SNR_WINDOWS_MS] + ["lsd"]),
    ]
    for title, task, metrics in tables:
        medians_of = results["median"][task].items()
        rows = ([method, *(f"{scores[m]:.2f}" for m in metrics)] for method, scores in medians_of)
        lines += [*_table(title, ["method", *metrics], rows), ""]
    header = ["clip", "SNR dB", "discretisation dB", "initial (linear) dB", "epochs", "fit time s"]
    rows = []
    for c in results["clips"]:
        r = c["reconstruction"]
        rows.append(
            [
                c["clip"],
                f"{r['snr_db']:.2f}",
                f"{r['discretisation_snr_db']:.1f}",
                f"{r['initial_snr_db']:.2f}",
                f"{r['epochs']}",
                f"{r['fit_time_s']:.1f}",
            ]
        )
    lines += [*_table("Reconstruction (sonode)", header, rows), ""]
    rows = [
        [c["clip"], f"{t['snr_db']:.2f}", f"{t['level_error_db']:.1f}", f"{t['lsd']:.2f}"]
        for c in results["clips"]
        for t in [c["trajectory"]]
    ]
    lines += _table(
        "One trajectory (sonode's free run from its trajectory state over the fitted clip)",
        ["clip", "SNR dB", "worst 100 ms level error dB", "LSD"],
        rows,
    )
    metrics = [f"snr_{ms}ms_db" for ms in SNR_WINDOWS_MS] + ["lsd"]
    rows = []
    for c in results["clips"]:
        u, k = c["upsampling"], c["continuation"]
        burgs = [
            scores
            for name, scores in k.items()
            if name.endswith("_burg") and int(name[3:-5]) >= 256
        ]
        best = [max(b[m] for b in burgs) for m in metrics[:-1]] + [min(b["lsd"] for b in burgs)]
        rows.append(
            [
                c["clip"],
                f"{u['sonode']['snr_db']:.2f} / {u['sinc']['snr_db']:.2f}",
                " / ".join(f"{k['sonode'][m]:.2f}" for m in metrics),
                " / ".join(f"{v:.2f}" for v in best),
            ]
        )
    header = [
        "clip",
        "upsampling SNR sonode / sinc",
        "continuation " + " / ".join(metrics) + ": sonode",
        "best Burg",
    ]
    lines += [
        "",
        *_table("Per clip: sonode vs the best Burg order (256–2048) per column", header, rows),
    ]
    return "\n".join(lines) + "\n"
