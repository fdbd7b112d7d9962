"""sonode.io.clip: every accepted input reads correctly and resampling is band-limited (refused
inputs: tests/test_audio_refused.py; writing: tests/test_audio_write.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from sonode.errors import AudioInputError
from sonode.io.clip import Clip, read_clip, resample
from tests.audio_support import SR, tone, valid_wav, write


@pytest.fixture
def wav(tmp_path):
    return valid_wav(tmp_path)


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
