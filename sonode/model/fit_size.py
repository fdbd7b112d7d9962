"""How large a fit may be: the clip samples it can hold within the memory budget, checked before any
work (`sonode.limits`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is not imported here: a batch's parent sizes its workers with this module
    from sonode.model.options import FitOptions

#: Peak bytes per clip sample of a fit with the default options (measured: a 300 s clip at 48 kHz,
#: 14.4 M samples, peaked at 2.54 GB; (2.54 GB − the process's 0.77 GB) / 14.4 M = 123; a 215 s
#: clip, 10.3 M samples, at 2.00 GiB with matplotlib imported beside the fit, ~130: rounded up).
FIT_BYTES_PER_SAMPLE = 136


def max_fit_samples() -> int:
    """Most clip samples a fit may hold within the memory budget (`sonode.limits`)."""
    from sonode.limits import PROCESS_BASELINE_BYTES, memory_budget_bytes

    return max(0, memory_budget_bytes() - PROCESS_BASELINE_BYTES) // FIT_BYTES_PER_SAMPLE


def fit_peak_bytes(n_samples: int) -> int:
    """Estimated peak resident bytes of a process fitting ``n_samples`` clip samples with the default
    options: the process's baseline (Python, torch) plus FIT_BYTES_PER_SAMPLE per sample. The same
    estimate `check_fit_size` holds against the budget; a batch sizes its worker count with it."""
    from sonode.limits import PROCESS_BASELINE_BYTES

    return PROCESS_BASELINE_BYTES + n_samples * FIT_BYTES_PER_SAMPLE


def fit_span(clip, rate: int | None = None, duration_s: float | None = None) -> tuple[int, int]:
    """(samples a fit of ``clip`` (a path) will hold at most, the rate it fits at in Hz), from the
    file's header: its duration (or ``duration_s`` when shorter) at ``rate`` (default: the file's).
    (0, 0) when the header is unreadable: reading the clip then says what is wrong."""
    import soundfile as sf

    from sonode.errors import AudioInputError
    from sonode.io.checks import check_input_path

    try:
        check_input_path(Path(clip))  # a regular file that starts like WAV, FLAC or OGG
        info = sf.info(str(clip))
    except (AudioInputError, sf.SoundFileError, RuntimeError, OSError):
        return 0, 0
    seconds = min(info.duration, duration_s) if duration_s else info.duration
    fit_rate = rate or info.samplerate
    return int(seconds * fit_rate) + 1, fit_rate


def check_fit_size(n_samples: int, sample_rate: int, options: FitOptions) -> None:
    """Refuse, before any work, a clip that the fit cannot hold in memory, or a hop longer than it.

    Raises:
        sonode.limits.LimitError: one line with the value and the limit.
    """
    from sonode.limits import LimitError, check_memory

    if options.hop_samples > n_samples:
        raise LimitError(
            f"--hop {options.hop_samples} is longer than the clip ({n_samples} samples at {sample_rate} "
            f"Hz), the limit; choose a hop of at most {n_samples} samples (default 256)"
        )
    check_memory(
        f"fitting {n_samples} samples",
        n_samples * FIT_BYTES_PER_SAMPLE,
        "fit a shorter part (--duration) or at a lower rate (--rate)",
    )
