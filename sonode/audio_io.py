"""Reading, validating, resampling and writing audio clips.

Everything that touches a user's audio file goes through here, so that every bad input ends in one
:class:`~sonode.errors.AudioInputError` with a message saying what was wrong and what to do, and
every written WAV appears whole (atomically) and never overwrites an input.

Units: ``*_s`` are seconds, ``sample_rate``/``*_rate`` are Hz, ``n_*`` and frame indices count
samples. A "frame" is one sample of every channel.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from sonode.errors import AudioInputError, AudioOutputError, OutputPathError
from sonode.fileutil import append_riff_chunk, atomic_write, riff_info_chunk, same_file, sonode_marker, written_by_sonode

Channel = Union[str, int]

#: Containers read_clip accepts (soundfile format names). WAVEX is WAV with an extensible header
#: (how most tools write 24-bit and multichannel WAV); RF64/W64 are WAV variants for files > 4 GB.
SUPPORTED_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG")
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
#: Hard floor on a clip's length in samples (at the source and the output rate), whatever
#: min_duration_s says: the model's shortest training segment is 64 samples.
MIN_N_SAMPLES = 64
#: Peak amplitude below which a clip counts as silent. It is about 2 LSB of 32-bit PCM (−180 dBFS):
#: anything above is real (if quiet) signal that amplitude normalisation can scale up.
SILENCE_PEAK = 1e-9
#: PCM subtypes write_wav can produce, with their bit depth; FLOAT is 32-bit IEEE float.
WAV_SUBTYPES = {"FLOAT": None, "PCM_16": 16, "PCM_24": 24}

# Frames read per block: memory stays O(block x channels) even for many-channel files.
_READ_BLOCK_FRAMES = 1 << 16
# High-quality band-limited resampling: the "kaiser_best" windowed-sinc filter of resampy/librosa
# (the parameter set torchaudio's docs give for it). 64 zero crossings make the transition band
# narrow, the passband reaches 94.8 % of the lower Nyquist frequency, and the Kaiser window with
# beta = 14.77 gives a deep stopband. Measured 48 kHz -> 16 kHz: tones up to 7 kHz come through
# with error < -140 dB, tones from 8.1 kHz up alias at < -100 dB (tests/test_audio_io.py checks
# both with margins). torchaudio's default (Hann, 6 crossings) leaks far more near Nyquist.
_RESAMPLE_KW = dict(
    lowpass_filter_width=64,
    rolloff=0.9475937167399596,
    resampling_method="sinc_interp_kaiser",
    beta=14.769656459379492,
)
# torchaudio's polyphase kernel has (new/g) x (2 width + orig/g) taps, g = gcd(orig, new): cheap for
# ratios like 48000 -> 16000, but gigabytes for near-coprime rates (44056 -> 44100). Above this many
# taps (128 MB in float64) read_clip refuses and suggests a nearby rate with a simpler ratio.
_MAX_RESAMPLE_KERNEL_TAPS = 1 << 24
# First bytes of the containers above (W64 starts with the GUID "riff..."; RIFX is big-endian WAV).
# Anything else is refused before libsndfile sees it, so its parsers for two dozen other formats
# (and the MP3 decoder, which scans arbitrary bytes for frames) never run on untrusted input.
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"riff", b"fLaC", b"OggS")
# libsndfile's WAV header log line "data : <declared bytes> (should be <bytes present>)".
_WAV_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Declared data sizes that streaming writers put in the header when the length is unknown.
_WAV_SIZE_PLACEHOLDERS = (0xFFFFFFFF, 0x7FFFFFFF)


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
    _check_read_args(channel, start_s, duration_s, rate, max_duration_s, min_duration_s)
    file = Path(path)
    _check_input_path(file)
    try:
        with sf.SoundFile(file) as f:
            _check_stream(file, f)
            if channel != "mix" and channel >= f.channels:
                raise AudioInputError(
                    f"{file}: channel {channel} requested but the file has {f.channels} "
                    f"channel(s), numbered 0..{f.channels - 1}; pick one of those or 'mix'"
                )
            start_frame, n_frames = _select_frames(file, f, start_s, duration_s, max_duration_s)
            _check_min_length(file, n_frames, f.samplerate, min_duration_s)
            samples, channel_peaks = _read_mono(file, f, start_frame, n_frames, channel)
            source_rate, source_channels = f.samplerate, f.channels
    except sf.SoundFileError as err:
        raise _libsndfile_error(file, err) from err

    _check_values(file, samples, source_rate, start_frame, channel, channel_peaks)
    sample_rate = source_rate
    if rate is not None and rate != source_rate:
        _check_resample_cost(file, source_rate, rate)
        samples = resample(samples, source_rate, rate)
        sample_rate = int(rate)
        _check_min_length(file, samples.shape[0], rate, min_duration_s)
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
    """Band-limited resampling of a mono signal (windowed sinc, Kaiser window; see _RESAMPLE_KW).

    Args:
        samples: shape (n_samples,), any float dtype.
        orig_rate, new_rate: sample rates in Hz (positive ints).

    Returns:
        float64 array of shape (ceil(n_samples * new_rate / orig_rate),): the same time span at the
        new rate; content above 0.948 x the lower Nyquist frequency is removed.
    """
    if not (_is_int(orig_rate) and _is_int(new_rate) and orig_rate > 0 and new_rate > 0):
        raise ValueError(f"sample rates must be positive integers in Hz, got {orig_rate}, {new_rate}")
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float64))
    if x.ndim != 1:
        raise ValueError(f"resample expects a mono signal of shape (n_samples,), got {tuple(x.shape)}")
    if orig_rate == new_rate:
        return x.numpy().copy()
    return taf.resample(x, int(orig_rate), int(new_rate), **_RESAMPLE_KW).numpy()


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *,
                      force: bool = False) -> Path:
    """Refuse an output path that is a folder, the same file as any input (links followed), or an
    existing file sonode did not write (`sonode.fileutil.written_by_sonode`) unless ``force``.

    Inputs are protected even with ``force``. An existing sonode output may always be replaced.

    Returns:
        ``out`` as a Path.

    Raises:
        OutputPathError: with the path and what to do instead.
    """
    out_path = Path(out)
    if out_path.is_dir():
        raise OutputPathError(f"output {out_path} is a folder; give a file name, e.g. {out_path / 'out.wav'}")
    for inp in inputs:
        if same_file(out_path, inp):
            raise OutputPathError(
                f"output {out_path} is the input file {inp}; sonode never overwrites its input, "
                "choose another output path (-o)"
            )
    if not force and out_path.exists() and not written_by_sonode(out_path):
        raise OutputPathError(
            f"refusing to overwrite {out_path}: the file exists and was not written by sonode; choose "
            "another output path, or pass --force to replace it"
        )
    return out_path


def write_wav(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "FLOAT",
    protect: Iterable[str | os.PathLike] = (),
    force: bool = False,
) -> int:
    """Write a mono WAV atomically (temp file + rename): it appears whole or not at all.

    The file carries sonode's marker (a LIST/INFO chunk, software "sonode <version>"), so a later
    write may replace it; an existing file without it is only replaced with ``force``.

    Args:
        path: destination (parent folders are created).
        samples: shape (n_samples,), full scale = 1.
        sample_rate: Hz, positive int (any rate: renders may be upsampled beyond 192 kHz).
        subtype: "FLOAT" (32-bit float, keeps values beyond +-1), "PCM_16" or "PCM_24".
        protect: paths that must not be written (the inputs); compared with same_file.
        force: replace an existing file even if sonode did not write it (never a protected one).

    Returns:
        How many samples were clipped to the PCM range [-1, 1 - 2^(1-bits)] (0 for FLOAT).

    Raises:
        ValueError: unknown subtype, bad sample_rate, or samples not 1-D.
        AudioOutputError: NaN/inf samples (or beyond float32 range for FLOAT); nothing is written.
        OutputPathError: ``path`` is a protected file, a folder, a file sonode did not write (without
            ``force``), or cannot be written.
    """
    if subtype not in WAV_SUBTYPES:
        raise ValueError(f"unknown WAV subtype {subtype!r}; valid: {', '.join(WAV_SUBTYPES)}")
    if not (_is_int(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"write_wav expects mono samples of shape (n_samples,), got {x.shape}")
    out = Path(path)
    bad = ~np.isfinite(x)
    if subtype == "FLOAT":
        bad |= np.abs(x) > np.finfo(np.float32).max  # would become inf in a 32-bit float file
    if bad.any():
        first = int(np.argmax(bad))
        raise AudioOutputError(
            f"refusing to write {out}: {int(bad.sum())} of {x.size} samples are NaN or infinite "
            f"(first at sample {first}, {first / sample_rate:.4f} s), e.g. a diverged render; "
            "nothing was written"
        )
    check_output_path(out, protect, force=force)
    n_clipped = 0
    bits = WAV_SUBTYPES[subtype]
    if bits is not None:
        # libsndfile wraps around (not clips) out-of-range floats when converting to integers.
        top = 1.0 - 2.0 ** (1 - bits)
        n_clipped = int(np.count_nonzero((x < -1.0) | (x > top)))
        x = np.clip(x, -1.0, top)
    try:
        with atomic_write(out) as tmp:
            sf.write(tmp, x, int(sample_rate), subtype=subtype, format="WAV")
            append_riff_chunk(tmp, riff_info_chunk(sonode_marker()))
    except (OSError, ValueError, sf.SoundFileError) as err:
        raise OutputPathError(f"cannot write {out}: {err}; check the folder exists and is writable") from err
    return n_clipped


# --- validation helpers (each raises one clear error) ---------------------------------------


def _is_int(value) -> bool:
    """A true integer (Python or NumPy), not a bool and not a float that happens to be whole."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_read_args(channel, start_s, duration_s, rate, max_duration_s, min_duration_s) -> None:
    if not (channel == "mix" or (_is_int(channel) and channel >= 0)):
        raise ValueError(f"channel must be 'mix' or a 0-based channel index >= 0, got {channel!r}")
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number of seconds >= 0, got {start_s!r}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a finite number of seconds > 0, got {duration_s!r}")
    if rate is not None and not (_is_int(rate) and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise ValueError(f"rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, got {rate!r}")
    if not (math.isfinite(max_duration_s) and max_duration_s > 0):
        raise ValueError(f"max_duration_s must be > 0 seconds, got {max_duration_s!r}")
    if not (math.isfinite(min_duration_s) and 0 < min_duration_s <= max_duration_s):
        raise ValueError(f"min_duration_s must be > 0 and <= max_duration_s, got {min_duration_s!r}")


def _check_input_path(file: Path) -> None:
    if not file.exists():
        raise AudioInputError(f"{file}: no such file; check the path")
    if file.is_dir():
        raise AudioInputError(f"{file} is a folder, not an audio file; give the path of a WAV, FLAC or OGG file")
    if not file.is_file():
        raise AudioInputError(f"{file} is not a regular file (a device or pipe?); give a WAV, FLAC or OGG file")
    if file.stat().st_size == 0:
        raise AudioInputError(f"{file} is empty (0 bytes); it is not an audio file")
    try:
        with open(file, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise AudioInputError(f"{file}: cannot be read ({err.strerror}); check its permissions") from err
    if head not in _MAGIC:
        raise AudioInputError(
            f"{file} is not a WAV, FLAC or OGG file (it starts with {head!r}); if it is audio in another "
            "format, convert it, e.g. `ffmpeg -i INPUT out.wav`"
        )


def _libsndfile_error(file: Path, err: sf.SoundFileError) -> AudioInputError:
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
    return AudioInputError(f"{file} is corrupt or truncated ({detail}); re-export or re-download it")


def _check_stream(file: Path, f: sf.SoundFile) -> None:
    if f.format not in SUPPORTED_FORMATS:
        raise AudioInputError(
            f"{file}: unsupported format {f.format} ({f.format_info}); sonode reads WAV, FLAC and "
            "OGG: convert it, e.g. `ffmpeg -i INPUT out.wav`"
        )
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioInputError(
            f"{file}: sample rate {f.samplerate} Hz is outside the supported {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz; resample it first, e.g. `sox INPUT -r 16000 out.wav`"
        )
    if f.frames <= 0:
        raise AudioInputError(f"{file} contains no audio samples (0 frames); record or export it again")
    if f.format in ("WAV", "WAVEX"):
        # libsndfile silently reads what is there when the data chunk is cut short; the header
        # log keeps the declared size, which tells a truncated download from a complete file.
        m = _WAV_DATA_LOG.search(f.extra_info)
        if m and int(m.group(1)) not in _WAV_SIZE_PLACEHOLDERS and int(m.group(1)) > int(m.group(2)):
            raise AudioInputError(
                f"{file} is truncated: its header declares {m.group(1)} bytes of audio but only "
                f"{m.group(2)} are present; re-export or re-download it"
            )


def _select_frames(file: Path, f: sf.SoundFile, start_s: float, duration_s: float | None,
                   max_duration_s: float) -> tuple[int, int]:
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


def _check_min_length(file: Path, n_samples: int, sample_rate: int, min_duration_s: float) -> None:
    need = max(math.ceil(min_duration_s * sample_rate - 1e-9), MIN_N_SAMPLES)
    if n_samples < need:
        raise AudioInputError(
            f"{file}: the clip is {n_samples / sample_rate:.4f} s ({n_samples} samples at "
            f"{sample_rate} Hz) long; sonode needs at least {need / sample_rate:.4f} s "
            f"({need} samples); choose a longer part or file"
        )


def _read_mono(file: Path, f: sf.SoundFile, start: int, n: int, channel: Channel
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
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are reported by _check_values
            peaks = np.fmax(peaks, np.abs(block).max(axis=0))
            out[done:done + block.shape[0]] = block.mean(axis=1) if channel == "mix" else block[:, channel]
        done += block.shape[0]
    return out, peaks


def _check_values(file: Path, x: np.ndarray, sample_rate: int, start: int, channel: Channel,
                  channel_peaks: np.ndarray) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        first = start + int(np.argmax(bad))
        raise AudioInputError(
            f"{file}: {int(bad.sum())} samples are NaN or infinite (first at {first / sample_rate:.4f} s); "
            "the file is corrupt, re-export it from the program that made it"
        )
    peak = float(np.abs(x).max())
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


def _resample_kernel_taps(orig_rate: int, new_rate: int) -> int:
    """Size of torchaudio's polyphase kernel for this ratio with _RESAMPLE_KW (see its source)."""
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    width = math.ceil(_RESAMPLE_KW["lowpass_filter_width"] * orig / (min(orig, new) * _RESAMPLE_KW["rolloff"]))
    return new * (2 * width + orig)


def _check_resample_cost(file: Path, orig_rate: int, new_rate: int) -> None:
    if _resample_kernel_taps(orig_rate, new_rate) <= _MAX_RESAMPLE_KERNEL_TAPS:
        return
    # Nearest rate whose ratio to the file's rate is simple enough (always exists: orig_rate itself).
    for delta in range(1, MAX_SAMPLE_RATE):
        near = [r for r in (new_rate - delta, new_rate + delta) if MIN_SAMPLE_RATE <= r <= MAX_SAMPLE_RATE
                and _resample_kernel_taps(orig_rate, r) <= _MAX_RESAMPLE_KERNEL_TAPS]
        if near:
            break
    raise AudioInputError(
        f"{file}: resampling {orig_rate} Hz to {new_rate} Hz is a ratio too awkward to filter exactly "
        f"in reasonable memory; use a nearby rate such as {near[0]} Hz, or resample the file "
        f"first (e.g. `sox INPUT -r {new_rate} out.wav`)"
    )
