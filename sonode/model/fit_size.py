"""How large a fit may be: the clip samples it can hold within the memory budget, checked before any
work (`sonode.limits`)."""

from __future__ import annotations

from sonode.model.options import FitOptions

#: Peak bytes per clip sample of a fit with the default options (measured: a 300 s clip at 48 kHz,
#: 14.4 M samples, peaked at 2.54 GB; (2.54 GB − the process's 0.77 GB) / 14.4 M = 123; a 215 s
#: clip, 10.3 M samples, at 2.00 GiB with matplotlib imported beside the fit, ~130: rounded up).
FIT_BYTES_PER_SAMPLE = 136


def max_fit_samples() -> int:
    """Most clip samples a fit may hold within the memory budget (`sonode.limits`)."""
    from sonode.limits import PROCESS_BASELINE_BYTES, memory_budget_bytes

    return max(0, memory_budget_bytes() - PROCESS_BASELINE_BYTES) // FIT_BYTES_PER_SAMPLE


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
