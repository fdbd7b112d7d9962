"""The least-squares step for the segment states (sonode.model.linear_step)."""

import numpy as np
import torch

from sonode.model import FitOptions, fit_samples
from sonode.model.linear_step import refit_segment_states, run_error, solve_states
from sonode.model.modal import modal_coordinates, modal_factors
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip
from tests.model.test_decoder_train import SMALL, _small_model


def _noisy_target(model, seed=0):
    generator = np.random.default_rng(seed)
    clip = two_tone_clip(0.1) + 0.05 * generator.standard_normal(1600)  # not in the modes' span
    return torch.from_numpy((clip - model.config.offset) / model.config.gain)


def _global_least_squares(model, target):
    """The cross-faded reconstruction's least-squares states, from one dense design matrix: the
    independent reference (every segment's columns placed at its samples, weighted)."""
    layout, k = model.config.layout, model.config.n_modes
    local = torch.arange(layout.window_samples, dtype=torch.float64) / layout.sample_rate
    weights = layout.training_weights().numpy()
    readout = torch.complex(model.readout[:k], -model.readout[k:]).detach()
    n, m = layout.n_samples, layout.n_segments
    design = np.zeros((n, m * 2 * k))
    for s in range(m):
        basis = (
            modal_factors(model.bank, None, model.states.detach()[s : s + 1], local) * readout
        )[:, 0].numpy()
        rows = s * layout.hop_samples + np.arange(layout.window_samples)
        keep = rows < n
        block = weights[:, s : s + 1] * np.concatenate([basis.real, -basis.imag], axis=1)
        design[rows[keep], s * 2 * k : (s + 1) * 2 * k] = block[keep]
    bias = float(model.readout_bias.detach())
    solution = np.linalg.lstsq(design, target.numpy() - bias, rcond=None)[0]
    return solution.reshape(m, 2 * k)


def test_modal_factors_times_the_start_state_are_the_trajectory():
    model = _small_model()
    with torch.no_grad():
        model.field.mlp[-1].weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
    local = torch.arange(72, dtype=torch.float64) / SAMPLE_RATE
    z0 = model.states.detach()[:3]
    k = model.config.n_modes
    c0 = torch.complex(z0[:, :k], z0[:, k:])
    expected = modal_coordinates(model.bank, model.field, z0, local)
    torch.testing.assert_close(c0 * modal_factors(model.bank, model.field, z0, local), expected)


def test_sweeps_converge_to_the_global_least_squares_states_of_a_linear_model():
    """Block Gauss–Seidel over the two colours converges to the joint minimiser of the
    cross-faded error (compared with a dense least-squares solve of the whole clip)."""
    model = _small_model()
    target = _noisy_target(model)
    start = run_error(model, target, None)
    errors = []
    for _ in range(200):
        with torch.no_grad():
            model.states.copy_(refit_segment_states(model, target, rel_ridge=0.0))
        errors.append(run_error(model, target, None))
    assert errors[0] < start
    assert all(b <= a * (1 + 1e-9) for a, b in zip(errors, errors[1:], strict=False))  # monotone
    reference = _global_least_squares(model, target)
    with torch.no_grad():
        model.states.copy_(torch.from_numpy(reference))
    assert abs(errors[-1] - run_error(model, target, None)) <= 1e-6 * errors[-1]


def test_a_run_refit_returns_the_runs_states_and_lowers_the_error_over_the_run():
    model = _small_model()
    target = _noisy_target(model, seed=2)
    run = torch.arange(5, 12)
    before = model.states.detach().clone()
    states = refit_segment_states(model, target, run)
    assert states.shape == (run.shape[0], before.shape[1])  # the run's rows, not a copy of all
    assert torch.equal(model.states.detach(), before)  # the model is not modified
    assert not torch.equal(states, before[run])
    error = run_error(model, target, run)
    with torch.no_grad():
        model.states[run] = states
    assert run_error(model, target, run) < error


def test_solve_states_keeps_the_states_unless_the_measured_error_falls():
    model = _small_model()
    with torch.no_grad():  # a strong field: the frozen-envelope solve is only approximate
        model.field.mlp[-1].weight.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(0))
    target = _noisy_target(model, seed=3)
    before_states = model.states.detach().clone()
    before, after = solve_states(model, target)
    assert after <= before
    assert abs(run_error(model, target, None) - after) <= 1e-9 * after
    if after == before:
        assert torch.equal(model.states.detach(), before_states)


def test_a_fit_with_state_solves_is_reproducible_and_scores_at_least_the_start():
    options = FitOptions(**SMALL, steps=4, max_time_s=None, state_solve_every=2)
    a, report = fit_samples(two_tone_clip(0.1), SAMPLE_RATE, options)
    b, _ = fit_samples(two_tone_clip(0.1), SAMPLE_RATE, options)
    assert torch.equal(a.states, b.states)
    assert report.snr_db >= report.initial_snr_db
