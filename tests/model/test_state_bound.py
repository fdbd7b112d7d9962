"""Segment states bounded by their window's energy (sonode.dsp.lpc.bounded_ridge_solve; issue #22).

A window holding a decayed tail and an onset is fitted by near-collinear modes that cancel: a state
carrying hundreds to thousands of times its window's power, whose balance the field's first steps
break. The identification's and the joint solves' states are bounded; windows the modes fit keep
their least-squares states."""

import functools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

import sonode.model.init as init
import sonode.model.linear_step as linear_step
from sonode.dsp.lpc import bounded_ridge_solve, ridge_solve, state_energy_bound

RATE_HZ = 16000
PERIOD_SAMPLES = 4150  # not a multiple of the 256-sample hop: each onset falls inside a window


def _collinear_problem(seed=0):
    rng = np.random.default_rng(seed)
    design = rng.standard_normal((40, 6))
    design[:, 1] = design[:, 0] + 1e-4 * rng.standard_normal(40)  # two near-collinear columns
    rhs = rng.standard_normal((4, 40)) @ design
    return design, rhs


def test_bounded_solve_is_the_trust_region_solution():
    """Rows within the bound are `ridge_solve`'s; the others are the constrained least squares
    (scipy's SLSQP on the same problem, an independent reference) with the bound active."""
    design, rhs = _collinear_problem()
    gram = design.T @ design
    free = ridge_solve(gram, rhs, 1e-6)
    bound = np.sum(free**2, axis=1) * np.array([2.0, 0.5, 0.05, 1e-3])
    states = bounded_ridge_solve(gram, rhs, 1e-6, bound)
    np.testing.assert_array_equal(states[0], free[0])
    np.testing.assert_allclose(np.sum(states[1:] ** 2, axis=1), bound[1:], rtol=1e-8)
    lam = 1e-6 * np.trace(gram) / 6 + 1e-12
    for row in (1, 2, 3):
        y = np.linalg.lstsq(design.T, rhs[row], rcond=None)[0]  # rhs = Aᵀy: the data
        reference = minimize(
            lambda c, y=y: np.sum((y - design @ c) ** 2) + lam * c @ c,
            free[row] * np.sqrt(bound[row] / np.sum(free[row] ** 2)),
            constraints={"type": "ineq", "fun": lambda c, e=bound[row]: e - c @ c},
            method="SLSQP",
            options={"ftol": 1e-14, "maxiter": 500},
        ).x
        np.testing.assert_allclose(states[row], reference, atol=1e-4 * np.sqrt(bound[row]))


def test_bounded_solve_batched_grams_match_a_shared_one_and_a_zero_bound_gives_zero():
    design, rhs = _collinear_problem(1)
    gram = design.T @ design
    bound = np.array([1e-2, 0.0, 1e9, 1e-1])
    shared = bounded_ridge_solve(gram, rhs, 1e-6, bound)
    batched = bounded_ridge_solve(np.broadcast_to(gram, (4, 6, 6)).copy(), rhs, 1e-6, bound)
    np.testing.assert_allclose(batched, shared, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(shared[1], np.zeros(6))
    assert np.all(np.isfinite(shared))


def _note(n_samples: int) -> np.ndarray:
    t_s = np.arange(n_samples) / RATE_HZ
    partials = ((1.0, 15.0, 261.6, 0.3), (0.5, 22.5, 523.3, 1.0), (0.3, 30.0, 784.9, 2.0))
    return sum(a * np.exp(-d * t_s) * np.sin(2 * np.pi * f * t_s + p) for a, d, f, p in partials)


@pytest.fixture(scope="module")
def repeated_note():
    """1 s of one note repeated every PERIOD_SAMPLES: three joins where a decayed tail meets a
    fresh onset inside one window (the long clips' failure, docs/training.md)."""
    x = np.tile(_note(PERIOD_SAMPLES), 4)[:RATE_HZ]
    return x + 1e-4 * np.random.default_rng(0).standard_normal(x.shape)


def _identified(x, allowance):
    original = init.segment_states
    init.segment_states = functools.partial(original, allowance=allowance)
    try:
        model, _ = init.initial_model(x, RATE_HZ, None, 256, 32, 16, 1)
    finally:
        init.segment_states = original
    return model


def _bounds(model, x):
    """Each segment's state energy and `state_energy_bound` at the identification: (M,), (M,)."""
    layout = model.config.layout
    xn = (x - model.config.offset) / model.config.gain
    poles = torch.exp(torch.complex(model.bank.decay_per_s, model.bank.omega_rad_per_s) / RATE_HZ)
    basis = init.modal_basis(poles.detach().numpy(), layout.window_samples)
    weights = layout.training_weights().numpy().T
    windows = layout.split(torch.from_numpy(xn)).numpy().T
    gram = np.einsum("wi,mw,wj->mij", basis, weights, basis)
    energy = np.sum(model.states.detach().numpy() ** 2, axis=1)
    return energy, state_energy_bound(gram, np.sum(weights * windows**2, axis=1))


def test_a_join_s_state_is_bounded_and_the_fitted_windows_are_untouched(repeated_note):
    free = _identified(repeated_note, float("inf"))
    bounded = _identified(repeated_note, init.STATE_CANCELLATION)
    free_energy, bound = _bounds(free, repeated_note)
    energy, _ = _bounds(bounded, repeated_note)
    joins = np.flatnonzero(free_energy > bound)
    assert joins.size > 0  # the unbounded solve does cancel somewhere: the test has a subject
    hop = free.config.layout.hop_samples
    onsets = np.arange(PERIOD_SAMPLES, RATE_HZ, PERIOD_SAMPLES)
    # where it cancels is around the joins (a quiet tail before an onset, the onset's window)
    assert np.all(np.min(np.abs(onsets[:, None] - joins[None, :] * hop), axis=0) < 3 * hop)
    assert np.all(energy <= bound * (1 + 1e-9))
    fine = free_energy <= bound
    np.testing.assert_allclose(
        bounded.states.detach()[fine], free.states.detach()[fine], rtol=1e-12, atol=0
    )


def test_a_joint_solve_does_not_rebuild_the_cancelling_states(repeated_note, monkeypatch):
    """`linear_step.solve_states` bounds its states as the identification does: its largest state
    energy stays near the identification's, where the unbounded solve's grows by far more."""
    model = _identified(repeated_note, init.STATE_CANCELLATION)
    target = torch.from_numpy((repeated_note - model.config.offset) / model.config.gain)
    start = float(torch.max(torch.sum(model.states.detach() ** 2, dim=1)))
    bounded = linear_step.refit_segment_states(model, target)
    monkeypatch.setattr(
        linear_step, "bounded_ridge_solve", lambda g, r, rr, b: ridge_solve(g, r, rr)
    )
    free = linear_step.refit_segment_states(model, target)
    largest = float(torch.max(torch.sum(bounded**2, dim=1)))
    assert largest <= 2.0 * start
    assert float(torch.max(torch.sum(free**2, dim=1))) > 2.0 * largest
