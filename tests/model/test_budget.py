"""#30: one --max-time for the whole fit (FitBudget), and a final check that a signal can stop."""

import math
import time

import numpy as np
import pytest
import torch

from sonode.model import FitOptions, fit_samples
from sonode.model.budget import FINAL_CHECK_COST, NO_TIME_FOR_CONTINUATION, FitBudget
from sonode.model.checks import REFERENCE_PIECE_SAMPLES, fast_vs_reference_db, stoppable_check_db
from sonode.model.init import initial_model, segment_states
from sonode.model.layout import SegmentLayout
from sonode.model.modal import modal_readout
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

SMALL = dict(latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1, lp_order=32)


def _perturbed_model():
    model = initial_model(two_tone_clip(0.1), SAMPLE_RATE, 4, 64, 8, 16, 1, lp_order=32)[0]
    torch.manual_seed(0)
    with torch.no_grad():  # a clearly non-zero field, so that the reference solve differs
        for p in model.field.parameters():
            p.add_(3.0 * torch.randn_like(p))
    return model


def test_the_reference_solved_in_pieces_is_the_reference():
    model = _perturbed_model()
    whole = fast_vs_reference_db(model, 2, 8)
    pieces, samples = stoppable_check_db(model, 2, 8, None)
    assert 20 < whole < 200  # a measurable disagreement, not rounding
    assert samples == model.config.layout.window_samples
    assert pieces == pytest.approx(whole, abs=1e-6)


def test_a_stop_ends_the_check_after_one_piece():
    model = _perturbed_model()
    polls = iter([False])  # not stopped when it begins, stopped from the first piece on
    db, samples = stoppable_check_db(model, 8, 64, lambda: next(polls, True))
    assert samples == REFERENCE_PIECE_SAMPLES and np.isfinite(db)
    # stopped before it began (a signal after the last step): nothing is solved, nothing checked
    db, samples = stoppable_check_db(model, 8, 64, lambda: True)
    assert samples == 0 and math.isnan(db)


@pytest.fixture
def frozen_clock(monkeypatch):
    """The budget's clock stands still: the arithmetic below is checked, not the machine's speed
    (a loaded machine's pause between two lines would spend a budget of seconds)."""
    monkeypatch.setattr(FitBudget, "elapsed_s", lambda self: 0.0)
    return time.perf_counter()


def test_the_budget_stops_training_before_the_rest_would_overrun(frozen_clock):
    start = frozen_clock
    free = FitBudget(start, None, 5.0, 1.0, 10, True)
    assert free.train_more() and free.check_last() and free.fine_final
    tight = FitBudget(start, 10.0, 1.0, 0.5, 10, True)
    assert not tight.fine_final  # 12 checks of 0.5 s are over a quarter of 10 s
    assert tight.train_more()  # 1 + 0.5 (check) + 0.5 (final) + 2 (continuation) < 10
    tight.step_took(1.0)  # a trained field's check: one step's solve per batch (10 s)
    assert not tight.train_more() and not tight.check_last()
    # parameters already checked (the last step was a checking one) need only the final check
    assert tight.check_last(consider=False)
    tight.consider_took(0.2)  # measured: cheaper than estimated
    assert tight.train_more() and tight.check_last()
    roomy = FitBudget(start, 100.0, 1.0, 0.5, 10, False)
    assert roomy.fine_final and roomy.final_check_s() == 0.5 * FINAL_CHECK_COST


