"""Tables and goal checks of benchmarks/odenet_digits.py, from its results dict (no torch needed).

Partial results (a run stopped early, or still going) give tables of what finished.
"""

from __future__ import annotations

import statistics

LABELS = {
    "mlp": "1-layer MLP ({side}²-300-10)",
    "resnet": "ResNet (6 residual blocks)",
    "rknet": "RK-Net (RK4, 6 steps, backprop)",
    "odenet": "ODE-Net (reversible Heun, 6 steps, reversible adjoint)",
    "odenet-checkpoint": "ODE-Net (dopri5 1e-3, checkpoint adjoint)",
    "odenet-backsolve": "ODE-Net (dopri5 1e-3, backsolve adjoint)",
}
SWEEP_LABELS = {
    "resnet": "ResNet (L blocks)",
    "rknet": "RK-Net (RK4 L steps, backprop)",
    "odenet-fixed": "ODE-Net (RK4 L steps, backsolve adjoint)",
    "odenet-fixed-checkpoint": "ODE-Net (RK4 L steps, checkpoint adjoint)",
    "odenet-reversible": "ODE-Net as trained (reversible Heun L steps, reversible adjoint)",
}
DATASET_TEXT = {
    "mnist": "real MNIST digits (28x28, data/mnist/mnist10k.npz)",
    "digits8": "scikit-learn load_digits (8x8)",
}
WALL_LIMIT_S = {"mnist": 9000, "digits8": 1800}  # the issues' limits on the full run


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
        goals["error_gap_pp"] = {
            "value": gap,
            "target": "ODE-Net - ResNet mean test error <= 0.3 pp",
            "met": gap <= 0.3,
        }
    if "odenet" in params and "resnet" in params:
        ratio = params["odenet"] / params["resnet"]
        goals["param_ratio"] = {
            "value": ratio,
            "target": "ODE-Net params <= 0.4x ResNet",
            "met": ratio <= 0.4,
        }
    for name, target, met in (
        (
            "odenet-fixed",
            "ODE-Net (backsolve adjoint) memory growth L=48 / L=6 <= 1.2 (flat)",
            lambda r: r <= 1.2,
        ),
        (
            "odenet-fixed-checkpoint",
            "ODE-Net (checkpoint adjoint) memory growth L=48 / L=6 <= 1.2",
            lambda r: r <= 1.2,
        ),
        (
            "odenet-reversible",
            "ODE-Net (reversible adjoint) memory growth L=48 / L=6 <= 1.2",
            lambda r: r <= 1.2,
        ),
        ("resnet", "ResNet memory growth L=48 / L=6 >= 3", lambda r: r >= 3.0),
        ("rknet", "RK-Net memory growth L=48 / L=6 >= 3", lambda r: r >= 3.0),
    ):
        sw = _sweep(results, name)
        if 6 in sw and 48 in sw:
            ratio = sw[48]["growth_mib"] / sw[6]["growth_mib"]
            goals[f"memory_{name}"] = {"value": ratio, "target": target, "met": met(ratio)}
    cfg = results["config"]
    if cfg.get("full", tuple(cfg["depths"]) == (6, 12, 24, 48)) and results.get("complete", True):
        wall, limit = results["wall_s"], WALL_LIMIT_S.get(results.get("dataset", "digits8"), 1800)
        goals["wall_time_s"] = {
            "value": wall,
            "target": f"full run <= {limit} s",
            "met": wall <= limit,
        }
    return goals


def _protocol(cfg: dict) -> str:
    if cfg.get("patience") is None:
        return f"{cfg['epochs']} epochs, Adam lr {cfg['lr']} with cosine decay"
    return (
        f"Adam lr {cfg['lr']}, divided by 10 after {cfg['lr_drop_after']} epochs without a lower validation "
        f"loss, stopped after {cfg['patience']} (at most {cfg['epochs']} epochs); test error of the "
        "best-validation weights"
    )


def _nfe_cell(runs: list[dict]) -> str:
    if not runs or runs[0]["nfe_forward"] is None:
        return "–"
    fwd = statistics.mean(r["nfe_forward"] for r in runs)
    bwd = statistics.mean(r["nfe_backward"] for r in runs)
    return f"{fwd:.1f} / {bwd:.1f}"


