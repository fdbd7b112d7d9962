"""The one trajectory's limit cycle (`sonode.model.trajectory_cycle`): chosen for a held note by the
held-back test, refused for a decaying one, attracting, phase-locked, saved with the model, and
trainable through the engine's adjoint."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sonode.dsp.metrics import snr_db
from sonode.model import FitOptions, SonodeModel, fit_samples
from sonode.model.checks import trajectory_snr
from sonode.model.init import initial_model
from sonode.model.trajectory_cycle import least_squares_state

RATE = 8000
HELD = ((150.0, 0.6, 0.3), (300.0, 0.3, 1.2), (450.0, 0.15, 2.0))  # Hz, amplitude, phase rad
DECAYING = ((150.0, 0.6, 3.0), (420.0, 0.3, 6.0))  # Hz, amplitude, decay 1/s
OLD_FILE = Path(__file__).resolve().parent.parent / "data" / "model_d8155b1.sonode"


def held_tone(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return sum(a * np.sin(2 * np.pi * f * t + p) for f, a, p in HELD)


def decaying_tone(n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return sum(a * np.exp(-d * t) * np.sin(2 * np.pi * f * t + 0.4) for f, a, d in DECAYING)


def _identified(x: np.ndarray, n_modes: int = 6):
    return initial_model(x, RATE, n_modes, 64, 8, 8, 1, lp_order=64, continuation_samples=0)


@pytest.fixture(scope="module")
def held():
    return _identified(held_tone(int(0.6 * RATE)))


def _free_run(model: SonodeModel, n: int, scale: float = 1.0) -> np.ndarray:
    kept = model.trajectory_state.detach().clone()
    try:
        with torch.no_grad():
            model.trajectory_state.mul_(scale)
            return model.trajectory(n).numpy()
    finally:
        with torch.no_grad():
            model.trajectory_state.copy_(kept)


def test_a_held_tone_gets_the_cycle_and_an_amplitude_off_it_returns_with_the_same_waveform(held):
    model, summary = held
    assert summary["trajectory_cycle"]["chosen"], summary["trajectory_cycle"]
    n = int(1.0 * RATE)  # past the clip: 0.4 s after its end
    on_cycle = _free_run(model, n)
    late = slice(int(0.8 * RATE), n)
    for scale in (0.5, 2.0):
        pushed = _free_run(model, n, scale)
        # the first instants show the push (so the test sees the perturbation at all)...
        first = slice(0, int(0.001 * RATE))
        assert abs(np.std(pushed[first]) / np.std(on_cycle[first]) - scale) < 0.1 * scale
        # ...0.8 s later it is gone: a common factor on every mode, so the harmonics' amplitude
        # ratios and relative phases (the waveform) are those of the cycle itself
        assert snr_db(on_cycle[late], pushed[late]) > 40.0


def test_a_decaying_tone_gets_no_cycle_and_keeps_its_least_squares_state():
    x = decaying_tone(int(0.6 * RATE))
    model, summary = _identified(x, 4)
    report = summary["trajectory_cycle"]
    assert not report["chosen"] and not model.trajectory_cycle.active, report
    bank = model.bank
    poles = np.exp((bank.decay_per_s + 1j * bank.omega_rad_per_s).detach().numpy() / RATE)
    xn = (x - model.config.offset) / model.config.gain
    expected = least_squares_state(poles, xn, 1e-6)
    # (to rounding: the ridge solve of the init ran on another LAPACK thread count)
    np.testing.assert_allclose(model.trajectory_state.detach().numpy()[0], expected, atol=1e-6)


def test_the_cycle_is_saved_with_the_model_and_an_older_file_loads_without_one(held, tmp_path):
    model, _ = held
    path = tmp_path / "held.sonode"
    model.save(path)
    loaded, _ = SonodeModel.load(path)
    assert loaded.trajectory_cycle.active
    n = int(0.7 * RATE)
    assert np.array_equal(_free_run(loaded, n), _free_run(model, n))
    old, _ = SonodeModel.load(OLD_FILE)
    assert not old.trajectory_cycle.active


def test_the_cycled_trajectorys_adjoint_gradient_matches_finite_differences(held):
    model, _ = held
    n, stride = int(0.3 * RATE), 7
    target = torch.from_numpy(held_tone(n)) * 0.9

    def loss() -> torch.Tensor:
        return torch.mean((model.trajectory(n, "adjoint", stride) - target[::stride]) ** 2)

    kept = model.trajectory_state.detach().clone()
    model.zero_grad()
    loss().backward()
    grad = model.trajectory_state.grad[0].clone()
    step = 1e-6
    try:
        for i in (0, 2, model.config.n_modes + 1):
            with torch.no_grad():
                model.trajectory_state.copy_(kept)
                model.trajectory_state[0, i] += step
                up = float(loss())
                model.trajectory_state[0, i] -= 2 * step
                down = float(loss())
            assert float(grad[i]) == pytest.approx((up - down) / (2 * step), rel=1e-3, abs=1e-7)
    finally:
        with torch.no_grad():
            model.trajectory_state.copy_(kept)


def test_the_reports_one_trajectory_figures_are_the_saved_models_and_its_start(tmp_path):
    """`sonode info`'s one-trajectory gain is report.trajectory_snr_db − initial_trajectory_snr_db:
    the first must be the saved model's own free run, the second the identified start's."""
    x = held_tone(int(0.4 * RATE))
    options = FitOptions(
        latent_dim=8, hop_samples=64, overlap_samples=8, hidden=8, layers=1, lp_order=64,
        steps=3, max_time_s=None, continuation_training_steps=0,
    )  # fmt: skip
    model, report = fit_samples(x, RATE, options)
    path = tmp_path / "fitted.sonode"
    model.save(path)
    loaded, _ = SonodeModel.load(path)
    target = torch.from_numpy((x - loaded.config.offset) / loaded.config.gain)
    assert report.trajectory_snr_db == pytest.approx(trajectory_snr(loaded, target), abs=1e-9)
    start, _ = initial_model(x, RATE, 4, 64, 8, 8, 1, lp_order=64, continuation_samples=0)
    assert report.initial_trajectory_snr_db == pytest.approx(
        trajectory_snr(start, target), abs=1e-9
    )
