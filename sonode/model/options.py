"""The options of a fit (`FitOptions`) and what it reports (`EpochRecord`, `FitReport`)."""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from sonode.model.decoder import GRADIENT_METHODS
from sonode.model.device import DEVICES, DTYPES

MODE_VARIANTS = ("global", "local", "auto")


@dataclass(frozen=True)
class FitOptions:
    """Options of `fit_samples` (units in the names; defaults suit a 1–2 s clip).

    Attributes:
        latent_dim: d = 2K, even; K damped oscillators. None: K chosen per clip by validation on
            held-back samples (see `sonode.dsp.lpc.identify_modes`), d ≤ max_latent_dim.
        max_latent_dim: the largest d the validation may choose.
        hop_samples: segment hop; each segment has its own start state (multiple shooting).
        overlap_samples: cross-fade length between segments.
        hidden, layers: the correction MLP.
        max_time_s: wall-clock budget of the training loop (seconds); None for no limit.
        steps: maximum optimiser steps; None for no limit.
        target_snr_db: stop once the reconstruction reaches this SNR; None to use the whole budget.
        lr: Adam learning rate of the MLP (other groups are scaled from it, see
            `sonode.model.objective.param_groups`).
        gradient: "adjoint" (engine's checkpointed adjoint) or "backprop".
        continuity_weight: weight of the multiple-shooting continuity penalty (squared defects
            between one segment's end state and the next one's start state, relative to the
            states' energy), ramped up over CONTINUITY_RAMP_EPOCHS: it makes the segment states
            samples of one trajectory of the learned dynamics.
        batch_segments: segments per optimiser step; a longer clip is trained on a
            sample of this many segments spread over it, pieces of 7-8 in equal strata (memory and
            step time independent of its length).
            None: 256 (the whole clip per step) for a clip of at most 256 segments, fewer on a
            longer one so that the step's memory stays bounded (`sonode.model.objective.run_segments`).
        lp_order: order of the linear predictor used for system identification.
        continuation_samples: the clip's last samples that determine the state of the continuation
            ODE; None: chosen with the continuation's order by validation on the clip's end
            (see `sonode.model.continuation`); 0: no continuation ODE, the last segment continues.
        continuation_steps: no longer used (the continuation state is fitted in closed form); kept
            so that existing scripts keep working, must be 0 or is ignored with a warning by the CLI.
        seed: seeds torch's generator (MLP initialisation).
        state_solve_every: every this many steps the segment states of the step's run are solved
            by least squares for the current modes, field and readout (`sonode.model.linear_step`;
            kept only if the measured error falls); 0: never, Adam alone moves them.
        continuation_training_steps: adjoint steps that train the continuation ODE's field for
            prediction (`sonode.model.predict`, kept only if the clip's held-back end scores
            better), after which the limit cycle is chosen; 0: neither, the continuation is the
            identified one exactly.
        modes: "global" (one set of modes for the clip, a start state per segment), "local"
            (modes identified per window and tracked, `sonode.model.local`) or "auto" (local
            if, trained and rounded, it reconstructs the clip better than the global start, see
            `sonode.model.local_fit.fit_auto`).
        device: where the global model trains ("auto" and "cpu": the CPU, the reference; "cuda":
            the GPU). The local model and identification run on the CPU. See docs/devices.md.
        dtype: training's floating-point type: "auto" (float32 on CUDA, float64 on the CPU),
            "float64" or "float32" (the GPU's type forced, e.g. to check it on the CPU).
    """

    latent_dim: int | None = 256
    max_latent_dim: int = 256
    hop_samples: int = 256
    overlap_samples: int = 32
    hidden: int = 64
    layers: int = 2
    max_time_s: float | None = 120.0
    steps: int | None = None
    target_snr_db: float | None = None
    lr: float = 1e-2
    gradient: str = "adjoint"
    continuity_weight: float = 0.0
    batch_segments: int | None = None
    lp_order: int = 1024
    continuation_samples: int | None = None
    continuation_steps: int = 0
    seed: int = 0
    continuation_training_steps: int = 30
    modes: str = "global"
    state_solve_every: int = 25
    device: str = "cpu"
    dtype: str = "auto"

    def __post_init__(self):
        problems = []
        if self.latent_dim is not None and (self.latent_dim < 2 or self.latent_dim % 2):
            problems.append(f"latent_dim must be an even number ≥ 2, got {self.latent_dim}")
        if self.max_latent_dim < 2 or self.max_latent_dim % 2:
            problems.append(f"max_latent_dim must be an even number ≥ 2, got {self.max_latent_dim}")
        if self.hop_samples < 8:
            problems.append(f"hop_samples must be ≥ 8, got {self.hop_samples}")
        if not 0 <= self.overlap_samples <= self.hop_samples:
            problems.append(
                f"overlap_samples must be in [0, hop_samples], got {self.overlap_samples}"
            )
        if self.hidden < 1 or self.layers < 1:
            problems.append(f"hidden and layers must be ≥ 1, got {self.hidden}, {self.layers}")
        if self.max_time_s is not None and not self.max_time_s > 0:
            problems.append(f"max_time_s must be > 0, got {self.max_time_s}")
        if self.steps is not None and self.steps < 0:
            problems.append(f"steps must be ≥ 0, got {self.steps}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.gradient not in GRADIENT_METHODS:
            problems.append(f"gradient must be one of {GRADIENT_METHODS}, got {self.gradient!r}")
        if not self.continuity_weight >= 0:
            problems.append(f"continuity_weight must be ≥ 0, got {self.continuity_weight}")
        if self.batch_segments is not None and self.batch_segments < 2:
            problems.append(f"batch_segments must be ≥ 2, got {self.batch_segments}")
        if (
            self.continuation_samples is not None and self.continuation_samples < 0
        ) or self.continuation_steps < 0:
            problems.append("continuation_samples and continuation_steps must be ≥ 0")
        if self.state_solve_every < 0:
            problems.append(f"state_solve_every must be ≥ 0, got {self.state_solve_every}")
        if self.continuation_training_steps < 0:
            problems.append(
                f"continuation_training_steps must be ≥ 0, got {self.continuation_training_steps}"
            )
        if self.modes not in MODE_VARIANTS:
            problems.append(f"modes must be one of {', '.join(MODE_VARIANTS)}, got {self.modes!r}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            problems.append(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            problems.append(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.lp_order < 2:
            problems.append(f"lp_order must be ≥ 2, got {self.lp_order}")
        problems += _over_limits(self)
        if problems:
            raise ValueError("; ".join(problems))


def _over_limits(options: FitOptions) -> list[str]:
    """The options over `sonode.limits` (sizes that would exhaust memory or time), one text each."""
    from sonode import limits

    caps = {
        "latent_dim": limits.MAX_LATENT_DIM,
        "max_latent_dim": limits.MAX_LATENT_DIM,
        "hop_samples": limits.MAX_HOP_SAMPLES,
        "hidden": limits.MAX_HIDDEN,
        "layers": limits.MAX_LAYERS,
        "lp_order": limits.MAX_LP_ORDER,
        "batch_segments": limits.MAX_BATCH_SEGMENTS,
        "max_time_s": limits.MAX_TIME_S,
    }
    out = [
        f"{name} {getattr(options, name)} is over the limit of {cap}"
        for name, cap in caps.items()
        if getattr(options, name) is not None and not getattr(options, name) <= cap
    ]
    if options.target_snr_db is not None and not math.isfinite(options.target_snr_db):
        out.append(f"target_snr_db must be finite, got {options.target_snr_db}")
    return out


@dataclass
class EpochRecord:
    """One optimiser step of a fit's history (loss: the training objective; SNRs in dB; seconds
    since the fit began)."""

    epoch: int
    loss: float
    snr_db: float  # this step's reconstruction SNR (of its run of segments)
    elapsed_s: float
    # the kept model's reconstruction SNR over the clip after this step (it changes only at the
    # checks, to a better-scoring model; after the last step, the model the fit returns, as the
    # final check left it); nan in histories written before it was recorded
    kept_snr_db: float = math.nan


@dataclass
class FitReport:
    """What happened during a fit (written to <stem>.fit.json by the CLI)."""

    options: dict[str, Any]
    gradient: str
    initial_snr_db: float
    snr_db: float  # reconstruction SNR of the kept (best) model, training solve
    discretisation_snr_db: float  # training solve vs fine solve
    epochs: int
    wall_time_s: float
    seconds_per_epoch: float
    function_evaluations: int
    rejected_steps: int  # non-finite steps, and checks failed by learning the discretisation
    stop_reason: str
    history: list[EpochRecord] = field(default_factory=list)
    discretisation_fallback: bool = (
        False  # the trained model failed the check; the linear one was kept
    )
    identification: dict[str, Any] = field(
        default_factory=dict
    )  # modes chosen, continuation order/window
    trajectory_snr_db: float = math.nan  # one free run from the trajectory state over the clip
    initial_trajectory_snr_db: float = (
        math.nan
    )  # the same of the untrained start (nan: resumed fit)
    continuity_defect_db: float = math.nan  # segment-boundary defects relative to the states, dB
    # the continuation's training (`sonode.model.predict.fit_dynamics`): held-back scores untrained
    # and trained, field kept, limit cycle chosen
    continuation_training: dict[str, Any] = field(default_factory=dict)
    # the reference solve of the discretisation check: Lawson RK4 steps per sample, segments checked
    # (the in-training check's size when the fit was stopped or ran out of --max-time)
    discretisation_check: dict[str, Any] = field(default_factory=dict)
    energy_above_nyquist_db: float = (
        math.nan
    )  # set by sonode.api.fit: the model's treble above Nyquist

    @classmethod
    def from_dict(
        cls, fit: dict[str, Any], history: list[dict[str, Any]] | None = None
    ) -> FitReport:
        """The report from its `as_dict` form (e.g. a model file's ``info["fit"]`` and
        ``info["history"]``). None and missing figures (saved model files leave out wall-clock
        times) become nan; keys this version does not know are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = fit.get(f.name)
            if f.name == "history" or (
                value is None and f.type != "float" and f.default is not MISSING
            ):
                continue  # the history comes separately; a missing optional figure: its default
            if value is None and f.type != "float":
                if f.default_factory is not MISSING:
                    continue
                raise ValueError(
                    f"the fit report lacks {f.name!r}; it is not a report written by sonode"
                )
            values[f.name] = math.nan if value is None else value
        records = [
            EpochRecord(
                epoch=int(r["epoch"]),
                loss=_nan_if_none(r.get("loss")),
                snr_db=_nan_if_none(r.get("snr_db")),
                elapsed_s=_nan_if_none(r.get("elapsed_s")),
            )
            for r in (history or [])
        ]
        return cls(**values, history=records)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: figures that are not finite (no continuation, a perfect fit) become None.

        ``fine_snr_db`` is there for old scripts and equals ``snr_db``: solving the whole clip with
        FINE_SUBSTEPS Lawson steps per sample costs ~7 s per second of clip, so only
        FINAL_CHECK_SEGMENTS segments are solved so, and ``discretisation_snr_db`` reports that.
        """
        return _finite_or_none({**asdict(self), "fine_snr_db": self.snr_db})


def _nan_if_none(value: Any) -> float:
    return math.nan if value is None else float(value)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value
