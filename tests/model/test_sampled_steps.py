"""#22: the steps of a long clip train a stratified sample of its segments (objective.SegmentBatches),
each segment's state moving only when it is trained (adam's "sparse_rows")."""

import pytest
import torch

from sonode.model.adam import Adam
from sonode.model.layout import SegmentLayout
from sonode.model.objective import (
    SegmentBatches,
    piece_reconstruction,
    pieces,
)
from tests.model.test_decoder_train import SMALL, _small_model


def test_every_step_samples_the_whole_clip_and_a_cycle_visits_every_segment():
    layout = SegmentLayout(16000, 625 * 256, 256, 32)  # a 10 s clip
    batches = SegmentBatches(layout, 85, seed=3)
    strata = torch.linspace(0, 625, batches.count + 1)
    seen = torch.zeros(625, dtype=torch.long)
    for epoch in range(9):
        picked = batches.pick(epoch)
        assert picked.shape == (85,) and torch.equal(picked, torch.unique(picked))  # sorted
        # one piece in each stratum: every part of the clip is in every step
        assert torch.equal(
            torch.bucketize(picked, strata[1:-1], right=True).unique(),
            torch.arange(batches.count),
        )
        seen[picked] += 1
    assert bool((seen > 0).all())  # strata of 56-57 segments, pieces of 7-8: 9 steps suffice
    assert torch.equal(SegmentBatches(layout, 85, seed=3).pick(7), batches.pick(7))
    assert not torch.equal(SegmentBatches(layout, 85, seed=4).pick(7), batches.pick(7))
    assert SegmentBatches(layout, 625, seed=3).pick(0) is None  # a short clip: all of it


def test_pieces_are_the_contiguous_runs():
    assert pieces(torch.tensor([2, 3, 4, 9, 10, 20])) == [(2, 3), (9, 2), (20, 1)]
    assert pieces(torch.tensor([5])) == [(5, 1)]


def test_piece_reconstruction_is_the_runs_reconstruction_over_their_own_samples():
    model = _small_model()
    layout = model.config.layout
    target = torch.randn(layout.n_samples, dtype=torch.float64)
    runs = [(1, 4), (9, 3)]
    part, estimate = piece_reconstruction(
        model, target, torch.cat([torch.arange(f, f + c) for f, c in runs]), None
    )
    expected_part, expected = [], []
    with torch.no_grad():
        for first, count in runs:
            signal, _ = model.reconstruct(segments=torch.arange(first, first + count))
            begin, end = layout.complete_span(first, count)
            offset = first * layout.hop_samples
            expected_part.append(target[begin:end])
            expected.append(signal[begin - offset : end - offset])
    assert torch.equal(part, torch.cat(expected_part))
    assert torch.allclose(estimate, torch.cat(expected), rtol=1e-12, atol=1e-12)


def _adam_rows(sparse: bool, trained: list[list[int]]) -> torch.Tensor:
    """(4, 3) parameters after one Adam step per entry of ``trained`` (the rows with a gradient)."""
    states = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    optimiser = Adam([{"params": [states], "lr": 0.1, **({"sparse_rows": True} if sparse else {})}])
    for rows in trained:
        optimiser.zero_grad()
        mask = torch.zeros(4, 1, dtype=torch.float64)
        mask[rows] = 1.0
        (mask * (states - 1.0) ** 2).sum().backward()  # pulls the trained rows towards 1
        optimiser.step()
    return states.detach()


def test_sparse_rows_move_only_when_trained_and_start_with_a_full_step():
    first, then = [[0, 1]] * 5, [[2]]  # rows 0-1 for five steps, then only row 2
    # while the same rows are trained, the sparse update is Adam's (to rounding)
    assert torch.allclose(_adam_rows(True, first), _adam_rows(False, first), rtol=1e-12)
    dense, sparse = _adam_rows(False, first + then), _adam_rows(True, first + then)
    # the last step did not train rows 0-1: dense Adam moved them on momentum, sparse did not
    assert not torch.equal(dense[:2], _adam_rows(False, first)[:2])
    assert torch.equal(sparse[:2], _adam_rows(True, first)[:2])
    assert torch.equal(sparse[3], torch.zeros(3, dtype=torch.float64))  # never trained
    # row 2's first update is a first Adam step (lr towards 1) in sparse Adam, ≈ half of it in
    # dense Adam, whose bias correction counts the five steps the row was not trained
    assert torch.allclose(sparse[2], torch.full((3,), 0.1, dtype=torch.float64), rtol=1e-6)
    assert float(dense[2, 0]) < 0.06


def test_a_sampled_clip_starts_from_its_jointly_solved_states():
    import numpy as np

    from sonode.model import FitOptions, fit_samples
    from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

    noise = 0.05 * np.random.default_rng(0).standard_normal(4800)
    x = two_tone_clip(4800 / SAMPLE_RATE) + noise  # 75 segments, trained 6 at a time
    reports = [
        fit_samples(x, SAMPLE_RATE, FitOptions(**SMALL, steps=0, batch_segments=6, **extra))[1]
        for extra in ({}, {"state_solve_every": 0})
    ]
    assert reports[0].snr_db > reports[0].initial_snr_db + 0.01  # the solve's states are kept
    assert reports[1].snr_db == reports[1].initial_snr_db  # no solve: the identified model


