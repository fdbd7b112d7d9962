"""Writing WAV and FLAC files: atomically (temp file + rename), with sonode's marker, never over an input."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from sonode.errors import AudioOutputError, OutputPathError
from sonode.io.checks import is_int
from sonode.io.fileutil import append_riff_chunk, atomic_write, riff_info_chunk, sonode_marker
from sonode.io.outputs import check_output, disk_full

#: PCM subtypes write_wav can produce, with their bit depth; FLOAT is 32-bit IEEE float.
WAV_SUBTYPES = {"FLOAT": None, "PCM_16": 16, "PCM_24": 24}


def check_output_path(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *, force: bool = False
) -> Path:
    """Refuse an output path that is a folder, FIFO or device, the same file as any input (links
    followed; even with ``force``), an existing file sonode did not write (without ``force``), or in
    a folder that cannot be written: `sonode.io.outputs.check_output`.

    Returns:
        ``out`` as a Path.

    Raises:
        OutputPathError: with the path and what to do instead.
    """
    return check_output(out, inputs, force=force)


def write_wav(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "FLOAT",
    protect: Iterable[str | os.PathLike] = (),
    force: bool = False,
) -> int:
    """Write a WAV atomically (temp file + rename): it appears whole or not at all.

    The file carries sonode's marker (a LIST/INFO chunk, software "sonode <version>"), so a later
    write may replace it; an existing file without it is only replaced with ``force``.

    Args:
        path: destination (parent folders are created).
        samples: shape (n_samples,) (mono) or (n_samples, channels), full scale = 1.
        sample_rate: Hz, positive int (any rate: renders may be upsampled beyond 192 kHz).
        subtype: "FLOAT" (32-bit float, keeps values beyond +-1), "PCM_16" or "PCM_24".
        protect: paths that must not be written (the inputs); compared with same_file.
        force: replace an existing file even if sonode did not write it (never a protected one).

    Returns:
        How many samples were clipped to the PCM range [-1, 1 - 2^(1-bits)] (0 for FLOAT).

    Raises:
        ValueError: unknown subtype, bad sample_rate, or samples neither 1-D nor (n, channels).
        AudioOutputError: NaN/inf samples (or beyond float32 range for FLOAT); nothing is written.
        OutputPathError: ``path`` is a protected file, a folder, a file sonode did not write (without
            ``force``), or cannot be written.
    """
    if subtype not in WAV_SUBTYPES:
        raise ValueError(f"unknown WAV subtype {subtype!r}; valid: {', '.join(WAV_SUBTYPES)}")
    if not (is_int(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] < 1):
        raise ValueError(
            f"write_wav expects samples of shape (n_samples,) or (n_samples, channels), got {x.shape}"
        )
    out = Path(path)
    bad = ~np.isfinite(x)
    if subtype == "FLOAT":
        bad |= np.abs(x) > np.finfo(np.float32).max  # would become inf in a 32-bit float file
    if bad.any():
        first = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
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
        why = (
            "the disk is full" if disk_full(err, out) else "check the folder exists and is writable"
        )
        raise OutputPathError(f"cannot write {out}: {err}; {why} (nothing was written)") from err
    return n_clipped


def write_flac(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    protect: Iterable[str | os.PathLike] = (),
    force: bool = False,
) -> int:
    """Write a mono 16-bit FLAC atomically, marked as sonode's (Vorbis comment software=sonode ...).

    Same contract as `write_wav` with subtype "PCM_16" (clipping counted and applied, NaN refused,
    foreign files kept unless ``force``); FLAC is lossless and about half a WAV's size.
    FLAC allows rates up to 655350 Hz (libsndfile: 1..655350).

    Returns:
        How many samples were clipped to [-1, 1 - 2^-15].
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"write_flac expects mono samples of shape (n_samples,), got {x.shape}")
    if not (is_int(sample_rate) and 0 < sample_rate <= 655350):
        raise ValueError(f"FLAC needs a whole rate in 1..655350 Hz, got {sample_rate!r}")
    out = Path(path)
    if not np.all(np.isfinite(x)):
        raise AudioOutputError(
            f"refusing to write {out}: it has NaN or infinite samples; nothing was written"
        )
    check_output_path(out, protect, force=force)
    top = 1.0 - 2.0**-15
    n_clipped = int(np.count_nonzero((x < -1.0) | (x > top)))
    try:
        with atomic_write(out) as tmp:
            with sf.SoundFile(tmp, "w", int(sample_rate), 1, subtype="PCM_16", format="FLAC") as f:
                f.software = sonode_marker()
                f.write(np.clip(x, -1.0, top))
    except (OSError, ValueError, sf.SoundFileError) as err:
        raise OutputPathError(
            f"cannot write {out}: {err}; check the folder exists and is writable"
        ) from err
    return n_clipped
