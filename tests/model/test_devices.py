"""The audio model on a device and in float32 (docs/devices.md).

CUDA cases run where torch sees a GPU and are skipped elsewhere. What is checked on any machine:
training in float32 (the GPU's dtype) forced on the CPU reconstructs within a stated margin of the
float64 reference and passes the solver check; no float64 arithmetic runs inside a float32 training
loop but where it is meant to (a dtype leak is a device leak: a tensor made without the model's
dtype is made without its device); the hot paths' floating-point factory calls all name a device.
"""

from __future__ import annotations

import ast
import collections
import importlib
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sonode.api import fit as sonode_fit
from sonode.io.clip import read_clip
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.checks import DISCRETISATION_GOAL_DB, snr_db
from sonode.model.device import DeviceError, resolve_device, training_dtype
from sonode.tasks.render import render
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

ROOT = Path(__file__).resolve().parents[2]
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
SMALL = dict(latent_dim=8, hop_samples=128, overlap_samples=16, hidden=16, layers=1, lp_order=32)
# float32 against float64 on a real clip (celesta, first 0.3 s at 16 kHz, d = 64, 10 steps): measured
# 30.495 dB both (kept reconstruction), free run 20.20 against 20.18 dB, check 79.5 against 83.6 dB
KEPT_MARGIN_DB = 0.1
FREE_RUN_MARGIN_DB = 0.5


def test_auto_is_the_cpu_and_cuda_is_refused_in_one_line_without_a_device():
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    assert training_dtype(torch.device("cpu")) == torch.float64
    assert training_dtype(torch.device("cuda")) == torch.float32
    assert training_dtype(torch.device("cpu"), "float32") == torch.float32
    with pytest.raises(ValueError, match="device must be"):
        FitOptions(device="tpu")
    with pytest.raises(ValueError, match="dtype must be"):
        FitOptions(dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device") as err:
            resolve_device("cuda")
        assert "\n" not in str(err.value)
        with pytest.raises(DeviceError):  # before the clip is read (it does not exist)
            sonode_fit(ROOT / "missing.wav", device="cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_a_tiny_fit_and_render_on_the_device(device, tmp_path):
    model, report = fit_samples(
        two_tone_clip(0.25),
        SAMPLE_RATE,
        FitOptions(**SMALL, steps=3, max_time_s=None, device=device),
    )
    # the fitted model comes back on the CPU in float64: what files hold and every device loads
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("cpu", torch.float64)}
    assert report.snr_db > 60 and report.discretisation_snr_db >= DISCRETISATION_GOAL_DB
    on_device = render(model, rate=2 * SAMPLE_RATE, end_s=0.4, device=device).samples
    on_cpu = render(model, rate=2 * SAMPLE_RATE, end_s=0.4).samples
    assert next(model.parameters()).device.type == "cpu"  # moved back after the render
    assert np.all(np.isfinite(on_device)) and np.max(np.abs(on_device)) > 0.1
    np.testing.assert_allclose(on_device, on_cpu, rtol=0, atol=1e-9)  # float64 on both
    model.save(tmp_path / "m.sonode")
    loaded, _ = SonodeModel.load(tmp_path / "m.sonode")
    again = render(loaded, rate=2 * SAMPLE_RATE, end_s=0.4, device=device).samples
    np.testing.assert_array_equal(again, on_device)


def _celesta_fit(dtype: str):
    clip = read_clip(ROOT / "data" / "mallet_celesta_Cs5.wav", rate=16000, duration_s=0.3)
    options = FitOptions(
        latent_dim=64,
        lp_order=256,
        steps=10,
        max_time_s=None,
        dtype=dtype,
        continuation_training_steps=0,
    )
    model, report = fit_samples(clip.samples, clip.sample_rate, options)
    return clip, model, report


def test_float32_training_reconstructs_within_the_margin_of_float64():
    _, _, reference = _celesta_fit("float64")
    clip, model, single = _celesta_fit("float32")
    assert single.epochs == reference.epochs == 10
    assert abs(single.snr_db - reference.snr_db) <= KEPT_MARGIN_DB
    assert abs(single.trajectory_snr_db - reference.trajectory_snr_db) <= FREE_RUN_MARGIN_DB
    assert single.snr_db > single.initial_snr_db  # training moved it
    assert single.discretisation_snr_db >= DISCRETISATION_GOAL_DB
    assert not single.discretisation_fallback
    # the report's figure is the float64 CPU model's, the one the file holds
    assert {(p.device.type, p.dtype) for p in model.parameters()} == {("cpu", torch.float64)}
    measured = snr_db(
        torch.from_numpy(clip.samples), torch.from_numpy(model.denormalise(model.reconstruct()[0]))
    )
    assert measured == pytest.approx(single.snr_db, abs=1e-9)


class _Float64Sites(TorchDispatchMode):
    """Where torch ops produce float64 or complex128 tensors (of more than one element)."""

    def __init__(self):
        super().__init__()
        self.sites = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        wide = (torch.float64, torch.complex128)
        if any(isinstance(o, torch.Tensor) and o.dtype in wide and o.numel() > 1 for o in outs):
            frames = [f for f in traceback.extract_stack()[:-1] if "/sonode/" in f.filename]
            if frames:
                self.sites[(frames[-1].filename.split("/sonode/")[-1], frames[-1].name)] += 1
        return out


# float64 by design inside a float32 training loop: the cross-fade weights (computed in float64,
# handed over in the model's dtype), the state solve's normal equations, the engine's time
# control (step fractions), SNRs against the clip as read, the clip itself
MEANT = {
    ("model/layout.py", "weights"),
    ("model/layout.py", "training_weights"),
    ("model/linear_step.py", "_solve_block"),
    ("model/checks.py", "snr_db"),
    ("model/placement.py", "tensor"),
}


def test_a_float32_training_loop_runs_no_float64_arithmetic_but_where_meant(monkeypatch):
    train = importlib.import_module("sonode.model.train")
    watch = _Float64Sites()

    class Watched(train.Placement):  # watched from the move to the training dtype to the return
        def __init__(self, *args):
            super().__init__(*args)
            watch.__enter__()

        def back(self, *args):
            watch.__exit__(None, None, None)
            return super().back(*args)

    monkeypatch.setattr(train, "Placement", Watched)
    # 8 steps: the steps, two state solves, the last parameters' check (consider) and the final check
    options = FitOptions(**SMALL, steps=8, max_time_s=None, dtype="float32", state_solve_every=4)
    fit_samples(two_tone_clip(0.25), SAMPLE_RATE, options)
    unexpected = {
        site: n
        for site, n in watch.sites.items()
        if site not in MEANT and not site[0].startswith("ode/")
    }
    assert watch.sites, "the watch saw nothing: the float32 path did not run"
    assert not unexpected, unexpected


# The files of the device-aware paths (training and rendering) and the functions in them that
# build on the CPU on purpose: construction and loading (the model is moved afterwards), the
# segment start times (moved by their callers), Adam's 0-d step count
HOT_FILES = (
    "decoder",
    "objective",
    "modal",
    "linear_step",
    "checks",
    "rendering",
    "synthesis",
    "layout",
    "adam",
    "placement",
)
BUILT_ON_THE_CPU = {"__init__", "build_model", "load", "start_s", "step"}
FACTORIES = {"tensor", "zeros", "ones", "empty", "arange", "linspace", "full", "eye", "as_tensor"}


def _floating_factories_without_a_device(path: Path) -> list[str]:
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = (
                child.name
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                else function
            )
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in FACTORIES
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id == "torch"
                and name not in BUILT_ON_THE_CPU
            ):
                keywords = {k.arg for k in child.keywords}
                # a floating dtype named without a device (integer index tensors may stay on the CPU)
                if "dtype" in keywords and "device" not in keywords and None not in keywords:
                    dtype = next(k.value for k in child.keywords if k.arg == "dtype")
                    if "float" in ast.unparse(dtype) or "complex" in ast.unparse(dtype):
                        found.append(f"{path.name}:{child.lineno} in {name}: {ast.unparse(child)}")
            visit(child, name)

    visit(ast.parse(path.read_text()), "<module>")
    return found


