"""The command line: outputs, exit codes, one-line errors, and the option contract of the issues."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.cli_support import FAST, run
from tests.model.synthetic import SAMPLE_RATE, two_tone_clip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    sf.write(root / "tone.wav", two_tone_clip(0.2), SAMPLE_RATE, subtype="PCM_16")
    result = run("fit", root / "tone.wav", "-o", root / "out" / "tone.sonode", *FAST)
    assert result.exit_code == 0, result.output
    return root


def test_fit_writes_model_reconstruction_report_and_curve(workdir):
    out = workdir / "out"
    assert {p.name for p in out.iterdir()} == {
        "tone.sonode",
        "tone.recon.wav",
        "tone.fit.json",
        "tone.fit.png",
    }
    report = json.loads((out / "tone.fit.json").read_text())
    for key in (
        "snr_db",
        "fine_snr_db",
        "discretisation_snr_db",
        "epochs",
        "wall_time_s",
        "gradient",
        "function_evaluations",
        "history",
    ):
        assert key in report["fit"] or key in report, key
    assert (
        report["fit"]["fine_snr_db"] == report["fit"]["snr_db"]
    )  # the old key, kept for users' scripts
    assert report["fit"]["gradient"] == "adjoint" and report["fit"]["options"]["seed"] == 0
    assert report["versions"]["torch"]
    recon, rate = sf.read(out / "tone.recon.wav")
    assert rate == SAMPLE_RATE and recon.shape == (int(0.2 * SAMPLE_RATE),)
    assert (
        10 * np.log10(np.sum(two_tone_clip(0.2) ** 2) / np.sum((recon - two_tone_clip(0.2)) ** 2))
        > 20
    )


def test_info_describes_the_model(workdir):
    result = run("info", workdir / "out" / "tone.sonode")
    assert result.exit_code == 0
    for text in (
        "16000 Hz",
        "latent dim:   8",
        "fit SNR",
        "discretisation check",
        "gradient adjoint",
        "gain:         reconstruction",
        "one trajectory",
        "trajectory's limit cycle: no",
        "continuation's limit cycle: no",
        "continuation on the held-back last",
    ):
        assert text in result.output
    # each cycle line says whose cycle it is: no bare "limit cycle:" line a user cannot place
    cycles = [line.strip() for line in result.output.splitlines() if "limit cycle:" in line]
    assert len(cycles) == 2 and all("'s limit cycle:" in line for line in cycles), cycles
    # whether the output-error fit of the continuation's modes was kept (`sonode.model.mode_fit`)
    assert ("modes trained for H-step prediction" in result.output) != (
        "modes as identified" in result.output
    ), result.output


def test_plot_draws_the_learned_dynamics(workdir):
    out = workdir / "pictures" / "tone.png"
    out.parent.mkdir(exist_ok=True)
    result = run("plot", workdir / "out" / "tone.sonode", "--clip", workdir / "tone.wav", "-o", out)
    assert result.exit_code == 0, result.output
    dynamics = out.with_suffix(".dynamics.png")
    assert dynamics.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.exists()


@pytest.mark.parametrize(
    "subtype,expected", [("FLOAT", "FLOAT"), ("PCM_16", "PCM_16"), ("PCM_24", "PCM_24")]
)
def test_upsample_a_model_writes_the_exact_length_and_subtype(workdir, subtype, expected):
    dest = workdir / f"up_{subtype}.wav"
    result = run(
        "upsample",
        workdir / "out" / "tone.sonode",
        "--rate",
        48000,
        "-o",
        dest,
        "--subtype",
        subtype,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    info = sf.info(dest)
    assert (info.samplerate, info.frames, info.subtype) == (48000, 9600, expected)


def test_upsample_a_clip_fits_first(workdir):
    dest = workdir / "up_from_clip.wav"
    result = run(
        "upsample",
        workdir / "tone.wav",
        "--rate",
        32000,
        "-o",
        dest,
        "--model-out",
        workdir / "m2.sonode",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert sf.info(dest).frames == 6400 and (workdir / "m2.sonode").exists()


def test_extrapolate_and_render_lengths(workdir):
    model = workdir / "out" / "tone.sonode"
    assert (
        run("extrapolate", model, "--seconds", 0.1, "-o", workdir / "ex.wav", "--quiet").exit_code
        == 0
    )
    assert sf.info(workdir / "ex.wav").frames == 1600
    assert (
        run(
            "extrapolate",
            model,
            "--seconds",
            0.1,
            "--with-context",
            "--rate",
            8000,
            "-o",
            workdir / "exc.wav",
            "--quiet",
        ).exit_code
        == 0
    )
    assert sf.info(workdir / "exc.wav").frames == 2400
    assert (
        run(
            "render",
            model,
            "--start",
            0.05,
            "--end",
            0.15,
            "--rate",
            44100,
            "-o",
            workdir / "r.wav",
            "--quiet",
        ).exit_code
        == 0
    )
    assert sf.info(workdir / "r.wav").frames == 4410


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "{dir}/missing.wav", "--quiet"], "missing.wav"),
        (["fit", "{dir}/tone.wav", "--max-time", "-3"], "--max-time"),
        (["fit", "{dir}/tone.wav", "--rate", "0"], "--rate"),
        (["fit", "{dir}/tone.wav", "--latent-dim", "7"], "--latent-dim"),
        (["fit", "{dir}/tone.wav", "--gradient", "magic"], "magic"),
        (["fit", "{dir}/tone.wav", "--channel", "left"], "left"),
        pytest.param(
            ["fit", "{dir}/tone.wav", "--device", "cuda"],
            "no CUDA device",  # and exit 2 (click's usage error), before the clip is read
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists"),
        ),
        (["fit", "{dir}/tone.wav", "-o", "{dir}/tone.wav"], "input"),
        (["info", "{dir}/tone.wav"], "tone.wav"),
        (
            ["extrapolate", "{dir}/out/tone.sonode", "--seconds", "-1", "-o", "{dir}/x.wav"],
            "--seconds",
        ),
        (["render", "{dir}/out/tone.sonode", "-o", "{dir}/out/tone.sonode"], "tone.sonode"),
        (["upsample", "{dir}/out/tone.sonode", "-o", "{dir}/u.wav"], "--rate"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(workdir, args, needle):
    result = run(*[a.format(dir=workdir) for a in args])
    assert result.exit_code != 0
    assert needle in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(workdir):
    result = run("info", workdir / "tone.wav", "--debug")
    assert result.exit_code != 0 and result.exception is not None


def test_fit_without_training_epochs_still_writes_its_outputs(workdir, tmp_path):
    result = run("fit", workdir / "tone.wav", "-o", tmp_path / "zero.sonode", *FAST, "--steps", "0")
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} == {
        "zero.sonode",
        "zero.recon.wav",
        "zero.fit.json",
    }  # named after -o (#30)


def test_upsample_band_options_and_the_fitted_clip(workdir):
    model = workdir / "out" / "tone.sonode"
    for extra in (["--low-band", "model", "--high-band", "none"], ["--clip", workdir / "tone.wav"]):
        dest = workdir / "up_bands.wav"
        result = run("upsample", model, "--rate", 48000, "-o", dest, "--quiet", *extra)
        assert result.exit_code == 0, result.output
        samples, rate = sf.read(dest)
        assert rate == 48000 and samples.shape == (9600,) and np.all(np.isfinite(samples))
    result = run(
        "upsample",
        model,
        "--rate",
        48000,
        "-o",
        workdir / "x.wav",
        "--clip",
        workdir / "missing.wav",
    )
    assert (
        result.exit_code != 0
        and "missing.wav" in result.output
        and "Traceback" not in result.output
    )
    assert "above Nyquist" in run("info", model).output


def test_fit_short_options_are_the_long_ones():
    """-r and -t (the README's quickstart) are --rate and --max-time; upsample's -t too."""
    from sonode.cli.fit import fit
    from sonode.cli.upsample import upsample

    def params(command, *args):
        return command.make_context(command.name, ["a.wav", *args]).params

    short = params(fit, "-r", "16000", "-t", "60")
    assert short == params(fit, "--rate", "16000", "--max-time", "60")
    assert (short["rate"], short["max_time_s"]) == (16000, 60.0)
    assert params(upsample, "--rate", "32000", "-o", "u.wav", "-t", "5")["max_time_s"] == 5.0
