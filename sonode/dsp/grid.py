"""Sample grids: the sample-rate checks and the output-length rule, one copy for all of sonode.

Time 0 is the first sample; sample j of a signal at ``rate`` Hz is at j/rate seconds. A span of
``duration_s`` seconds holds round(duration_s·rate) samples, halves rounded up: renders, resamplers
and metric windows all use this one rule, so their outputs line up sample by sample.
"""

from __future__ import annotations

import math
import numbers


def check_sample_rate(sample_rate: float) -> float:
    """``sample_rate`` as a float, or a ValueError unless it is a positive finite number (Hz)."""
    valid = isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool)
    if not (valid and math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return float(sample_rate)


def as_whole_rate(rate: float, name: str = "rate") -> int:
    """``rate`` as an int, or a ValueError naming ``name`` unless it is a positive whole number of
    Hz (44100 or 44100.0, not 44100.5): resamplers work with the exact ratio of integer rates."""
    if (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not math.isfinite(rate)
        or rate <= 0
        or rate != int(rate)
    ):
        raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def n_samples(duration_s: float, rate: float) -> int:
    """Samples in ``duration_s`` seconds at ``rate`` Hz: round(duration_s·rate), halves up."""
    return int(math.floor(duration_s * rate + 0.5))


def output_length(n_in: int, sr_in: int, sr_out: int) -> int:
    """Samples of ``n_in`` input samples resampled from ``sr_in`` to ``sr_out`` Hz:
    round(n_in·sr_out/sr_in), halves up, in exact integer arithmetic."""
    sr_in, sr_out = as_whole_rate(sr_in, "sr_in"), as_whole_rate(sr_out, "sr_out")
    return (2 * n_in * sr_out + sr_in) // (2 * sr_in)
