"""Training, memory and gradient measurements of benchmarks/odenet_digits.py (one model, one seed each).

Two training protocols, the same for every model of a run:
- fixed length (``Config.patience`` None; the 8x8 digits): ``epochs`` epochs, Adam with cosine decay
  of the learning rate to 0, test error of the final weights;
- plateau (MNIST): Adam at ``lr``; after every epoch the cross-entropy on the validation images (held
  out of the training images, never trained on) decides: an epoch improves if it lowers the best
  validation loss by more than 0.1 %; after ``lr_drop_after`` epochs in a row without improvement the
  learning rate drops 10x, after ``patience`` in a row training stops (or at ``epochs``). The test
  error reported is that of the weights with the best validation loss; it is measured after every
  epoch that improves (never used for any decision), so the log shows it had stopped improving.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from odenet_models import (
    DATASETS,
    ODE_TOL,
    build_model,
    load_split,
    n_params,
    ode_func,
    random_shift,
)
from odenet_resume import checkpoint_path, load_checkpoint, save_checkpoint

MODELS = ("mlp", "resnet", "rknet", "odenet")
SWEEP_MODELS = ("resnet", "rknet", "odenet-fixed", "odenet-fixed-checkpoint", "odenet-reversible")
IMPROVEMENT = 1e-3  # relative decrease of the best validation loss that counts as an improvement
EVAL_BATCH = 500  # images per forward pass when evaluating (bounds the memory of a no-grad pass)


@dataclass
class Config:
    """What one benchmark run does; `for_dataset` gives the full and the quick run of each data set."""

    dataset: str = "digits8"
    epochs: int = 30  # fixed length, or the cap of the plateau protocol
    patience: int | None = (
        None  # None: fixed length with cosine decay; else stop after this many bad epochs
    )
    lr_drop_after: int = (
        2  # plateau protocol: bad epochs in a row before the learning rate drops 10x
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    backsolve_seeds: tuple[int, ...] = (
        0,
        1,
        2,
    )  # seeds also trained with the paper's backsolve adjoint
    depths: tuple[int, ...] = (6, 12, 24, 48)
    batch: int = 64
    memory_batch: int = 256
    lr: float = 3e-3
    threads: int = 1  # torch threads per job
    jobs: int = 2  # training runs / measurements in parallel, one process each
    limit: int | None = None  # use a stratified subset of this many images (tests)
    grad_check: bool = True
    full: bool = True  # the run whose wall time is a goal
    checkpoint_dir: str | None = None  # per-epoch training checkpoints go here (None: none)
    resume: bool = False  # continue training tasks from their checkpoints
    models: tuple[str, ...] = field(default=MODELS)
    sweep_models: tuple[str, ...] = field(default=SWEEP_MODELS)

    @classmethod
    def quick(cls, threads: int = 1) -> Config:
        """The 8x8 digits' reduced run (kept for the existing test's signature)."""
        return cls.for_dataset("digits8", quick=True, threads=threads)

    @classmethod
    def for_dataset(
        cls, dataset: str, quick: bool = False, threads: int = 1, jobs: int = 2
    ) -> Config:
        if dataset == "digits8":
            cfg = cls(dataset=dataset, threads=threads, jobs=jobs)
            if quick:
                cfg.epochs, cfg.depths, cfg.memory_batch, cfg.backsolve_seeds = (
                    1,
                    (6, 12),
                    128,
                    (0,),
                )
        elif dataset == "mnist":
            cfg = cls(
                dataset=dataset,
                epochs=30,
                patience=3,
                lr_drop_after=1,
                lr=1e-3,
                batch=64,
                memory_batch=64,
                backsolve_seeds=(0,),
                threads=threads,
                jobs=jobs,
            )
            if quick:  # 400 images (280 train), 2 epochs, depths 6 and 12, one seed
                cfg.epochs, cfg.patience, cfg.lr_drop_after, cfg.seeds = 2, 1, 1, (0,)
                cfg.limit, cfg.depths, cfg.memory_batch = 400, (6, 12), 32
        else:
            raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASETS)}")
        cfg.full = not quick
        return cfg


def evaluate(model, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, error %) of ``model`` on images x (N, 1, H, W), labels y (N,), no gradients."""
    loss, wrong = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_BATCH):
            logits = model(x[i : i + EVAL_BATCH])
            loss += F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum").item()
            wrong += (logits.argmax(1) != y[i : i + EVAL_BATCH]).sum().item()
    return loss / len(y), 100.0 * wrong / len(y)