def test_a_long_clips_check_is_estimated_from_its_measured_reconstruction(frozen_clock):
    """One step's solve per batch put a 60 s 48 kHz clip's check at ~40 s: it trained 1 step in
    9 s of its 60. The graph-free reconstruction, measured once, is what the check costs."""
    start = frozen_clock
    budget = FitBudget(start, 40.0, 1.0, 0.5, 132, False)
    budget.step_took(0.3)  # 0.3 + (0.3 x 132 + 0.5 + 1.0) + 12 x 0.5 > 40
    assert not budget.train_more()
    budget.measure_reconstruction(lambda: 4.0)
    assert budget.consider_estimate_s() == 4.0 + 0.5 + 1.0 and budget.train_more()
    budget.measure_reconstruction(lambda: 1e6)  # measured once, on the first trained field
    assert budget.reconstruction_s == 4.0
    budget.consider_took(50.0)  # a measured check replaces the estimate
    assert not budget.train_more()
    free = FitBudget(start, None, 1.0, 0.5, 132, False)  # no deadline: nothing is probed
    free.measure_reconstruction(lambda: pytest.fail("probed without a deadline"))
    assert free.solve_fits(lambda: pytest.fail("probed without a deadline"))
    assert free.reconstruction_s is None
    assert not budget.solve_fits(lambda: 1e3) and budget.solve_fits(lambda: 1.0)


def test_the_joint_state_solve_runs_only_if_it_fits_the_budget(frozen_clock):
    """A 60 s 48 kHz clip's joint solve (~50 s) took --max-time 60 before any step."""
    start = frozen_clock
    assert FitBudget(start, None, 2.0, 0.5, 10, True).state_solve_fits(1e6)
    assert FitBudget(start, 200.0, 1.2, 0.5, 10, True).state_solve_fits(48.0)  # 55.7 + 40 < 200
    assert not FitBudget(start, 60.0, 1.2, 0.5, 10, True).state_solve_fits(48.0)  # 55.7 + 12 > 60


def test_a_fit_out_of_time_takes_no_step_and_checks_at_the_in_training_size():
    """--max-time shorter than identification: no step, no fine check, no continuation training
    (each ran past the budget before)."""
    x = two_tone_clip(0.5)
    _, report = fit_samples(x, SAMPLE_RATE, FitOptions(**SMALL, max_time_s=1e-3))
    assert report.epochs == 0 and report.stop_reason == "max_time"
    assert report.discretisation_check["substeps_per_sample"] == 2
    skipped = ("stopped", "no continuation ODE", NO_TIME_FOR_CONTINUATION)
    assert report.continuation_training.get("skipped") in skipped
    _, full = fit_samples(x, SAMPLE_RATE, FitOptions(**SMALL, steps=2, max_time_s=None))
    assert full.epochs == 2 and full.discretisation_check["substeps_per_sample"] == 8


