"""sonode.io.clip: every accepted input reads correctly, every bad input gives one clear error,
resampling is band-limited, and WAV output is atomic and never overwrites an input."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import soundfile as sf

from sonode.errors import AudioInputError, AudioOutputError, OutputPathError, SonodeError
from sonode.io import checks as audio_checks, clip as audio_io
from sonode.io.clip import Clip, read_clip, resample
from sonode.io.wav import check_output_path, write_wav

SR = 16_000


def tone(n: int, sr: int = SR, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)


def write(path, data, sr=SR, **kw):
    sf.write(path, data, sr, **kw)
    return path


@pytest.fixture
def wav(tmp_path):
    """A valid 0.5 s mono 16 kHz PCM_16 file."""
    return write(tmp_path / "ok.wav", tone(SR // 2), subtype="PCM_16")


# --- accepted inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,subtype,lsb",
    [
        ("WAV", "PCM_U8", 2.0**-7),
        ("WAV", "PCM_16", 2.0**-15),
        ("WAV", "PCM_24", 2.0**-23),
        ("WAV", "PCM_32", 2.0**-31),
        ("WAV", "FLOAT", 1e-7),
        ("WAV", "DOUBLE", 1e-15),
        ("FLAC", "PCM_S8", 2.0**-7),
        ("FLAC", "PCM_16", 2.0**-15),
        ("FLAC", "PCM_24", 2.0**-23),
        ("WAVEX", "PCM_24", 2.0**-23),
        ("RF64", "PCM_16", 2.0**-15),
        ("W64", "FLOAT", 1e-7),
    ],
)
def test_reads_every_bit_depth_to_within_one_lsb(tmp_path, fmt, subtype, lsb):
    x = tone(4000)
    path = write(tmp_path / f"x.{fmt.lower()}", x, format=fmt, subtype=subtype)
    clip = read_clip(path)
    assert (
        isinstance(clip, Clip)
        and clip.samples.dtype == np.float64
        and clip.samples.shape == (4000,)
    )
    assert np.max(np.abs(clip.samples - x)) <= lsb
    assert (clip.sample_rate, clip.source_rate, clip.source_channels, clip.channel) == (
        SR,
        SR,
        1,
        "mix",
    )
    assert clip.duration_s == pytest.approx(0.25)


def test_reads_ogg_vorbis(tmp_path):
    x = tone(8000)
    clip = read_clip(write(tmp_path / "x.ogg", x, format="OGG", subtype="VORBIS"))
    assert clip.samples.shape == (8000,)
    # Lossy codec: the waveform is close, not exact.
    assert np.corrcoef(clip.samples[500:-500], x[500:-500])[0, 1] > 0.99


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_accepts_rates_8k_to_192k(tmp_path, sr):
    clip = read_clip(write(tmp_path / "x.wav", tone(sr // 10, sr), sr))
    assert clip.sample_rate == sr and clip.samples.shape == (sr // 10,)


@pytest.mark.parametrize("sr", [4000, 7999, 192001, 384000])
def test_refuses_rates_outside_8k_192k(tmp_path, sr):
    with pytest.raises(AudioInputError, match=f"{sr} Hz is outside the supported 8000..192000 Hz"):
        read_clip(write(tmp_path / "x.wav", tone(sr // 10, sr), sr))


def test_stereo_mix_is_channel_mean_and_channels_select(tmp_path):
    left, right = tone(4000, freq=300), tone(4000, freq=500, amp=0.25)
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    assert np.allclose(read_clip(path).samples, (left + right) / 2, atol=1e-7)
    clip = read_clip(path, channel=1)
    assert (
        np.allclose(clip.samples, right, atol=1e-7)
        and clip.channel == 1
        and clip.source_channels == 2
    )


def test_three_channels_mix_and_select(tmp_path):
    chans = np.stack([tone(4000, freq=f) for f in (200, 300, 400)], axis=1)
    path = write(tmp_path / "c3.wav", chans, subtype="FLOAT")
    assert np.allclose(read_clip(path).samples, chans.mean(axis=1), atol=1e-7)
    assert np.allclose(read_clip(path, channel=2).samples, chans[:, 2], atol=1e-7)
    with pytest.raises(
        AudioInputError, match=r"channel 3 requested but the file has 3 channel\(s\), numbered 0..2"
    ):
        read_clip(path, channel=3)


def test_mix_that_cancels_names_a_channel_with_sound(tmp_path):
    x = tone(4000)
    path = write(tmp_path / "anti.wav", np.stack([x, -x], axis=1), subtype="FLOAT")
    with pytest.raises(AudioInputError, match="channels cancel out.*--channel 0"):
        read_clip(path)
    assert np.allclose(read_clip(path, channel=1).samples, -x, atol=1e-7)


def test_start_and_duration_select_exact_frames(tmp_path):
    x = np.arange(SR, dtype=np.float64) / SR - 0.5  # a ramp: each value names its frame
    path = write(tmp_path / "ramp.wav", x, subtype="DOUBLE")
    clip = read_clip(path, start_s=0.25, duration_s=0.5)
    assert np.array_equal(clip.samples, x[4000:12000]) and clip.start_s == 0.25
    assert np.array_equal(read_clip(path, start_s=0.75).samples, x[12000:])


def test_reads_only_the_selected_frames(tmp_path, monkeypatch):
    """A long file costs only the selection: count the frames soundfile is asked for."""
    path = write(tmp_path / "long.wav", tone(40 * SR), subtype="PCM_16")  # 40 s > the 30 s limit
    asked = []
    real_read = sf.SoundFile.read
    monkeypatch.setattr(
        sf.SoundFile,
        "read",
        lambda self, frames=-1, **kw: asked.append(frames) or real_read(self, frames, **kw),
    )
    clip = read_clip(path, start_s=35.0, duration_s=1.0)
    assert sum(asked) == SR and clip.samples.shape == (SR,)


def test_resamples_to_requested_rate(wav):
    clip = read_clip(wav, rate=np.int64(44100))  # NumPy ints are ints too
    assert clip.sample_rate == 44100 and clip.source_rate == SR
    assert clip.samples.shape == (math.ceil(8000 * 44100 / SR),)
    ref = tone(clip.n_samples, 44100)
    assert np.max(np.abs(clip.samples - ref)[500:-500]) < 1e-3  # PCM_16 source: its own LSB noise


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


# --- resampling -------------------------------------------------------------------------------


def rms_db(a, ref):
    return 20 * np.log10(np.sqrt(np.mean(a**2)) / np.sqrt(np.mean(ref**2)))


@pytest.mark.parametrize(
    "orig,new,n",
    [(48000, 16000, 48000), (16000, 44100, 1601), (44100, 22050, 999), (8000, 192000, 77)],
)
def test_resample_length_covers_the_same_span(orig, new, n):
    assert resample(np.random.default_rng(0).standard_normal(n), orig, new).shape == (
        math.ceil(n * new / orig),
    )


@pytest.mark.parametrize("freq", [1000.0, 5000.0, 7000.0])
def test_resample_passband_matches_the_analytic_tone(freq):
    """Band-limited interpolation of a sampled sine is the sine: error < -120 dB in the passband."""
    x = np.sin(2 * np.pi * freq * np.arange(48000) / 48000)
    y = resample(x, 48000, 16000)
    ref = np.sin(2 * np.pi * freq * np.arange(y.size) / 16000)
    assert rms_db((y - ref)[200:-200], ref) < -120  # edges excluded: the signal is cut off there


@pytest.mark.parametrize("freq", [8100.0, 9000.0, 12000.0, 20000.0])
def test_resample_removes_content_above_the_new_nyquist(freq):
    """A tone above 8 kHz cannot exist at 16 kHz: it must not alias back (stopband < -95 dB)."""
    x = np.sin(2 * np.pi * freq * np.arange(48000) / 48000)
    assert rms_db(resample(x, 48000, 16000)[200:-200], x) < -95


def test_resample_same_rate_is_a_copy():
    x = np.arange(10.0)
    y = resample(x, SR, SR)
    assert np.array_equal(x, y) and y is not x


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subtype,tol", [("FLOAT", 1e-7), ("PCM_16", 2.0**-15), ("PCM_24", 2.0**-23)]
)
def test_write_round_trip(tmp_path, subtype, tol):
    x = tone(1000)
    assert write_wav(tmp_path / "o.wav", x, SR, subtype=subtype) == 0
    y, sr = sf.read(tmp_path / "o.wav")
    assert (
        sr == SR and sf.info(tmp_path / "o.wav").subtype == subtype and np.max(np.abs(y - x)) <= tol
    )


def test_pcm_write_clips_instead_of_wrapping_and_counts(tmp_path):
    x = np.array([0.0, 1.5, -2.0, 1.0, 0.999, -1.0, 0.5])
    assert (
        write_wav(tmp_path / "o.wav", x, SR, subtype="PCM_16") == 3
    )  # 1.5, -2.0 and 1.0 (> 32767/32768)
    y, _ = sf.read(tmp_path / "o.wav")
    assert y[1] == pytest.approx(1 - 2**-15) and y[2] == -1.0 and y[3] > 0.99  # no sign flip
    assert write_wav(tmp_path / "f.wav", x, SR) == 0 and sf.read(tmp_path / "f.wav")[0][2] == -2.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])
def test_write_refuses_non_finite_and_leaves_existing_file(tmp_path, bad):
    out = tmp_path / "o.wav"
    out.write_bytes(b"previous")
    x = tone(1000)
    x[500] = bad
    with pytest.raises(
        AudioOutputError, match="1 of 1000 samples are NaN or infinite.*nothing was written"
    ):
        write_wav(out, x, SR)
    assert out.read_bytes() == b"previous" and sorted(os.listdir(tmp_path)) == ["o.wav"]


def test_write_refuses_protected_paths(tmp_path, wav):
    before = wav.read_bytes()
    with pytest.raises(OutputPathError, match="is the input file"):
        write_wav(wav, tone(100), SR, protect=[wav])
    link = tmp_path / "link.wav"
    link.symlink_to(wav)
    with pytest.raises(OutputPathError, match="is the input file"):
        write_wav(link, tone(100), SR, protect=[wav])
    hard = tmp_path / "hard.wav"
    os.link(wav, hard)
    with pytest.raises(OutputPathError, match="is the input file"):
        write_wav(hard, tone(100), SR, protect=[wav])
    assert wav.read_bytes() == before


def test_check_output_path(tmp_path, wav):
    other = tmp_path / "out" / "new.wav"
    assert check_output_path(other, [wav]) == other
    with pytest.raises(OutputPathError, match="sonode never overwrites its input"):
        check_output_path(tmp_path / "sub" / ".." / "ok.wav", [wav])
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path, [wav])


def test_write_unwritable_place_is_an_output_path_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match="cannot write"):
        write_wav(tmp_path / "afile" / "o.wav", tone(100), SR)


def test_write_validates_subtype_and_rate(tmp_path):
    with pytest.raises(ValueError, match="valid: FLOAT, PCM_16, PCM_24"):
        write_wav(tmp_path / "o.wav", tone(100), SR, subtype="PCM_8")
    with pytest.raises(ValueError, match="sample_rate"):
        write_wav(tmp_path / "o.wav", tone(100), 0)
    with pytest.raises(ValueError, match=r"shape \(n_samples,\)"):
        write_wav(tmp_path / "o.wav", np.zeros((10, 2)), SR)


class SimulatedCrash(Exception):
    pass


@pytest.mark.parametrize("existing", [True, False])
def test_crash_mid_write_leaves_no_partial_file(tmp_path, monkeypatch, existing):
    """soundfile dies after writing half a file: OUT is untouched (or absent) and no temp remains."""
    out = tmp_path / "o.wav"
    if existing:
        write_wav(out, tone(1000), SR)
    before = out.read_bytes() if existing else None
    real_write = sf.write

    def crashing_write(file, data, samplerate, **kw):
        real_write(file, data, samplerate, **kw)
        with open(file, "r+b") as f:  # leave a torn file behind, as a crash would
            f.truncate(os.path.getsize(file) // 2)
        raise SimulatedCrash("disk pulled out")

    monkeypatch.setattr(audio_io.sf, "write", crashing_write)
    with pytest.raises(SimulatedCrash):
        write_wav(out, tone(2000, freq=1000), SR)
    assert sorted(os.listdir(tmp_path)) == (["o.wav"] if existing else [])
    if existing:
        assert out.read_bytes() == before
