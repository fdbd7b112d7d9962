"""Training and the one trajectory: the free-run term's cadence and the kept model's choice."""

import math

import pytest
import torch

import sonode.model.checks as checks
import sonode.model.train as train
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.checks import TRAJECTORY_WEIGHT, consider, kept_score_db
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip
from tests.model.test_decoder_train import SMALL, _small_model


def test_kept_score_trades_free_run_db_for_reconstruction_db_at_the_training_weight():
    assert kept_score_db(40.0, 20.0) == pytest.approx(40.0 + TRAJECTORY_WEIGHT * 20.0)
    # +1 dB of reconstruction does not buy a free run 20 dB worse, but does one 5 dB worse
    assert kept_score_db(41.0, 0.0) < kept_score_db(40.0, 20.0) < kept_score_db(41.0, 15.0)
    assert kept_score_db(50.0, math.nan) == -math.inf  # a free run that is not finite


def test_consider_keeps_a_better_reconstruction_only_if_its_free_run_did_not_pay_for_it():
    model = _small_model()
    kept = (30.0, 20.0, {"marker": True})
    better_reconstruction = lambda signal: 31.0  # noqa: E731

    (snr, free_run, state), passed = consider(model, better_reconstruction, lambda m: 0.0, kept)
    assert passed and state is kept[2] and (snr, free_run) == (30.0, 20.0)

    (snr, free_run, state), passed = consider(model, better_reconstruction, lambda m: 15.0, kept)
    assert passed and state is not kept[2] and (snr, free_run) == (31.0, 15.0)
    assert torch.equal(state["trajectory_state"], model.trajectory_state)


def test_consider_never_keeps_a_worse_reconstruction_for_a_better_free_run():
    """The kept model's SNR (the training curve's green line) only rises: +20 dB of free run
    (+2 dB of score) does not replace a kept model that reconstructs 0.5 dB better."""
    model = _small_model()
    kept = (30.0, 0.0, {"marker": True})
    (snr, free_run, state), passed = consider(model, lambda signal: 29.5, lambda m: 20.0, kept)
    assert passed and state is kept[2] and (snr, free_run) == (30.0, 0.0)


def _fit_with_scores(monkeypatch, free_run_after_start_db: float):
    """A 3-step fit in which every reconstruction after the start scores 40 dB (the start 30 dB)
    and every free run after the start ``free_run_after_start_db`` (the start's 30 dB)."""
    reconstructions, free_runs = [], []

    def reconstruction(reference, estimate):
        reconstructions.append(1)
        return 30.0 if len(reconstructions) == 1 else 40.0

    def free_run(model, target):
        free_runs.append(1)
        return 30.0 if len(free_runs) == 1 else free_run_after_start_db

    monkeypatch.setattr(train, "snr_db", reconstruction)
    monkeypatch.setattr(train, "trajectory_snr", free_run)
    monkeypatch.setattr(checks, "trajectory_snr", free_run)  # (`checks.state_trajectory_snr`'s)
    model, _ = fit_samples(
        two_tone_clip(0.1), SAMPLE_RATE, FitOptions(**SMALL, steps=3, max_time_s=None)
    )
    return model


def test_fit_keeps_the_start_when_training_ruins_the_free_run(monkeypatch):
    """+10 dB of reconstruction does not pay for a free run 130 dB worse: the start is kept."""
    model = _fit_with_scores(monkeypatch, -100.0)
    assert torch.count_nonzero(model.field.mlp[-1].weight) == 0  # the zero-initialised correction


def test_fit_keeps_the_trained_model_when_its_free_run_holds(monkeypatch):
    model = _fit_with_scores(monkeypatch, 29.0)
    assert torch.count_nonzero(model.field.mlp[-1].weight) > 0


def test_the_free_run_term_is_trained_on_every_step(monkeypatch):
    """A field step moves the free run far more than the segments; the free-run gradient must
    come with every step, not every few (the delayed correction made the free run oscillate)."""
    runs = []
    original = SonodeModel.trajectory

    def counting(self, n_samples, gradient=None, stride=1, phase=0):
        if gradient is not None:
            runs.append(phase)
        return original(self, n_samples, gradient, stride, phase)

    monkeypatch.setattr(SonodeModel, "trajectory", counting)
    fit_samples(two_tone_clip(0.1), SAMPLE_RATE, FitOptions(**SMALL, steps=5, max_time_s=None))
    assert len(runs) == 5
    assert len(set(runs)) == 5  # the sampled offset rotates: over the steps every sample counts
