"""Resource limits: every size a user or a file can set is checked here before anything is allocated.

Each limit is one named constant, and each refusal one line with the value and the limit
(`LimitError`), so that an absurd option or a crafted file ends in a clear error, not in an
out-of-memory kill or an hour of computing. docs/security.md has the table. The memory budget is
``SONODE_MEMORY_BUDGET`` bytes (default 2 GiB), never more than 80 % of the memory available now.
"""

from __future__ import annotations

import math
import os

from sonode.errors import SonodeError

GIB = 1 << 30
#: Default memory budget of one command (bytes); the environment variable SONODE_MEMORY_BUDGET overrides it.
DEFAULT_MEMORY_BUDGET_BYTES = 2 * GIB
#: What a command holds before its own work: Python, torch, numpy, a loaded model (measured peak RSS
#: of `sonode render` of a 0.5 s model at its own rate: 740 MiB).
PROCESS_BASELINE_BYTES = 768 << 20
#: Output rates (render, extrapolate, upsample, eval --rate), Hz: 4 x the largest input rate.
MAX_OUTPUT_RATE_HZ = 768_000
#: Longest span a render or continuation may cover (seconds of model time).
MAX_RENDER_S = 3600.0
#: Largest latent dimension d (d/2 oscillators): the modal basis and the (2K)^2 normal matrices grow with it.
MAX_LATENT_DIM = 1024
#: Width and depth of the correction MLP.
MAX_HIDDEN = 4096
MAX_LAYERS = 16
#: Order of the linear predictor of identification (its normal matrix is order^2).
MAX_LP_ORDER = 4096
#: Segment hop and cross-fade (samples): a segment is one solve of the ODE.
MAX_HOP_SAMPLES = 1 << 16
#: Segments per optimiser step.
MAX_BATCH_SEGMENTS = 1 << 14
#: Largest --continuation-samples (the window that fixes the continuation's state).
MAX_CONTINUATION_SAMPLES = 1 << 20
#: Audio used on each side of a gap by `fill` (seconds).
MAX_FILL_CONTEXT_S = 10.0
#: Gap positions per clip and length in `eval --task fill`.
MAX_EVAL_POSITIONS = 1000
#: Model files: whole file, one archive member, and the number of members.
MAX_MODEL_FILE_BYTES = 1 * GIB
MAX_MODEL_MEMBERS = 10_000
#: A sample further than this from zero (full scale = 1) is not audio: sums of squares would overflow.
MAX_SAMPLE_MAGNITUDE = 1e6
#: Wall-clock budgets (seconds): one day.
MAX_TIME_S = 86_400.0


class LimitError(SonodeError):
    """A size or rate beyond what sonode allows or the machine can hold; one line, value and limit."""


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def max_threads() -> int:
    """Largest torch thread count accepted: 4 x the cores (more only adds contention)."""
    return 4 * available_cores()


def memory_budget_bytes() -> int:
    """Bytes one command may allocate: SONODE_MEMORY_BUDGET (default 2 GiB), at most 80 % of the
    memory available now (MemAvailable), at least 64 MiB."""
    try:
        budget = int(float(os.environ.get("SONODE_MEMORY_BUDGET", DEFAULT_MEMORY_BUDGET_BYTES)))
    except ValueError:
        budget = DEFAULT_MEMORY_BUDGET_BYTES
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    budget = min(budget, int(0.8 * int(line.split()[1]) * 1024))
                    break
    except OSError:
        pass
    return max(budget, 64 << 20)


def check_limit(what: str, value: float, limit: float, hint: str, unit: str = "") -> None:
    """Raise LimitError "WHAT VALUE is over the limit of LIMIT; HINT" unless value <= limit."""
    if not (isinstance(value, (int, float)) and value <= limit):
        raise LimitError(
            f"{what} {_show(value)}{unit} is over the limit of {_show(limit)}{unit}; {hint}"
        )


def check_finite(what: str, value: float, hint: str = "give a finite number") -> None:
    """Raise LimitError for NaN or an infinite value."""
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise LimitError(f"{what} {value} is not a finite number; {hint}")


def check_memory(what: str, n_bytes: float, hint: str) -> None:
    """Raise LimitError when ``n_bytes`` (the estimated peak of an operation) plus the process's
    baseline (PROCESS_BASELINE_BYTES) exceeds the budget."""
    budget = memory_budget_bytes()
    if not n_bytes + PROCESS_BASELINE_BYTES <= budget:
        raise LimitError(
            f"{what} needs about {_bytes(n_bytes + PROCESS_BASELINE_BYTES)}, over the memory limit of "
            f"{_bytes(budget)} "
            f"(SONODE_MEMORY_BUDGET); {hint}"
        )


def _bytes(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / (1 << 20):.0f} MiB"


def _show(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
