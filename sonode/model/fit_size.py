"""How large a fit may be: a model of its peak resident memory, term by term, checked before any work
(`sonode.limits`) and used by a batch to size its workers.

A fit's peak is the process (Python, torch: PROCESS_BASELINE_BYTES), plus what it holds for the
whole fit, which grows with the clip (float64 copies of the samples, copies of the segment
states), plus the largest piece of work, which does not: a step's or a check's read-out of at
most a few hundred segments, or the work on spans fixed in seconds (identification's windows, the
continuation's training), which grows with the rate. `benchmarks/memory_estimate.py` prints the
estimate beside `/usr/bin/time -v`'s peak of `sonode fit` on clips of several lengths and rates.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Nothing of sonode.model is imported here, not even for types: torch stays out of a batch's parent
# (which sizes its workers with this module), and the read-out's modules import their constants
# from here. ``options`` below are `sonode.model.options.FitOptions`.
FitOptions = Any

#: Trajectories per envelope solve without a gradient (reconstruction, rendering): memory then does
#: not grow with the clip, and a render at the clip's rate solves the very batches training does.
EVALUATION_SEGMENTS = 256
#: Segments a step solves when the clip has no more (the whole clip per step) and the longest run of
#: any clip: the default `FitOptions.batch_segments` before the memory rule existed.
WHOLE_CLIP_SEGMENTS = 256
#: Bytes a step's run may hold in the modal readout's (window × modes) complex temporaries on a clip
#: longer than WHOLE_CLIP_SEGMENTS (`sonode.model.objective.run_segments`): one eighth of the 1.5 GiB
#: goal of a long fit, the rest being the process and the clip's own arrays, which grow with it.
STEP_RUN_BYTES = 192 << 20
#: Complex (window × modes) temporaries live at a step's peak, per segment of its run (forward and
#: backward of `sonode.model.modal._ModalReadout`; measured: a 256-segment step at d = 256 raised the
#: peak by 550–700 MiB, 4 × 256 × 288 × 128 × 16 B = 576 MiB).
STEP_TEMPORARIES = 4

#: float64 arrays as long as the clip held at the peak: the samples as read, the normalised target.
CLIP_ARRAYS = 2
#: (segments × d) float64 copies of the segment states held at the peak: the model's, the identified
#: ones, Adam's two moments, and a check's two (`checks.consider`: the kept copy and its refit's;
#: measured on 300 s at 48 kHz under `-t 300`: 2057 MiB, 198 MiB ≈ 1.8 copies over four).
STATE_COPIES = 6
#: Complex (window × modes) arrays per segment live in a graph-free read-out of EVALUATION_SEGMENTS
#: segments (a check's reconstruction: measured +288 MB at 256 segments, d = 256 = 2 × 151 MB).
EVALUATION_TEMPORARIES = 2
#: The continuation's training, on spans fixed in seconds (its horizons, the trend check's 1–2 s),
#: in bytes per Hz of the fitting rate up to SPAN_RATE_CAP_HZ (above it the horizons are read at a
#: coarser stride, `sonode.model.task_loss`). An upper bound: with it trained (`--steps 2`) a 1.5 s
#: clip peaked at 916 MiB at 16 kHz and 1141 MiB at 48 kHz, where the read-out's 288 MiB decide.
SPAN_BYTES_PER_HZ = 6 << 10
SPAN_RATE_CAP_HZ = 48000
#: What glibc holds beyond the live arrays, as a share of the largest piece of work
#: (`sonode.model.heap` keeps freed blocks for the next step; fragments remain between them):
#: measured 5–105 MiB over the live arrays on clips of 1.5–600 s (docs/training.md).
HEAP_SLACK_SHARE = 0.5

DEFAULT_RATE_HZ = 16000  # the rate a clip is fitted at when only its samples are known


def fit_work_bytes(
    n_samples: int,
    sample_rate_hz: int = DEFAULT_RATE_HZ,
    latent_dim: int = 256,
    hop_samples: int = 256,
    overlap_samples: int = 32,
    continuation: bool = True,
) -> dict[str, int]:
    """The estimate's terms in bytes: ``held`` (for the whole fit: the clip's arrays and the state
    copies), ``step``, ``evaluation`` and ``spans`` (the pieces of work, of which the largest
    counts; ``spans`` 0 when the continuation is not trained) and ``heap`` (glibc's slack)."""
    n_segments = max(1, math.ceil((n_samples - overlap_samples) / hop_samples))
    window = hop_samples + overlap_samples
    per_segment = window * (latent_dim // 2) * 16  # one complex (window × modes) array
    run = min(n_segments, step_run_segments(n_segments, window, latent_dim // 2))
    step = STEP_TEMPORARIES * run * per_segment
    evaluation = EVALUATION_TEMPORARIES * min(n_segments, EVALUATION_SEGMENTS) * per_segment
    spans = SPAN_BYTES_PER_HZ * min(sample_rate_hz, SPAN_RATE_CAP_HZ) if continuation else 0
    return {
        "held": CLIP_ARRAYS * 8 * n_samples + STATE_COPIES * n_segments * latent_dim * 8,
        "step": step,
        "evaluation": evaluation,
        "spans": spans,
        "heap": int(HEAP_SLACK_SHARE * max(step, evaluation, spans)),
    }


def step_run_segments(n_segments: int, window_samples: int, n_modes: int) -> int:
    """Segments an optimiser step solves by the memory rule (`sonode.model.objective.run_segments`):
    WHOLE_CLIP_SEGMENTS when the clip has no more (the whole clip), else a run whose
    STEP_TEMPORARIES (window × n_modes) complex128 temporaries per segment fit STEP_RUN_BYTES, at
    least 2 and at most WHOLE_CLIP_SEGMENTS."""
    if n_segments <= WHOLE_CLIP_SEGMENTS:
        return WHOLE_CLIP_SEGMENTS
    per_segment_bytes = STEP_TEMPORARIES * window_samples * n_modes * 16
    return max(2, min(WHOLE_CLIP_SEGMENTS, STEP_RUN_BYTES // per_segment_bytes))


def fit_bytes(n_samples: int, sample_rate_hz: int = DEFAULT_RATE_HZ, **layout) -> int:
    """Estimated peak bytes of a fit beyond the process's baseline: what it holds, the largest
    piece of work, and the heap's slack (`fit_work_bytes`; ``layout``: its latent_dim,
    hop_samples, overlap_samples, continuation)."""
    terms = fit_work_bytes(n_samples, sample_rate_hz, **layout)
    return terms["held"] + max(terms["step"], terms["evaluation"], terms["spans"]) + terms["heap"]


def fit_peak_bytes(n_samples: int, sample_rate_hz: int = DEFAULT_RATE_HZ) -> int:
    """Estimated peak resident bytes of a process fitting ``n_samples`` clip samples at
    ``sample_rate_hz`` with the default options: the process's baseline (Python, torch) plus
    `fit_bytes`. The same estimate `check_fit_size` holds against the budget; a batch sizes its
    worker count with it."""
    from sonode.limits import PROCESS_BASELINE_BYTES

    return PROCESS_BASELINE_BYTES + fit_bytes(n_samples, sample_rate_hz)


def max_fit_samples(sample_rate_hz: int = DEFAULT_RATE_HZ) -> int:
    """Most clip samples a fit at ``sample_rate_hz`` may hold within the memory budget
    (`sonode.limits`): the largest n whose `fit_peak_bytes` fits (the estimate grows with n)."""
    from sonode.limits import PROCESS_BASELINE_BYTES, memory_budget_bytes

    room = memory_budget_bytes() - PROCESS_BASELINE_BYTES
    if fit_bytes(1, sample_rate_hz) > room:
        return 0
    low, high = 1, 1 << 40  # the largest n with fit_bytes(n) <= room, by bisection
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fit_bytes(middle, sample_rate_hz) <= room else (low, middle)
    return low


def fit_span(clip, rate: int | None = None, duration_s: float | None = None) -> tuple[int, int]:
    """(samples a fit of ``clip`` (a path) will hold at most, the rate it fits at in Hz), from the
    file's header: its duration (or ``duration_s`` when shorter) at ``rate`` (default: the file's).
    (0, 0) when the header is unreadable: reading the clip then says what is wrong."""
    from sonode.errors import AudioInputError
    from sonode.io.checks import audio_info

    try:
        info = audio_info(Path(clip))  # a regular file that starts like WAV, FLAC or OGG
    except (AudioInputError, OSError):
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
        f"fitting {n_samples} samples at {sample_rate} Hz",
        fit_bytes(n_samples, sample_rate, **_layout(options)),
        "fit a shorter part (--duration) or at a lower rate (--rate)",
    )


def estimated_peak_bytes(n_samples: int, sample_rate: int, options: FitOptions) -> int:
    """The peak `check_fit_size` admits a fit of these options with: the process's baseline plus
    `fit_bytes` (the fit report gives it beside the measured peak)."""
    from sonode.limits import PROCESS_BASELINE_BYTES

    return PROCESS_BASELINE_BYTES + fit_bytes(n_samples, sample_rate, **_layout(options))


def _layout(options: FitOptions) -> dict:
    return {
        "latent_dim": options.latent_dim or options.max_latent_dim,  # auto: at most the largest
        "hop_samples": options.hop_samples,
        "overlap_samples": options.overlap_samples,
        "continuation": options.continuation_training_steps > 0,
    }