def test_the_continuity_penalty_takes_a_sample_of_single_segments():
    from sonode.model import FitOptions
    from sonode.model.objective import step_loss

    model = _small_model()
    last = model.config.layout.n_segments - 1
    target = torch.zeros(model.config.layout.n_samples, dtype=torch.float64)
    # a piece wrapped round its stratum can be split into single segments: no defect to measure
    options = FitOptions(**SMALL, continuity_weight=1.0)
    log_objective, loss, _ = step_loss(model, target, options, 0, torch.tensor([0, last]), 64, 1.0)
    assert torch.isfinite(log_objective) and loss > 0


def test_the_defects_from_the_steps_own_solve_are_the_defects():
    """With the continuity penalty on, a step reads the segments' states at the hop from its own
    envelope solve (`modal_readout`'s end_s) instead of solving the hop again: the same loss and
    gradients as `SonodeModel.defects`' separate solve, to the envelope's interpolation error."""
    from sonode.model.modal import modal_readout, modal_solve
    from sonode.model.objective import step_loss
    from sonode.model.options import FitOptions

    model = _small_model()
    with torch.no_grad():  # a clearly non-zero field: Γ matters at the hop
        for p in model.field.parameters():
            p.add_(0.5 * torch.randn_like(p))
    layout = model.config.layout
    local = torch.arange(layout.window_samples, dtype=torch.float64) / layout.sample_rate
    hop_s = layout.hop_samples / layout.sample_rate
    with torch.no_grad():
        x, ends = modal_readout(
            model.bank, model.field, model.states, local, model.readout, end_s=hop_s
        )
        alone = modal_readout(model.bank, model.field, model.states, local, model.readout)
        solved = modal_solve(model.bank, model.field, model.states, torch.tensor([0.0, hop_s]))[-1]
    assert torch.equal(x, alone)
    # −120 dB: the envelope's tolerance (the field itself moves the states by −22 dB here)
    assert torch.allclose(ends, solved, rtol=0, atol=1e-6 * float(solved.abs().max()))
    options = FitOptions(**{**SMALL, "continuity_weight": 1.0})
    target = model.reconstruct()[0].detach() + 0.01 * torch.randn(
        layout.n_samples, dtype=torch.float64
    )
    segments = torch.tensor([0, 1, 2, 5, 6, layout.n_segments - 1])
    for chosen in (None, segments):
        log_objective, _, _ = step_loss(model, target, options, 60, chosen, 64, 1.0)
        model.zero_grad()
        log_objective.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        # the same objective with the defects of each piece solved apart, as before
        runs = [None] if chosen is None else [torch.arange(f, f + c) for f, c in pieces(chosen)]
        runs = [r for r in runs if r is None or r.shape[0] > 1]
        defects = torch.cat([model.defects(options.gradient, r) for r in runs])
        states = torch.cat([(model.states if r is None else model.states[r])[1:] for r in runs])
        penalty = torch.sum(defects**2) / torch.sum(states.detach() ** 2)
        model.zero_grad()
        options_off = FitOptions(**{**SMALL, "continuity_weight": 0.0})
        off, _, _ = step_loss(model, target, options_off, 60, chosen, 64, 1.0)
        (off + torch.log(penalty)).backward()
        expected = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        expected_objective = float((off + torch.log(penalty)).detach())
        assert float(log_objective.detach()) == pytest.approx(expected_objective, rel=1e-6)
        for got, want in zip(grads, expected, strict=True):
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max()))


def test_a_sampled_steps_state_gradient_names_its_rows_and_adam_takes_the_same_step():
    """A step's gradient of the segment states is sparse (its rows only: a dense one of a 600 s
    clip's 37 500 states was 77 MB for 85 rows), and sparse-rows Adam takes the step it takes
    with the same gradient dense, bit for bit."""
    model = _small_model()
    layout = model.config.layout
    target = torch.randn(
        layout.n_samples, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    segments = torch.tensor([1, 2, 3, 4, 9, 10, 11])
    part, estimate = piece_reconstruction(model, target, segments, "adjoint")
    torch.mean((estimate - part) ** 2).backward()
    grad = model.states.grad
    assert grad.is_sparse
    assert sorted(set(grad.coalesce().indices()[0].tolist())) == segments.tolist()
    moved = []
    for gradient in (grad, grad.to_dense()):
        states = model.states.detach().clone().requires_grad_(True)
        optimiser = Adam([{"params": [states], "lr": 0.1, "sparse_rows": True}])
        for scale in (1.0, -0.5):  # two steps: the moments carry over
            states.grad = gradient * scale
            optimiser.step()
        moved.append(states.detach())
    assert torch.equal(moved[0], moved[1])
    assert not torch.equal(moved[0], model.states.detach())
