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
                                         [--resume]
Writes DIR/odenet_<dataset>.json and .md (default DIR: outputs/odenet_<dataset>; the 8x8 digits keep
their old names odenet_digits.*), rewritten after every finished task so a stopped run leaves its
partial results, and a checkpoint per training task after every epoch (DIR/checkpoints); per-epoch
lines go to stdout. Tasks run most important first (benchmarks/odenet_resume.py: `tasks`);
``--resume`` continues a stopped run in DIR, possibly with another --jobs, losing no finished epoch.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # run from a checkout without installing
from odenet_models import DATASETS, build_model, load_split, n_params  # noqa: E402
from odenet_report import check_goals, markdown_report  # noqa: E402
from odenet_resume import config_mismatch, done_tasks, tasks  # noqa: E402
from odenet_train import MODELS, SWEEP_MODELS, Config, grad_check, memory, memory_child, train  # noqa: E402

__all__ = ["MODELS", "SWEEP_MODELS", "Config", "grad_check", "main", "run", "tasks"]
GRAD_BATCH = 8


_DATA: dict = {}


def run_task(task: tuple, cfg: Config, log=print) -> tuple[tuple, dict]:
    """Run one task of `tasks` in this process; returns (task, its result)."""
    torch.set_num_threads(cfg.threads)
    if task[0] == "train":
        key = (cfg.dataset, cfg.limit)
        if key not in _DATA:
            _DATA[key] = load_split(cfg.dataset, limit=cfg.limit)
        return task, train(task[1], task[2], cfg, _DATA[key], log=log)  # its "cpu_s": every epoch
    cpu_start = time.process_time() + _children_cpu_s()  # a memory cell runs in a subprocess
    if task[0] == "memory":
        r = memory(task[1], task[2], cfg)
    else:
        r = grad_check(batch=4 if cfg.limit else GRAD_BATCH, dataset=cfg.dataset)
    cpu_s = time.process_time() + _children_cpu_s() - cpu_start
    return task, r | {"cpu_s": cpu_s}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def run(cfg: Config, log=print, on_result=None, previous: dict | None = None) -> dict:
    """The whole benchmark (`tasks`, ``cfg.jobs`` at a time in fresh processes, or in this process
    when jobs = 1). ``on_result(results)`` is called with the results so far after every task.
    ``previous``: the results of a stopped run with the same config; its tasks are not run again."""
    wall_start = time.perf_counter()
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
        "sessions": [],
        "load_average_start": os.getloadavg()[0],
        "complete": False,
    }
    if previous is not None:  # keep what the stopped run measured, and when it started
        keep = ("date_utc", "runs", "memory", "grad_check", "grad_cpu_s", "sessions")
        keep += ("load_average_start",)
        results |= {k: previous[k] for k in keep if k in previous}
    session = {"start_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "jobs": cfg.jobs}
    session["load_average_start"] = os.getloadavg()[0]
    results["sessions"] = [*results["sessions"], session]

    def update_totals() -> None:
        session["wall_s"] = time.perf_counter() - wall_start
        session["load_average_end"] = results["load_average_end"] = os.getloadavg()[0]
        results["wall_s"] = sum(s.get("wall_s", 0.0) for s in results["sessions"])
        tasks_cpu = [r.get("cpu_s", 0.0) for r in results["runs"] + results["memory"]]
        results["cpu_s"] = sum(tasks_cpu) + results.get("grad_cpu_s", 0.0)
        results["goals"] = check_goals(results)

    def record(task: tuple, r: dict) -> None:
        if task[0] == "train":
            results["runs"].append(r)
        elif task[0] == "memory":
            results["memory"].append(r)
        else:
            results["grad_cpu_s"] = r.pop("cpu_s", 0.0)
            results["grad_check"] = r
        log("  " + _describe(task, r))
        update_totals()
        if on_result:
            on_result(results)

    done = done_tasks(results)
    todo = [t for t in tasks(cfg) if t not in done]
    if done:
        log(f"resuming: {len(done)} tasks already done, {len(todo)} to run")
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
    order = {t: i for i, t in enumerate(tasks(cfg))}  # rows in task order, not completion order
    results["runs"].sort(key=lambda r: order.get(("train", r["model"], r["seed"]), len(order)))
    results["memory"].sort(key=lambda m: order.get(("memory", m["model"], m["depth"]), len(order)))
    results["complete"] = True
    update_totals()
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
        "--resume",
        action="store_true",
        help="continue the run in --out: skip the tasks its JSON holds, continue training from "
        "per-epoch checkpoints (same options required; --jobs and --threads may differ)",
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
    cfg.checkpoint_dir, cfg.resume = str(out / "checkpoints"), args.resume
    previous = None
    if args.resume and (out / f"{stem}.json").exists():
        previous = json.loads((out / f"{stem}.json").read_text())
        differ = config_mismatch(previous["config"], cfg)
        if differ:
            parser.error(f"--resume: {out / stem}.json was run with other {', '.join(differ)}")

    def save(results: dict) -> None:
        _write_atomic(out / f"{stem}.json", json.dumps(results, indent=1) + "\n")
        _write_atomic(out / f"{stem}.md", markdown_report(results))

    print(
        f"ODE-Net vs ResNet on {args.dataset} ({'quick' if args.quick else 'full'} run, {cfg.jobs} jobs x "
        f"{cfg.threads} threads)",
        flush=True,
    )
    results = run(cfg, log=_flush_print, on_result=save, previous=previous)
    save(results)
    print("\n" + markdown_report(results))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
