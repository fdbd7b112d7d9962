"""The evaluation harness on a small synthetic clip: every task, method and file is produced."""

import json

import numpy as np
import pytest
import soundfile as sf

from sonode.evaluation.evaluate import (
    SNR_WINDOWS_MS,
    EvalOptions,
    evaluate,
    results_markdown,
    trajectory_scores,
)
from sonode.io.fileutil import markdown_marker
from tests.cli_support import run
from tests.model.synthetic import two_tone

TINY_FIT = (
    ("latent_dim", 8),
    ("hidden", 8),
    ("steps", 1),
    ("continuation_steps", 0),
    ("lp_order", 32),
)


@pytest.fixture(scope="module")
def clip48k(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "tone48k.wav"
    sf.write(path, two_tone(np.arange(int(0.4 * 48000)) / 48000), 48000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def results(clip48k, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    options = EvalOptions(
        low_rate=16000, budget_s=30.0, horizon_s=0.05, duration_s=None, fit_options=TINY_FIT
    )
    return out, evaluate([clip48k], out, options)


def test_every_task_scores_sonode_and_the_baselines(results):
    _, res = results
    clip = res["clips"][0]
    assert set(clip["upsampling"]) == {
        "sonode",
        "sonode_model_low",
        "sonode_render",
        "sinc",
        "sinc_hq",
        "soxr_hq",
        "linear",
        "cubic",
        "sinc_noise",
    }
    # two tones far below 8 kHz (only the clip's abrupt ends reach above): nothing loud is invented
    assert clip["upsampling"]["sonode"]["energy_above_vs_truth_db"] < 1.0
    assert set(clip["continuation"]) == {
        "sonode",
        "lpc32_burg",
        "lpc256_burg",
        "lpc512_burg",
        "lpc1024_burg",
        "lpc2048_burg",
        "lpc32_lstsq",
    }
    for scores in clip["continuation"].values():
        assert set(scores) == {f"snr_{ms}ms_db" for ms in SNR_WINDOWS_MS} | {"lsd"}
    # the clip is two damped tones far below 8 kHz: sonode's linear part models it almost exactly
    assert clip["upsampling"]["sonode"]["snr_db"] > 40
    assert clip["continuation"]["sonode"]["snr_20ms_db"] > 40
    assert clip["reconstruction"]["discretisation_snr_db"] > 40


def test_report_files_are_written(results):
    out, res = results
    assert json.loads((out / "results.json").read_text())["median"] == res["median"]
    md = (out / "results.md").read_text()
    assert md == markdown_marker() + results_markdown(res)  # the marker lets a rerun replace it
    assert "### Upsampling" in md and "| sonode |" in md and "tone48k.wav" in md
    for suffix in ("upsampling", "above_nyquist", "continuation", "fit", "horizon"):
        assert (out / f"tone48k.{suffix}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "horizon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_horizon_curve_puts_the_trained_model_beside_its_start_and_burg(results):
    out, res = results
    horizon = json.loads((out / "horizon.json").read_text())
    assert "horizon" not in res["clips"][0]  # moved out of results.json
    curves = horizon["clips"]["tone48k.wav"]
    assert set(curves["snr_db"]) == {
        "trained",
        "untrained start",
        "Burg 256",
        "Burg 512",
        "Burg 1024",
        "Burg 2048",
    }
    # the truth goes 50 ms past the history: horizons 1 ms ... 50 ms of the 1 ms - 1 s grid
    assert curves["horizons_s"][0] == 0.001 and 0.04 < curves["horizons_s"][-1] <= 0.05
    # continuation training is off in this fit: the trained model continues as its untrained start
    assert curves["snr_db"]["trained"] == curves["snr_db"]["untrained start"]
    assert min(curves["snr_db"]["trained"][:5]) > 40  # two damped tones: the ODE is exact
    assert len(curves["level_db"]["trained"]) == 100  # 2 s of 20 ms frames
    assert horizon["median"]["snr_db"]["trained"] == curves["snr_db"]["trained"]


def test_a_low_rate_not_below_the_clip_rate_is_refused(clip48k, tmp_path):
    with pytest.raises(ValueError, match="below the clip"):
        evaluate([clip48k], tmp_path, EvalOptions(low_rate=48000, fit_options=TINY_FIT))


def test_plot_command_writes_the_comparison_and_curve(clip48k, tmp_path):
    model = tmp_path / "m.sonode"
    fitted = run(
        "fit", clip48k, "-o", model, "--steps", 1, "--latent-dim", 8, "--hidden", 8, "--quiet"
    )
    assert fitted.exit_code == 0, fitted.output
    result = run("plot", model, "-o", tmp_path / "fig.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig.png").stat().st_size > 10_000 and (tmp_path / "fig.fit.png").exists()


def test_eval_command_prints_the_tables_and_writes_the_report(clip48k, tmp_path):
    result = run(
        "eval", clip48k, "-o", tmp_path / "rep", "--budget", 1, "--horizon-s", 0.05, "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert "### Upsampling" in result.output and "### Continuation" in result.output
    assert (tmp_path / "rep" / "results.json").exists() and (
        tmp_path / "rep" / "results.md"
    ).exists()
    bad = run("eval", clip48k, "-o", tmp_path / "rep", "--budget", 0)
    assert bad.exit_code == 2 and "--budget" in bad.output


def test_trajectory_scores_see_level_errors_the_snr_cannot():
    rate = 16000
    t = np.arange(rate) / rate
    noise = 1e-3 * np.random.default_rng(0).standard_normal(rate)
    clip = np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 1.5 * t)) + noise
    same = trajectory_scores(clip, clip.copy(), rate)
    assert same["level_error_db"] == pytest.approx(0.0, abs=1e-9) and same["lsd"] < 1e-3
    # a free run 36 samples late (half a period of 220 Hz) has no useful SNR but the right levels
    # and spectrum
    late = trajectory_scores(clip, np.roll(clip, 36), rate)
    assert late["snr_db"] < 1 and late["level_error_db"] < 0.5 and late["lsd"] < 0.3
    # half the amplitude in the second half: 6.02 dB in the blocks there
    halved = clip * np.where(t < 0.5, 1.0, 0.5)
    assert trajectory_scores(clip, halved, rate)["level_error_db"] == pytest.approx(6.02, abs=0.01)
