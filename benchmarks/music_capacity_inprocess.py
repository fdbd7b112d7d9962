"""The in-process comparisons of `benchmarks/music_capacity.py` (``--starts``, ``--choice``): the
identified starts of both variants and what ``--modes auto`` picks, one clip at a time in the
benchmark's own process (its table of fits runs each fit in a fresh process instead)."""

from __future__ import annotations

import time
from pathlib import Path


def read_normalised(clip: Path, rate: int | None, duration_s: float | None):
    """(x (n,) in file amplitude, its rate Hz, gain, offset, xn (n,) normalised) of one clip, with
    torch on one thread: the prologue of `starts` and `choice`."""
    import torch

    from sonode.io.clip import read_clip
    from sonode.model.init import normalisation

    torch.set_num_threads(1)
    read = read_clip(clip, rate=rate, duration_s=duration_s)
    x = read.samples
    gain, offset = normalisation(x)
    return x, read.sample_rate, gain, offset, (x - offset) / gain


def starts(clip: Path, rate: int | None, duration_s: float | None) -> dict:
    """Identified starts of both variants on one clip: SNR (dB) and stored numbers per sample."""
    import torch

    from sonode.dsp.metrics import snr_db
    from sonode.model.init import initial_model
    from sonode.model.local import LocalConfig, LocalModel
    from sonode.model.local_identify import _solve_states, identify_tracks

    x, rate, gain, offset, xn = read_normalised(clip, rate, duration_s)
    started = time.process_time()
    hop, (tracks, *_) = identify_tracks(xn, rate)
    states = _solve_states(tracks, xn, hop, rate)
    local = LocalModel(
        LocalConfig(rate, xn.size, hop, gain, offset),
        tracks.first,
        tracks.length,
        tracks.freq_hz,
        *states,
    )
    row = {
        "clip": clip.name,
        "local_db": snr_db(x, local.denormalise(local.reconstruct())),
        "local_per_sample": (3 * local.n_entries + 2 * local.n_tracks) / x.size,
        "local_cpu_s": time.process_time() - started,
    }
    for k in (64, 128):
        model, _ = initial_model(x, rate, k, 256, 32, 64, 2, 1024, continuation_samples=0)
        with torch.no_grad():
            row[f"global{k}_db"] = snr_db(x, model.denormalise(model.reconstruct()[0]))
        row[f"global{k}_per_sample"] = sum(p.numel() for p in model.parameters()) / x.size
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def choice(clip: Path, rate: int | None, duration_s: float | None, steps: int) -> dict:
    """What `--modes auto` picks on one clip (`sonode.model.local_fit.fit_auto`'s rule, at
    ``steps`` Gauss–Newton iterations instead of its share of the budget), against both variants:
    the global linear start (default options, no continuation) on all samples and on held-back
    ones (its segment states solved without them), the local start and the local model after
    refinement and rounding, in this process."""
    import numpy as np
    import torch

    from sonode.dsp.metrics import snr_db
    from sonode.model import FitOptions
    from sonode.model.init import initial_from_options, segment_states
    from sonode.model.local_fit import fit_tables, local_wins
    from sonode.model.local_refine import HOLD_OUT_EVERY

    x, rate, gain, offset, xn = read_normalised(clip, rate, duration_s)
    started = time.process_time()
    start = initial_from_options(x, rate, FitOptions(), continuation=False)[0]
    with torch.no_grad():
        global_db = snr_db(xn, start.reconstruct()[0].numpy())
    global_cpu = time.process_time() - started
    options = FitOptions(modes="local", steps=steps, max_time_s=None, continuation_samples=0)
    tables = fit_tables(x, rate, options, time.perf_counter())
    local_cpu = time.process_time() - started - global_cpu
    # the global start scored as the local validation scores: states without held-back samples
    held = np.zeros(xn.size, dtype=bool)
    held[HOLD_OUT_EVERY // 2 :: HOLD_OUT_EVERY] = True
    bank = start.bank
    with torch.no_grad():
        poles = np.exp((bank.decay_per_s + 1j * bank.omega_rad_per_s).numpy() / rate)
        states = segment_states(xn, start.config.layout, poles, 1e-6, sample_weights=~held)
        start.states.copy_(torch.from_numpy(states))
        global_held_db = snr_db(xn[held], start.reconstruct()[0].numpy()[held])
    pick = "local" if local_wins(tables, global_db) else "global"
    row = {
        "clip": clip.name,
        "global_start_db": global_db,
        "global_held_back_db": global_held_db,
        "local_start_db": tables.initial_db,
        "local_held_back_db": tables.validation_db,
        "local_refined_db": tables.snr_db,
        "local_refined_held_back_db": max(
            [tables.validation_db] + [r.kept_snr_db for r in tables.history]
        ),
        "local_hop_samples": tables.model.config.hop_samples,
        "pick": pick,
        "picked_db": tables.snr_db if pick == "local" else global_db,
        "global_cpu_s": global_cpu,
        "local_cpu_s": local_cpu,
    }
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
