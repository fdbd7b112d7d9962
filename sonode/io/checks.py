"""The checks `sonode.io.clip.read_clip` runs on its arguments and on a user's audio file.

Each raises one clear error saying what was wrong and what to do: `~sonode.errors.AudioInputError`
for the file (missing, not audio, unsupported, corrupt, truncated, out of range, silent),
ValueError for an argument that is invalid whatever the file.
"""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from sonode.errors import AudioInputError
from sonode.limits import MAX_SAMPLE_MAGNITUDE

Channel = str | int

#: Containers read_clip accepts (soundfile format names). WAVEX is WAV with an extensible header
#: (how most tools write 24-bit and multichannel WAV); RF64/W64 are WAV variants for files > 4 GB.
SUPPORTED_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG")
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 192_000
#: Hard floor on a clip's length in samples (at the source and the output rate), whatever
#: min_duration_s says: the model's shortest training segment is 64 samples.
MIN_N_SAMPLES = 64
#: Peak amplitude below which a clip counts as silent. It is about 2 LSB of 32-bit PCM (−180 dBFS):
#: anything above is real (if quiet) signal that amplitude normalisation can scale up.
SILENCE_PEAK = 1e-9
# First bytes of the containers above (W64 starts with the GUID "riff..."; RIFX is big-endian WAV).
# Anything else is refused before libsndfile sees it, so its parsers for two dozen other formats
# (and the MP3 decoder, which scans arbitrary bytes for frames) never run on untrusted input.
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"riff", b"fLaC", b"OggS")
# libsndfile's WAV header log line "data : <declared bytes> (should be <bytes present>)".
_WAV_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Declared data sizes that streaming writers put in the header when the length is unknown.
_WAV_SIZE_PLACEHOLDERS = (0xFFFFFFFF, 0x7FFFFFFF)
#: Samples `check_values` scans at once (8 MB of float64): its temporaries stay this small.
CHECK_BLOCK_SAMPLES = 1 << 20


def is_int(value) -> bool:
    """A true integer (Python or NumPy), not a bool and not a float that happens to be whole."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_read_args(channel, start_s, duration_s, rate, max_duration_s, min_duration_s) -> None:
    """ValueError for an argument of read_clip that no file could make valid."""
    if not (channel == "mix" or (is_int(channel) and channel >= 0)):
        raise ValueError(f"channel must be 'mix' or a 0-based channel index >= 0, got {channel!r}")
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number of seconds >= 0, got {start_s!r}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a finite number of seconds > 0, got {duration_s!r}")
    if rate is not None and not (is_int(rate) and MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ):
        raise ValueError(
            f"rate must be an integer from {MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz, got {rate!r}"
        )
    if not (math.isfinite(max_duration_s) and max_duration_s > 0):
        raise ValueError(f"max_duration_s must be > 0 seconds, got {max_duration_s!r}")
    if not (math.isfinite(min_duration_s) and 0 < min_duration_s <= max_duration_s):
        raise ValueError(
            f"min_duration_s must be > 0 and <= max_duration_s, got {min_duration_s!r}"
        )


def check_input_path(file: Path) -> None:
    """The path is a non-empty regular file, readable, that starts like WAV, FLAC or OGG."""
    if not file.exists():
        raise AudioInputError(f"{file}: no such file; check the path")
    if file.is_dir():
        raise AudioInputError(
            f"{file} is a folder, not an audio file; give the path of a WAV, FLAC or OGG file"
        )
    if not file.is_file():
        raise AudioInputError(
            f"{file} is not a regular file (a device or pipe?); give a WAV, FLAC or OGG file"
        )
    if file.stat().st_size == 0:
        raise AudioInputError(f"{file} is empty (0 bytes); it is not an audio file")
    try:
        with open(file, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise AudioInputError(
            f"{file}: cannot be read ({err.strerror}); check its permissions"
        ) from err
    if head not in _MAGIC:
        # The file's bytes are never echoed: the path may come from a model file, not from the user
        # (a crafted model naming a password file must not make sonode print its first word).
        raise AudioInputError(
            f"{file} is not a WAV, FLAC or OGG file (its header is not one of theirs); if it is audio in "
            "another format, convert it, e.g. `ffmpeg -i INPUT out.wav`"
        )


def audio_info(file: Path):
    """The header of the audio file ``file`` (soundfile's info: samplerate in Hz, frames,
    channels, duration in s, format, subtype), read after `check_input_path` (so a FIFO or device
    is never opened).

    Raises:
        AudioInputError: not a readable audio file, in the user's terms (`libsndfile_error`).
    """
    check_input_path(file)
    try:
        return sf.info(str(file))
    except sf.SoundFileError as err:
        raise libsndfile_error(file, err) from err


def libsndfile_error(file: Path, err: sf.SoundFileError) -> AudioInputError:
    """Translate a soundfile failure into the user's terms (libsndfile error codes 1 and 2)."""
    code = getattr(err, "code", None)
    detail = str(getattr(err, "error_string", err)).strip()
    if code == 1:  # SF_ERR_UNRECOGNISED_FORMAT
        return AudioInputError(
            f"{file} is not an audio file sonode can read (expected WAV, FLAC or OGG); "
            "convert it, e.g. `ffmpeg -i INPUT out.wav`"
        )
    if code == 2:  # SF_ERR_SYSTEM: the OS refused (permissions, I/O error)
        return AudioInputError(f"{file}: cannot be read ({detail}); check its permissions")
    return AudioInputError(
        f"{file} is corrupt or truncated ({detail}); re-export or re-download it"
    )


