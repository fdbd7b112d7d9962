"""Reading, validating, resampling and writing audio clips.

Everything that touches a user's audio file goes through here, so that every bad input ends in one
:class:`~sonode.errors.AudioInputError` with a message saying what was wrong and what to do, and
every written WAV appears whole (atomically) and never overwrites an input. The checks are in
`sonode.io.checks`, the writing in `sonode.io.wav`.

Units: ``*_s`` are seconds, ``sample_rate``/``*_rate`` are Hz, ``n_*`` and frame indices count
samples. A "frame" is one sample of every channel.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sonode.errors import AudioInputError
from sonode.io.checks import (
    MAX_SAMPLE_RATE_HZ,
    MIN_N_SAMPLES,
    MIN_SAMPLE_RATE_HZ,
    SILENCE_PEAK,
    SUPPORTED_FORMATS,
    Channel,
    check_input_path,
    check_min_length,
    check_read_args,
    check_stream,
    check_values,
    libsndfile_error,
    select_frames,
)
from sonode.sinc import KAISER_BEST, resample_blocks, resample_cost_problem

__all__ = [
    "Channel",
    "Clip",
    "MAX_SAMPLE_RATE_HZ",
    "MIN_N_SAMPLES",
    "MIN_SAMPLE_RATE_HZ",
    "SILENCE_PEAK",
    "SUPPORTED_FORMATS",
    "read_channel",
    "read_clip",
    "resample",
]

# Frames read per block: memory stays O(block x channels) even for many-channel files.
_READ_BLOCK_FRAMES = 1 << 16
# High-quality band-limited resampling: the "kaiser_best" windowed-sinc filter of resampy/librosa
# (the parameter set torchaudio's docs give for it). 64 zero crossings make the transition band
# narrow, the passband reaches 94.8 % of the lower Nyquist frequency, and the Kaiser window with
# beta = 14.77 gives a deep stopband. Measured 48 kHz -> 16 kHz: tones up to 7 kHz come through
# with error < -140 dB, tones from 8.1 kHz up alias at < -100 dB (tests/test_audio_io.py checks
# both with margins). torchaudio's default (Hann, 6 crossings) leaks far more near Nyquist.
RESAMPLE_KW = KAISER_BEST


@dataclass(eq=False)
class Clip:
    """A mono clip read from a file.

    Attributes:
        samples: float64 array, shape (n_samples,), amplitude as in the file (full scale = 1).
        sample_rate: Hz of ``samples`` (the requested ``rate`` if resampled, else the file's).
        source_path: the file it came from.
        source_rate: the file's sample rate in Hz.
        source_channels: the file's channel count.
        channel: the selection used: ``"mix"`` (mean of all channels) or a 0-based channel index.
        start_s: where the clip starts in the file, in seconds.
    """

    samples: np.ndarray
    sample_rate: int
    source_path: Path
    source_rate: int
    source_channels: int
    channel: Channel
    start_s: float

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate


def read_clip(
    path: str | os.PathLike,
    *,
    channel: Channel = "mix",
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate: int | None = None,
    max_duration_s: float = 600.0,
    min_duration_s: float = 0.05,
    max_samples: int | None = None,
) -> Clip:
    """Read one validated mono clip from a WAV, FLAC or OGG file.

    Only the selected frames are read, block by block, so a huge file costs no more memory than
    the clip. Files with any number of channels are accepted: ``channel="mix"`` averages them (note
    that channels in antiphase cancel; the error for a silent mix names a channel that has sound),
    an int picks one.

    Args:
        path: the audio file (WAV/WAVEX/RF64/W64, FLAC or OGG; 8..192 kHz; any PCM depth or float).
        channel: ``"mix"`` or a 0-based channel index.
        start_s: start of the clip in the file, seconds (rounded to the nearest frame).
        duration_s: length to read, seconds; None reads to the end of the file.
        rate: resample to this rate in Hz (8000..192000); None keeps the file's rate.
        max_duration_s: longest clip accepted, seconds; longer files need start_s/duration_s.
        min_duration_s: shortest clip accepted, seconds (and never fewer than MIN_N_SAMPLES).
        max_samples: most samples the clip may have at the output rate (checked before reading, e.g.
            what a fit can hold in memory); None: no limit beyond max_duration_s.

    Returns:
        A :class:`Clip` whose ``samples`` has shape (n_samples,), float64, all finite, not silent.

    Raises:
        AudioInputError: the file or the selected part cannot be used (message says why and what
            to do): missing, a folder, empty, not audio, unsupported format or sample rate,
            corrupt or truncated, no samples, channel out of range, start/duration past the end,
            longer than max_duration_s, shorter than the minimum, NaN/inf samples, silent, or a
            ``rate`` whose ratio to the file's rate is too awkward to filter (a nearby rate is named).
        ValueError: an argument is invalid regardless of the file (negative start, rate 0, ...).
    """
    check_read_args(channel, start_s, duration_s, rate, max_duration_s, min_duration_s)
    file = Path(path)
    check_input_path(file)
    try:
        with sf.SoundFile(file) as f:
            check_stream(file, f)
            if channel != "mix" and channel >= f.channels:
                raise AudioInputError(
                    f"{file}: channel {channel} requested but the file has {f.channels} "
                    f"channel(s), numbered 0..{f.channels - 1}; pick one of those or 'mix'"
                )
            start_frame, n_frames = select_frames(file, f, start_s, duration_s, max_duration_s)
            check_min_length(file, n_frames, f.samplerate, min_duration_s)
            n_out = math.ceil(n_frames * (rate or f.samplerate) / f.samplerate)
            if max_samples is not None and n_out > max_samples:
                from sonode.limits import LimitError

                raise LimitError(
                    f"{file}: the clip has {n_out} samples at {rate or f.samplerate} Hz, over the limit "
                    f"of {max_samples} (memory); select a shorter part with --start/--duration or a "
                    "lower --rate"
                )
            samples, channel_peaks = _read_mono(file, f, start_frame, n_frames, channel)
            source_rate, source_channels = f.samplerate, f.channels
    except sf.SoundFileError as err:
        raise libsndfile_error(file, err) from err

    check_values(file, samples, source_rate, start_frame, channel, channel_peaks)
    sample_rate = source_rate
    if rate is not None and rate != source_rate:
        _check_resample_cost(file, source_rate, rate)
        samples = resample(samples, source_rate, rate)
        sample_rate = int(rate)
        check_min_length(file, samples.shape[0], rate, min_duration_s)
    return Clip(
        samples=samples,
        sample_rate=sample_rate,
        source_path=file,
        source_rate=source_rate,
        source_channels=source_channels,
        channel=channel,
        start_s=start_frame / source_rate,
    )


def resample(samples: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling of a mono signal (windowed sinc, Kaiser window; see RESAMPLE_KW).

    Args:
        samples: shape (n_samples,), any float dtype.
        orig_rate, new_rate: sample rates in Hz (positive ints).

    Returns:
        float64 array of shape (ceil(n_samples * new_rate / orig_rate),): the same time span at the
        new rate; content above 0.948 x the lower Nyquist frequency is removed.

    Raises:
        sonode.limits.LimitError: a ratio too awkward to filter in bounded memory (a nearby rate is named).
    """
    return resample_blocks(samples, orig_rate, new_rate, **RESAMPLE_KW)


def read_channel(
    f: sf.SoundFile, channel: Channel, start: int = 0, n: int | None = None
) -> np.ndarray:
    """Frames [start, start + n) (default: to the end) of one channel (or "mix") of the opened file
    ``f``, block by block: float64 (n,), the memory of one channel whatever the file's channel count
    (reading every channel and slicing one kept all of them: 8 B per sample per channel). Only the
    length is checked; `read_clip` is the validating reader."""
    n = f.frames - start if n is None else n
    return _read_mono(Path(f.name), f, start, n, channel)[0]


def _read_mono(
    file: Path, f: sf.SoundFile, start: int, n: int, channel: Channel
) -> tuple[np.ndarray, np.ndarray]:
    """Read frames [start, start+n) as one channel or the mix; also each channel's peak."""
    out = np.empty(n, dtype=np.float64)
    peaks = np.zeros(f.channels)
    f.seek(start)
    done = 0
    while done < n:
        block = f.read(min(_READ_BLOCK_FRAMES, n - done), dtype="float64", always_2d=True)
        if block.shape[0] == 0:
            raise AudioInputError(
                f"{file} is corrupt or truncated: it ends after {(start + done) / f.samplerate:.3f} s "
                f"although its header says {f.frames / f.samplerate:.3f} s; re-export or re-download it"
            )
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are reported by check_values
            peaks = np.fmax(peaks, np.abs(block).max(axis=0))
            out[done : done + block.shape[0]] = (
                block.mean(axis=1) if channel == "mix" else block[:, channel]
            )
        done += block.shape[0]
    return out, peaks


def _check_resample_cost(file: Path, orig_rate: int, new_rate: int) -> None:
    problem = resample_cost_problem(orig_rate, new_rate, RESAMPLE_KW)
    if problem:
        raise AudioInputError(
            f"{file}: {problem}, or resample the file first (e.g. `sox INPUT -r {new_rate} out.wav`)"
        )
