"""#22: the continuation is trained before the optimiser's steps, within a cap, and kept; its time is
measured rather than reserved, and a resumed fit does not train it twice."""

import time

import pytest
import torch

import sonode.model.tail_training as tail_training
import sonode.model.train as train
from sonode.model import FitOptions, fit_samples
from sonode.model.budget import FitBudget
from sonode.model.checkpoint import CheckpointPlan, fit_identity, load_checkpoint, save_checkpoint
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip

OPTIONS = FitOptions(
    latent_dim=4,
    hop_samples=64,
    overlap_samples=8,
    hidden=16,
    layers=1,
    lp_order=32,
    max_time_s=None,
    steps=3,
)
CLIP = two_tone_clip(0.1)
REPORT = {"field_kept": True, "stand_in": 1}


def _stand_in(calls):
    """A continuation training that moves the tail's field by one (in place) and reports so."""

    def train_continuation(model, *args, **kwargs):
        calls.append("continuation")
        with torch.no_grad():
            for p in model.tail_field.parameters():
                p.add_(1.0)
        return dict(REPORT)

    return train_continuation


def _tail(model):
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith("tail_")}


def test_the_continuation_is_trained_before_the_first_step_and_kept(monkeypatch):
    calls = []
    monkeypatch.setattr(tail_training, "train_continuation", _stand_in(calls))
    real_step = train.step_loss

    def step_loss(*args, **kwargs):
        calls.append("step")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "step_loss", step_loss)
    _, report = fit_samples(CLIP, SAMPLE_RATE, OPTIONS)
    assert calls == ["continuation", "step", "step", "step"]
    assert report.continuation_training == REPORT
    # no step: the kept model is the identified one, copied before the continuation was trained
    model, _ = fit_samples(CLIP, SAMPLE_RATE, FitOptions(**{**vars(OPTIONS), "steps": 0}))
    torch.manual_seed(OPTIONS.seed)  # as fit_samples does: the fields' initial weights
    identified, _ = train.initial_from_options(CLIP, SAMPLE_RATE, OPTIONS)
    before, after = _tail(identified), _tail(model)
    # the kept model (loaded from the best checked state at the end) carries the trained tail
    moved = ["tail_field." + n for n, _ in identified.tail_field.named_parameters()]
    assert moved and all(torch.equal(after[k], before[k] + 1.0) for k in moved)
    assert all(torch.equal(after[k], before[k]) for k in before if k not in moved)


def test_the_continuation_stops_at_its_share_of_the_budget_or_when_the_fit_needs_the_time(
    monkeypatch,
):
    now = [0.0]
    monkeypatch.setattr(tail_training.time, "perf_counter", lambda: now[0])
    options = FitOptions(**{**vars(OPTIONS), "max_time_s": 30.0})
    cap_s = tail_training.CONTINUATION_SHARE * 30.0
    polls = []

    def train_continuation(model, *args, should_stop, **kwargs):
        for t in (0.0, cap_s - 0.01, cap_s + 0.01):
            now[0] = 5.0 + t  # the training began at 5 s
            polls.append(should_stop())
        return {"field_kept": False}

    monkeypatch.setattr(tail_training, "train_continuation", train_continuation)
    model, _ = train.initial_from_options(CLIP, SAMPLE_RATE, OPTIONS)
    target = torch.zeros(8, dtype=torch.float64)
    now[0] = 5.0
    tail_training.train_tail_first(model, target, options, None, lambda: 1.0)
    assert polls == [False, False, True]
    polls.clear()
    now[0] = 5.0
    left = iter([1.0, 0.0, -1.0])  # the rest of the fit's margin runs out first
    tail_training.train_tail_first(model, target, options, None, lambda: next(left))
    assert polls == [False, True, True]
    polls.clear()
    now[0] = 5.0  # without a budget there is no cap
    tail_training.train_tail_first(model, target, OPTIONS, None, None)
    assert polls == [False, False, False]


def test_no_share_of_the_budget_is_reserved_after_the_loop():
    """Trained first, the continuation's 20 % of the budget is no longer held back: a step that
    fits with the check and final check is taken (with the reserve, 5 + 3 + 0.5 + 2 > 10)."""
    budget = FitBudget(time.perf_counter(), 10.0, 1.0, 0.5, 10)
    budget.step_took(5.0)
    budget.consider_took(3.0)
    assert budget.train_more()
    assert budget.spare_s() == pytest.approx(10.0 - 0.5 - 0.5, abs=0.1)


def test_a_resumed_fit_keeps_the_continuation_it_trained_and_an_old_checkpoint_trains_it(
    monkeypatch, tmp_path
):
    calls = []
    monkeypatch.setattr(tail_training, "train_continuation", _stand_in(calls))
    uninterrupted, _ = fit_samples(CLIP, SAMPLE_RATE, OPTIONS)
    path = tmp_path / "clip.sonode.ckpt"
    seen = []
    fit_samples(
        CLIP,
        SAMPLE_RATE,
        OPTIONS,
        on_epoch=lambda r, best: seen.append(r),
        should_stop=lambda: len(seen) >= 2,
        checkpoint=CheckpointPlan(path, every_s=30.0),
    )
    calls.clear()
    resumed, report = fit_samples(
        CLIP, SAMPLE_RATE, OPTIONS, checkpoint=CheckpointPlan(path, resume=True)
    )
    assert calls == [] and report.continuation_training == REPORT  # not trained again
    for name, tensor in uninterrupted.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    # a checkpoint from before this change (its continuation was trained after the loop)
    identity = fit_identity(CLIP, SAMPLE_RATE, vars(OPTIONS))
    state = load_checkpoint(path, identity)
    state.continuation_training = None
    save_checkpoint(path, state, identity)
    _, report = fit_samples(
        CLIP, SAMPLE_RATE, OPTIONS, checkpoint=CheckpointPlan(path, resume=True)
    )
    assert calls == ["continuation"] and report.continuation_training == REPORT