def train(name: str, seed: int, cfg: Config, data: dict, log=print) -> dict:
    """Train one model from scratch (protocol: module docstring). Returns its test error (%), epochs,
    median seconds per training epoch, NFE per batch forward / backward (last epoch) and the history."""
    torch.manual_seed(seed)
    model = build_model(name, dataset=cfg.dataset)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_train = len(data["y_train"])
    sched = None
    if cfg.patience is None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cfg.epochs * math.ceil(n_train / cfg.batch)
        )
    gen = torch.Generator().manual_seed(seed)
    func = ode_func(model)
    shift = DATASETS[cfg.dataset].max_shift
    has_val = len(data["y_val"]) > 0
    plateau = cfg.patience is not None
    if plateau and not has_val:
        raise ValueError(
            f"the plateau protocol (patience {cfg.patience}) needs validation images; {cfg.dataset} has none"
        )
    best_loss, best_epoch, bad = math.inf, 0, 0
    epoch_s, history, nfe_fwd, nfe_bwd = [], [], [], []
    ckpt = checkpoint_path(cfg.checkpoint_dir, name, seed)
    saved = load_checkpoint(ckpt) if cfg.resume else None
    if saved is not None:  # continue after the last finished epoch, every state as it was
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        if sched is not None:
            sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        best_loss, best_epoch, bad = saved["best_loss"], saved["best_epoch"], saved["bad"]
        epoch_s, history = saved["epoch_s"], saved["history"]
        nfe_fwd, nfe_bwd = saved["nfe_fwd"], saved["nfe_bwd"]
        log(f"  {name} seed {seed}: resumed after epoch {len(history)} from {ckpt}")
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        if plateau and bad >= cfg.patience:
            break  # a checkpoint of a run that had already stopped
        start, cpu_start = time.perf_counter(), time.process_time()
        nfe_fwd, nfe_bwd = [], []  # keep only the last epoch's counts
        perm = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train, cfg.batch):
            idx = perm[i : i + cfg.batch]
            x = random_shift(data["x_train"][idx], data["background"], gen, shift)
            n0 = func.nfe if func is not None else 0
            loss = F.cross_entropy(model(x), data["y_train"][idx])
            n1 = func.nfe if func is not None else 0
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if func is not None:
                nfe_fwd.append(n1 - n0)
                nfe_bwd.append(func.nfe - n1)
        epoch_s.append(time.perf_counter() - start)
        # CPU seconds of this process: on a shared machine, what the epoch would take alone (1 thread)
        row = {
            "epoch": epoch,
            "train_s": epoch_s[-1],
            "train_cpu_s": time.process_time() - cpu_start,
            "lr": opt.param_groups[0]["lr"],
        }
        if has_val:
            row["val_loss"], row["val_error_pct"] = evaluate(model, data["x_val"], data["y_val"])
        improved = plateau and row["val_loss"] < best_loss * (1 - IMPROVEMENT)
        if improved or (not plateau and epoch == cfg.epochs):
            row["test_error_pct"] = evaluate(model, data["x_test"], data["y_test"])[1]
        history.append(row)
        line = (
            f"  {name} seed {seed} epoch {epoch}: {epoch_s[-1]:.1f} s "
            f"({row['train_cpu_s']:.1f} s CPU), lr {row['lr']:.0e}"
        )
        if has_val:
            line += f", val loss {row['val_loss']:.4f} error {row['val_error_pct']:.2f} %"
        row["cpu_s"] = time.process_time() - cpu_start  # training and evaluation
        if "test_error_pct" in row:
            line += f", test error {row['test_error_pct']:.2f} %"
        if func is not None:
            line += f", NFE fwd/bwd {statistics.mean(nfe_fwd):.1f}/{statistics.mean(nfe_bwd):.1f}"
        log(line)
        if plateau:
            if improved:
                best_loss, best_epoch, bad = row["val_loss"], epoch, 0
            else:
                bad += 1
                if bad % cfg.lr_drop_after == 0:
                    for group in opt.param_groups:
                        group["lr"] *= 0.1
        if ckpt is not None:
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state()}
            state |= {"sched": sched.state_dict() if sched is not None else None}
            state |= {"best_loss": best_loss, "best_epoch": best_epoch, "bad": bad}
            state |= {
                "epoch_s": epoch_s,
                "history": history,
                "nfe_fwd": nfe_fwd,
                "nfe_bwd": nfe_bwd,
            }
            save_checkpoint(ckpt, state)
        if plateau and bad >= cfg.patience:
            break
    stopped = "plateau" if plateau and bad >= cfg.patience else "epochs"
    if not plateau:  # fixed-length protocol: the final weights
        best_epoch = history[-1]["epoch"]
    return {
        "model": name,
        "seed": seed,
        "test_error_pct": history[best_epoch - 1]["test_error_pct"],
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped": stopped,
        "epoch_s": statistics.median(epoch_s),
        "epoch_cpu_s": statistics.median(h["train_cpu_s"] for h in history),
        "train_s": sum(epoch_s),
        "cpu_s": sum(h.get("cpu_s", 0.0) for h in history),  # the task's CPU, over every resume
        "nfe_forward": statistics.mean(nfe_fwd) if func is not None else None,
        "nfe_backward": statistics.mean(nfe_bwd) if func is not None else None,
        "history": history,
    }