def test_segment_states_group_the_segments_by_their_weights():
    """Grouped by a dict of rows, blocks of rows per solve: the same states as one solve per
    segment (the definition)."""
    x = np.asarray(two_tone_clip(0.3), dtype=np.float64)
    layout = SegmentLayout(SAMPLE_RATE, x.shape[0], 64, 8)
    poles = np.exp(np.array([-3 + 2j * np.pi * 440, -5 + 2j * np.pi * 1000]) / SAMPLE_RATE)
    grouped = segment_states(x, layout, poles, 1e-6)
    from sonode.dsp.lpc import modal_basis, ridge_solve

    basis = modal_basis(poles, layout.window_samples)
    weights = layout.training_weights().numpy().T
    windows = layout.split(torch.from_numpy(x)).numpy().T
    for m in (0, 1, layout.n_segments // 2, layout.n_segments - 1):
        gram = basis.T @ (weights[m][:, None] * basis)
        one = ridge_solve(gram, (weights[m] * windows[m]) @ basis, 1e-6)
        np.testing.assert_allclose(grouped[m], one, rtol=1e-9, atol=1e-12)


def test_the_reconstruction_in_runs_is_the_reconstruction():
    """`consider` reconstructs a run of segments at a time, so that a stop acts between runs."""
    from sonode.model.checks import _reconstruct
    from sonode.model.fit_size import EVALUATION_SEGMENTS

    model = initial_model(two_tone_clip(1.3), SAMPLE_RATE, 4, 64, 8, 16, 1, lp_order=32)[0]
    with torch.no_grad():
        for p in model.field.parameters():
            p.add_(3.0 * torch.randn_like(p))
    assert model.config.layout.n_segments > EVALUATION_SEGMENTS  # more than one run
    with torch.no_grad():
        whole = model.reconstruct()[0]
    torch.testing.assert_close(_reconstruct(model, lambda: False), whole, rtol=0, atol=1e-12)
    assert _reconstruct(model, lambda: True) is None


def test_the_graph_free_reconstruction_overlap_adds_a_run_at_a_time_and_is_the_same_sum(
    monkeypatch,
):
    """The whole clip's weighted copy and overlap-add index (window × segments each) took a 600 s
    16 kHz fit from 1.1 to 1.6 GiB: without a graph they are made a run of EVALUATION_SEGMENTS at
    a time, and the sum is the whole one bit for bit."""
    from sonode.model.fit_size import EVALUATION_SEGMENTS

    model = initial_model(two_tone_clip(1.3), SAMPLE_RATE, 4, 64, 8, 16, 1, lp_order=32)[0]
    with torch.no_grad():
        for p in model.field.parameters():
            p.add_(3.0 * torch.randn_like(p))
    layout = model.config.layout
    assert layout.n_segments > EVALUATION_SEGMENTS  # more than one run
    widths = []
    real_overlap_add = type(layout).overlap_add

    def overlap_add(self, per_segment, first=0):
        widths.append(per_segment.shape[1])
        return real_overlap_add(self, per_segment, first)

    monkeypatch.setattr(type(layout), "overlap_add", overlap_add)
    for segments in (None, torch.arange(3, layout.n_segments - 2)):
        widths.clear()
        signal, per_segment = model.reconstruct(segments=segments)
        assert widths and max(widths) <= EVALUATION_SEGMENTS
        first = 0 if segments is None else 3
        weights = layout.training_weights()[:, first : first + per_segment.shape[1]]
        whole = real_overlap_add(layout, per_segment * weights, first)
        assert torch.equal(signal, whole)
        with torch.no_grad():  # solved in the same runs as before (the envelope's steps are shared)
            states = model.states if segments is None else model.states[segments]
            local = torch.arange(layout.window_samples, dtype=torch.float64) / SAMPLE_RATE
            runs = torch.split(states, EVALUATION_SEGMENTS)
            parts = [modal_readout(model.bank, model.field, r, local, model.readout) for r in runs]
        assert torch.equal(per_segment, torch.cat(parts, dim=1) + model.readout_bias)


def test_the_continuations_share_is_kept_only_for_a_training_that_can_finish_in_it():
    """A continuation training stopped by the deadline keeps nothing: its share (a fifth of the
    budget) is reserved only if its least cost, CONTINUATION_TRAINING_PER_IDENTIFICATION times its
    identification's, fits in it; otherwise the steps get the time and it is not started."""
    from sonode.model.budget import CONTINUATION_SHARE, CONTINUATION_TRAINING_PER_IDENTIFICATION

    start = time.perf_counter()
    share_s = CONTINUATION_SHARE * 60.0
    fits_s = 0.9 * share_s / CONTINUATION_TRAINING_PER_IDENTIFICATION
    cheap = FitBudget(start, 60.0, 1.0, 0.5, 10, True, fits_s)
    assert cheap.continuation_fits and cheap.continuation_s == share_s
    costly = FitBudget(start, 60.0, 1.0, 0.5, 10, True, 2 * fits_s)
    assert not costly.continuation_fits and costly.continuation_s == 0.0
    # without a deadline it always trains; without a continuation nothing is reserved
    assert FitBudget(start, None, 1.0, 0.5, 10, True, 100.0).continuation_fits
    assert FitBudget(start, 60.0, 1.0, 0.5, 10, False, 100.0).continuation_s == 0.0
