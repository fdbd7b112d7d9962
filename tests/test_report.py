"""`sonode report` without a browser: what the page holds, where its files go, sizes, overwrite rules."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from sonode.cli import main
from sonode.evaluation.report_media import loudest_span, matched_gains, numbers_row
from sonode.io.fileutil import written_by_sonode

DATA = Path(__file__).resolve().parents[1] / "data"
GUITAR = DATA / "decaying_steelguitar_C4.wav"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A short fit of 1 s of the guitar at 16 kHz (small model: the page's size does not depend on it)."""
    import sonode

    fitted = sonode.fit(
        str(GUITAR), rate=16000, duration_s=1.0, steps=2, latent_dim=32, lp_order=128, hidden=16
    )
    path = tmp_path_factory.mktemp("model") / "guitar.sonode"
    fitted.save(path)
    return path


@pytest.fixture(scope="module")
def page(model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "out"
    result = CliRunner().invoke(main, ["report", str(model), "-o", str(folder), "--quiet"])
    assert result.exit_code == 0, result.output
    return folder


class _Refs(HTMLParser):
    """Every src/href of the page, and each <audio> with its attributes."""

    def __init__(self):
        super().__init__()
        self.refs, self.audio = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.refs += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "audio":
            self.audio.append(attrs)


def _parse(folder: Path) -> tuple[str, _Refs]:
    text = (folder / "index.html").read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(text)
    return text, refs


def test_page_refers_only_to_files_inside_its_folder(page):
    text, refs = _parse(page)
    files = [r for r in refs.refs if not r.startswith("#")]
    assert files
    for ref in files:
        assert not re.match(r"^[a-z]+:|^//|^/", ref), ref  # no scheme, no absolute path
        target = (page / ref).resolve()
        assert target.is_file() and page.resolve() in target.parents, ref
    # nothing is fetched by the style or script either
    assert "http" not in re.sub(r"<code>.*?</code>", "", text).replace("http-equiv", "")


def test_every_written_file_is_referenced_and_sonodes(page):
    _, refs = _parse(page)
    media = sorted(p for p in (page / "media").rglob("*") if p.is_file())
    referenced = {(page / r).resolve() for r in refs.refs if not r.startswith("#")}
    assert {p.resolve() for p in media} == referenced
    for path in media + [page / "index.html", page / "report.json"]:
        assert written_by_sonode(path), path


def test_players_and_labels(page):
    text, refs = _parse(page)
    assert (
        len(refs.audio) == 3 + 4 + 3 + 3
    )  # listen, upsampling (with the 48 kHz truth), continuation, fill
    ids = set(re.findall(r'id="([^"]+)"', text))
    for audio in refs.audio:
        assert "controls" in audio and audio["aria-labelledby"] in ids
        assert 0 < float(audio["data-gain"]) <= 1
    for label in (
        "truth (full band)",
        "sinc + shaped noise",
        "untrained start",
        "Janssen",
        "Burg ",
    ):
        assert label in text
    assert text.startswith("<!-- written by sonode") and "<!doctype html>" in text
    assert 'role="radiogroup"' in text and "A/B" in text and 'class="loop"' in text


def test_audio_is_flac_at_the_right_rates_and_the_page_is_small(page):
    rates = {p.name: soundfile.info(str(p)).samplerate for p in (page / "media").glob("*.flac")}
    assert rates and all(
        soundfile.info(str(p)).format == "FLAC" for p in (page / "media").glob("*.flac")
    )
    assert (
        rates["guitar.upsampling.sonode.flac"] == 48000
        and rates["guitar.listen.sonode.flac"] == 16000
    )
    total = sum(p.stat().st_size for p in page.rglob("*") if p.is_file())
    assert total < 5_000_000, total  # the bound for a 1 s clip


def test_numbers_have_wins(page):
    import json

    report = json.loads((page / "report.json").read_text())
    rows = report["clips"][0]["numbers"]
    tasks = {r["task"] for r in rows}
    assert {"reconstruction", "upsampling", "fill 20 ms", "fill 80 ms"} <= tasks
    assert all(r["win"] in (True, False, None) for r in rows) and any(
        r["win"] is not None for r in rows
    )
    assert report["run"]["command"].startswith("sonode report")


def test_wav_fallback_and_excerpts(model, tmp_path):
    out = tmp_path / "wav"
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(model),
            "-o",
            str(out),
            "--quiet",
            "--audio",
            "wav",
            "--excerpt-s",
            "0.5",
            "--no-fill",
        ],
    )
    assert result.exit_code == 0, result.output
    wavs = list((out / "media").glob("*.wav"))
    assert wavs and not list((out / "media").glob("*.flac"))
    assert all(soundfile.info(str(p)).subtype == "PCM_16" and written_by_sonode(p) for p in wavs)
    listen = soundfile.info(str(out / "media" / "guitar.listen.sonode.wav"))
    assert listen.frames == 8000  # the 0.5 s excerpt of the 1 s reconstruction ...
    assert (
        soundfile.info(str(out / "media" / "full" / "guitar.listen.sonode.wav")).frames == 16000
    )  # ... and all
    text = (out / "index.html").read_text()
    assert "full file" in text and "Fill" not in text