def _status_kib(name: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def training_step(model, opt, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def peak_allocated_bytes(prof) -> int:
    """Peak bytes of tensor memory allocated above the start of a torch.profiler run (profile_memory=True).

    Each op's own allocations minus frees (self_cpu_memory_usage) and the frees outside ops
    ("[memory]" events) in time order; the running sum's maximum is the peak of live tensor
    memory — activations, saved tensors, stored states, gradients — at op granularity. Unlike the
    process's resident size it does not see the allocator's cached or fragmented pages, the
    interpreter or the data set, so the growth with depth is the model's own.
    """
    deltas = []
    for event in prof.events():
        delta = event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        if delta:
            deltas.append((event.time_range.start, delta))
    deltas.sort(key=lambda d: d[0])
    live = peak = 0
    for _, delta in deltas:
        live += delta
        peak = max(peak, live)
    return peak


def memory_child(name: str, depth: int, batch: int, threads: int, dataset: str = "digits8") -> dict:
    """Subprocess body: peak memory and time of one training step of ``name`` at ``depth``.

    A warm-up step on 2 images first initialises kernels, gradients and Adam's state without
    building a large graph. The measured step (the same ``batch`` first training images for every
    model and depth) runs twice: once under torch.profiler with memory profiling, whose peak of
    live tensor memory (`peak_allocated_bytes`) is the reported "growth" (the step's own memory),
    and once plain for its time and the process's peak resident growth (VmHWM reset by writing 5 to
    /proc/self/clear_refs, minus VmRSS before; includes allocator caching, shown for comparison).
    """
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(threads)
    data = load_split(dataset)
    torch.manual_seed(0)
    model = build_model(name, depth=depth, dataset=dataset)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data["x_train"][:batch], data["y_train"][:batch]
    training_step(model, opt, x[:2], y[:2])
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    training_step(model, opt, x, y)
    step_s = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        training_step(model, opt, x, y)
    return {
        "model": name,
        "depth": depth,
        "before_mib": before / 1024,
        "peak_mib": peak / 1024,
        "rss_growth_mib": (peak - before) / 1024,
        "growth_mib": peak_allocated_bytes(prof) / 2**20,
        "step_s": step_s,
        "params": n_params(model),
    }


def memory(name: str, depth: int, cfg: Config) -> dict:
    """Run `memory_child` in a fresh interpreter (benchmarks/odenet_digits.py --memory-child) and return its result."""
    script = Path(__file__).resolve().parent / "odenet_digits.py"
    cmd = [
        sys.executable,
        str(script),
        "--memory-child",
        name,
        str(depth),
        str(cfg.memory_batch),
        str(cfg.threads),
        cfg.dataset,
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


GRAD_CHECK_CASES = ((torch.float32, ODE_TOL), (torch.float64, 1e-4), (torch.float64, 1e-6))


def grad_check(batch: int = 8, cases=GRAD_CHECK_CASES, dataset: str = "digits8") -> dict:
    """Relative difference of the ODE-Net's adjoint gradients from backprop's on one batch.

    On the same batch of ``batch`` training images (seed 0, untrained): the trained ODE-Net
    (reversible Heun, 6 steps) by its reversible adjoint against backprop through the same solve
    (key "reversible_<dtype>", no tolerance); and the dopri5 ODE-Net at rtol = atol = tol by the
    continuous adjoint ("backsolve", the paper's) and the discrete one ("checkpoint") against
    backprop through the same dopri5 solve. Returns {"<mode>_<dtype>[_tol<tol>]": ||g - g_backprop|| /
    ||g_backprop||} over all parameters stacked, for each (dtype, tol) of ``cases``.
    """
    data = load_split(dataset)
    x, y = data["x_train"][:batch], data["y_train"][:batch]
    result = {}
    for dtype, tol in cases:
        for name, modes in (
            ("odenet", ("reversible",)),
            ("odenet-checkpoint", ("backsolve", "checkpoint")),
        ):
            key_tol = "" if name == "odenet" else f"_tol{tol:g}"
            if name == "odenet" and f"reversible_{str(dtype).split('.')[-1]}" in result:
                continue  # no tolerance: once per dtype
            torch.manual_seed(0)
            model = build_model(name, dataset=dataset, tol=tol).to(dtype)
            grads = {}
            for mode in (None, *modes):
                model[1].adjoint_mode = mode
                model.zero_grad()
                F.cross_entropy(model(x.to(dtype)), y).backward()
                grads[mode] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            for mode in modes:
                rel = float((grads[mode] - grads[None]).norm() / grads[None].norm())
                result[f"{mode}_{str(dtype).split('.')[-1]}{key_tol}"] = rel
    return result
