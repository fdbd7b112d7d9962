"""Training checkpoints: a resumed fit is the uninterrupted fit, bit for bit; foreign checkpoints are refused."""

import math

import pytest
import torch

from sonode.io.model_file import load_model_file
from sonode.model import FitOptions, fit_samples
from sonode.model.checkpoint import (
    CheckpointError,
    CheckpointPlan,
    TrainingState,
    fit_identity,
    load_checkpoint,
    save_checkpoint,
)
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

# lr 1e-3 with 2 modes improves the fit at every step, so the kept (best) model is the last one and
# depends on every step's parameters and Adam moments, not just on the initial fit.
# continuation_steps=0 keeps it fast: that fit runs after the training loop, from the kept model, so it
# cannot tell a resumed fit from an uninterrupted one (the CLI tests run it at its default).
OPTIONS = FitOptions(
    latent_dim=4,
    hop_samples=64,
    overlap_samples=8,
    hidden=16,
    layers=1,
    lp_order=32,
    lr=1e-3,
    max_time_s=None,
    steps=4,
    continuation_steps=0,
)
CLIP = two_tone_clip(0.1)


@pytest.fixture(scope="module")
def uninterrupted():
    return fit_samples(CLIP, SAMPLE_RATE, OPTIONS)


def _assert_same_fit(a, b):
    (model_a, report_a), (model_b, report_b) = a, b
    for (name, ta), tb in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=False
    ):
        assert torch.equal(ta, tb), name  # bit-identical, not merely close
    assert [r.loss for r in report_a.history] == [r.loss for r in report_b.history]
    assert (
        report_a.epochs,
        report_a.snr_db,
        report_a.function_evaluations,
        report_a.stop_reason,
    ) == (report_b.epochs, report_b.snr_db, report_b.function_evaluations, report_b.stop_reason)


def test_the_reference_fit_improves_at_every_step(uninterrupted):
    _, report = uninterrupted
    snrs = [r.snr_db for r in report.history] + [
        report.snr_db
    ]  # epoch k scores the parameters before step k
    assert all(b > a for a, b in zip(snrs, snrs[1:], strict=False)), snrs


def test_resume_after_an_interruption_reaches_the_uninterrupted_result(uninterrupted, tmp_path):
    path = tmp_path / "clip.sonode.ckpt"
    seen = []
    _, stopped = fit_samples(
        CLIP,
        SAMPLE_RATE,
        OPTIONS,
        on_epoch=lambda r, best: seen.append(r),
        should_stop=lambda: len(seen) >= 2,
        checkpoint=CheckpointPlan(path, every_s=30.0),
    )
    assert stopped.stop_reason == "interrupted" and stopped.epochs == 2
    assert load_checkpoint(path, fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS))).epoch == 2
    resumed = fit_samples(CLIP, SAMPLE_RATE, OPTIONS, checkpoint=CheckpointPlan(path, resume=True))
    _assert_same_fit(uninterrupted, resumed)


def test_a_crash_loses_only_the_steps_after_the_last_periodic_checkpoint(uninterrupted, tmp_path):
    path = tmp_path / "clip.sonode.ckpt"

    def crash(record, best):  # stands in for kill -9: no chance to save anything
        if record.epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_samples(
            CLIP,
            SAMPLE_RATE,
            OPTIONS,
            on_epoch=crash,
            checkpoint=CheckpointPlan(path, every_s=1e-9),
        )
    # a checkpoint is written between epochs whenever every_s has passed: here after epoch 2
    assert load_checkpoint(path, fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS))).epoch == 2
    _assert_same_fit(
        uninterrupted,
        fit_samples(CLIP, SAMPLE_RATE, OPTIONS, checkpoint=CheckpointPlan(path, resume=True)),
    )


def test_no_checkpoint_is_written_with_interval_zero(tmp_path):
    path = tmp_path / "clip.sonode.ckpt"
    fit_samples(
        CLIP,
        SAMPLE_RATE,
        FitOptions(**{**vars(OPTIONS), "steps": 1}),
        should_stop=lambda: True,
        checkpoint=CheckpointPlan(path, every_s=0.0),
    )
    assert not path.exists()


def test_the_checkpoint_is_code_free_tensors_and_json(tmp_path):
    path = tmp_path / "clip.sonode.ckpt"
    fit_samples(CLIP, SAMPLE_RATE, OPTIONS, checkpoint=CheckpointPlan(path, every_s=1e-9))
    raw = torch.load(path, weights_only=True)  # refuses any pickled object
    assert raw["kind"] == "sonode-checkpoint"
    tensors, meta = load_model_file(path, kind="sonode-checkpoint", supported_versions=[1])
    assert {
        "optimiser.0.exp_avg",
        "optimiser.0.exp_avg_sq",
        "optimiser.0.step",
        "rng_state",
    } <= set(tensors)
    assert meta["identity"]["clip"]["n_samples"] == len(CLIP) and meta["epoch"] == 4


