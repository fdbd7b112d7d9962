"""sonode.io.clip: every bad input gives one clear error (AudioInputError, one line)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf

from sonode.errors import AudioInputError, SonodeError
from sonode.io import checks as audio_checks
from sonode.io.clip import read_clip
from tests.audio_support import SR, tone, valid_wav, write


@pytest.fixture
def wav(tmp_path):
    return valid_wav(tmp_path)


# --- refused inputs: one clear AudioInputError each -----------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(AudioInputError, match="no such file"):
        read_clip(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(AudioInputError, match="is a folder"):
        read_clip(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.wav")
    with pytest.raises(AudioInputError, match="not a regular file"):
        read_clip(tmp_path / "pipe.wav")


def test_unreadable_file(wav, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(
        audio_checks, "open", denied, raising=False
    )  # shadows the builtin in audio_checks only
    with pytest.raises(
        AudioInputError, match=r"cannot be read \(Permission denied\); check its permissions"
    ):
        read_clip(wav)


def test_empty_file(tmp_path):
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match=r"empty \(0 bytes\)"):
        read_clip(tmp_path / "e.wav")


def test_not_audio(tmp_path):
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 20)
    with pytest.raises(
        AudioInputError, match=r"is not a WAV, FLAC or OGG file \(its header is not one of theirs\)"
    ) as caught:
        read_clip(tmp_path / "notes.wav")
    assert "thes" not in str(
        caught.value
    )  # a file's bytes are never echoed (#30: a model naming a secret)


@pytest.mark.parametrize("fmt", ["AIFF", "AU", "CAF", "MP3"])
def test_other_audio_formats_are_refused_before_libsndfile_parses_them(tmp_path, fmt, monkeypatch):
    kw = dict(subtype="MPEG_LAYER_III") if fmt == "MP3" else dict(subtype="PCM_16")
    path = write(tmp_path / f"x.{fmt.lower()}", tone(4000), format=fmt, **kw)
    monkeypatch.setattr(sf, "SoundFile", None)  # refused by the magic bytes alone
    with pytest.raises(AudioInputError, match="is not a WAV, FLAC or OGG file.*convert it"):
        read_clip(path)


def test_riff_that_is_not_wave_is_not_audio(tmp_path):
    (tmp_path / "x.avi").write_bytes(b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(64))
    with pytest.raises(AudioInputError, match="is not an audio file sonode can read"):
        read_clip(tmp_path / "x.avi")


def test_container_is_checked_again_after_opening(wav, monkeypatch):
    """Magic bytes are a first filter; libsndfile's own verdict on the container is checked too."""
    monkeypatch.setattr(sf.SoundFile, "format", property(lambda self: "AIFF"))
    with pytest.raises(AudioInputError, match="unsupported format AIFF"):
        read_clip(wav)


def test_truncated_wav_data(tmp_path, wav):
    data = wav.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioInputError, match="truncated: its header declares 16000 bytes"):
        read_clip(tmp_path / "cut.wav")


def test_streaming_placeholder_size_is_not_truncation(tmp_path, wav):
    """Writers that stream to a pipe put 0xFFFFFFFF in the data size: the file is complete."""
    data = bytearray(wav.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "stream.wav").write_bytes(bytes(data))
    assert np.allclose(read_clip(tmp_path / "stream.wav").samples, read_clip(wav).samples)


def test_truncated_wav_header(tmp_path, wav):
    (tmp_path / "cut.wav").write_bytes(wav.read_bytes()[:30])
    with pytest.raises(AudioInputError, match="corrupt or truncated"):
        read_clip(tmp_path / "cut.wav")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_header_is_read_with_the_same_checks_and_refusals_as_the_clip(tmp_path, wav):
    """`audio_info` (the header the commands size their work by) never opens a FIFO, and refuses
    what read_clip refuses with the same line."""
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 20)
    (tmp_path / "x.avi").write_bytes(b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(64))
    (tmp_path / "cut.wav").write_bytes(wav.read_bytes()[:30])
    for name in ("pipe.wav", "notes.wav", "x.avi", "cut.wav", "missing.wav"):
        with pytest.raises(AudioInputError) as from_clip:
            read_clip(tmp_path / name)
        with pytest.raises(AudioInputError) as from_header:
            audio_checks.audio_info(tmp_path / name)
        assert str(from_header.value) == str(from_clip.value)
    info = audio_checks.audio_info(wav)
    assert (info.samplerate, info.frames) == (SR, read_clip(wav).samples.size)


