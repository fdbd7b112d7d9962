"""Resumable training checkpoints: everything the training loop needs to continue bit-identically.

A checkpoint is a sonode model file (`sonode.io.model_file`, kind ``"sonode-checkpoint"``): tensors
plus JSON metadata, loaded with ``torch.load(weights_only=True)``, so a shared or tampered
checkpoint cannot run code. It holds the model and best-model parameters, the Adam state (its
per-parameter tensors flattened to named tensors, its hyper-parameters as JSON), the epoch, best
SNR, history, fault counters, the elapsed training time and torch's RNG state.

It also holds an *identity*: a SHA-256 of the clip's samples (after channel selection and
resampling, so a moved or renamed file still matches) with its rate, and every option that shapes
the training trajectory. Resuming with another clip or other such options is refused, because it
would silently continue a different fit. The stopping rules (``max_time_s``, ``steps``,
``target_snr_db``) are not part of the identity: they decide where a fit ends, not the path it
takes, so a resume may extend them.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonode.errors import ModelFileError, SonodeError
from sonode.io.model_file import load_model_file, save_model_file

CHECKPOINT_KIND = "sonode-checkpoint"
CHECKPOINT_VERSION = 1
#: FitOptions fields that only decide when training stops; a resume may change them.
STOPPING_OPTIONS = frozenset({"max_time_s", "steps", "target_snr_db"})

_MODEL, _BEST, _OPTIM, _RNG = "model.", "best.", "optimiser.", "rng_state"


class CheckpointError(SonodeError):
    """A checkpoint cannot be resumed: missing, damaged, or made for another clip or options."""


@dataclass(frozen=True)
class CheckpointPlan:
    """Where and how often `fit_samples` checkpoints, and whether it resumes.

    Attributes:
        path: the checkpoint file (<model>.ckpt: `sonode.batch.outputs.fit_output_paths`).
        every_s: wall-clock seconds between checkpoints; 0 writes none (a resume still reads one).
            An interrupted fit (should_stop) also writes one, so that it can be resumed.
        resume: continue from the checkpoint at ``path`` instead of starting afresh.
        source: the clip's description (e.g. its path), for messages only.
    """

    path: Path
    every_s: float = 30.0
    resume: bool = False
    source: str = ""

    def __post_init__(self):
        if not (self.every_s >= 0 and math.isfinite(self.every_s)):
            raise ValueError(
                f"checkpoint interval must be a finite number of seconds ≥ 0, got {self.every_s}"
            )


@dataclass
class TrainingState:
    """The training loop's state between two epochs.

    Attributes:
        epoch: optimiser steps taken.
        model: the current parameters and buffers (state_dict).
        optimiser: ``state_dict()`` of the Adam optimiser (`sonode.model.adam.Adam`, torch's layout).
        best_model: state_dict of the best model seen so far.
        best_snr_db, initial_snr_db: reconstruction SNRs in dB (may be +inf).
        history: per-epoch records as dicts (`EpochRecord` fields).
        rejected_steps: non-finite steps rolled back so far; bad_steps: of them, consecutive now.
        function_evaluations: correction-field evaluations so far.
        elapsed_s: training wall time so far (seconds), carried over so --max-time covers the
            whole fit.
        rng_state: ``torch.get_rng_state()``.
        initial_trajectory_snr_db: the untrained model's one-trajectory SNR (dB), so a resumed fit
            reports training's gain as an uninterrupted one does (nan in older checkpoints).
    """

    epoch: int
    model: dict[str, torch.Tensor]
    optimiser: dict[str, Any]
    best_model: dict[str, torch.Tensor]
    best_snr_db: float
    initial_snr_db: float
    history: list[dict[str, Any]]
    rejected_steps: int
    bad_steps: int
    function_evaluations: int
    elapsed_s: float
    rng_state: torch.Tensor
    initial_trajectory_snr_db: float = math.nan


def fit_identity(
    x: np.ndarray, sample_rate: int, options: dict[str, Any], source: str = ""
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (plain JSON data).

    Args:
        x: the clip in file amplitude, shape (n_samples,).
        sample_rate: Hz.
        options: ``asdict(FitOptions)``; the stopping rules are left out (see module docstring).
        source: a description of the clip for messages (e.g. its path); not compared.
    """
    samples = np.ascontiguousarray(x, dtype=np.float64)
    return {
        "clip": {
            "sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
            "n_samples": int(samples.shape[0]),
            "sample_rate": int(sample_rate),
            "source": source,
        },
        "options": {k: v for k, v in sorted(options.items()) if k not in STOPPING_OPTIONS},
    }


def save_checkpoint(
    path: str | os.PathLike, state: TrainingState, identity: dict[str, Any]
) -> None:
    """Write ``state`` atomically (a crash mid-write leaves the previous checkpoint intact)."""
    tensors = {_MODEL + k: v for k, v in state.model.items()}
    tensors.update({_BEST + k: v for k, v in state.best_model.items()})
    tensors[_RNG] = state.rng_state
    optim_scalars = {}
    for index, entries in state.optimiser["state"].items():
        for key, value in entries.items():
            name = f"{index}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[_OPTIM + name] = value
            else:
                optim_scalars[name] = value
    meta = {
        "identity": identity,
        "epoch": state.epoch,
        "best_snr_db": _encode_float(state.best_snr_db),
        "initial_snr_db": _encode_float(state.initial_snr_db),
        "initial_trajectory_snr_db": _encode_float(state.initial_trajectory_snr_db),
        "history": [
            {k: _encode_float(v) if isinstance(v, float) else v for k, v in r.items()}
            for r in state.history
        ],
        "rejected_steps": state.rejected_steps,
        "bad_steps": state.bad_steps,
        "function_evaluations": state.function_evaluations,
        "elapsed_s": state.elapsed_s,
        "optimiser_groups": state.optimiser["param_groups"],
        "optimiser_scalars": optim_scalars,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    save_model_file(path, tensors, meta, kind=CHECKPOINT_KIND, version=CHECKPOINT_VERSION)


def load_checkpoint(path: str | os.PathLike, identity: dict[str, Any]) -> TrainingState:
    """Read a checkpoint written by `save_checkpoint` and check it belongs to this fit.

    Args:
        path: the checkpoint file.
        identity: `fit_identity` of the fit about to resume.

    Raises:
        CheckpointError: no such file, damaged or foreign file, or made for another clip or other
            options (the message names the difference and what to do).
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointError(
            f"--resume: no checkpoint at {file} (one is written every --checkpoint-every "
            "seconds during a fit and deleted when the fit completes); run without --resume "
            "to start a new fit"
        )
    try:
        tensors, meta = load_model_file(
            file, kind=CHECKPOINT_KIND, supported_versions=[CHECKPOINT_VERSION]
        )
    except ModelFileError as err:
        raise CheckpointError(
            f"cannot resume: {err}; delete {file} and run without --resume"
        ) from None
    _check_identity(file, meta.get("identity"), identity)
    try:
        return _state_from(tensors, meta)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"cannot resume: {file} is incomplete or damaged ({err!r}); delete it and run "
            "without --resume"
        ) from None


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Delete a checkpoint once its fit has completed and the model is saved (missing is fine)."""
    Path(path).unlink(missing_ok=True)


def _option_defaults() -> dict[str, Any]:
    # options imports the decoder: loaded only when a checkpoint is resumed
    from sonode.model.options import FitOptions

    return {f.name: f.default for f in fields(FitOptions) if f.default is not MISSING}


def _check_identity(file: Path, found: Any, expected: dict[str, Any]) -> None:
    fresh = "delete it or run without --resume to start a new fit"
    if not isinstance(found, dict):
        raise CheckpointError(
            f"cannot resume: {file} has no record of the fit it belongs to; {fresh}"
        )
    clip, want = found.get("clip", {}), expected["clip"]
    if any(clip.get(k) != want[k] for k in ("sha256", "n_samples", "sample_rate")):
        raise CheckpointError(
            f"cannot resume: {file} was made for another clip ({clip.get('source') or '?'}: "
            f"{clip.get('n_samples')} samples at {clip.get('sample_rate')} Hz), not {want['source'] or 'this clip'} "
            f"({want['n_samples']} samples at {want['sample_rate']} Hz, different samples); use the same file, "
            f"--start, --duration, --channel and --rate, or {fresh}"
        )
    # An option added after the checkpoint was written compares as its default, so a newer sonode
    # resumes an older fit that ran with what is now the default (e.g. device "cpu").
    options = {**_option_defaults(), **found.get("options", {})}
    differ = [
        f"{k}: checkpoint {options.get(k)!r}, now {v!r}"
        for k, v in expected["options"].items()
        if options.get(k) != v
    ]
    differ += [
        f"{k}: checkpoint {v!r}, now unset"
        for k, v in found.get("options", {}).items()
        if k not in expected["options"]
    ]
    if differ:
        raise CheckpointError(
            f"cannot resume: {file} was made with other options ({'; '.join(differ)}); "
            f"repeat the original options (only --max-time, --steps and --target-snr may "
            f"change), or {fresh}"
        )


def _state_from(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> TrainingState:
    optim_state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(_OPTIM):
            index, key = name[len(_OPTIM) :].split(".", 1)
            optim_state.setdefault(int(index), {})[key] = value
    for name, value in meta["optimiser_scalars"].items():
        index, key = name.split(".", 1)
        optim_state.setdefault(int(index), {})[key] = value
    # JSON turned tuples (Adam's betas) into lists; give the optimiser back what it saved.
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["optimiser_groups"]
    ]
    return TrainingState(
        epoch=int(meta["epoch"]),
        model={k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)},
        optimiser={"state": optim_state, "param_groups": groups},
        best_model={k[len(_BEST) :]: v for k, v in tensors.items() if k.startswith(_BEST)},
        best_snr_db=float(meta["best_snr_db"]),
        initial_snr_db=float(meta["initial_snr_db"]),
        initial_trajectory_snr_db=float(meta.get("initial_trajectory_snr_db", "nan")),
        history=[
            {k: float(v) if k in ("loss", "snr_db", "elapsed_s") else v for k, v in r.items()}
            for r in meta["history"]
        ],
        rejected_steps=int(meta["rejected_steps"]),
        bad_steps=int(meta["bad_steps"]),
        function_evaluations=int(meta["function_evaluations"]),
        elapsed_s=float(meta["elapsed_s"]),
        rng_state=tensors[_RNG],
    )


def _encode_float(value: float) -> float | str:
    """Strict JSON has no inf/NaN (a perfect fit has SNR +inf): store those as strings, which
    float() reads back."""
    return value if math.isfinite(value) else repr(value)
