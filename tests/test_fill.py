"""sonode fill: gap planning, the blend, the model fill (sonode_fit) on an analytic clip, and the command.

The two-sided trajectory fill (method sonode) is tested in tests/test_fill_interpolation.py."""

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sonode.cli import main
from sonode.dsp.metrics import snr_db
from sonode.io.fileutil import written_by_sonode
from sonode.tasks.fill import MIN_CONTEXT_SAMPLES, FillSettings, blend, fill_one, plan_gaps
from tests.model.synthetic import two_tone

RATE = 16000
TINY = {"latent_dim": 8, "hidden": 8, "lp_order": 32, "continuation_steps": 2}


def test_plan_gaps_sorts_and_marks_one_sided_gaps_at_the_edges():
    gaps = plan_gaps([(0.5, 0.51), (0.0, 0.01), (0.99, 1.0)], RATE, RATE, 0.25)
    assert [(g.start, g.end, g.sides) for g in gaps] == [
        (0, 160, "right"),
        (8000, 8160, "both"),
        (15840, 16000, "left"),
    ]


@pytest.mark.parametrize(
    ("gaps", "message"),
    [
        ([(0.9, 1.2)], "not inside the clip"),
        ([(0.5, 0.4)], "ends before it starts"),
        ([(0.5, 0.6), (0.55, 0.7)], "overlap"),
        ([(0.2, 0.6)], "longer than the context"),
        ([(0.01, 0.02), (0.03, 0.04)], "fewer than 512 samples"),
    ],
)
def test_plan_gaps_refuses_bad_gaps_with_a_clear_message(gaps, message):
    with pytest.raises(ValueError, match=message):
        plan_gaps(gaps, RATE, RATE, 0.25)


def test_blend_is_a_linear_fade_for_equal_predictions_and_keeps_the_level_of_uncorrelated_ones():
    t = np.arange(1600) / RATE
    tone = np.sin(2 * np.pi * 500 * t)
    np.testing.assert_allclose(blend(tone, tone), tone, atol=1e-12)
    # sin and cos: uncorrelated; a linear fade dips by 3 dB mid-gap, the blend must not dip.
    mixed = blend(tone, np.cos(2 * np.pi * 500 * t))
    middle = slice(600, 1000)
    assert abs(10 * np.log10(np.mean(mixed[middle] ** 2) / 0.5)) < 0.5
    w = np.linspace(1, 0, 1600)
    linear = w * tone + (1 - w) * np.cos(2 * np.pi * 500 * t)
    assert 10 * np.log10(np.mean(linear[middle] ** 2) / 0.5) < -2.5  # the dip the blend avoids


@pytest.fixture(scope="module")
def tone():
    return two_tone(np.arange(int(0.7 * RATE)) / RATE)


