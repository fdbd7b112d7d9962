"""`sonode upsample CLIP`: no model is trained when the output's low band is the input's
interpolation; the band above comes from the clip's identified oscillators."""

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from sonode.cli import main
from sonode.dsp.resample import upsample_sinc
from sonode.tasks.upsample import clip_modes, upsample_samples
from tests.model.synthetic import SAMPLE_RATE, TONES, two_tone_clip


def test_clip_modes_finds_the_tones_and_their_amplitudes():
    x = 0.5 * two_tone_clip(0.25)
    freqs, amplitude, decay = clip_modes(x, SAMPLE_RATE, n_modes=2, lp_order=32)
    order = np.argsort(freqs)
    for (f_true, a_true, _), f, a in zip(
        sorted(TONES), freqs[order], amplitude[order], strict=False
    ):
        assert abs(f - f_true) < 2.0
        assert (
            abs(a - 0.5 * a_true) < 0.05 * a_true
        )  # one window, at the start: the tone's amplitude
    assert np.all(decay <= 0)


def test_upsample_a_clip_without_model_out_trains_nothing(tmp_path):
    x = two_tone_clip(0.2)
    sf.write(tmp_path / "tone.wav", x, SAMPLE_RATE, subtype="FLOAT")
    dest = tmp_path / "up.wav"
    result = CliRunner().invoke(
        main,
        [
            "upsample",
            str(tmp_path / "tone.wav"),
            "--rate",
            "48000",
            "-o",
            str(dest),
            "--lp-order",
            "32",
            "--latent-dim",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no model is trained" in result.output
    assert {p.name for p in tmp_path.iterdir()} == {
        "tone.wav",
        "up.wav",
    }  # no model, report or reconstruction
    out, rate = sf.read(dest)
    expected, _ = upsample_samples(x, SAMPLE_RATE, 48000, modes=clip_modes(x, SAMPLE_RATE, 4, 32))
    assert rate == 48000 and out.shape == (9600,)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # below the input's band the output is its interpolation (the synthesised band lies above 8 kHz)
    low = np.fft.rfft(out)[: int(6000 * out.shape[0] / 48000)]
    reference = np.fft.rfft(upsample_sinc(x, SAMPLE_RATE, 48000))[: low.shape[0]]
    assert np.max(np.abs(low - reference)) < 1e-3 * np.max(np.abs(reference))


def test_upsample_a_stereo_clip_gives_stereo_unless_a_channel_is_chosen(tmp_path):
    x = two_tone_clip(0.2)
    stereo = np.stack([x, 0.5 * x[::-1]], axis=1)
    sf.write(tmp_path / "st.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    args = ["upsample", str(tmp_path / "st.wav"), "--rate", "48000", "--lp-order", "32"]
    args += ["--latent-dim", "8"]
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "both.wav")])
    assert result.exit_code == 0, result.output
    out, rate = sf.read(tmp_path / "both.wav")
    assert rate == 48000 and out.shape == (9600, 2)
    n = int(6000 * out.shape[0] / 48000)
    for c in range(2):  # each channel below the band: its own interpolation
        low = np.fft.rfft(out[:, c])[:n]
        reference = np.fft.rfft(upsample_sinc(stereo[:, c], SAMPLE_RATE, 48000))[:n]
        assert np.max(np.abs(low - reference)) < 1e-3 * np.max(np.abs(reference))
    result = CliRunner().invoke(main, [*args, "--channel", "1", "-o", str(tmp_path / "one.wav")])
    assert result.exit_code == 0, result.output
    assert sf.read(tmp_path / "one.wav")[0].shape == (9600,)


def test_upsample_snr_cost_options_reach_the_band_and_refuse_nonsense(tmp_path):
    rng = np.random.default_rng(5)
    x = 0.1 * rng.normal(size=SAMPLE_RATE // 4)  # white: a band above for every option
    sf.write(tmp_path / "noise.wav", x, SAMPLE_RATE, subtype="FLOAT")
    args = ["upsample", str(tmp_path / "noise.wav"), "--rate", "48000", "--lp-order", "32"]
    args += ["--latent-dim", "8"]
    modes = clip_modes(x, SAMPLE_RATE, 4, 32)
    options = (
        ([], {}),
        (["--snr-cost", "none"], dict(max_snr_cost_db=None)),
        (
            ["--snr-cost", "3", "--snr-cost-case", "expected"],
            dict(max_snr_cost_db=3.0, snr_cost_case="expected"),
        ),
        (["--snr-cost-case", "validated"], dict(snr_cost_case="validated")),
    )
    for i, (extra, kw) in enumerate(options):
        dest = tmp_path / f"up{i}.wav"
        result = CliRunner().invoke(main, args + ["-o", str(dest)] + extra)
        assert result.exit_code == 0, result.output
        expected, _ = upsample_samples(x, SAMPLE_RATE, 48000, modes=modes, **kw)
        np.testing.assert_allclose(sf.read(dest)[0], expected, atol=1e-6)
    louder = np.sum(sf.read(tmp_path / "up2.wav")[0] ** 2)
    assert louder > 1.01 * np.sum(sf.read(tmp_path / "up0.wav")[0] ** 2)
    for bad in ("-1", "loud", "inf"):
        result = CliRunner().invoke(main, args + ["-o", str(tmp_path / "x.wav"), "--snr-cost", bad])
        assert result.exit_code == 2 and "--snr-cost" in result.output, result.output
        assert "Traceback" not in result.output