def markdown_report(results: dict) -> str:
    """The results as markdown: the classic table, the memory sweep, gradient check and goals."""
    cfg = results["config"]
    dataset = results.get("dataset", "digits8")
    side = results.get("image_side", 8)
    split = results.get("split")
    resnet_params = results["params"].get("resnet")
    data_text = DATASET_TEXT.get(dataset, dataset)
    if split:
        data_text += (
            f", fixed stratified split {split['train']} train / {split['validation']} validation"
            f" / {split['test']} test"
        )
    lines = [
        f"Data: {data_text}. {_protocol(cfg)}; batch {cfg['batch']}, {cfg.get('jobs', 1)} jobs x "
        f"{cfg['threads']} torch threads, torch {results['torch']}, started {results['date_utc']} UTC"
        + ("" if results.get("complete", True) else " (PARTIAL: run not finished)")
        + ".",
        "",
        "| model | test error % (mean ± std) | seeds | params | params / ResNet "
        "| epochs (best / run) | s / epoch (CPU s) | NFE per batch fwd / bwd |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in results["params"]:
        runs = [r for r in results["runs"] if r["model"] == name]
        if not runs:
            continue
        mean, std = _mean_std(_errors(results, name))
        p = results["params"][name]
        rel = f"{p / resnet_params:.2f}" if resnet_params else "–"
        epochs = ", ".join(
            f"{r.get('best_epoch', cfg['epochs'])}/{r.get('epochs_run', cfg['epochs'])}"
            for r in runs
        )
        epoch_s = f"{statistics.mean(r['epoch_s'] for r in runs):.1f}"
        if all("epoch_cpu_s" in r for r in runs):
            epoch_s += f" ({statistics.mean(r['epoch_cpu_s'] for r in runs):.1f})"
        label = LABELS.get(name, name).format(side=side)
        lines.append(
            f"| {label} | {mean:.2f} ± {std:.2f} | {len(runs)} | {p:,} | {rel} | {epochs} | {epoch_s} | "
            f"{_nfe_cell(runs)} |"
        )

    depths = cfg["depths"]
    if results["memory"]:
        lines += [
            "",
            (
                f"Peak memory of one training step (batch {cfg['memory_batch']}, the same images in every cell), "
                "fresh process per cell: peak of live tensor memory during the step (torch.profiler, "
                "MiB; the process's resident growth VmHWM - VmRSS in brackets); step time in s."
            ),
            "",
            "| model | "
            + " | ".join(f"L = {d}" for d in depths)
            + f" | growth L={depths[-1]} / L={depths[0]} | "
            + " | ".join(f"step s L={d}" for d in (depths[0], depths[-1]))
            + " |",
            "|---|" + "---|" * (len(depths) + 3),
        ]
    for name, label in SWEEP_LABELS.items():
        sw = _sweep(results, name)
        if not sw:
            continue
        cells = [
            f"{sw[d]['growth_mib']:.1f} ({sw[d].get('rss_growth_mib', sw[d]['peak_mib']):.0f})"
            if d in sw
            else "–"
            for d in depths
        ]
        ends = (depths[0], depths[-1])
        ratio = (
            f"{sw[ends[1]]['growth_mib'] / sw[ends[0]]['growth_mib']:.2f}x"
            if all(d in sw for d in ends)
            else "–"
        )
        times = [f"{sw[d]['step_s']:.3f}" if d in sw else "–" for d in ends]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {ratio} | " + " | ".join(times) + " |"
        )

    if results["grad_check"]:
        lines += [
            "",
            (
                "Gradient of the (untrained) ODE-Net's loss on one batch: ||g - g_backprop|| / "
                "||g_backprop|| over all parameters, against backprop through the same solve (reversible "
                "Heun, 6 steps, for reversible_*; dopri5 at the tolerance shown for the others):"
            ),
            "",
        ]
        lines += [f"- {k}: {v:.2e}" for k, v in results["grad_check"].items()]
    if "wall_s" in results:
        lines += [
            "",
            (
                f"Wall time {results['wall_s']:.0f} s"
                + (
                    f" in {len(results['sessions'])} sessions"
                    if len(results.get("sessions", [])) > 1
                    else ""
                )
                + (f", {results['cpu_s']:.0f} CPU s of its tasks" if "cpu_s" in results else "")
                + f"; load average (1 min) {results['load_average_start']:.2f} "
                f"at start, {results['load_average_end']:.2f} at the last result."
            ),
        ]
    lines += ["", "| goal | measured | met |", "|---|---|---|"]
    for goal in results.get("goals", {}).values():
        lines.append(
            f"| {goal['target']} | {goal['value']:.4g} | {'yes' if goal['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"
