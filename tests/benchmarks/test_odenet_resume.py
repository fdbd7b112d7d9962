"""benchmarks/odenet_resume.py: the run's task order, and resuming a stopped run (skipped tasks,
training continued from a per-epoch checkpoint with the result of an uninterrupted run)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from odenet_digits import Config, run  # noqa: E402
from odenet_models import load_split  # noqa: E402
from odenet_resume import config_mismatch, done_tasks, tasks  # noqa: E402
from odenet_train import train  # noqa: E402


def test_full_mnist_run_puts_the_goals_first():
    cfg = Config.for_dataset("mnist")
    order = tasks(cfg)
    assert len(order) == len(set(order)) == 6 + 5 * 4 + 1 + 3 + 1 + 3 + 1
    assert order[:6] == [("train", m, s) for m in ("resnet", "odenet") for s in (0, 1, 2)]
    ends, middle = order[6:16], order[16:26]  # every model at L = 6 and 48 before 12 and 24
    assert {t[2] for t in ends} == {6, 48} and {t[2] for t in middle} == {12, 24}
    assert {t[1] for t in ends} == {t[1] for t in middle} == set(cfg.sweep_models)
    assert order[26:] == [
        ("grad",),
        *[("train", "mlp", s) for s in (0, 1, 2)],
        ("train", "odenet-backsolve", 0),
        *[("train", "rknet", s) for s in (0, 1, 2)],
        ("train", "odenet-checkpoint", 0),
    ]


def _tiny_cfg() -> Config:
    cfg = Config.for_dataset("mnist", quick=True)
    cfg.models, cfg.seeds, cfg.backsolve_seeds, cfg.sweep_models = ("mlp",), (0, 1), (), ()
    cfg.jobs, cfg.limit, cfg.epochs, cfg.grad_check = 1, 150, 1, False
    return cfg


def test_resume_skips_the_tasks_already_in_the_results():
    cfg, lines = _tiny_cfg(), []
    first = run(cfg, log=lines.append)
    assert done_tasks(first) == set(tasks(cfg)) and first["complete"]
    stopped = json.loads(json.dumps(first))  # as read back from the JSON
    stopped["runs"] = [dict(stopped["runs"][0], test_error_pct=42.0)]  # seed 1 had not finished
    stopped["complete"] = False
    lines.clear()
    again = run(cfg, log=lines.append, previous=stopped)
    trained = [line for line in lines if "epoch 1:" in line]
    assert len(trained) == 1 and "seed 1" in trained[0]  # seed 0 was not trained again
    assert [(r["seed"], r["test_error_pct"]) for r in again["runs"]][0] == (0, 42.0)
    assert again["runs"][1] == first["runs"][1] | {
        k: again["runs"][1][k] for k in ("epoch_s", "train_s", "cpu_s", "epoch_cpu_s", "history")
    }
    assert len(again["sessions"]) == 2 and again["wall_s"] >= first["wall_s"]


class _Stop(Exception):
    pass


@pytest.mark.parametrize("dataset, limit", [("mnist", 300), ("digits8", None)])
def test_training_resumes_from_its_checkpoint_as_if_never_stopped(tmp_path, dataset, limit):
    # plateau protocol (MNIST) and cosine schedule (8x8 digits): stopped during epoch 3 of 4, the
    # rerun continues after epoch 2 and gives the uninterrupted run's every number.
    data = load_split(dataset, limit=limit)
    cfg = dataclasses.replace(Config.for_dataset(dataset), epochs=4, batch=32)
    whole = train("mlp", 0, cfg, data, log=lambda _: None)

    def stop_at_epoch_3(line: str) -> None:
        if "epoch 3:" in line:
            raise _Stop

    ckpt = dataclasses.replace(cfg, checkpoint_dir=str(tmp_path))
    with pytest.raises(_Stop):
        train("mlp", 0, ckpt, data, log=stop_at_epoch_3)
    lines = []
    resumed = train("mlp", 0, dataclasses.replace(ckpt, resume=True), data, log=lines.append)
    assert "resumed after epoch 2" in lines[0] and sum("epoch" in s for s in lines) == 3

    def numbers(r: dict) -> list:
        keep = ("epoch", "lr", "val_loss", "val_error_pct", "test_error_pct")
        return [{k: h[k] for k in keep if k in h} for h in r["history"]]

    assert numbers(resumed) == numbers(whole) and len(whole["history"]) == 4
    assert resumed["test_error_pct"] == whole["test_error_pct"]


def test_resume_refuses_a_run_with_other_options(tmp_path):
    cfg = Config.for_dataset("mnist", quick=True)
    saved = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert config_mismatch(saved, dataclasses.replace(cfg, jobs=5, threads=2)) == []
    assert config_mismatch(saved, dataclasses.replace(cfg, epochs=9)) == ["epochs"]
    (tmp_path / "odenet_mnist.json").write_text(json.dumps({"config": saved | {"epochs": 9}}))
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "odenet_digits.py"), "--dataset", "mnist", "--quick"]
        + ["--resume", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "epochs" in proc.stderr and "Traceback" not in proc.stderr
