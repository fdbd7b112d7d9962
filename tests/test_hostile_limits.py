"""#30: every size a user or a file can set is checked before anything is allocated (one line, the
value and the limit, exit 2), crafted model files are refused before they are built, and the
cases that used to end in tracebacks end in one line."""

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf
from click.testing import CliRunner

from sonode.batch.jobs import FitJob, skipped_row, status_line
from sonode.cli import main
from sonode.io.clip import RESAMPLE_KW
from sonode.sinc import resample_blocks
from tests.cli_support import run as cli
from tests.hostile_cases import crafted
from tests.hostile_support import FAST, GOAL_PEAK_BYTES, RATE, fit_take, run, tone
from tests.phase_trace import PHASE_PREFIX


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return fit_take(tmp_path_factory.mktemp("hostile-limits"), 0.5)


@pytest.mark.parametrize(
    "ratio", [(48000, 16000), (16000, 44100), (44100, 48000), (48000, 8000), (8000, 48000)]
)
def test_block_wise_resampling_is_bit_identical_to_torchaudio(ratio):
    """Bit for bit on one thread; with two, torch's convolution splits its sums differently for the
    block and the whole signal, so the two agree to round-off only (the order of the tests, which
    set the thread count, must not decide the outcome)."""
    x = np.random.default_rng(0).standard_normal(123_457)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            expected = taf.resample(torch.from_numpy(x), *ratio, **RESAMPLE_KW).numpy()
            blocks = resample_blocks(x, *ratio, **RESAMPLE_KW)
            if n == 1:
                assert np.array_equal(blocks, expected)
            else:
                assert np.max(np.abs(blocks - expected)) < 1e-12
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "args,limit",
    [
        (
            ["upsample", "{model}", "--rate", "44101", "-o", "{tmp}/u.wav"],
            "44100 Hz",
        ),  # 22.7 GB before #30
        (["upsample", "{model}", "--rate", "48001", "-o", "{tmp}/u.wav"], "taps"),
        (
            ["render", "{model}", "--rate", "50000000", "-o", "{tmp}/r.wav"],
            "limit of 768000",
        ),  # 2.86 GB
        (
            ["render", "{model}", "--rate", "8000", "--end", "3000", "-o", "{tmp}/r.wav"],
            "memory limit",
        ),  # 11 GB at 200 s
        (
            ["fit", "{clip}", "--latent-dim", "2000000", "-o", "{tmp}/m.sonode"],
            "limit of 1024",
        ),  # 11.7 GB
        (
            ["fit", "{clip}", "--hop", "60000", "-o", "{tmp}/m.sonode", "--quiet"],
            "longer than the clip",
        ),
        (["fit", "{clip}", "--threads", "100000", "-o", "{tmp}/m.sonode"], "over the limit"),
        (["report", "{model}", "--threads", "100000", "-o", "{tmp}/rep"], "over the limit"),
        (["eval", "{clip}", "--rate", "15999", "-o", "{tmp}/ev"], "taps"),
        (["eval", "{clip}", "--budget", "inf", "-o", "{tmp}/ev"], "finite"),
        (
            ["eval", "{clip}", "--rate", "8000", "--horizon-s", "0.4", "-o", "{tmp}/ev"],
            "shorter than half",
        ),  # was found after a fit
        (["render", "{model}", "--end", "inf", "-o", "{tmp}/r.wav"], "finite"),
        (["extrapolate", "{model}", "--seconds", "inf", "-o", "{tmp}/r.wav"], "finite"),
        (
            ["render", "{model}", "--rate", "100000000000000000000", "-o", "{tmp}/r.wav"],
            "over the limit",
        ),
        (
            ["fill", "{clip}", "--gap", "0.1", "0.11", "--context", "inf", "-o", "{tmp}/f.wav"],
            "finite",
        ),
        (["fit", "{clip}", "--max-time", "inf", "-o", "{tmp}/m.sonode"], "finite"),
    ],
)
def test_absurd_sizes_are_refused_up_front_in_one_line(fitted, tmp_path, args, limit):
    args = [
        a.format(model=fitted / "take.sonode", clip=fitted / "take.wav", tmp=tmp_path) for a in args
    ]
    outcome = run(args, phases=True)
    assert not outcome.problems(codes=(2,)), outcome.describe()
    assert limit in outcome.stderr, outcome.describe()
    # up front: no fit phase began (eval's horizon was once found after a fit), whatever the load
    assert PHASE_PREFIX not in outcome.stderr, outcome.describe()
    assert outcome.peak_rss_bytes < GOAL_PEAK_BYTES


def test_a_sample_of_1e300_is_refused_before_the_fit(tmp_path):
    x = tone(0.3, RATE)
    x[100] = 1e300
    sf.write(tmp_path / "huge.wav", x, RATE, subtype="DOUBLE")
    result = cli("fit", tmp_path / "huge.wav", "-o", tmp_path / "m.sonode", *FAST)
    assert result.exit_code == 2 and "over the limit of 1e+06" in result.output, result.output
    assert not (tmp_path / "m.sonode").exists()


