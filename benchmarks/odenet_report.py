"""Tables and goal checks of benchmarks/odenet_digits.py, from its results dict (no torch needed)."""

from __future__ import annotations

import statistics

LABELS = {
    "mlp": "1-layer MLP (64-300-10)",
    "resnet": "ResNet (6 residual blocks)",
    "rknet": "RK-Net (RK4, 6 steps, backprop)",
    "odenet": "ODE-Net (dopri5 1e-3, adjoint)",
    "odenet-fixed": "ODE-Net (RK4 L steps, adjoint)",
}
SWEEP_LABELS = {
    "resnet": "ResNet (L blocks)",
    "rknet": "RK-Net (RK4 L steps, backprop)",
    "odenet-fixed": "ODE-Net (RK4 L steps, backsolve adjoint)",
}


def _errors(results: dict, name: str) -> list[float]:
    return [r["test_error_pct"] for r in results["runs"] if r["model"] == name]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _sweep(results: dict, name: str) -> dict[int, dict]:
    return {m["depth"]: m for m in results["memory"] if m["model"] == name}


def check_goals(results: dict) -> dict:
    """The issue's goals as {goal: {"value": measured, "target": text, "met": bool}} (absent data: skipped)."""
    goals = {}
    params = results["params"]
    if _errors(results, "odenet") and _errors(results, "resnet"):
        gap = _mean_std(_errors(results, "odenet"))[0] - _mean_std(_errors(results, "resnet"))[0]
        goals["error_gap_pp"] = {"value": gap, "target": "ODE-Net - ResNet mean test error <= 0.3 pp", "met": gap <= 0.3}
    if "odenet" in params and "resnet" in params:
        ratio = params["odenet"] / params["resnet"]
        goals["param_ratio"] = {"value": ratio, "target": "ODE-Net params <= 0.4x ResNet", "met": ratio <= 0.4}
    for name, target, met in (
        ("odenet-fixed", "ODE-Net (adjoint) memory growth L=48 / L=6 <= 1.2 (flat)", lambda r: r <= 1.2),
        ("resnet", "ResNet memory growth L=48 / L=6 >= 3", lambda r: r >= 3.0),
        ("rknet", "RK-Net memory growth L=48 / L=6 >= 3", lambda r: r >= 3.0),
    ):
        sw = _sweep(results, name)
        if 6 in sw and 48 in sw:
            ratio = sw[48]["growth_mib"] / sw[6]["growth_mib"]
            goals[f"memory_{name}"] = {"value": ratio, "target": target, "met": met(ratio)}
    if tuple(results["config"]["depths"]) == (6, 12, 24, 48):  # the full run
        wall = results["wall_s"]
        goals["wall_time_s"] = {"value": wall, "target": "full run <= 1800 s", "met": wall <= 1800}
    return goals


def markdown_report(results: dict) -> str:
    """The results as markdown: the classic table, the memory sweep, gradient check and goals."""
    cfg = results["config"]
    n_seeds = len(cfg["seeds"])
    resnet_params = results["params"].get("resnet")
    lines = [
        f"Data: {results['dataset']}. {cfg['epochs']} epochs, Adam lr {cfg['lr']} with cosine decay, batch "
        f"{cfg['batch']}, {cfg['threads']} torch threads, torch {results['torch']}, {results['date_utc']} UTC.",
        "",
        f"| model | test error % (mean ± std, {n_seeds} seeds) | params | params / ResNet | s / epoch | NFE per batch fwd / bwd |",
        "|---|---|---|---|---|---|",
    ]
    for name in cfg["models"]:
        errs = _errors(results, name)
        runs = [r for r in results["runs"] if r["model"] == name]
        mean, std = _mean_std(errs)
        p = results["params"][name]
        rel = f"{p / resnet_params:.2f}" if resnet_params else "–"
        epoch_s = statistics.mean(r["epoch_s"] for r in runs)
        if runs[0]["nfe_forward"] is not None:
            fwd = statistics.mean(r["nfe_forward"] for r in runs)
            bwd = statistics.mean(r["nfe_backward"] for r in runs)
            nfe = f"{fwd:.1f} / {bwd:.1f}" + (" (bwd/fwd {:.2f})".format(bwd / fwd) if bwd else "")
        else:
            nfe = "–"
        lines.append(f"| {LABELS[name]} | {mean:.2f} ± {std:.2f} | {p:,} | {rel} | {epoch_s:.2f} | {nfe} |")

    depths = cfg["depths"]
    lines += [
        "",
        f"Peak memory of one training step (batch {cfg['memory_batch']}), fresh process per cell: growth = "
        "VmHWM - VmRSS just before the step, MiB (process peak in brackets); step time in s.",
        "",
        "| model | " + " | ".join(f"L = {d}" for d in depths) + f" | growth L={depths[-1]} / L={depths[0]} | "
        + " | ".join(f"step s L={d}" for d in (depths[0], depths[-1])) + " |",
        "|---|" + "---|" * (len(depths) + 3),
    ]
    for name in SWEEP_LABELS:
        sw = _sweep(results, name)
        if not sw:
            continue
        cells = [f"{sw[d]['growth_mib']:.1f} ({sw[d]['peak_mib']:.0f})" for d in depths]
        ratio = sw[depths[-1]]["growth_mib"] / sw[depths[0]]["growth_mib"]
        times = [f"{sw[d]['step_s']:.3f}" for d in (depths[0], depths[-1])]
        lines.append(f"| {SWEEP_LABELS[name]} | " + " | ".join(cells) + f" | {ratio:.2f}x | " + " | ".join(times) + " |")

    if results["grad_check"]:
        lines += ["", "Gradient of the (untrained) ODE-Net's loss on one batch of 8: ||g - g_backprop|| / "
                  "||g_backprop|| over all parameters, backprop through the same dopri5 solve:", ""]
        lines += [f"- {k}: {v:.2e}" for k, v in results["grad_check"].items()]
    lines += ["", f"Wall time {results['wall_s']:.0f} s; load average (1 min) {results['load_average_start']:.2f} "
              f"at start, {results['load_average_end']:.2f} at end.", "", "| goal | measured | met |", "|---|---|---|"]
    for goal in results["goals"].values():
        lines.append(f"| {goal['target']} | {goal['value']:.4g} | {'yes' if goal['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"
