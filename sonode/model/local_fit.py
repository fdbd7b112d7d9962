"""Fitting the local-mode model: identify per window, track, solve the node states, train.

1. Peaks of a Hann window (4 node spacings long) centred on every node are the candidate modes
   (`sonode.dsp.partials.frame_peaks`), at most PARAMETERS_PER_SAMPLE·hop/3 per node, so the node
   tables stay within that many numbers per sample.
2. How many to keep per window is chosen by validation on held-back samples: for each candidate
   level (peaks within L dB of the window's strongest and of the clip's strongest), the peaks are
   linked into tracks, the node states are solved by least squares on the samples not held back,
   and the level with the best SNR on the held-back ones wins: few modes for a solo note, many
   for a chord. The chosen tracks' states are then solved on all samples (the identified start).
3. Training refines what the least squares cannot: the frequencies. Gauss–Newton steps of
   variable projection (`sonode.model.local_refine`), each kept only if the held-back samples
   improve; the states are then solved on all samples, and the refined model is kept only if it
   reconstructs the clip better than the identified start.

`fit_auto` (`--modes auto`) fits the tables first and keeps them if they reconstruct the clip
better than the global start; the continuation is identified only for the model returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from sonode.dsp.metrics import snr_db
from sonode.model.checkpoint import fit_identity
from sonode.model.continuation import identify_continuation
from sonode.model.init import continuation_config, install_continuation, normalisation
from sonode.model.local import LocalConfig, LocalModel
from sonode.model.local_checkpoint import LocalCheckpointer, LocalResume, load_local
from sonode.model.local_codec import NodeTables, choose_steps
from sonode.model.local_identify import identify_tracks
from sonode.model.local_refine import train_tables
from sonode.model.local_synthesis import chunked_least_squares
from sonode.model.options import EpochRecord, FitOptions, FitReport
from sonode.model.predict import HOLD_S, MIN_CLIP_PER_HOLD, store_texture_choice
from sonode.model.texture_choice import choose_texture_on_clip

STORAGE_MARGIN_DB = 30.0  # float tables: float32 when rounding to it lies this far under the fit
ROUNDING_MARGIN_DB = 16.0  # compact tables: rounding noise this far under the fit's (≤ 0.11 dB)
ROUNDING_FLOOR_DB = 45.0  # ... and never louder than this against the unrounded model
# --modes auto: the local fit may spend this share of the budget; the rest trains the global
# model if that is chosen
AUTO_LOCAL_SHARE = 0.5
IDENTIFICATION_SHARE = 0.5  # of the budget (the local fit's share, in auto), to choose the spacing


def fit_local(
    x: np.ndarray,
    sample_rate: int,
    options: FitOptions,
    on_epoch: Callable[[EpochRecord, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint=None,
) -> tuple[LocalModel, FitReport]:
    """Fit the local-mode model to a clip x (n,) in file amplitude. See the module docstring.

    ``checkpoint`` (a `CheckpointPlan`): the refinement's state is written every
    ``checkpoint.every_s`` seconds and when interrupted, and resumed from with ``resume``
    (`sonode.model.local_checkpoint`).

    Raises:
        CheckpointError: resuming, and the checkpoint is missing, damaged, a global fit's, or made
            for another clip or other options.
    """
    identity = resumed = None
    if checkpoint is not None:
        identity = fit_identity(x, sample_rate, asdict(options), checkpoint.source)
        if checkpoint.resume:  # before any identification, so that a mismatch fails fast
            resumed = load_local(checkpoint.path, identity)
    started = time.perf_counter() - (0.0 if resumed is None else resumed.elapsed_s)
    # the continuation first, so that the budget left for training is what remains after it
    tail = local_continuation(x, sample_rate, options)
    plan = None if checkpoint is None else (checkpoint, identity)
    tables = fit_tables(x, sample_rate, options, started, on_epoch, should_stop, plan, resumed)
    return finish_local(tables, options, tail)


def fit_auto(
    x: np.ndarray,
    sample_rate: int,
    options: FitOptions,
    global_start: Callable[[], Any],
    should_stop: Callable[[], bool] | None = None,
    checkpoint=None,
) -> tuple[LocalModel, FitReport] | None:
    """`--modes auto`: the fitted local model if it reconstructs the clip better than the global
    linear start (``global_start()``, a `SonodeModel` without continuation), else None.

    Both are scored as the user gets them, on the same (all) samples: the local model trained
    within AUTO_LOCAL_SHARE of the budget and rounded as its file stores it, so that a local win
    is returned without identifying anything again; the global model before its training, which
    the rest of the budget buys and can only raise. Not on held-back samples: the global start's
    segment states (one number per sample) interpolate poorly, so on 55 one-second clips held-back
    scores picked local on notes the global model reconstructs 10–35 dB better
    (docs/music_capacity.md). A resumed fit is a global one (the local fit writes no checkpoint).
    """
    if checkpoint is not None and checkpoint.resume:
        return None
    started = time.perf_counter()
    gain, offset = normalisation(x)
    start = global_start()
    with torch.no_grad():
        global_db = snr_db((x - offset) / gain, start.reconstruct()[0].numpy())
    budget = None if options.max_time_s is None else AUTO_LOCAL_SHARE * options.max_time_s
    tables = fit_tables(
        x, sample_rate, replace(options, max_time_s=budget), started, None, should_stop
    )
    choice = {"global_start_snr_db": global_db, "local_snr_db": tables.snr_db}
    if not local_wins(tables, global_db):
        return None
    return finish_local(tables, options, local_continuation(x, sample_rate, options), choice)


def local_wins(tables: LocalTables, global_start_db: float) -> bool:
    """The rule of `fit_auto`: the local tables reconstruct the clip better than the global start
    (SNR dB on the normalised clip)."""
    return tables.snr_db > global_start_db


@dataclass
class LocalTables:
    """The node tables identified, trained and rounded for storage, without the continuation:
    the stage at which `--modes auto` compares the local model with the global one.

    ``model`` reconstructs what the file will hold; SNRs (dB) are on the normalised clip ``xn``
    (n,); ``started`` is the fit's time.perf_counter() origin."""

    model: LocalModel
    xn: np.ndarray
    started: float
    identified_s: float
    initial_db: float
    snr_db: float
    unrounded_db: float
    check_db: float
    rounding: dict
    history: list[EpochRecord]
    stop: str
    level_db: float
    validation_db: float
    allocation: str = "node"


