"""`fit --modes auto`: the local model against the global start, as the user gets them."""

import numpy as np
import torch

from sonode.dsp.metrics import snr_db
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.init import initial_from_options, normalisation
from sonode.model.local import LocalModel
from tests.model.test_local_modes import RATE, melody

SMALL = dict(continuation_samples=0, max_time_s=None, latent_dim=16, lp_order=64)


def test_auto_identifies_the_local_model_once_and_reports_what_it_compared(monkeypatch):
    """A local win is the fitted model itself (one identification), and the SNRs compared are
    the kept model's own and the global start's on the same samples."""
    import sonode.model.local_fit as local_fit

    calls = []
    identify = local_fit.identify_tracks
    monkeypatch.setattr(
        local_fit, "identify_tracks", lambda *a, **k: calls.append(1) or identify(*a, **k)
    )
    x = melody()
    options = FitOptions(modes="auto", steps=2, **SMALL)
    model, report = fit_samples(x, RATE, options)
    assert isinstance(model, LocalModel) and len(calls) == 1
    chosen = report.identification["modes_chosen_by"]
    assert chosen["local_snr_db"] == report.snr_db  # the stage the user gets: trained, rounded
    gain, offset = normalisation(x)
    start = initial_from_options(x, RATE, options, continuation=False)[0]
    with torch.no_grad():
        global_db = snr_db((x - offset) / gain, start.reconstruct()[0].numpy())
    assert abs(chosen["global_start_snr_db"] - global_db) < 1e-9
    assert chosen["local_snr_db"] > chosen["global_start_snr_db"]


def test_auto_keeps_the_global_model_for_exact_decays():
    """Three exponentially decaying partials are exact for the global modes over a whole segment,
    while the local model's amplitude is linear between nodes: auto picks global."""
    t = np.arange(int(0.4 * RATE)) / RATE
    x = sum(
        np.exp(-d * t) * np.cos(2 * np.pi * f * t + p)
        for d, f, p in ((6, 220, 0), (9, 440, 1), (15, 660, 2))
    )
    x = x + 1e-6 * np.random.default_rng(0).standard_normal(t.size)
    model, report = fit_samples(x, RATE, FitOptions(modes="auto", steps=2, **SMALL))
    assert isinstance(model, SonodeModel)
    assert "modes_chosen_by" not in report.identification


def test_node_spacing_is_chosen_by_validation_for_a_bass_note(monkeypatch):
    """Harmonics 41 Hz apart (E1) are not resolved by the 40 ms windows of 10 ms nodes; a longer
    spacing, chosen on held-back samples, resolves them at the same numbers per sample."""
    import sonode.model.local_identify as local_identify

    t = np.arange(int(0.6 * RATE)) / RATE
    x = sum(
        np.exp(-(1 + h) * t) * np.cos(2 * np.pi * 41.2 * h * t + h) / h for h in range(1, 9)
    ) + 1e-5 * np.random.default_rng(1).standard_normal(t.size)
    options = FitOptions(modes="local", steps=0, continuation_samples=0, max_time_s=None)
    chosen, report = fit_samples(x, RATE, options)
    monkeypatch.setattr(local_identify, "NODE_SPACINGS_S", (0.010,))
    short, short_report = fit_samples(x, RATE, options)
    assert short.config.hop_samples == 160 and chosen.config.hop_samples > 160
    assert report.snr_db > short_report.snr_db + 10
    assert report.identification["parameters_per_sample"] < 0.6


def test_an_interrupted_local_fit_resumes_to_the_uninterrupted_result(tmp_path):
    """--resume for local fits: interrupted after 2 Gauss–Newton iterations, the fit resumes from
    its checkpoint without identifying again and ends where the uninterrupted 4 iterations end."""
    import pytest

    import sonode.model.local_fit as local_fit
    from sonode.model.checkpoint import CheckpointError, CheckpointPlan

    t = np.arange(int(0.4 * RATE)) / RATE
    x = np.cos(2 * np.pi * (440 * t + 8 / (2 * np.pi * 5) * np.sin(2 * np.pi * 5 * t)))
    x = x * (1 + 0.3 * np.cos(2 * np.pi * 3 * t))
    options = FitOptions(modes="local", steps=4, continuation_samples=0, max_time_s=None)
    whole, whole_report = fit_samples(x, RATE, options)
    assert whole_report.epochs == 4 and whole_report.snr_db > whole_report.initial_snr_db
    path = tmp_path / "fit.ckpt"
    calls = []
    fit_samples(
        x,
        RATE,
        options,
        should_stop=lambda: calls.append(1) or len(calls) >= 2,
        checkpoint=CheckpointPlan(path, every_s=0),
    )
    assert path.exists()
    identify = local_fit.identify_tracks
    local_fit.identify_tracks = None  # a resumed fit must not identify
    try:
        resumed, report = fit_samples(
            x, RATE, options, checkpoint=CheckpointPlan(path, resume=True)
        )
    finally:
        local_fit.identify_tracks = identify
    assert report.epochs == 4
    assert torch.equal(resumed.freq_hz, whole.freq_hz)
    assert report.snr_db == whole_report.snr_db
    with pytest.raises(CheckpointError, match="other options"):
        other = FitOptions(modes="local", steps=4, continuation_samples=0, max_time_s=None, seed=1)
        fit_samples(x, RATE, other, checkpoint=CheckpointPlan(path, resume=True))
