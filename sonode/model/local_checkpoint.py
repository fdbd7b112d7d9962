"""Resumable local fits (`fit --modes local --resume`): the identified tracks and the state of the
frequency refinement, in the checkpoint container of `sonode.model.checkpoint`.

A local fit's state between two Gauss–Newton iterations is its tracks (node spacing, track starts
and lengths), the identified and the current frequencies, the Levenberg–Marquardt damping and
the records so far; the node states are the least-squares optimum for the frequencies and are
solved again. The refinement is deterministic, so a resumed fit takes the iterations the
uninterrupted one would have taken. The identity (clip hash, options) is checked as for the
global fit's checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sonode.model.checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
from sonode.model.options import EpochRecord

_TRACKS = ("track_first", "track_length", "identified_freq_hz", "freq_hz")


@dataclass
class LocalResume:
    """What a local fit resumes from. Arrays: (K,) int track starts / lengths (nodes), (P,)
    identified and current frequencies (Hz); SNRs in dB; ``elapsed_s`` the fit's time so far."""

    hop_samples: int
    track_first: np.ndarray
    track_length: np.ndarray
    identified_freq_hz: np.ndarray
    freq_hz: np.ndarray
    damping: float
    held_db: float
    level_db: float
    validation_db: float
    allocation: str
    initial_db: float
    history: list[EpochRecord]
    elapsed_s: float


class LocalCheckpointer:
    """Writes the refinement's state every ``plan.every_s`` seconds (and when forced, e.g. on
    an interruption). Call it after an iteration with (refinement, history, force)."""

    def __init__(self, plan, identity: dict, started: float, tables: dict):
        self.plan, self.identity, self.started = plan, identity, started
        self.tables = tables  # hop_samples, track_first, ..., level_db, validation_db, initial_db
        self.last = time.perf_counter()

    def __call__(self, refinement, history: list[EpochRecord], force: bool = False) -> None:
        now = time.perf_counter()
        if not force and (self.plan.every_s <= 0 or now - self.last < self.plan.every_s):
            return
        t = self.tables
        model = {n: torch.as_tensor(np.asarray(t[n])) for n in _TRACKS[:3]}
        model["freq_hz"] = torch.from_numpy(np.asarray(refinement.freq_hz, dtype=np.float64))
        group = {
            "params": [],
            "hop_samples": int(t["hop_samples"]),
            "damping": float(refinement.damping),
            "level_db": float(t["level_db"]),
            "validation_snr_db": float(t["validation_db"]),
            "allocation": str(t["allocation"]),
        }
        state = TrainingState(
            epoch=len(history),
            model=model,
            optimiser={"state": {}, "param_groups": [group]},  # the refinement's, not Adam's
            best_model={},
            best_snr_db=float(refinement.held_db),
            initial_snr_db=float(t["initial_db"]),
            history=[asdict(r) for r in history],
            rejected_steps=0,
            bad_steps=0,
            function_evaluations=0,
            elapsed_s=now - self.started,
            rng_state=torch.get_rng_state(),
        )
        save_checkpoint(self.plan.path, state, self.identity)
        self.last = now


def load_local(path, identity: dict) -> LocalResume:
    """The local fit's state from a checkpoint written by `LocalCheckpointer`.

    Raises:
        CheckpointError: see `load_checkpoint`; or the checkpoint is not a local fit's.
    """
    state = load_checkpoint(path, identity)
    group = (state.optimiser.get("param_groups") or [{}])[0]
    if any(n not in state.model for n in _TRACKS) or "hop_samples" not in group:
        raise CheckpointError(
            f"cannot resume: {path} is not a local fit's checkpoint; delete it and run without "
            "--resume"
        )
    arrays = {n: state.model[n].numpy() for n in _TRACKS}
    n_entries = arrays["freq_hz"].size
    if (
        arrays["identified_freq_hz"].size != n_entries
        or int(arrays["track_length"].sum()) != n_entries
        or not np.all(np.isfinite(arrays["freq_hz"]))
    ):
        raise CheckpointError(
            f"cannot resume: {path} has inconsistent track tables; delete it and run without "
            "--resume"
        )
    return LocalResume(
        hop_samples=int(group["hop_samples"]),
        track_first=arrays["track_first"].astype(np.int64),
        track_length=arrays["track_length"].astype(np.int64),
        identified_freq_hz=arrays["identified_freq_hz"].astype(np.float64),
        freq_hz=arrays["freq_hz"].astype(np.float64),
        damping=float(group["damping"]),
        held_db=state.best_snr_db,
        level_db=float(group["level_db"]),
        validation_db=float(group["validation_snr_db"]),
        # checkpoints written before the allocation was chosen gave every node the cap
        allocation=str(group.get("allocation", "node")),
        initial_db=state.initial_snr_db,
        history=[
            EpochRecord(**{k: float(v) if k != "epoch" else int(v) for k, v in r.items()})
            for r in state.history
        ],
        elapsed_s=state.elapsed_s,
    )
