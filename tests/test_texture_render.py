"""The continuation's texture as `render`, `extrapolate` and the command line give it."""

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sonode.model import predict
from sonode.tasks.render import BLOWUP_FACTOR, extrapolate, render
from tests.cli_support import run
from tests.model.synthetic import SAMPLE_RATE, small_two_tone_fit, two_tone_clip

DURATION_S = 0.25


@pytest.fixture(scope="module")
def losing():
    """A fitted two-tone model whose continuation's early modes die out within the first 50 ms
    (−300/s: −130 dB by the switch) and whose late modes then hold: the mean loses the sound, as it
    loses a drone's, and the texture has to restore it."""
    model, info = small_two_tone_fit(DURATION_S)
    model = copy.deepcopy(model)
    early = model.tail_bank
    omega = early.omega_rad_per_s.detach()
    model.set_continuation(
        torch.full_like(omega, -300.0),
        omega,
        model.continuation_state[0],
        torch.full_like(omega, -1e-3),
        omega,
    )
    model.config = dataclasses.replace(model.config, continuation_switch_s=0.05)
    return model, info


def level_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2)))


def test_zero_texture_is_the_mean_bit_for_bit(losing):
    model, _ = losing
    span_s = model.config.n_samples / SAMPLE_RATE
    times = span_s + torch.arange(SAMPLE_RATE // 2, dtype=torch.float64) / SAMPLE_RATE
    mean = model.denormalise(model.render_normalised(times, bound=BLOWUP_FACTOR))
    assert np.array_equal(extrapolate(model, 0.5).samples, mean)
    assert np.array_equal(extrapolate(model, 0.5, texture=0.0, seed=9).samples, mean)


def test_the_texture_restores_the_level_the_mean_loses_and_is_seeded(losing):
    model, _ = losing
    clip = two_tone_clip(DURATION_S)
    n_switch = int(0.05 * SAMPLE_RATE)
    mean = extrapolate(model, 1.0).samples
    drawn = extrapolate(model, 1.0, texture=1.0, seed=4).samples
    assert np.array_equal(drawn[:n_switch], mean[:n_switch])  # the first 50 ms are the mean's
    late = slice(int(0.2 * SAMPLE_RATE), None)
    # the level it restores: the clip's last 0.5 s (here all of its 0.25 s), its late modes held
    end = level_db(clip)
    assert level_db(mean[late]) < end - 40  # the mean has lost the sound (its offset is left)
    assert abs(level_db(drawn[late]) - end) < 1  # the texture holds the clip's level
    assert np.array_equal(drawn, extrapolate(model, 1.0, texture=1.0, seed=4).samples)
    assert not np.array_equal(drawn, extrapolate(model, 1.0, texture=1.0, seed=5).samples)
    # a later window reads the samples a longer render has there (the draw starts at the end)
    span_s = model.config.n_samples / SAMPLE_RATE
    window = render(model, None, span_s + 0.5, span_s + 1.0, texture=1.0, seed=4).samples
    assert np.allclose(window, drawn[SAMPLE_RATE // 2 :], atol=1e-9)
    # below the clip's rate it is rendered finer and decimated, as the mean is
    low = extrapolate(model, 1.0, rate=8000, texture=1.0).samples
    assert low.shape == (8000,) and abs(level_db(low[1600:]) - end) < 1


def test_a_negative_texture_is_refused(losing):
    with pytest.raises(ValueError, match="texture"):
        extrapolate(losing[0], 0.1, texture=-1.0)


def test_the_command_line_writes_the_mean_by_default_and_draws_the_texture_on_request(
    losing, tmp_path
):
    path = tmp_path / "losing.sonode"
    losing[0].save(path, {})
    written = {}
    for name, extra in {
        "drawn": ["--texture", "1"],
        "again": ["--texture", "1", "--seed", "0"],
        "seed": ["--texture", "1", "--seed", "7"],
        "mean": [],
    }.items():
        out = tmp_path / f"{name}.wav"
        result = run("extrapolate", path, "--seconds", 0.5, "-o", out, "--quiet", *extra)
        assert result.exit_code == 0, result.output
        written[name] = sf.read(out)[0]
    assert np.array_equal(written["drawn"], written["again"])
    assert not np.array_equal(written["drawn"], written["seed"])
    late = slice(int(0.2 * SAMPLE_RATE), None)
    assert level_db(written["drawn"][late]) > level_db(written["mean"][late]) + 40
    assert np.allclose(written["mean"], extrapolate(losing[0], 0.5).samples, atol=1e-6)
    result = run(
        "render",
        path,
        "--end",
        DURATION_S + 0.3,
        "-o",
        tmp_path / "r.wav",
        "--quiet",
        "--texture",
        1,
    )
    assert result.exit_code == 0, result.output
    rendered = sf.read(tmp_path / "r.wav")[0][int(DURATION_S * SAMPLE_RATE) :]
    assert np.allclose(rendered, written["drawn"][: rendered.shape[0]], atol=1e-6)
    for bad in ("-1", "nan"):
        result = run(
            "extrapolate", path, "--seconds", 0.1, "-o", tmp_path / "x.wav", "--texture", bad
        )
        assert result.exit_code == 2 and "--texture" in result.output
        assert "Traceback" not in result.output


DATA = Path(__file__).parent / "data"


def test_the_fits_texture_choice_is_stored_round_trips_and_is_what_auto_draws(losing, tmp_path):
    import sonode

    model, report = losing
    # the fit judged the texture on the clip's held-back end and stored its choice
    judged = report.continuation_training.get("texture")  # (too short to hold back: none)
    assert model.config.continuation_texture == (1.0 if judged and judged["chosen"] else 0.0)
    model = copy.deepcopy(model)
    mean = extrapolate(model, 0.5).samples
    # a fit whose held-back test chooses it stores 1 (the two tones' test does not: made to here)
    chosen = {"chosen": True, "why": "made so by the test"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predict, "choose_texture", lambda *args: chosen)
        clip = (two_tone_clip(1.0) - model.config.offset) / model.config.gain  # long enough
        assert predict.train_continuation(model, clip, 0)["texture"] is chosen
    assert model.config.continuation_texture == 1.0
    for amplitude in (1.0, 0.0):
        model.config = dataclasses.replace(model.config, continuation_texture=amplitude)
        path = tmp_path / f"texture{amplitude:g}.sonode"
        model.save(path, {})
        loaded = sonode.load(path)
        assert loaded.model.config.continuation_texture == amplitude
        auto = loaded.extrapolate(0.5, texture="auto", seed=3)
        assert np.array_equal(auto, loaded.extrapolate(0.5, texture=amplitude, seed=3))
        assert np.array_equal(auto, mean) == (amplitude == 0.0)
        out = tmp_path / f"auto{amplitude:g}.wav"
        result = run(
            "extrapolate",
            path,
            "--seconds",
            0.5,
            "-o",
            out,
            "--quiet",
            "--texture",
            "auto",
            "--seed",
            3,
        )
        assert result.exit_code == 0, result.output
        assert np.allclose(sf.read(out)[0], auto, atol=1e-6)
    for bad in ("autox", "inf", "5"):
        result = run(
            "extrapolate", path, "--seconds", 0.1, "-o", tmp_path / "x.wav", "--texture", bad
        )
        assert result.exit_code == 2 and "--texture" in result.output, result.output
        assert "Traceback" not in result.output
    with pytest.raises(ValueError, match="auto"):
        extrapolate(model, 0.1, texture="sometimes")


@pytest.mark.parametrize("fixture", ["model_d8155b1", "model_local_v4_planes2"])
def test_a_file_from_before_the_choice_loads_with_the_texture_off(fixture, tmp_path):
    import sonode

    fitted = sonode.load(DATA / f"{fixture}.sonode")
    assert fitted.model.config.continuation_texture == 0.0
    assert np.array_equal(fitted.extrapolate(0.2, texture="auto"), fitted.extrapolate(0.2))
    # the field is saved from now on, the local variant's too, and read back
    fitted.model.config = dataclasses.replace(fitted.model.config, continuation_texture=1.0)
    fitted.save(tmp_path / "new.sonode")
    assert sonode.load(tmp_path / "new.sonode").model.config.continuation_texture == 1.0