def test_the_hot_paths_make_floating_tensors_on_a_named_device():
    offenders = [
        line
        for name in HOT_FILES
        for line in _floating_factories_without_a_device(ROOT / "sonode" / "model" / f"{name}.py")
    ]
    assert not offenders, "\n".join(offenders)


def test_the_guard_finds_a_factory_without_a_device(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f(n):\n    return torch.zeros(n, dtype=torch.float64)\n")
    assert len(_floating_factories_without_a_device(bad)) == 1


def test_a_float32_fit_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    from dataclasses import replace

    from sonode.model.checkpoint import CheckpointPlan
    from tests.model.test_checkpoint import CLIP, OPTIONS, _assert_same_fit

    options = replace(OPTIONS, dtype="float32")  # float32 moments and parameters in the file
    uninterrupted = fit_samples(CLIP, SAMPLE_RATE, options)
    path, seen = tmp_path / "clip.sonode.ckpt", []
    _, stopped = fit_samples(
        CLIP,
        SAMPLE_RATE,
        options,
        on_epoch=lambda r, best: seen.append(r),
        should_stop=lambda: len(seen) >= 2,
        checkpoint=CheckpointPlan(path, every_s=30.0),
    )
    assert stopped.stop_reason == "interrupted"
    resumed = fit_samples(CLIP, SAMPLE_RATE, options, checkpoint=CheckpointPlan(path, resume=True))
    _assert_same_fit(uninterrupted, resumed)