def test_refuses_foreign_files_and_keeps_them(model, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("mine")
    result = CliRunner().invoke(main, ["report", str(model), "-o", str(out), "--quiet"])
    assert result.exit_code == 2 and "refusing" in result.output
    assert (out / "index.html").read_text() == "mine" and not (out / "media").exists()
    (out / "index.html").unlink()
    (out / "media").mkdir()
    (out / "media" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["report", str(model), "-o", str(out), "--quiet"])
    assert result.exit_code == 2 and "notes.txt" in result.output


def test_usage_errors_are_one_line(model, tmp_path):
    result = CliRunner().invoke(main, ["report", str(model), str(model), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "same name" in result.output
    result = CliRunner().invoke(
        main, ["report", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    result = CliRunner().invoke(
        main, ["report", str(bad), "-o", str(tmp_path / "x"), "--steps", "1"]
    )
    assert result.exit_code == 2 and result.output.splitlines()[-1].startswith("sonode: error:")
    assert "Traceback" not in result.output


def test_matched_gains_equalise_rms():
    t = np.arange(1000) / 1000
    loud, quiet = np.sin(2 * np.pi * 5 * t), 0.25 * np.sin(2 * np.pi * 7 * t)
    gains = matched_gains([loud, quiet, np.zeros(1000)])
    assert gains[1] == 1.0 and gains[2] == 1.0
    assert np.isclose(gains[0] * np.sqrt(np.mean(loud**2)), np.sqrt(np.mean(quiet**2)), rtol=1e-3)


def test_loudest_span_finds_the_burst():
    x = np.zeros(10000)
    x[6000:6500] = 1.0
    start, end = loudest_span(x, 1000)
    assert end - start == 1000 and start <= 6000 and end >= 6500
    assert loudest_span(x[:500], 1000) == (0, 500)


def test_numbers_row_wins_by_direction():
    assert numbers_row("t", "SNR", 10.0, "b", 5.0, True)["win"] is True
    assert numbers_row("t", "LSD", 1.0, "b", 0.5, False)["win"] is False
    assert numbers_row("t", "SNR", float("inf"), "b", 5.0, True)["win"] is None
    assert (
        numbers_row("t", "SNR", 41.611, "b", 41.609, True)["win"] is None
    )  # a tie at two decimals


def test_field_zeroed_is_the_linear_model_and_leaves_the_original(model):
    import sonode
    from sonode.evaluation.report import field_zeroed

    fitted = sonode.load(model)
    zeroed = field_zeroed(fitted.model)
    assert zeroed.field.is_zero() and not fitted.model.field.is_zero()
    assert fitted.model.field.mlp[-1].weight.abs().sum() > 0


def test_eval_html_writes_the_page_with_the_truth(tmp_path):
    """`sonode eval --html` (here through the API): the page beside results.json, with the held-back truths."""
    from sonode.evaluation.evaluate import EvalOptions, evaluate

    options = EvalOptions(
        low_rate=8000,
        budget_s=60.0,
        horizon_s=0.1,
        duration_s=0.8,
        html=True,
        fit_options=(("steps", 1), ("latent_dim", 16), ("lp_order", 64), ("hidden", 8)),
    )
    results = evaluate([GUITAR], tmp_path, options, command="sonode eval --html")
    assert "page" not in results["clips"][0]  # the page's data stays out of results.json
    text, refs = _parse(tmp_path)
    assert text.count("<audio") == 3 + 4 + 4 + 3  # the continuation's truth is there too
    assert (
        "SNR of the continuation over [0, horizon]" not in text
    )  # a picture, named by its alt text:
    assert (
        "SNR against horizon" in text
        and "truth (full band)" in text
        and "sonode eval --html" in text
    )
    for ref in (r for r in refs.refs if not r.startswith("#")):
        assert (tmp_path / ref).is_file(), ref
    assert written_by_sonode(tmp_path / "index.html") and (tmp_path / "results.json").is_file()


def test_clip_input_is_fitted_and_its_model_kept(tmp_path):
    out = tmp_path / "clip"
    result = CliRunner().invoke(
        main,
        [
            "report",
            str(GUITAR),
            "-o",
            str(out),
            "--quiet",
            "--steps",
            "1",
            "--duration",
            "0.6",
            "--fit-rate",
            "8000",
            "--no-fill",
            "--horizon-s",
            "0.1",
            "--context-s",
            "0.2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert written_by_sonode(out / "decaying_steelguitar_C4.sonode")
    text = (out / "index.html").read_text()
    assert (
        "Upsampling 8 kHz → 48 kHz" in text and "truth (full band)" in text
    )  # the file is the truth
    assert "--steps 1" in text and "fit CPU" in text
    assert GUITAR.read_bytes()[:4] == b"RIFF"  # the input is untouched (and never in the folder)


def test_flac_marker_recognised_only_on_sonodes_flac(tmp_path):
    from sonode.io.wav import write_flac

    ours, theirs = tmp_path / "ours.flac", tmp_path / "theirs.flac"
    assert write_flac(ours, np.array([0.0, 0.5, 2.0]), 16000) == 1  # one sample clipped, counted
    soundfile.write(str(theirs), np.zeros(10), 16000, format="FLAC")
    assert written_by_sonode(ours) and not written_by_sonode(theirs)
    with pytest.raises(Exception, match="refusing"):
        write_flac(theirs, np.zeros(4), 16000)
    assert soundfile.read(str(theirs))[0].size == 10  # kept
