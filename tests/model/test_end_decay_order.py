"""The whole clip's end decays are measured in frames of its own identification's order, which
the fit passes down (`predict.fit_dynamics`'s ``final_order``) instead of identifying the whole
clip's continuation again for it."""

import numpy as np

from sonode.model import FitOptions, fit_samples, predict, train
from sonode.model.continuation import FRAME_PER_ORDER, identify_continuation
from sonode.model.predict import Tail, fit_dynamics
from tests.model.string_clip import RATE, set_strings_glide, string
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip


def test_kept_end_decays_use_the_given_order_without_identifying_the_clip_again(monkeypatch):
    """The string of test_predict with the glide set (as there): the end decays are kept on the
    probe; the whole clip's (here a continuation with late modes) are then measured in frames of
    ``final_order``, and the only identification is the probe's."""
    identified, frames = [], []
    real_identify, real_measure = predict.identify_continuation, predict.measure_end_decays

    def identify(x, *args, **kwargs):
        identified.append(x.shape[0])
        return real_identify(x, *args, **kwargs)

    def measure(tail, x, rate, frame):
        frames.append((x.shape[0], frame))
        return real_measure(tail, x, rate, frame)

    monkeypatch.setattr(predict, "identify_continuation", identify)
    monkeypatch.setattr(predict, "measure_end_decays", measure)
    set_strings_glide(monkeypatch)
    x = string(int(1.0 * RATE))
    x = x / np.max(np.abs(x))
    fit = identify_continuation(x[: int(0.8 * RATE)], RATE)  # Burg with late modes
    final = Tail.from_fit(fit, RATE)
    assert final.switch_s > 0
    report = fit_dynamics(final, x, RATE, steps=1, cycle=False, final_order=fit.order)
    assert report["end_decays"], report
    assert identified == [int(0.8 * RATE)]  # the probe's (its held-back end is 0.2 s)
    assert frames[-1] == (x.shape[0], FRAME_PER_ORDER * fit.order)


def test_the_fit_passes_its_continuations_order_to_the_continuations_training(monkeypatch):
    seen = {}

    def probe(model, *args, **kwargs):
        seen["order"] = kwargs.get("order")
        return {"field_kept": False, "cycle": False}

    monkeypatch.setattr(train, "train_continuation", probe)
    options = FitOptions(
        latent_dim=8, hop_samples=64, overlap_samples=8, hidden=16, layers=1, lp_order=32, steps=1
    )
    _, report = fit_samples(two_tone_clip(0.3), SAMPLE_RATE, options)
    assert seen["order"] == report.identification["continuation"]["order"] > 0
