"""The task order of benchmarks/odenet_digits.py and what lets a stopped run resume.

A run writes its results JSON after every finished task and, for each training task, a checkpoint
after every epoch (DIR/checkpoints/<model>_seed<seed>.pt: weights, Adam's and the schedule's state,
the generator of batch order and shifts, the history). ``--resume`` uses both: tasks whose results
are in the JSON are skipped, and a training task with a checkpoint continues after its last finished
epoch with the same result as an uninterrupted run (every random draw comes from the saved
generator). So a run can be stopped and restarted with more jobs without losing finished work.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

# Config fields that do not change any result: a run may resume with other values of these.
RESUME_IGNORED = ("jobs", "threads", "checkpoint_dir", "resume")
COMPARISON = ("odenet-checkpoint", "odenet-backsolve")  # the dopri5 rows, for backsolve_seeds


def tasks(cfg) -> list[tuple]:
    """Every task of a run, most important first: ("train", model, seed), ("memory", model, depth),
    ("grad",). The issue's goals first: every seed of the ResNet, then of the ODE-Net (as trained);
    the memory sweep (the end depths of every model first) and the gradient check; the MLP; the
    backsolve-trained ODE-Net; the RK-Net; the dopri5 checkpoint-adjoint ODE-Net last."""

    def trains(name: str, seeds) -> list[tuple]:
        return [("train", name, s) for s in seeds]

    compare_seeds = tuple(cfg.backsolve_seeds)
    ends = (cfg.depths[0], cfg.depths[-1])
    memory = [("memory", m, d) for m in cfg.sweep_models for d in dict.fromkeys(ends)]
    memory += [("memory", m, d) for m in cfg.sweep_models for d in cfg.depths if d not in ends]
    head = [t for m in ("resnet", "odenet") if m in cfg.models for t in trains(m, cfg.seeds)]
    tail = trains("mlp", cfg.seeds) if "mlp" in cfg.models else []
    tail += trains("odenet-backsolve", compare_seeds)
    tail += trains("rknet", cfg.seeds) if "rknet" in cfg.models else []
    tail += trains("odenet-checkpoint", compare_seeds)
    known = ("resnet", "odenet", "mlp", "rknet")
    tail += [t for m in cfg.models if m not in known for t in trains(m, cfg.seeds)]
    return head + memory + ([("grad",)] if cfg.grad_check else []) + tail


def done_tasks(results: dict) -> set[tuple]:
    """The tasks whose results are in a results dict (as written to the JSON)."""
    done = {("train", r["model"], r["seed"]) for r in results.get("runs", [])}
    done |= {("memory", m["model"], m["depth"]) for m in results.get("memory", [])}
    return done | ({("grad",)} if results.get("grad_check") else set())


def config_mismatch(previous: dict, cfg) -> list[str]:
    """Config fields (other than RESUME_IGNORED) in which a previous run's JSON config differs from cfg."""
    now = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as in the JSON
    keys = sorted(set(previous) | set(now))
    return [k for k in keys if k not in RESUME_IGNORED and previous.get(k) != now.get(k)]


def checkpoint_path(directory: str | None, name: str, seed: int) -> Path | None:
    return None if directory is None else Path(directory) / f"{name}_seed{seed}.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a run killed while writing leaves the previous epoch's checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | None) -> dict | None:
    """The checkpoint at path, or None if there is none (tensors and plain data only: no code runs)."""
    if path is None or not path.exists():
        return None
    return torch.load(path, weights_only=True)