def check_stream(file: Path, f: sf.SoundFile) -> None:
    """The opened file is a supported container and rate, has frames, and is not truncated."""
    if f.format not in SUPPORTED_FORMATS:
        raise AudioInputError(
            f"{file}: unsupported format {f.format} ({f.format_info}); sonode reads WAV, FLAC and "
            "OGG: convert it, e.g. `ffmpeg -i INPUT out.wav`"
        )
    if not MIN_SAMPLE_RATE_HZ <= f.samplerate <= MAX_SAMPLE_RATE_HZ:
        raise AudioInputError(
            f"{file}: sample rate {f.samplerate} Hz is outside the supported {MIN_SAMPLE_RATE_HZ}.."
            f"{MAX_SAMPLE_RATE_HZ} Hz; resample it first, e.g. `sox INPUT -r 16000 out.wav`"
        )
    if f.frames <= 0:
        raise AudioInputError(
            f"{file} contains no audio samples (0 frames); record or export it again"
        )
    if f.format in ("WAV", "WAVEX"):
        # libsndfile silently reads what is there when the data chunk is cut short; the header
        # log keeps the declared size, which tells a truncated download from a complete file.
        m = _WAV_DATA_LOG.search(f.extra_info)
        if (
            m
            and int(m.group(1)) not in _WAV_SIZE_PLACEHOLDERS
            and int(m.group(1)) > int(m.group(2))
        ):
            raise AudioInputError(
                f"{file} is truncated: its header declares {m.group(1)} bytes of audio but only "
                f"{m.group(2)} are present; re-export or re-download it"
            )


def select_frames(
    file: Path, f: sf.SoundFile, start_s: float, duration_s: float | None, max_duration_s: float
) -> tuple[int, int]:
    """Frame range [start, start + n) of the selection, checked against the file and the limit."""
    sr, total = f.samplerate, f.frames
    file_s = total / sr
    start = round(start_s * sr)
    if start >= total:
        raise AudioInputError(
            f"{file}: start {start_s:g} s is at or past the end of the file ({file_s:.3f} s long); "
            "choose an earlier start"
        )
    available = total - start
    if duration_s is None:
        n = available
    else:
        n = round(duration_s * sr)
        if n > available:
            raise AudioInputError(
                f"{file}: start {start_s:g} s + duration {duration_s:g} s goes past the end of the "
                f"file ({file_s:.3f} s long); use a duration of at most {available / sr:.3f} s"
            )
    if n > round(max_duration_s * sr):
        if duration_s is None:
            raise AudioInputError(
                f"{file}: the clip from {start_s:g} s to the end is {n / sr:.3f} s long, over the "
                f"{max_duration_s:g} s limit; select a part with --start/--duration "
                f"(e.g. --start {start_s:g} --duration {min(max_duration_s, 2.0):g})"
            )
        raise AudioInputError(
            f"{file}: duration {duration_s:g} s is over the {max_duration_s:g} s limit; "
            f"choose a duration of at most {max_duration_s:g} s"
        )
    return start, n


def check_min_length(file: Path, n_samples: int, sample_rate: int, min_duration_s: float) -> None:
    """The clip has at least ``min_duration_s`` and MIN_N_SAMPLES samples."""
    need = max(math.ceil(min_duration_s * sample_rate - 1e-9), MIN_N_SAMPLES)
    if n_samples < need:
        raise AudioInputError(
            f"{file}: the clip is {n_samples / sample_rate:.4f} s ({n_samples} samples at "
            f"{sample_rate} Hz) long; sonode needs at least {need / sample_rate:.4f} s "
            f"({need} samples); choose a longer part or file"
        )


def check_values(
    file: Path,
    x: np.ndarray,
    sample_rate: int,
    start: int,
    channel: Channel,
    channel_peaks: np.ndarray,
) -> None:
    """The samples are finite and not silent (a silent mix of loud channels names one to use).

    Scanned block by block (CHECK_BLOCK_SAMPLES): a whole-clip ``abs`` or ``isfinite`` would add
    up to 9 bytes per sample beside the clip's 8 (600 s at 192 kHz: 1 GB more than the clip)."""
    n_bad, first_bad, peak, first_over = 0, -1, 0.0, -1
    for at in range(0, x.shape[0], CHECK_BLOCK_SAMPLES):
        block = x[at : at + CHECK_BLOCK_SAMPLES]
        bad = ~np.isfinite(block)
        if bad.any():
            n_bad += int(bad.sum())
            first_bad = at + int(np.argmax(bad)) if first_bad < 0 else first_bad
            continue
        magnitude = np.abs(block)
        peak = max(peak, float(magnitude.max()))
        if first_over < 0 and peak > MAX_SAMPLE_MAGNITUDE:
            first_over = at + int(np.argmax(magnitude > MAX_SAMPLE_MAGNITUDE))
    if n_bad:
        raise AudioInputError(
            f"{file}: {n_bad} samples are NaN or infinite (first at {(start + first_bad) / sample_rate:.4f} s); "
            "the file is corrupt, re-export it from the program that made it"
        )
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioInputError(
            f"{file}: a sample of magnitude {peak:.3g} (first at {(start + first_over) / sample_rate:.4f} s) "
            "is over the limit of "
            f"{MAX_SAMPLE_MAGNITUDE:g} (full scale = 1): the file is corrupt or not audio; re-export it"
        )
    if peak < SILENCE_PEAK:
        loud = np.flatnonzero(channel_peaks >= SILENCE_PEAK)
        if channel == "mix" and loud.size:
            raise AudioInputError(
                f"{file}: the mix of all channels is silent although channel {int(loud[0])} has sound "
                f"(the channels cancel out); select a channel, e.g. --channel {int(loud[0])}"
            )
        raise AudioInputError(
            f"{file}: the selected audio is silent (peak {peak:.3g} < {SILENCE_PEAK:g}, i.e. below "
            "-180 dBFS); choose a part or file with sound"
        )