def test_truncated_flac(tmp_path):
    data = write(tmp_path / "x.flac", tone(SR), format="FLAC").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioInputError, match="corrupt or truncated"):
        read_clip(tmp_path / "cut.flac")


def test_zero_samples(tmp_path):
    path = write(tmp_path / "z.wav", np.zeros(0))
    with pytest.raises(AudioInputError, match="no audio samples"):
        read_clip(path)


def test_too_short_states_the_minimum(tmp_path):
    path = write(tmp_path / "s.wav", tone(160))  # 0.01 s
    with pytest.raises(
        AudioInputError, match=r"0\.0100 s \(160 samples.*at least 0\.0500 s \(800 samples\)"
    ):
        read_clip(path)


def test_min_sample_floor_applies_after_resampling(tmp_path):
    path = write(tmp_path / "s.wav", tone(200))
    with pytest.raises(AudioInputError, match=r"\(40 samples at 8000 Hz\).*\(64 samples\)"):
        read_clip(path, min_duration_s=0.001, rate=8000, start_s=0.0, duration_s=0.005)


@pytest.mark.parametrize("value", [0.0, 1e-12])
def test_silent_input(tmp_path, value):
    path = write(tmp_path / "q.wav", np.full(SR, value), subtype="DOUBLE")
    with pytest.raises(AudioInputError, match="silent"):
        read_clip(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone(4000)
    x[1234] = bad
    path = write(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(
        AudioInputError, match=r"1 samples are NaN or infinite \(first at 0\.0771 s\)"
    ):
        read_clip(path)


def test_too_long_unless_a_part_is_selected(tmp_path):
    path = write(tmp_path / "long.wav", tone(2 * SR))
    with pytest.raises(
        AudioInputError, match="over the 1 s limit; select a part with --start/--duration"
    ):
        read_clip(path, max_duration_s=1.0)
    assert read_clip(path, max_duration_s=1.0, start_s=1.2).duration_s == pytest.approx(0.8)
    assert read_clip(path, max_duration_s=1.0, duration_s=0.5).duration_s == pytest.approx(0.5)
    with pytest.raises(AudioInputError, match="duration 1.5 s is over the 1 s limit"):
        read_clip(path, max_duration_s=1.0, duration_s=1.5)


def test_start_or_duration_past_the_end(wav):
    with pytest.raises(
        AudioInputError, match=r"start 0.5 s is at or past the end of the file \(0.500 s long\)"
    ):
        read_clip(wav, start_s=0.5)
    with pytest.raises(AudioInputError, match="goes past the end.*at most 0.300 s"):
        read_clip(wav, start_s=0.2, duration_s=0.4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(start_s=-1.0), "start_s must be"),
        (dict(start_s=math.nan), "start_s must be"),
        (dict(duration_s=0.0), "duration_s must be"),
        (dict(rate=0), "rate must be"),
        (dict(rate=200_000), "rate must be"),
        (dict(rate=16000.0), "rate must be"),
        (dict(rate=math.inf), "rate must be"),
        (dict(channel="left"), "channel must be"),
        (dict(channel=-1), "channel must be"),
        (dict(channel=True), "channel must be"),
    ],
)
def test_bad_arguments_are_value_errors_naming_the_value(wav, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        read_clip(wav, **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_awkward_resample_ratio_is_refused_with_a_usable_suggestion(tmp_path):
    path = write(tmp_path / "odd.wav", tone(4400, 44004), 44004)
    with pytest.raises(AudioInputError, match=r"use a nearby rate such as (\d+) Hz") as info:
        read_clip(path, rate=16000)
    suggested = int(info.value.args[0].split("such as ")[1].split(" Hz")[0])
    assert abs(suggested - 16000) < 200 and read_clip(path, rate=suggested).sample_rate == suggested


def test_all_input_errors_are_sonode_errors_on_one_line(tmp_path):
    with pytest.raises(SonodeError) as info:
        read_clip(tmp_path / "nope.wav")
    assert "\n" not in str(info.value)
