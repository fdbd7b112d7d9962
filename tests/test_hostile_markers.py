"""#30: every audio output of `fill` carries sonode's marker, so that a later run recognises its own
file (replaced without --force) and still protects a user's file of the same name and format."""

import pytest
import soundfile as sf

from sonode.io.fileutil import sonode_marker, written_by_sonode
from tests.cli_support import run as cli
from tests.hostile_support import tone

RATE = 16000


def fill(clip, out, *extra):
    return cli(
        "fill", clip, "--gap", "0.2", "0.21", "--method", "janssen", "-o", out, "--quiet", *extra
    )


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_fill_marks_its_output_and_replaces_only_its_own(tmp_path, suffix):
    clip = tmp_path / "in.wav"
    sf.write(clip, tone(0.5, RATE), RATE, subtype="PCM_16")
    out = tmp_path / f"filled{suffix}"
    assert fill(clip, out).exit_code == 0
    assert written_by_sonode(out)  # FLAC had no marker before: the rerun below was refused
    assert fill(clip, out).exit_code == 0  # sonode's own output: replaced without --force
    user = tmp_path / f"user{suffix}"
    sf.write(user, tone(0.5, RATE, seed=1), RATE, subtype="PCM_16")
    before = user.read_bytes()
    result = fill(clip, user)
    assert result.exit_code == 2 and "--force" in result.output and user.read_bytes() == before


@pytest.mark.parametrize("fmt, subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_the_software_comment_marks_flac_and_ogg(tmp_path, fmt, subtype):
    """The marker is libsndfile's software string (a Vorbis comment in both containers)."""
    marked, plain = tmp_path / f"marked.{fmt.lower()}", tmp_path / f"plain.{fmt.lower()}"
    for path, software in ((marked, sonode_marker()), (plain, "someone else 1.0")):
        with sf.SoundFile(path, "w", RATE, 1, subtype, format=fmt) as f:
            f.software = software
            f.write(tone(0.2, RATE))
    assert written_by_sonode(marked) and not written_by_sonode(plain)
    # a damaged comment header is simply not sonode's (never an exception)
    data = bytearray(marked.read_bytes())
    at = data.find(b"sonode")
    data[at - 40 : at] = b"\xff" * 40
    (tmp_path / f"broken.{fmt.lower()}").write_bytes(bytes(data))
    assert not written_by_sonode(tmp_path / f"broken.{fmt.lower()}")
