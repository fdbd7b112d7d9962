"""ODE-Net vs ResNet (Chen et al. 2018, Table 1) on the sonode engine: real MNIST digits or 8x8 digits.

Data (--dataset): "mnist" = the 10,000 real 28x28 MNIST digits bundled in data/mnist/mnist10k.npz, one
fixed stratified split of 8,000 training (of which 1,000 held out for validation) and 2,000 test
images, at the paper's scale (7x7 feature maps, 64 channels); "digits8" = scikit-learn's 8x8 digits,
the small fast companion (1198 training / 599 test images, width 32). Nothing is downloaded.

Models (benchmarks/odenet_models.py): a 1-layer MLP; a ResNet of 6 residual blocks; RK-Net (one
block of shared weights integrated by RK4 with 6 steps, gradients by backprop through the solver);
ODE-Net (the same block solved by reversible Heun with 6 steps, gradients by the engine's best: the
reversible adjoint, odeint_adjoint mode "reversible", backprop's gradient at memory flat in the
steps, docs/reversible.md); and, for the seeds in ``backsolve_seeds``, the ODE-Net solved by dopri5
at rtol = atol = 1e-3 with sonode's discrete adjoint (mode "checkpoint") and with the paper's
continuous adjoint (mode "backsolve"), for comparison. All are trained identically
(benchmarks/odenet_train.py: fixed 30 epochs with cosine decay on the 8x8 digits; on MNIST until the
validation loss stops improving) over several seeds (the split is fixed; seeds change the
initialisation, batch order and shifts). Reported per model: test error (mean ± std over seeds),
parameters, seconds per training epoch, epochs, f evaluations per batch forward / backward (last
epoch).

Memory sweep: peak memory of one training step as the depth grows 6, 12, 24, 48 — residual blocks
for the ResNet, RK4 steps for the RK-Net and for the ODE-Net (its step count forced by integrating
with fixed-step RK4 of 1/L, under the backsolve and under the checkpoint adjoint, and the trained
ODE-Net with L reversible Heun steps). Each cell runs in a fresh subprocess on the same images;
"growth" = the peak of live tensor memory during the step, from torch.profiler's memory events (the
process's resident growth, VmHWM - VmRSS, is recorded too). Gradient check: the ODE-Net's adjoint
gradients against backprop through the same solve, on one batch.

Run:  python benchmarks/odenet_digits.py [--dataset mnist|digits8] [--quick] [--jobs 2] [--out DIR]
Writes DIR/odenet_<dataset>.json and .md (default DIR: outputs/odenet_<dataset>; the 8x8 digits keep
their old names odenet_digits.*), rewritten after every finished task so a stopped run leaves its
partial results; per-epoch lines go to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # run from a checkout without installing
from odenet_models import DATASETS, build_model, load_split, n_params  # noqa: E402
from odenet_report import check_goals, markdown_report  # noqa: E402
from odenet_train import MODELS, SWEEP_MODELS, Config, grad_check, memory, memory_child, train  # noqa: E402

__all__ = ["MODELS", "SWEEP_MODELS", "Config", "grad_check", "main", "run", "tasks"]
TRAIN_ORDER = (
    "resnet",
    "odenet",
    "mlp",
    "rknet",
)  # the table's key rows first: a stopped run has them
GRAD_BATCH = 8


def tasks(cfg: Config) -> list[tuple]:
    """Everything the run does, in priority order: ("train", model, seed), ("memory", model, depth),
    ("grad",). Seed 0's ResNet and ODE-Net first, then the memory sweep and gradient check, then the
    rest of seed 0 (MLP, RK-Net, ODE-Net with backsolve), then the other seeds."""
    order = [m for m in TRAIN_ORDER if m in cfg.models] + [
        m for m in cfg.models if m not in TRAIN_ORDER
    ]

    def seed_runs(seed: int) -> list[tuple]:
        runs = [("train", m, seed) for m in order]
        compare = [("train", m, seed) for m in ("odenet-checkpoint", "odenet-backsolve")]
        return runs + (compare if seed in cfg.backsolve_seeds else [])

    first, *others = cfg.seeds
    head = seed_runs(first)
    measure = [("memory", m, d) for m in cfg.sweep_models for d in cfg.depths] + (
        [("grad",)] if cfg.grad_check else []
    )
    return head[:2] + measure + head[2:] + [t for s in others for t in seed_runs(s)]


_DATA: dict = {}


def run_task(task: tuple, cfg: Config, log=print) -> tuple[tuple, dict]:
    """Run one task of `tasks` in this process; returns (task, its result)."""
    torch.set_num_threads(cfg.threads)
    if task[0] == "train":
        key = (cfg.dataset, cfg.limit)
        if key not in _DATA:
            _DATA[key] = load_split(cfg.dataset, limit=cfg.limit)
        return task, train(task[1], task[2], cfg, _DATA[key], log=log)
    if task[0] == "memory":
        return task, memory(task[1], task[2], cfg)
    batch = 4 if cfg.limit else GRAD_BATCH
    return task, grad_check(batch=batch, dataset=cfg.dataset)


def _flush_print(line: str) -> None:
    """Print with the UTC time of day (the log of a long run shows when each line came) and flush."""
    print(time.strftime("%H:%M:%S ", time.gmtime()) + line, flush=True)


def _pool_task(task: tuple, cfg: Config) -> tuple[tuple, dict]:
    return run_task(task, cfg, log=_flush_print)


def _describe(task: tuple, r: dict) -> str:
    if task[0] == "train":
        nfe = (
            f", NFE fwd/bwd {r['nfe_forward']:.1f}/{r['nfe_backward']:.1f}"
            if r["nfe_forward"] is not None
            else ""
        )
        return (
            f"{r['model']:16s} seed {r['seed']}: test error {r['test_error_pct']:.2f} % (epoch {r['best_epoch']} "
            f"of {r['epochs_run']}, stopped by {r['stopped']}), {r['epoch_s']:.1f} s/epoch{nfe}"
        )
    if task[0] == "memory":
        return (
            f"memory {r['model']:24s} depth {r['depth']:3d}: peak {r['peak_mib']:.1f} MiB, "
            f"growth {r['growth_mib']:.1f} MiB, step {r['step_s']:.3f} s"
        )
    return "gradient vs backprop: " + ", ".join(f"{k} {v:.2e}" for k, v in r.items())


def run(cfg: Config, log=print, on_result=None) -> dict:
    """The whole benchmark (`tasks`, ``cfg.jobs`` at a time in fresh processes, or in this process
    when jobs = 1). ``on_result(results)`` is called with the results so far after every task."""
    wall_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    spec = DATASETS[cfg.dataset]
    names = list(cfg.models) + (
        ["odenet-checkpoint", "odenet-backsolve"] if cfg.backsolve_seeds else []
    )
    data = load_split(cfg.dataset, limit=cfg.limit)
    sizes = {k: len(data[k]) for k in ("y_train", "y_val", "y_test")}
    results = {
        "config": asdict(cfg),
        "dataset": cfg.dataset,
        "split": {"train": sizes["y_train"], "validation": sizes["y_val"], "test": sizes["y_test"]},
        "image_side": spec.side,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "torch": torch.__version__,
        "params": {name: n_params(build_model(name, dataset=cfg.dataset)) for name in names},
        "runs": [],
        "memory": [],
        "grad_check": {},
        "load_average_start": load_start,
        "complete": False,
    }

    def record(task: tuple, r: dict) -> None:
        if task[0] == "train":
            results["runs"].append(r)
        elif task[0] == "memory":
            results["memory"].append(r)
        else:
            results["grad_check"] = r
        log("  " + _describe(task, r))
        results["wall_s"] = time.perf_counter() - wall_start
        results["load_average_end"] = os.getloadavg()[0]
        results["goals"] = check_goals(results)
        if on_result:
            on_result(results)

    todo = tasks(cfg)
    if cfg.jobs <= 1:
        for task in todo:
            record(*run_task(task, cfg, log=log))
    else:
        ctx = multiprocessing.get_context(
            "spawn"
        )  # fresh interpreters: no forked torch thread pools
        with concurrent.futures.ProcessPoolExecutor(cfg.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_pool_task, task, cfg) for task in todo]  # started in this order
            for future in concurrent.futures.as_completed(futures):
                record(*future.result())
    order = {t: i for i, t in enumerate(todo)}  # report rows in task order, not completion order
    results["runs"].sort(key=lambda r: order[("train", r["model"], r["seed"])])
    results["memory"].sort(key=lambda m: order[("memory", m["model"], m["depth"])])
    results["complete"] = True
    results["wall_s"] = time.perf_counter() - wall_start
    results["load_average_end"] = os.getloadavg()[0]
    results["goals"] = check_goals(results)
    return results


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="digits8",
        help="mnist: 10,000 real 28x28 digits (data/mnist); digits8: scikit-learn's 8x8 digits (default)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced run that checks everything runs (< 3 min): 1-2 epochs, depths 6 and 12",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for the .json and .md (default: outputs/odenet_<dataset>)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="tasks run in parallel, one process each (default 2)"
    )
    parser.add_argument(
        "--epochs", type=int, help="override the number of epochs (the cap, on MNIST)"
    )
    parser.add_argument(
        "--memory-child",
        nargs=5,
        metavar=("MODEL", "DEPTH", "BATCH", "THREADS", "DATASET"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        name, depth, batch, threads, dataset = args.memory_child
        print(json.dumps(memory_child(name, int(depth), int(batch), int(threads), dataset)))
        return
    for flag in ("threads", "jobs", "epochs"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be >= 1, got {value}")
    cfg = Config.for_dataset(args.dataset, quick=args.quick, threads=args.threads, jobs=args.jobs)
    if args.epochs:
        cfg.epochs = args.epochs
    stem = "odenet_digits" if args.dataset == "digits8" else f"odenet_{args.dataset}"
    out = args.out or HERE.parent / "outputs" / stem
    out.mkdir(parents=True, exist_ok=True)

    def save(results: dict) -> None:
        _write_atomic(out / f"{stem}.json", json.dumps(results, indent=1) + "\n")
        _write_atomic(out / f"{stem}.md", markdown_report(results))

    print(
        f"ODE-Net vs ResNet on {args.dataset} ({'quick' if args.quick else 'full'} run, {cfg.jobs} jobs x "
        f"{cfg.threads} threads)",
        flush=True,
    )
    results = run(cfg, log=_flush_print, on_result=save)
    save(results)
    print("\n" + markdown_report(results))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