def test_sonode_fit_fill_restores_two_damped_tones_from_both_sides(tone):
    start, n_gap = 5600, 320
    settings = FillSettings(
        method="sonode_fit", context_s=0.2, budget_s=30.0, steps=1, fit_options=TINY
    )
    y = fill_one(
        tone[start - 3200 : start],
        tone[start + n_gap : start + n_gap + 3200],
        n_gap,
        RATE,
        settings,
    )
    assert snr_db(tone[start : start + n_gap], y) > 30.0
    one_sided = fill_one(
        tone[start - 3200 : start], np.array([]), n_gap, RATE, settings, sides="left"
    )
    assert snr_db(tone[start : start + n_gap], one_sided) > 30.0


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def test_fill_command_keeps_format_channels_and_everything_outside_the_gaps(tmp_path, tone):
    stereo = np.stack([tone, -0.5 * tone], axis=1)
    damaged = stereo.copy()
    damaged[4000:4320] = 0.0
    clip = tmp_path / "in.wav"
    sf.write(clip, damaged, RATE, subtype="PCM_24")
    before = _md5(clip)
    out = tmp_path / "out.wav"
    result = CliRunner().invoke(
        main,
        [
            "fill",
            str(clip),
            "-o",
            str(out),
            "--gap",
            "0.25",
            "0.27",
            "--detect",
            "--method",
            "janssen",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _md5(clip) == before
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 2, "PCM_24")
    filled = sf.read(out)[0]
    original = sf.read(clip)[0]
    outside = np.ones(tone.size, dtype=bool)
    outside[4000:4320] = False
    np.testing.assert_array_equal(filled[outside], original[outside])
    for c in range(2):
        assert snr_db(stereo[4000:4320, c], filled[4000:4320, c]) > 40.0
    report = json.loads((tmp_path / "out.fill.json").read_text())
    assert [(g["kind"], g["sides"]) for g in report["gaps"]] == [
        ("given", "both")
    ]  # detected run = the gap


def test_fill_command_may_replace_its_own_output_but_not_a_foreign_file(tmp_path, tone):
    damaged = tone.copy()
    damaged[4000:4320] = 0.0
    clip, out, foreign = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "foreign.wav"
    sf.write(clip, damaged, RATE, subtype="PCM_16")
    sf.write(foreign, damaged, RATE, subtype="PCM_16")
    args = ["fill", str(clip), "--gap", "0.25", "0.27", "--method", "janssen", "--quiet", "-o"]
    for _ in range(2):  # the second run replaces the first's output (it carries sonode's marker)
        result = CliRunner().invoke(main, args + [str(out)])
        assert result.exit_code == 0, result.output
    assert sf.info(str(out)).subtype == "PCM_16"
    result = CliRunner().invoke(main, args + [str(foreign)])
    assert result.exit_code == 2 and "not written by sonode" in result.output


def test_fill_command_force_replaces_foreign_files_as_fit_does_but_never_the_input(tmp_path, tone):
    damaged = tone.copy()
    damaged[4000:4320] = 0.0
    clip, out, report = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "out.fill.json"
    sf.write(clip, damaged, RATE, subtype="PCM_16")
    args = ["fill", str(clip), "--gap", "0.25", "0.27", "--method", "janssen", "--quiet"]
    report.write_text(
        '{"mine": true}\n'
    )  # a user's file where the report would go: refused before any work
    result = CliRunner().invoke(main, args + ["-o", str(out)])
    assert (
        result.exit_code == 2
        and f"refusing to overwrite {report}" in result.output
        and "--force" in result.output
    )
    assert not out.exists() and json.loads(report.read_text()) == {"mine": True}
    sf.write(out, tone, RATE, subtype="FLOAT")  # and a foreign output
    result = CliRunner().invoke(main, args + ["-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert (
        sf.info(str(out)).subtype == "PCM_16"
        and json.loads(report.read_text())["method"] == "janssen"
    )
    assert written_by_sonode(out) and written_by_sonode(
        report
    )  # so a rerun replaces both without --force
    assert CliRunner().invoke(main, args + ["-o", str(out)]).exit_code == 0
    result = CliRunner().invoke(main, args + ["-o", str(clip), "--force"])
    assert result.exit_code == 2 and "never overwrites its input" in result.output


def test_fill_command_dry_run_lists_detected_dropouts_and_writes_nothing(tmp_path, tone):
    damaged = tone.copy()
    damaged[6000:6080] = 0.0
    clip = tmp_path / "in.wav"
    sf.write(clip, damaged, RATE, subtype="FLOAT")
    result = CliRunner().invoke(main, ["fill", str(clip), "--detect", "--dry-run"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [
        (round(d["start_s"] * RATE), round(d["end_s"] * RATE), d["kind"])
        for d in report["detected"]
    ] == [(6000, 6080, "zeros")]
    assert list(tmp_path.iterdir()) == [clip]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gap", "0.05", "0.6"], "longer than the context"),
        (["--gap", "0.3", "0.45", "--context", "0.1"], "longer than the context"),
        (["--gap", "0.69", "0.75"], "not inside the clip"),
        ([], "give at least one --gap"),
    ],
)
def test_fill_command_errors_are_one_line(tmp_path, tone, args, message):
    clip = tmp_path / "in.wav"
    sf.write(clip, tone, RATE)
    result = CliRunner().invoke(main, ["fill", str(clip), "-o", str(tmp_path / "o.wav"), *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.wav").exists()


def test_fill_command_refuses_to_overwrite_its_input(tmp_path, tone):
    clip = tmp_path / "in.wav"
    sf.write(clip, tone, RATE)
    result = CliRunner().invoke(main, ["fill", str(clip), "-o", str(clip), "--gap", "0.3", "0.31"])
    assert result.exit_code == 2 and "never overwrites its input" in result.output


def test_min_context_is_the_continuation_window():
    assert MIN_CONTEXT_SAMPLES == 512


def test_eval_fill_scores_the_classical_fillers_on_sounding_positions(tmp_path, tone):
    clip = tmp_path / "tone.wav"
    sf.write(
        clip,
        two_tone(np.arange(int(1.2 * RATE)) / RATE)
        + 1e-4 * np.random.default_rng(0).standard_normal(int(1.2 * RATE)),
        RATE,
        subtype="FLOAT",
    )
    from sonode.evaluation.evaluate_fill import evaluate_fill

    # (sonode_fit's path, `fill_one`, is tested above; its fits are too slow for a second test)
    results = evaluate_fill(
        [clip], RATE, FillSettings(context_s=0.25), lengths_ms=(20,), n_positions=2
    )
    assert {m: results["median"][m]["16000 Hz 20 ms"]["n"] for m in results["median"]} == {
        "sonode": 2,
        "janssen": 2,
        "burg_xfade": 2,
    }
    for method, scores in results["median"].items():
        s = scores["16000 Hz 20 ms"]
        # (the LSD also weighs the 1e-4 noise floor, which no filler reproduces: only finite here)
        assert s["snr_db"] > 25.0 and np.isfinite(s["lsd"]) and s["seam_step"] < 1.0, (method, s)


def test_a_diverging_side_is_dropped(monkeypatch, tone):
    import sonode.tasks.fill as fill

    start, n_gap = 5600, 320
    truth = tone[start : start + n_gap]
    monkeypatch.setattr(
        fill, "predict_forward", lambda left, n, rate, settings, budget: truth.copy()
    )
    monkeypatch.setattr(
        fill, "predict_backward", lambda right, n, rate, settings, budget: np.full(n, 1e80)
    )
    y = fill.fill_one(
        tone[start - 3200 : start],
        tone[start + n_gap : start + n_gap + 3200],
        n_gap,
        RATE,
        FillSettings(method="sonode_fit"),
    )
    np.testing.assert_array_equal(y, truth)
    monkeypatch.setattr(
        fill, "predict_forward", lambda left, n, rate, settings, budget: np.full(n, np.nan)
    )
    y = fill.fill_one(
        tone[start - 3200 : start],
        tone[start + n_gap : start + n_gap + 3200],
        n_gap,
        RATE,
        FillSettings(method="sonode_fit"),
    )
    assert snr_db(truth, y) > 40.0  # both diverged: the classical Janssen fill


def test_a_diverging_one_sided_fill_falls_back_to_burg(monkeypatch, tone):
    import sonode.tasks.fill as fill

    start, n_gap = 5600, 320
    monkeypatch.setattr(
        fill, "predict_forward", lambda left, n, rate, settings, budget: np.full(n, np.inf)
    )
    y = fill.fill_one(
        tone[start - 3200 : start],
        np.array([]),
        n_gap,
        RATE,
        FillSettings(method="sonode_fit"),
        sides="left",
    )
    assert snr_db(tone[start : start + n_gap], y) > 30.0


def test_the_fill_command_offers_the_library_methods_and_default_context():
    # the CLI spells these out so that `sonode --help` need not import torch: keep them in step
    from sonode.tasks.fill import DEFAULT_CONTEXT_S, METHODS

    params = {p.name: p for p in main.commands["fill"].params}
    assert tuple(params["method"].type.choices) == METHODS
    assert params["context_s"].default == DEFAULT_CONTEXT_S


def test_one_registry_names_the_fill_methods_everywhere():
    # CLI choices, the library and the evaluation all read sonode.tasks.fill_methods.FILL_METHODS
    from sonode.dsp.ar_fill import GAP_FILLERS
    from sonode.evaluation import evaluate_fill
    from sonode.tasks.fill_methods import FILL_METHODS, MODEL_FILL_METHODS

    params = {p.name: p for p in main.commands["fill"].params}
    assert tuple(params["method"].type.choices) == tuple(FILL_METHODS)
    assert evaluate_fill.METHOD_ORDER == tuple(FILL_METHODS)
    assert set(evaluate_fill.DEFAULT_METHODS) <= set(FILL_METHODS)
    # every classical name has an implementation, and every implementation a name
    assert set(FILL_METHODS) - set(MODEL_FILL_METHODS) == set(GAP_FILLERS)
    for name in FILL_METHODS:
        assert name in params["method"].help


def test_fill_settings_refuse_an_unknown_method():
    with pytest.raises(ValueError, match="unknown fill method 'lpc'; valid: sonode, sonode_fit"):
        FillSettings(method="lpc")
