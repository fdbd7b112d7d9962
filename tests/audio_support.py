"""The clips of the audio I/O tests (tests/test_audio_io.py, test_audio_refused.py,
test_audio_write.py): a tone, a file writer, and a valid WAV file."""

from __future__ import annotations

import numpy as np
import soundfile as sf

SR = 16_000


def tone(n: int, sr: int = SR, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)


def write(path, data, sr=SR, **kw):
    sf.write(path, data, sr, **kw)
    return path


def valid_wav(folder):
    """``folder``/ok.wav: a valid 0.5 s mono 16 kHz PCM_16 file (the tests' `wav` fixture)."""
    return write(folder / "ok.wav", tone(SR // 2), subtype="PCM_16")