def local_continuation(x: np.ndarray, sample_rate: int, options: FitOptions):
    """The continuation ODE of the normalised clip (a `ContinuationFit`), None without one."""
    if options.continuation_samples == 0:
        return None
    gain, offset = normalisation(x)
    xn = (x - offset) / gain
    return identify_continuation(xn, sample_rate, options.continuation_samples, options.lp_order)


def fit_tables(
    x: np.ndarray,
    sample_rate: int,
    options: FitOptions,
    started: float,
    on_epoch: Callable[[EpochRecord, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint=None,
    resumed: LocalResume | None = None,
) -> LocalTables:
    """Steps 1–3 of the module docstring and the compact rounding: the tables of a clip x (n,) in
    file amplitude, training within ``options.max_time_s`` counted from ``started``; with
    ``checkpoint`` ((`CheckpointPlan`, identity)) the refinement is checkpointed, and
    ``resumed`` continues one instead of identifying."""
    torch.manual_seed(options.seed)
    gain, offset = normalisation(x)
    xn = (x - offset) / gain
    if resumed is None:
        # the identification may use IDENTIFICATION_SHARE of the budget to choose the spacing
        deadline = (
            None
            if options.max_time_s is None
            else started + IDENTIFICATION_SHARE * options.max_time_s
        )
        hop, found = identify_tracks(xn, sample_rate, deadline)
        level, validation, allocation = found.level_db, found.validation_db, found.allocation
        first, length, freq = found.tracks.first, found.tracks.length, found.tracks.freq_hz
    else:
        hop, level, validation = resumed.hop_samples, resumed.level_db, resumed.validation_db
        allocation = resumed.allocation
        first, length = resumed.track_first, resumed.track_length
        freq = resumed.identified_freq_hz
    config = LocalConfig(sample_rate, int(xn.size), hop, gain, offset)
    states = chunked_least_squares(first, length, freq * hop / sample_rate, xn, hop)
    model = LocalModel(config, first, length, freq, *states)
    identified_s = time.perf_counter() - started
    initial = snr_db(xn, model.reconstruct().numpy())
    save = None
    if checkpoint is not None:
        plan, identity = checkpoint
        save = LocalCheckpointer(plan, identity, started, {
            "hop_samples": hop, "track_first": first, "track_length": length,
            "identified_freq_hz": freq, "level_db": level, "validation_db": validation,
            "allocation": allocation, "initial_db": initial,
        })  # fmt: skip
    history, best, stop = train_tables(
        model, xn, options, initial, started, on_epoch, should_stop, save, resumed
    )
    stored, check_db, rounding = _store_compactly(model, xn, best)
    return LocalTables(
        model, xn, started, identified_s, initial, stored, best, check_db, rounding, history, stop,
        level, validation, allocation,
    )  # fmt: skip


def finish_local(
    tables: LocalTables, options: FitOptions, tail, choice: dict | None = None
) -> tuple[LocalModel, FitReport]:
    """The model with its continuation (``tail``, a `ContinuationFit` or None) and its report;
    ``choice`` (what `--modes auto` compared) goes into the report's identification."""
    fitted = tables.model
    config = replace(
        fitted.config,
        **continuation_config(tail),
    )
    model = LocalModel(
        config,
        fitted.track_first.numpy(),
        fitted.track_length.numpy(),
        *(getattr(fitted, n).detach().numpy() for n in ("freq_hz", "amp_re", "amp_im")),
    )
    model.storage, model.steps, model.freq_shifts = fitted.storage, fitted.steps, fitted.freq_shifts
    model.predict_flags = fitted.predict_flags
    if tail is not None:
        install_continuation(model, tail)
        if model.storage == "quantised":
            # the continuation's ~3 K numbers in float32 too (~12 kB of a file; its poles keep
            # ~1e-7 relative precision, a phase error ≤ 0.01 rad per second of continuation)
            model.round_continuation()
    identification = {
        "variant": "local",
        "n_modes": int(model.n_tracks),
        "n_modes_chosen_by": "validation",
        "node_entries": int(model.n_entries),
        "hop_samples": config.hop_samples,
        "level_db": tables.level_db,
        "allocation": tables.allocation,
        "validation_snr_db": tables.validation_db,
        "parameters_per_sample": model.stored_numbers() / tables.xn.size,
        "storage": model.storage,
        "rounding": tables.rounding,
        "unrounded_snr_db": tables.unrounded_db,
        "time_breakdown_s": {"identification": round(tables.identified_s, 4)},
    }
    if tail is not None:
        identification["continuation"] = tail.summary()
        # the texture `--texture auto` draws, judged on the clip's held-back end as a global fit's
        held = min(int(HOLD_S * config.sample_rate), tables.xn.shape[0] // MIN_CLIP_PER_HOLD)
        texture = choose_texture_on_clip(
            tables.xn, config.sample_rate, held, options.continuation_samples, options.lp_order
        )
        identification["continuation"]["texture"] = texture
        store_texture_choice(model, texture)
    if choice is not None:
        identification["modes_chosen_by"] = choice
    wall = time.perf_counter() - tables.started
    history = tables.history
    report = FitReport(
        options=asdict(options),
        gradient="variable projection",  # Gauss–Newton through the exact state solve
        initial_snr_db=tables.initial_db,
        snr_db=tables.snr_db,
        discretisation_snr_db=tables.check_db,
        epochs=len(history),
        wall_time_s=wall,
        seconds_per_epoch=(wall - tables.identified_s) / max(1, len(history)),
        function_evaluations=0,
        rejected_steps=0,
        stop_reason=tables.stop,
        history=history,
        identification=identification,
        trajectory_snr_db=tables.snr_db,  # no restarts: the reconstruction is one trajectory
        initial_trajectory_snr_db=tables.initial_db,
    )
    return model, report


@torch.no_grad()
def _store_compactly(model: LocalModel, xn: np.ndarray, fit_db: float):
    """Round the node tables for a compact file (`sonode.model.local_codec`) where the rounding
    costs ≤ ~0.1 dB, else keep float32 (or float64) tables. The model takes the rounded values,
    so what is reported is what the file holds. Returns (SNR dB of the stored model, its check
    dB against the unrounded one, a summary for the report)."""
    config = model.config
    first, length = model.track_first.numpy(), model.track_length.numpy()

    def synthesise(freq, re, im):
        probe = LocalModel(
            LocalConfig(config.sample_rate, config.n_samples, config.hop_samples, 1.0, 0.0),
            first,
            length,
            freq,
            re,
            im,
        )
        return probe.reconstruct().numpy()

    tables = NodeTables(
        first,
        length,
        *(getattr(model, n).detach().numpy() for n in ("freq_hz", "amp_re", "amp_im")),
        config.hop_samples,
        config.sample_rate,
    )
    compact = choose_steps(
        tables,
        synthesise,
        lambda freq: chunked_least_squares(
            first, length, freq * config.hop_samples / config.sample_rate, xn, config.hop_samples
        ),
        max(fit_db + ROUNDING_MARGIN_DB, ROUNDING_FLOOR_DB),
    )
    if compact is None:
        float32_db = _storage_check(model)
        model.storage = "float32" if float32_db >= fit_db + STORAGE_MARGIN_DB else "float64"
        return fit_db, float32_db, {"float32_check_db": float32_db}
    for name in ("freq_hz", "amp_re", "amp_im"):
        getattr(model, name).copy_(torch.from_numpy(getattr(compact, name)))
    model.storage = "quantised"
    model.steps = (compact.freq_step_hz, compact.state_step)
    model.freq_shifts, model.predict_flags = compact.shifts, compact.predict
    stored_db = snr_db(xn, model.reconstruct().numpy())
    summary = {
        "freq_step_hz": compact.freq_step_hz,
        "state_step": compact.state_step,
        "rounding_snr_db": compact.rounding_snr_db,
        "cost_db": fit_db - stored_db,
        "packed_bytes": compact.packed_bytes,
    }
    return stored_db, compact.rounding_snr_db, summary


@torch.no_grad()
def _storage_check(model: LocalModel) -> float:
    """SNR (dB) of the model with its node tables rounded to float32 against the float64 one."""
    exact = model.reconstruct().numpy()
    saved = {n: getattr(model, n).detach().clone() for n in ("freq_hz", "amp_re", "amp_im")}
    for name, value in saved.items():
        getattr(model, name).copy_(value.to(torch.float32).to(torch.float64))
    rounded = model.reconstruct().numpy()
    for name, value in saved.items():
        getattr(model, name).copy_(value)
    return snr_db(exact, rounded)
