"""sonode.io.wav: WAV output is atomic, clips instead of wrapping, and never overwrites an input."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from sonode.errors import AudioOutputError, OutputPathError
from sonode.io import clip as audio_io
from sonode.io.wav import check_output_path, write_wav
from tests.audio_support import SR, tone, valid_wav


@pytest.fixture
def wav(tmp_path):
    return valid_wav(tmp_path)


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
        write_wav(tmp_path / "o.wav", np.zeros((10, 2, 1)), SR)


def test_write_keeps_channels(tmp_path):
    stereo = np.stack([tone(100), -0.5 * tone(100)], axis=1)
    write_wav(tmp_path / "st.wav", stereo, SR)
    back, rate = sf.read(tmp_path / "st.wav")
    assert rate == SR and back.shape == (100, 2)
    np.testing.assert_allclose(back, stereo, atol=1e-6)


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
