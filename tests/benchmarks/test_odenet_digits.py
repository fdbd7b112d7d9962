"""benchmarks/odenet_digits.py: the reduced run's result shapes, and adjoint gradients vs backprop.

Gradient tolerances: the discrete adjoint ("checkpoint") replays the forward solver, so its gradient
equals backprop's to round-off (<= 1e-12 relative, float64). The continuous adjoint ("backsolve",
how the ODE-Net is trained, as in the paper) re-integrates z backwards and differs by an error that
shrinks with the solver tolerance: measured 0.26 at rtol = atol = 1e-3, 0.10 at 1e-4, 0.019 at
1e-6 for this ReLU/GroupNorm field; asserted <= 0.05 at 1e-6 and smaller than at 1e-3.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from odenet_digits import MODELS, Config, grad_check, run  # noqa: E402
from odenet_models import build_model, load_digits_split, n_params  # noqa: E402
from odenet_report import markdown_report  # noqa: E402


def test_reduced_run_shapes():
    # The quick path, cut further to stay well under a minute: one seed; the memory sweep (a fresh
    # interpreter per cell, ~4 s of CPU each) for the ODE-Net at depths 2 and 4 only.
    cfg = Config.quick(threads=1)
    cfg.seeds, cfg.depths, cfg.memory_batch, cfg.grad_check = (0,), (2, 4), 32, False
    cfg.sweep_models = ("odenet-fixed",)
    results = run(cfg, log=lambda _: None)
    assert len(results["runs"]) == len(MODELS)
    for r in results["runs"]:
        assert 0.0 <= r["test_error_pct"] <= 100.0 and r["epoch_s"] > 0
        has_ode = r["model"] in ("rknet", "odenet")
        assert (r["nfe_forward"] is not None) == has_ode
        if r["model"] == "rknet":  # 6 RK4 steps, backprop: no evaluations in the backward pass
            assert r["nfe_forward"] == 24 and r["nfe_backward"] == 0
        if r["model"] == "odenet":  # adaptive forward, continuous adjoint backward
            assert r["nfe_forward"] >= 8 and r["nfe_backward"] > 0
    assert [(m["model"], m["depth"]) for m in results["memory"]] == [
        ("odenet-fixed", 2), ("odenet-fixed", 4)
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
    assert rel["checkpoint_float64_tol0.001"] <= 1e-12
    assert rel["checkpoint_float64_tol1e-06"] <= 1e-12
    assert rel["backsolve_float64_tol1e-06"] <= 0.05
    assert rel["backsolve_float64_tol1e-06"] < rel["backsolve_float64_tol0.001"]


def test_data_is_the_bundled_digits_split():
    data = load_digits_split()
    assert data["x_train"].shape == (1198, 1, 8, 8) and data["x_test"].shape == (599, 1, 8, 8)
    assert data["x_train"].dtype == torch.float32 and data["y_test"].dtype == torch.int64
    assert sorted(data["y_test"].unique().tolist()) == list(range(10))
