"""benchmarks/odenet_digits.py: the reduced runs' result shapes (8x8 digits and MNIST), the plateau
protocol, the bundled MNIST digits and their split, and adjoint gradients vs backprop.

Gradient tolerances: the discrete adjoint ("checkpoint") replays the forward solver, so its gradient
equals backprop's to round-off (<= 1e-12 relative, float64). The continuous adjoint ("backsolve",
how the ODE-Net is trained, as in the paper) re-integrates z backwards and differs by an error that
shrinks with the solver tolerance: measured 0.26 at rtol = atol = 1e-3, 0.10 at 1e-4, 0.019 at
1e-6 for this ReLU/GroupNorm field; asserted <= 0.05 at 1e-6 and smaller than at 1e-3.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from odenet_digits import MODELS, Config, grad_check, run  # noqa: E402
from odenet_models import MNIST_NPZ, build_model, load_digits_split, load_split, n_params  # noqa: E402
from odenet_report import markdown_report  # noqa: E402
from odenet_train import train  # noqa: E402


def test_reduced_run_shapes():
    # The quick path, cut further to stay well under a minute: one seed; the memory sweep (a fresh
    # interpreter per cell, ~4 s of CPU each) for the ODE-Net at depths 2 and 4 only.
    cfg = Config.quick(threads=1)
    cfg.seeds, cfg.depths, cfg.memory_batch, cfg.grad_check = (0,), (2, 4), 32, False
    cfg.sweep_models, cfg.jobs, cfg.backsolve_seeds = ("odenet-fixed",), 1, ()
    results = run(cfg, log=lambda _: None)
    assert len(results["runs"]) == len(MODELS)
    for r in results["runs"]:
        assert 0.0 <= r["test_error_pct"] <= 100.0 and r["epoch_s"] > 0
        has_ode = r["model"] in ("rknet", "odenet")
        assert (r["nfe_forward"] is not None) == has_ode
        if r["model"] == "rknet":  # 6 RK4 steps, backprop: no evaluations in the backward pass
            assert r["nfe_forward"] == 24 and r["nfe_backward"] == 0
        if r["model"] == "odenet":  # reversible Heun: 6 steps + f(z0); backward 6 steps + f(z1)
            assert r["nfe_forward"] == 7 and r["nfe_backward"] == 7
    assert [(m["model"], m["depth"]) for m in results["memory"]] == [
        ("odenet-fixed", 2),
        ("odenet-fixed", 4),
    ]
    assert all(m["growth_mib"] > 0 and m["peak_mib"] >= m["growth_mib"] for m in results["memory"])
    assert {"error_gap_pp", "param_ratio"} <= set(results["goals"])
    report = markdown_report(results)
    assert report.count("\n| ") >= len(MODELS) + 1 + 2  # both tables' rows


def test_parameter_counts_follow_the_paper_ratios():
    # ODE-Net and RK-Net share one block; the ResNet has six: <= 0.4x its parameters (paper: 0.37x).
    assert n_params(build_model("odenet")) == n_params(build_model("rknet"))
    assert n_params(build_model("odenet")) <= 0.4 * n_params(build_model("resnet"))
    assert n_params(build_model("resnet", depth=12)) > n_params(build_model("resnet", depth=6))
    assert n_params(build_model("odenet-fixed", depth=48)) == n_params(build_model("odenet"))


def test_adjoint_gradients_match_backprop_on_one_batch():
    rel = grad_check(batch=4, cases=((torch.float64, 1e-3), (torch.float64, 1e-6)))
    assert rel["reversible_float64"] <= 1e-10  # the trained ODE-Net's gradient
    assert rel["checkpoint_float64_tol0.001"] <= 1e-12
    assert rel["checkpoint_float64_tol1e-06"] <= 1e-12
    assert rel["backsolve_float64_tol1e-06"] <= 0.05
    assert rel["backsolve_float64_tol1e-06"] < rel["backsolve_float64_tol0.001"]


def test_data_is_the_bundled_digits_split():
    data = load_digits_split()
    assert data["x_train"].shape == (1198, 1, 8, 8) and data["x_test"].shape == (599, 1, 8, 8)
    assert data["x_train"].dtype == torch.float32 and data["y_test"].dtype == torch.int64
    assert sorted(data["y_test"].unique().tolist()) == list(range(10))


def test_mnist_quick_path_on_a_tiny_subset():
    # --dataset mnist --quick, cut to 150 images (105 train / 15 validation / 30 test), in this
    # process: every model incl. the backsolve ODE-Net, 28x28 input at the paper's width, the
    # validation protocol, one memory cell per adjoint, and the report.
    cfg = Config.for_dataset("mnist", quick=True, threads=1)
    cfg.jobs, cfg.limit, cfg.depths, cfg.memory_batch, cfg.grad_check = 1, 150, (2,), 8, False
    cfg.sweep_models = ("odenet-fixed", "odenet-fixed-checkpoint")
    results = run(cfg, log=lambda _: None)
    assert results["split"] == {"train": 105, "validation": 15, "test": 30}
    assert [r["model"] for r in results["runs"]] == [
        "resnet",
        "odenet",
        "mlp",
        "odenet-backsolve",
        "rknet",
        "odenet-checkpoint",
    ]
    for r in results["runs"]:
        assert 0.0 <= r["test_error_pct"] <= 100.0 and 1 <= r["best_epoch"] <= r["epochs_run"] <= 2
        assert all(math.isfinite(h["val_loss"]) for h in r["history"])
        assert "test_error_pct" in r["history"][r["best_epoch"] - 1]
    by_model = {r["model"]: r for r in results["runs"]}
    assert by_model["rknet"]["nfe_forward"] == 24 and by_model["rknet"]["nfe_backward"] == 0
    assert (
        by_model["odenet-backsolve"]["nfe_backward"] > 0
        and by_model["odenet-checkpoint"]["nfe_backward"] > 0
        and by_model["odenet"]["nfe_backward"] == 7
    )
    assert results["params"]["mlp"] == 784 * 300 + 300 + 300 * 10 + 10
    assert results["params"]["odenet"] <= 0.4 * results["params"]["resnet"]
    assert len(results["memory"]) == 2 and all(m["growth_mib"] > 0 for m in results["memory"])
    report = markdown_report(results)
    assert "real MNIST digits" in report and "backsolve adjoint" in report


def test_plateau_protocol_stops_and_drops_the_learning_rate():
    # A learning rate too small to move the validation loss by 0.1 %: epoch 1 is the best, every
    # later epoch is "bad"; the rate drops 10x after each bad epoch and training stops after 3.
    data = load_split("mnist", limit=200)
    cfg = dataclasses.replace(Config.for_dataset("mnist"), lr=1e-9, epochs=10, batch=64)
    r = train("mlp", 0, cfg, data, log=lambda _: None)
    assert (
        r["stopped"] == "plateau" and r["best_epoch"] == 1 and r["epochs_run"] == 1 + cfg.patience
    )
    assert [h["lr"] for h in r["history"]] == pytest.approx([1e-9, 1e-9, 1e-10, 1e-11])
    assert r["test_error_pct"] == r["history"][0]["test_error_pct"]


def test_bundled_mnist_digits_and_their_split():
    with np.load(MNIST_NPZ, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert (
        images.max() == 255 and images.min() == 0 and 0.1 < (images > 0).mean() < 0.3
    )  # ink on black
    data, again = load_split("mnist"), load_split("mnist")
    assert [len(data[k]) for k in ("y_train", "y_val", "y_test")] == [7000, 1000, 2000]
    assert torch.equal(data["x_test"], again["x_test"]) and torch.equal(
        data["y_val"], again["y_val"]
    )
    counts = torch.bincount(data["y_test"], minlength=10).numpy()  # stratified: 20 % of each class
    assert np.all(np.abs(counts - 0.2 * np.bincount(labels)) <= 1)
    # training images are scaled to mean 0, std 1; the others with the training images' statistics
    assert (
        abs(float(data["x_train"].mean())) < 1e-4 and abs(float(data["x_train"].std()) - 1) < 1e-3
    )


@pytest.mark.parametrize("args", [["--dataset", "fashion"], ["--jobs", "0"]])
def test_cli_rejects_bad_options_with_exit_2(args):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "odenet_digits.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "error:" in proc.stderr


def test_peak_allocated_bytes_counts_live_tensors_once():
    # n tanh layers on a (64, 1000) float32 input: backprop keeps each tanh output (256,000 bytes)
    # alive until the backward pass, so the peak is n outputs plus a few transients; summing the
    # events' totals (children counted in their parents) or resident memory would not give n x.
    from odenet_train import peak_allocated_bytes
    from torch.profiler import ProfilerActivity, profile

    def peak(n: int) -> int:
        x = torch.randn(64, 1000, requires_grad=True)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            y = x
            for _ in range(n):
                y = torch.tanh(y * 1.01)
            y.sum().backward()
            del y
        return peak_allocated_bytes(prof)

    p6, p48 = peak(6), peak(48)
    layer = 64 * 1000 * 4
    assert 6 * layer <= p6 <= 9 * layer and 48 * layer <= p48 <= 51 * layer


def test_reversible_odenet_gradient_is_backprops():
    # The ODE-Net with the engine's reversible adjoint (benchmarks/odenet_models.py) on 4 images in
    # float64: the gradient of every parameter equals backprop through the same reversible RK4 solve.
    data = load_split("mnist", limit=150)
    x, y = data["x_train"][:4].double(), data["y_train"][:4]
    torch.manual_seed(0)
    model = build_model("odenet-reversible", dataset="mnist").double()
    grads = {}
    for mode in (None, "reversible"):
        model[1].adjoint_mode = mode
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads[mode] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    rel = (grads["reversible"] - grads[None]).norm() / grads[None].norm()
    assert float(rel) <= 1e-10