def test_max_time_counts_the_time_before_the_interruption(tmp_path):
    path = tmp_path / "clip.sonode.ckpt"
    fit_samples(
        CLIP, SAMPLE_RATE, OPTIONS, should_stop=lambda: True, checkpoint=CheckpointPlan(path)
    )
    elapsed_s = load_checkpoint(path, fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS))).elapsed_s
    assert elapsed_s > 0
    # the budget was already spent before the interruption: the resumed fit must not take a step
    budget = FitOptions(**{**vars(OPTIONS), "max_time_s": 0.9 * elapsed_s})
    _, report = fit_samples(CLIP, SAMPLE_RATE, budget, checkpoint=CheckpointPlan(path, resume=True))
    assert report.stop_reason == "max_time" and report.epochs == 0
    assert report.wall_time_s >= elapsed_s


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "clip.sonode.ckpt"
    fit_samples(
        CLIP,
        SAMPLE_RATE,
        OPTIONS,
        should_stop=lambda: True,
        checkpoint=CheckpointPlan(path, source="a.wav"),
    )
    return path


@pytest.mark.parametrize(
    "clip,changes,message",
    [
        (0.5 * CLIP, {}, "another clip"),
        (CLIP[:-64], {}, "another clip"),
        (CLIP, {"lr": 2e-3}, "lr: checkpoint 0.001, now 0.002"),
        (CLIP, {"seed": 1}, "seed"),
    ],
)
def test_resume_refuses_another_clip_or_other_options(checkpoint_file, clip, changes, message):
    options = FitOptions(**{**vars(OPTIONS), **changes})
    with pytest.raises(CheckpointError, match=message):
        fit_samples(
            clip, SAMPLE_RATE, options, checkpoint=CheckpointPlan(checkpoint_file, resume=True)
        )


def test_resume_accepts_new_stopping_rules(checkpoint_file):
    options = FitOptions(**{**vars(OPTIONS), "steps": 1, "max_time_s": 60.0, "target_snr_db": 90.0})
    _, report = fit_samples(
        CLIP, SAMPLE_RATE, options, checkpoint=CheckpointPlan(checkpoint_file, resume=True)
    )
    assert report.epochs == 1 and report.stop_reason == "steps"


def test_resume_without_a_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*run without --resume"):
        fit_samples(
            CLIP,
            SAMPLE_RATE,
            OPTIONS,
            checkpoint=CheckpointPlan(tmp_path / "none.ckpt", resume=True),
        )


def test_a_damaged_checkpoint_is_refused(checkpoint_file, tmp_path):
    bad = tmp_path / "bad.ckpt"
    data = bytearray(checkpoint_file.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="cannot resume: .*delete"):
        load_checkpoint(bad, fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS)))


def test_infinite_snr_survives_the_json_metadata(tmp_path):
    state = TrainingState(
        epoch=0,
        model={},
        optimiser={"state": {}, "param_groups": []},
        best_model={},
        best_snr_db=math.inf,
        initial_snr_db=-math.inf,
        history=[{"epoch": 1, "loss": 0.0, "snr_db": math.inf, "elapsed_s": 0.1}],
        rejected_steps=0,
        bad_steps=0,
        function_evaluations=0,
        elapsed_s=0.1,
        rng_state=torch.get_rng_state(),
    )
    identity = fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS))
    save_checkpoint(tmp_path / "inf.ckpt", state, identity)
    back = load_checkpoint(tmp_path / "inf.ckpt", identity)
    assert (back.best_snr_db, back.initial_snr_db, back.history[0]["snr_db"]) == (
        math.inf,
        -math.inf,
        math.inf,
    )


def test_an_option_newer_than_the_checkpoint_compares_as_its_default(tmp_path):
    from sonode.model.checkpoint import _check_identity

    clip = {"sha256": "ab", "n_samples": 10, "sample_rate": 8000, "source": "a.wav"}
    now = {"clip": clip, "options": {"lr": 1e-3, "device": "cpu", "dtype": "auto"}}
    older = {"clip": clip, "options": {"lr": 1e-3}}  # written before device and dtype existed
    _check_identity(tmp_path / "c.ckpt", older, now)
    with pytest.raises(CheckpointError, match="device: checkpoint 'cpu', now 'cuda'"):
        _check_identity(
            tmp_path / "c.ckpt", older, {**now, "options": {**now["options"], "device": "cuda"}}
        )
