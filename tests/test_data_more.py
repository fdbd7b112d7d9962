"""The held-out clips in data/more/: each is documented in data/more/README.md and is a usable
48 kHz mono recording (finite, not silent). Reads them with soundfile, not sonode's reader, so a
change in sonode cannot hide a broken data file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

MORE = Path(__file__).resolve().parents[1] / "data" / "more"
CLIPS = sorted(MORE.glob("*.wav"))


def test_folder_holds_clips():
    assert len(CLIPS) >= 10, f"expected the ~10 held-out clips in {MORE}, found {len(CLIPS)}"


@pytest.mark.parametrize("path", CLIPS, ids=[p.name for p in CLIPS])
def test_clip_is_documented_and_usable(path: Path):
    readme = (MORE / "README.md").read_text(encoding="utf-8")
    assert f"| {path.name} |" in readme, f"{path.name} has no row in data/more/README.md"
    info = sf.info(str(path))
    assert (info.samplerate, info.channels) == (48000, 1), (
        f"{path.name}: {info.samplerate} Hz, {info.channels} channels"
    )
    x, _ = sf.read(str(path), dtype="float64")
    assert np.isfinite(x).all()
    rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-12)
    assert rms_db > -40.0, f"{path.name} is (nearly) silent: RMS {rms_db:.1f} dBFS"
