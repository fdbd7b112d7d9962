"""#30: no user file lost. The output plan (sonode.io.outputs) checks every output of every command
before any work: never a FIFO or device, never a path the command reads (the model's recorded source
included, even with --force), two outputs never the same file, read-only and full folders found
before the work. Fill keeps the input's format and leaves everything outside the gaps bit for bit."""

import json
import os
import stat
import subprocess

import numpy as np
import pytest
import soundfile as sf

from sonode.io.fileutil import written_by_sonode
from tests.cli_support import run as cli
from tests.hostile_support import FAST, RATE, fit_take, run, small_tmpfs, tone, unmount
from tests.phase_trace import PHASE_PREFIX


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A recording and a model fitted from it (the model records the recording as its source)."""
    return fit_take(tmp_path_factory.mktemp("hostile-out"), 0.3)


def test_upsample_never_writes_the_models_recorded_source_even_with_force(fitted, tmp_path):
    source = fitted / "take.wav"
    before = source.read_bytes()
    for extra in ([], ["--force"]):
        result = cli("upsample", fitted / "take.sonode", "--rate", 32000, "-o", source, *extra)
        assert result.exit_code == 2 and "never overwrites its input" in result.output, (
            result.output
        )
    assert source.read_bytes() == before


def test_upsample_never_writes_a_source_that_sonode_wrote_itself(fitted, tmp_path):
    """The source is a fill output (sonode's marker): before #30 it was replaced without --force."""
    filled = tmp_path / "filled.wav"
    assert (
        cli(
            "fill",
            fitted / "take.wav",
            "--gap",
            "0.1",
            "0.11",
            "--method",
            "janssen",
            "-o",
            filled,
            "--quiet",
        ).exit_code
        == 0
    )
    assert written_by_sonode(filled)
    assert cli("fit", filled, "-o", tmp_path / "m.sonode", *FAST).exit_code == 0
    before = filled.read_bytes()
    result = cli("upsample", tmp_path / "m.sonode", "--rate", 32000, "-o", filled)
    assert result.exit_code == 2 and "never overwrites its input" in result.output
    assert filled.read_bytes() == before


def test_upsample_refuses_a_model_out_that_is_also_the_output(fitted, tmp_path):
    result = cli(
        "upsample",
        fitted / "take.wav",
        "--rate",
        32000,
        "--model-out",
        tmp_path / "x",
        "-o",
        tmp_path / "x",
        *FAST,
    )
    assert result.exit_code == 2 and "same file" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_fit_side_outputs_are_named_after_o(fitted, tmp_path):
    """Two clips both called take.wav fitted into one folder no longer replace each other's reports."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        sf.write(tmp_path / d / "take.wav", tone(0.3, RATE, seed=ord(d)), RATE, subtype="PCM_16")
        assert (
            cli(
                "fit", tmp_path / d / "take.wav", "-o", tmp_path / "out" / f"{d}.sonode", *FAST
            ).exit_code
            == 0
        )
    for d in ("a", "b"):
        report = json.loads((tmp_path / "out" / f"{d}.fit.json").read_text())
        assert report["source"]["path"].endswith(f"{d}/take.wav")
        assert (tmp_path / "out" / f"{d}.recon.wav").exists()
    assert not (tmp_path / "out" / "take.fit.json").exists()


def test_eval_fill_marks_its_results_and_respects_force(fitted, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    (out / "results.json").write_text('{"mine": true}\n')
    args = [
        "eval",
        fitted / "take.wav",
        "--task",
        "fill",
        "--positions",
        "1",
        "--rate",
        RATE,
        "-o",
        out,
        "--quiet",
    ]
    result = cli(*args)
    assert result.exit_code == 2 and "refusing to overwrite" in result.output
    assert json.loads((out / "results.json").read_text()) == {"mine": True}
    assert cli(*args, "--force").exit_code == 0
    assert written_by_sonode(out / "results.json") and written_by_sonode(out / "results.md")
    assert cli(*args).exit_code == 0  # its own results are replaced without --force


@pytest.mark.parametrize("command", ["render", "extrapolate", "plot", "fill", "fit"])
def test_a_fifo_as_output_is_refused_at_once(fitted, tmp_path, command):
    fifo = tmp_path / ("out.wav" if command != "plot" else "out.png")
    os.mkfifo(fifo)
    args = {
        "render": ["render", fitted / "take.sonode", "-o", fifo],
        "extrapolate": ["extrapolate", fitted / "take.sonode", "--seconds", "0.1", "-o", fifo],
        "plot": ["plot", fitted / "take.sonode", "-o", fifo],
        "fill": ["fill", fitted / "take.wav", "--gap", "0.1", "0.11", "-o", fifo],
        "fit": ["fit", fitted / "take.wav", "-o", fifo, *FAST],
    }[command]
    outcome = run(args)
    assert not outcome.problems(codes=(2,)), outcome.describe()
    assert "FIFO" in outcome.stderr and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize("command", ["upsample", "eval", "info", "fill", "report"])
def test_a_fifo_as_input_is_refused_at_once(tmp_path, command):
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    args = {
        "upsample": ["upsample", fifo, "--rate", "32000", "-o", tmp_path / "u.wav"],
        "eval": ["eval", fifo, "-o", tmp_path / "ev"],
        "info": ["info", fifo],
        "fill": ["fill", fifo, "--gap", "0.1", "0.11", "-o", tmp_path / "f.wav"],
        "report": ["report", fifo, "-o", tmp_path / "page"],
    }[command]
    outcome = run(args)
    assert not outcome.problems(codes=(2,)), outcome.describe()
    assert "not a regular file" in outcome.stderr or "not a file" in outcome.stderr


def test_a_read_only_folder_is_found_before_the_fit(fitted):
    point, why = small_tmpfs("1m")
    if point is None:
        pytest.skip(why)
    try:
        if subprocess.run(
            ["mount", "-o", "remount,ro", str(point)], capture_output=True
        ).returncode:
            pytest.skip("cannot remount the tmpfs read-only")
        outcome = run(
            ["fit", fitted / "take.wav", "-o", point / "m.sonode", "--max-time", "60"],
            phases=True,
        )
        assert not outcome.problems(codes=(2,)), outcome.describe()
        assert "read-only" in outcome.stderr, outcome.describe()
        assert PHASE_PREFIX not in outcome.stderr, outcome.describe()  # refused before any phase
    finally:
        unmount(point)


def test_a_full_folder_is_found_before_the_work(fitted, tmp_path):
    point, why = small_tmpfs("64k")
    if point is None:
        pytest.skip(why)
    try:
        outcome = run(
            ["render", fitted / "take.sonode", "--end", "30", "-o", point / "long.wav"],
        )
        assert not outcome.problems(codes=(2,)), outcome.describe()
        assert "free space" in outcome.stderr or "disk is full" in outcome.stderr
        assert list(point.iterdir()) == []  # no partial file, no temporary left behind
    finally:
        unmount(point)


def test_a_batch_without_room_for_its_outputs_is_refused_before_any_fit(tmp_path):
    # Room for the summary (2 MiB) but not for two fits' outputs as a single fit sizes them.
    point, why = small_tmpfs("8m")
    if point is None:
        pytest.skip(why)
    try:
        for k in range(2):
            sf.write(tmp_path / f"c{k}.wav", tone(1.0, RATE, seed=k), RATE, subtype="PCM_16")
        outcome = run(
            ["fit", tmp_path / "c0.wav", tmp_path / "c1.wav", "--out-dir", point, *FAST],
        )
        assert not outcome.problems(codes=(2,)), outcome.describe()
        assert "free space" in outcome.stderr and "[1/2]" not in outcome.stderr
        assert list(point.iterdir()) == []
    finally:
        unmount(point)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT", "PCM_U8"])
def test_fill_keeps_everything_outside_the_gap_bit_for_bit(tmp_path, subtype):
    x = tone(0.5, RATE, channels=2)
    clip = tmp_path / "in.wav"
    sf.write(clip, x, RATE, subtype=subtype)
    out = tmp_path / "out.wav"
    assert (
        cli(
            "fill", clip, "--gap", "0.2", "0.21", "--method", "janssen", "-o", out, "--quiet"
        ).exit_code
        == 0
    )
    dtype = "float64" if subtype == "FLOAT" else "int32"
    a, _ = sf.read(clip, dtype=dtype, always_2d=True)
    b, _ = sf.read(out, dtype=dtype, always_2d=True)
    assert sf.info(str(out)).subtype == subtype and a.shape == b.shape
    inside = np.zeros(a.shape[0], bool)
    inside[int(0.2 * RATE) : int(np.ceil(0.21 * RATE))] = True
    assert np.array_equal(a[~inside], b[~inside])
    assert not np.array_equal(a[inside], b[inside])


def test_fill_writes_the_container_its_extension_names(tmp_path):
    clip = tmp_path / "in.wav"
    sf.write(clip, tone(0.5, RATE), RATE, subtype="PCM_16")
    assert (
        cli(
            "fill",
            clip,
            "--gap",
            "0.2",
            "0.21",
            "--method",
            "janssen",
            "-o",
            tmp_path / "x.flac",
            "--quiet",
        ).exit_code
        == 0
    )
    info = sf.info(str(tmp_path / "x.flac"))
    assert info.format == "FLAC" and info.subtype == "PCM_16"
    a, _ = sf.read(clip, dtype="int32")
    b, _ = sf.read(tmp_path / "x.flac", dtype="int32")
    assert np.array_equal(a[: int(0.2 * RATE)], b[: int(0.2 * RATE)])


@pytest.mark.parametrize(
    "name, kind",
    [("in.ogg", {"format": "OGG", "subtype": "VORBIS"}), ("in.wav", {"subtype": "IMA_ADPCM"})],
    ids=["vorbis", "adpcm"],
)
def test_fill_decodes_a_lossy_input_once_into_a_lossless_output(tmp_path, name, kind):
    """Before #30 fill re-encoded lossy inputs whole: a Vorbis file changed by 25.1 dB outside the
    gap, ADPCM in 274 samples outside it."""
    clip = tmp_path / name
    sf.write(clip, tone(0.5, RATE), RATE, **kind)
    gap = ["--gap", "0.2", "0.21", "--method", "janssen"]
    if kind.get("format") == "OGG":  # a lossy output would re-encode: refused before any work
        refused = cli("fill", clip, *gap, "-o", tmp_path / "out.ogg")
        assert refused.exit_code == 2 and "lossily" in refused.output
        assert not (tmp_path / "out.ogg").exists()
    assert cli("fill", clip, *gap, "-o", tmp_path / "out.wav", "--quiet").exit_code == 0
    decoded, _ = sf.read(clip)
    filled, _ = sf.read(tmp_path / "out.wav")
    assert sf.info(str(tmp_path / "out.wav")).subtype == "FLOAT"
    changed = np.flatnonzero(np.abs(decoded - filled) > 1e-7)  # float32 of the decoded samples
    assert changed.size and changed.min() >= int(0.2 * RATE) - 1
    assert changed.max() < int(np.ceil(0.21 * RATE))


def test_a_batch_refuses_its_summary_before_any_fit(tmp_path):
    """Before #30 a batch ran every fit and only then refused to write sonode-batch.csv."""
    for name in ("a", "b"):
        sf.write(tmp_path / f"{name}.wav", tone(0.2, RATE), RATE, subtype="PCM_16")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sonode-batch.csv").write_text("my,own,table\n")
    result = cli("fit", tmp_path / "a.wav", tmp_path / "b.wav", "--out-dir", out, *FAST)
    assert result.exit_code == 2 and "sonode-batch.csv" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == ["sonode-batch.csv"]  # nothing was fitted


@pytest.mark.parametrize("subtype, width", [("PCM_16", 2), ("PCM_24", 3), ("FLOAT", 4)])
def test_fills_free_space_check_counts_the_outputs_own_sample_width(tmp_path, subtype, width):
    # It assumed 8 B per value, 4x a 16-bit output: a 3.4 GB file needed 13.7 GB free to be filled.
    from unittest import mock

    from sonode.tasks.fill import FillSettings
    from sonode.tasks.fill_file import fill_file

    clip = tmp_path / "in.wav"
    sf.write(clip, tone(1.0, RATE, channels=2), RATE, subtype=subtype)
    asked = []
    with mock.patch("sonode.io.outputs.check_free_space", lambda _, n: asked.append(n)):
        fill_file(clip, tmp_path / "out.wav", [(0.5, 0.51)], FillSettings(method="janssen"))
    n_values = RATE * 2  # 1 s, 2 channels
    output_estimate = asked[0] - (1 << 20)  # the folder's total: the output and its 1 MiB report
    assert width * n_values <= output_estimate <= width * n_values + (64 << 10)