def _set(path, value):
    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "name,edit",
    [
        ("n_modes_1e6", _set(["config", "n_modes"], 1_000_000)),  # 3.1 GB before #30
        ("layers_1e7", _set(["config", "layers"], 10_000_000)),  # 3.4 GB in 41 s
        ("n_modes_inf", _set(["config", "n_modes"], float("inf"))),  # OverflowError
        ("rate_string", _set(["config", "sample_rate"], "48000")),
        ("hop_zero", _set(["config", "hop_samples"], 0)),
        (
            "source_string",
            _set(["info", "source"], "take.wav"),
        ),  # AttributeError in info/plot/upsample
        ("fit_list", _set(["info", "fit"], [1, 2])),
        ("history_dict", _set(["info", "history"], {"epoch": 1})),
        ("continuation_list", _set(["info", "fit", "identification", "continuation"], [1])),
        ("channel_list", _set(["info", "source", "channel"], [0])),
    ],
)
@pytest.mark.parametrize("command", ["info", "plot", "upsample", "render"])
def test_crafted_model_metadata_ends_in_one_line(fitted, tmp_path, name, edit, command):
    model = crafted(fitted / "take.sonode", tmp_path / f"{name}.sonode", edit)
    args = {
        "info": ["info", model],
        "plot": ["plot", model, "-o", tmp_path / "p.png"],
        "upsample": ["upsample", model, "--rate", "32000", "-o", tmp_path / "u.wav"],
        "render": ["render", model, "-o", tmp_path / "r.wav"],
    }[command]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if result.exit_code == 2:
        assert (
            len([ln for ln in result.output.splitlines() if ln.startswith("sonode: error")]) == 1
        ), result.output


def test_a_crafted_model_naming_a_secret_as_its_source_never_prints_it(fitted, tmp_path):
    secret = tmp_path / "passwords"
    secret.write_text("hunter2:x:0:0:root\n")
    model = crafted(
        fitted / "take.sonode", tmp_path / "m.sonode", _set(["info", "source", "path"], str(secret))
    )
    for args in (
        ["upsample", model, "--rate", "32000", "-o", tmp_path / "u.wav"],
        ["plot", model, "-o", tmp_path / "p.png"],
    ):
        result = cli(*args)
        assert "hunter2" not in result.output and "hunt" not in result.output, result.output
    assert secret.read_text() == "hunter2:x:0:0:root\n"


def test_a_zip_bomb_is_refused_before_it_is_decompressed(fitted, tmp_path):
    """A member compressed (sonode never compresses): refused from the zip directory alone."""
    bomb = tmp_path / "bomb.sonode"
    with zipfile.ZipFile(fitted / "take.sonode") as src, zipfile.ZipFile(bomb, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data/0"):
                data = data + bytes(200 << 20)  # 200 MB of zeros: deflates to ~200 KB
            dst.writestr(item.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 << 20
    outcome = run(["info", bomb])
    assert not outcome.problems(codes=(2,)), outcome.describe()
    assert "compressed" in outcome.stderr and outcome.peak_rss_bytes < GOAL_PEAK_BYTES


def test_tensors_that_do_not_match_the_config_are_refused(fitted, tmp_path):
    model = crafted(
        fitted / "take.sonode",
        tmp_path / "m.sonode",
        edit_tensors=lambda t: t.update(states=torch.zeros(3, 3, dtype=torch.float64)),
    )
    result = cli("info", model)
    assert result.exit_code == 2 and "do not match" in result.output, result.output


def test_eval_refuses_an_upsampling_task_too_large_for_memory_before_any_fit(tmp_path):
    """`eval --duration 600` of a 48 kHz clip fitted for 45 s (its peak 2.07 GiB) and only then
    found that the upsampling to 48 kHz needed 5 GiB; 45 s at 192 kHz needs 1.3 GiB of output."""
    clip = tmp_path / "long.wav"
    sf.write(clip, np.zeros(45 * 192_000, dtype=np.int16), 192_000, subtype="PCM_16")
    result = cli("eval", clip, "--duration", "45", "-o", tmp_path / "ev", "--quiet")
    assert result.exit_code == 2 and "upsampling" in result.output and "GiB" in result.output
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())


def test_report_refuses_a_page_too_large_for_memory_before_the_fit(tmp_path):
    """`report CLIP` of 600 s at 192 kHz fitted 9.6 M samples at 16 kHz, read the clip again at
    192 kHz (peak 2.56 GiB) and only then found that its upsampling section needed 17.9 GiB."""
    clip = tmp_path / "long.wav"
    sf.write(clip, np.zeros(60 * 192_000, dtype=np.int16), 192_000, subtype="PCM_16")
    result = cli("report", clip, "-o", tmp_path / "rep", "--steps", "1")
    assert result.exit_code == 2 and "upsampling" in result.output and "GiB" in result.output
    assert "fitting" not in result.output  # refused before the fit
    assert not (tmp_path / "rep" / "long.sonode").exists()


def test_a_batch_rerun_survives_an_edited_report(tmp_path):
    job = FitJob(str(tmp_path / "take.wav"), "take", str(tmp_path))
    job.paths()["report"].write_text(json.dumps({"fit": [1, 2], "written_by": "sonode 0"}))
    row = skipped_row(job)
    assert row["status"] == "skipped" and row["snr_db"] is None
    assert "skipped" in status_line(1, 1, row)
    job.paths()["report"].write_text("{not json")
    assert skipped_row(job)["snr_db"] is None


def test_fill_of_a_long_many_channel_file_streams(tmp_path):
    """120 s of 192 kHz 6-channel audio peaked at 3.77 GB before #30. Here 20 s against 1 s, side
    by side: loading the file whole would add 184 MB (float64) to the peak; streaming adds nothing."""
    rate, channels = 192_000, 6
    peaks = {}
    for seconds in (1, 20):
        clip = tmp_path / f"long{seconds}.wav"
        with sf.SoundFile(clip, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
            block = tone(1.0, rate, channels=channels)
            for _ in range(seconds):
                f.write(block)
        outcome = run(
            [
                "fill",
                clip,
                "--gap",
                "0.5",
                "0.51",
                "--method",
                "janssen",
                "-o",
                tmp_path / f"out{seconds}.wav",
                "--quiet",
            ],
        )
        assert not outcome.problems(codes=(0,)), outcome.describe()
        peaks[seconds] = outcome.peak_rss_bytes
    assert peaks[20] - peaks[1] < 64 << 20, peaks
