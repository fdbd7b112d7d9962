"""The audio model: initial fit, adjoint gradients, training behaviour, model files."""

import math

import numpy as np
import pytest
import torch

from sonode.errors import ModelFileError
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.init import initial_model, normalisation
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

SMALL = dict(latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1, lp_order=32)


def _small_model(x=None):
    x = two_tone_clip(0.1) if x is None else x
    return initial_model(x, SAMPLE_RATE, 4, 64, 8, 16, 1, lp_order=32)[0]


def test_two_tone_clip_fits_to_30_db_in_a_few_steps():
    model, report = fit_samples(
        two_tone_clip(0.25), SAMPLE_RATE, FitOptions(**SMALL, steps=3, max_time_s=None)
    )
    assert report.snr_db >= 30.0
    assert report.discretisation_snr_db >= 40.0
    assert report.epochs == 3 and len(report.history) == 3 and report.stop_reason == "steps"
    assert report.function_evaluations > 0


def test_the_last_steps_kept_snr_is_the_final_checks(monkeypatch):
    """The curve's kept line ends at the model the fit returns: a final check after the last
    periodic one (3 steps: only the final) that keeps a better model shows in the last record."""
    import sonode.model.train as train

    real = train.consider

    def keeps_better(model, clip_snr, free_run_snr, kept, should_stop):
        (snr, trajectory, state), passed = real(model, clip_snr, free_run_snr, kept, should_stop)
        return (snr + 1.0, trajectory, state), passed

    monkeypatch.setattr(train, "consider", keeps_better)
    _, report = fit_samples(
        two_tone_clip(0.1), SAMPLE_RATE, FitOptions(**SMALL, steps=3, max_time_s=None)
    )
    assert report.snr_db == pytest.approx(report.initial_snr_db + 1.0)  # the final check's
    assert [r.kept_snr_db for r in report.history] == pytest.approx(
        [report.initial_snr_db] * 2 + [report.snr_db]
    )


def test_adjoint_gradient_equals_backprop_through_the_same_solver():
    model = _small_model()
    with torch.no_grad():  # a non-zero correction so that the MLP's gradient is not trivial
        for p in model.field.parameters():
            p.add_(0.1 * torch.randn_like(p))
    target = torch.from_numpy(two_tone_clip(0.1))

    def grads(method):
        model.zero_grad()
        signal, _ = model.reconstruct(gradient=method)
        torch.mean((signal - target) ** 2).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    for g_adj, g_bp in zip(grads("adjoint"), grads("backprop"), strict=False):
        torch.testing.assert_close(g_adj, g_bp, rtol=1e-8, atol=1e-14)


def test_same_seed_and_steps_give_identical_parameters():
    options = FitOptions(**SMALL, steps=2, max_time_s=None, seed=3)
    a, _ = fit_samples(two_tone_clip(0.1), SAMPLE_RATE, options)
    b, _ = fit_samples(two_tone_clip(0.1), SAMPLE_RATE, options)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=False):
        assert torch.equal(pa, pb), name


def test_target_snr_stops_training_early():
    _, report = fit_samples(
        two_tone_clip(0.1),
        SAMPLE_RATE,
        FitOptions(**SMALL, steps=50, max_time_s=None, target_snr_db=10.0),
    )
    assert report.stop_reason == "target_snr" and report.epochs == 0


def test_non_finite_loss_rolls_back_and_reports(monkeypatch):
    """A step that produces NaN is rejected, parameters return to the last good state, and after
    repeated failure the fit ends with the best model rather than crashing."""
    real = SonodeModel.reconstruct

    def poisoned(self, gradient=None, substeps=None, segments=None):
        signal, per_segment = real(self, gradient, substeps, segments)
        return (signal * math.nan, per_segment) if gradient is not None else (signal, per_segment)

    monkeypatch.setattr(SonodeModel, "reconstruct", poisoned)
    model, report = fit_samples(
        two_tone_clip(0.1), SAMPLE_RATE, FitOptions(**SMALL, steps=5, max_time_s=None)
    )
    assert report.stop_reason == "diverged" and report.rejected_steps >= 6 and report.epochs == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert report.snr_db == pytest.approx(report.initial_snr_db)


def test_invalid_options_name_the_value():
    with pytest.raises(ValueError, match="latent_dim"):
        FitOptions(latent_dim=7)
    with pytest.raises(ValueError, match="gradient"):
        FitOptions(gradient="magic")


def test_constant_clip_is_refused():
    with pytest.raises(ValueError, match="constant"):
        normalisation(np.full(100, 0.25))


def test_model_file_round_trip_renders_identically(tmp_path):
    model = _small_model()
    path = tmp_path / "m.sonode"
    model.save(path, {"note": "x"})
    loaded, info = SonodeModel.load(path)
    assert info == {"note": "x"}
    with torch.no_grad():
        torch.testing.assert_close(loaded.reconstruct()[0], model.reconstruct()[0], rtol=0, atol=0)


def test_model_file_with_inconsistent_configuration_is_refused(tmp_path):
    from sonode.io.model_file import load_model_file, save_model_file
    from sonode.model.decoder import MODEL_KIND, MODEL_VERSION

    path = tmp_path / "m.sonode"
    _small_model().save(path)
    tensors, meta = load_model_file(path, kind=MODEL_KIND, supported_versions=[MODEL_VERSION])
    meta["config"]["n_modes"] = 5  # shapes no longer match the stated structure
    save_model_file(path, tensors, meta, kind=MODEL_KIND, version=MODEL_VERSION)
    with pytest.raises(ModelFileError, match="do not match"):
        SonodeModel.load(path)
    meta["config"]["sample_rate"] = "fast"
    save_model_file(path, tensors, meta, kind=MODEL_KIND, version=MODEL_VERSION)
    with pytest.raises(ModelFileError, match="configuration"):
        SonodeModel.load(path)


def test_a_model_failing_the_discretisation_check_is_not_kept(monkeypatch):
    """If the trained model's training-grid and fine solves disagree, the exact linear model wins."""
    import sonode.model.train as train

    monkeypatch.setattr(train, "DISCRETISATION_GOAL_DB", math.inf)
    model, report = fit_samples(
        two_tone_clip(0.1), SAMPLE_RATE, FitOptions(**SMALL, steps=3, max_time_s=None)
    )
    assert report.discretisation_fallback
    assert torch.count_nonzero(model.field.mlp[-1].weight) == 0  # the zero-initialised correction
    assert report.snr_db == pytest.approx(report.initial_snr_db, abs=1e-9)
