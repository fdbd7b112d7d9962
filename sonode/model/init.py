"""Closed-form initialisation: normalise the clip, identify modes, fit segment start states."""

from __future__ import annotations

import threading

import numpy as np
import torch

from sonode.dsp.linalg import lapack_threads
from sonode.dsp.lpc import Stopwatch, identify_modes, modal_basis, ridge_solve
from sonode.model.continuation import ContinuationFit, identify_continuation
from sonode.model.continuation_parts import ContinuationMixin
from sonode.model.decoder import ModelConfig, SonodeModel, build_model
from sonode.model.layout import SegmentLayout
from sonode.model.options import FitOptions
from sonode.model.trajectory_cycle import choose_trajectory_cycle, least_squares_state

# Largest rate (1/s; rad/s for frequency) the fresh field's O(1) outputs stand for: the decay rates
# and pitch offsets that amplitude-dependent effects of real instruments produce are of this order
# (a pitch glide of a few Hz, decays of a few dB per 100 ms), so training starts in that range.
FIELD_RATE_SCALE_PER_S = 10.0
SEGMENT_BLOCK_ROWS = 512  # segments whose start states are solved in one numpy call
TRAJECTORY_S = 2.0  # the one-trajectory state models (and is trained on) the clip's first seconds


def normalisation(x: np.ndarray) -> tuple[float, float]:
    """(gain, offset) with x = gain · x_normalised + offset and peak |x_normalised| = 1.

    Raises:
        ValueError: the clip is constant (nothing to model).
    """
    offset = float(np.mean(x))
    gain = float(np.max(np.abs(x - offset)))
    if not gain > 0:
        raise ValueError("the clip is constant (silent after removing its mean): nothing to model")
    return gain, offset


def initial_model(
    x: np.ndarray,
    sample_rate: int,
    n_modes: int | None,
    hop_samples: int,
    overlap_samples: int,
    hidden: int,
    layers: int,
    lp_order: int = 1024,
    rel_ridge: float = 1e-6,
    continuation_samples: int | None = 0,
    max_modes: int = 128,
) -> tuple[SonodeModel, dict]:
    """A model that is the best linear fit of the clip, with a zero neural correction.

    Args:
        x: the clip in file amplitude, shape (n_samples,).
        sample_rate: Hz.
        n_modes: K (latent dimension 2K), or None to choose it by validation on held-back
            samples (see `identify_modes`), at most ``max_modes``.
        hop_samples, overlap_samples: segment layout (see `SegmentLayout`).
        hidden, layers: size of the correction MLP.
        lp_order: order of the linear predictor whose poles are candidate modes.
        rel_ridge: ridge of the start-state least squares.
        continuation_samples: window (samples) of the continuation state, None to choose it (and
            the continuation's order) by validation on the clip's end, 0 for no continuation ODE
            (the last segment's trajectory continues).
        max_modes: the largest K the validation may choose.

    Returns:
        (model, identification summary). The segment states solve a weighted ridge least-squares
        problem (each segment fitted over its own window with its cross-fade weights).
    """
    gain, offset = normalisation(x)
    xn = (x - offset) / gain
    watch = Stopwatch()
    layout = SegmentLayout(sample_rate, int(x.shape[0]), hop_samples, overlap_samples)
    wants_tail = continuation_samples is None or continuation_samples > 0

    def continuation() -> ContinuationFit:
        with watch("continuation"):
            return identify_continuation(xn, sample_rate, continuation_samples, max_order=lp_order)

    with watch("identification"):
        # The continuation (its own predictors and roots on the clip's end) does not depend on the
        # modes: given two torch threads it runs beside them, each on one LAPACK thread (see
        # `lapack_threads`), and is waited for only once the segment states are fitted.
        tail_job = (
            _Background(continuation) if wants_tail and torch.get_num_threads() >= 2 else None
        )
        modes = identify_modes(
            xn, sample_rate, n_modes, max_modes=max_modes, lp_order=lp_order, watch=watch
        )
        poles = np.exp((modes.decay_per_s + 1j * modes.omega_rad_per_s) / sample_rate)
        with watch("segment_states"):
            states = segment_states(xn, layout, poles, rel_ridge)
        with watch("trajectory_state"):
            n_traj = min(xn.shape[0], int(TRAJECTORY_S * sample_rate))
            trajectory = least_squares_state(poles, xn[:n_traj], rel_ridge)
        tail = tail_job.result() if tail_job else continuation() if wants_tail else None
    config = ModelConfig(
        sample_rate=sample_rate,
        n_samples=int(x.shape[0]),
        hop_samples=hop_samples,
        overlap_samples=overlap_samples,
        n_modes=modes.n_modes,
        hidden=hidden,
        layers=layers,
        gain=gain,
        offset=offset,
        **continuation_config(tail),
    )
    # a mode's energy |c|² = u² + v²: its mean over segments and modes sets the field's input units
    energy_scale = float(2.0 * np.mean(states**2)) or 1.0
    model = build_model(
        config,
        torch.from_numpy(modes.decay_per_s),
        torch.from_numpy(modes.omega_rad_per_s),
        torch.from_numpy(states),
        energy_scale=energy_scale,
        rate_scale=FIELD_RATE_SCALE_PER_S,
    )
    with torch.no_grad():
        model.trajectory_state.copy_(torch.from_numpy(trajectory)[None])
    summary = {
        "n_modes": modes.n_modes,
        "n_modes_chosen_by": "validation" if n_modes is None else "user",
    }
    with watch("trajectory_cycle"):
        summary["trajectory_cycle"] = choose_trajectory_cycle(model, xn, n_traj, rel_ridge)
    if tail is not None:
        install_continuation(model, tail)
        summary["continuation"] = tail.summary()
    # wall-clock seconds of each piece (the continuation's overlap the modes' when run beside them)
    summary["time_breakdown_s"] = {name: round(sec, 4) for name, sec in watch.seconds.items()}
    return model, summary


def continuation_config(tail: ContinuationFit | None) -> dict:
    """The model configuration's continuation fields (`ModelConfig` and `LocalConfig` share
    them) for an identified continuation, or for none: window in samples, tail modes, switch in
    seconds after the clip's end."""
    return {
        "continuation_samples": tail.window_samples if tail else 0,
        "tail_modes": tail.decay_per_s.shape[0] if tail else 0,
        "continuation_switch_s": tail.switch_after_end_s if tail else 0.0,
    }


def install_continuation(model: ContinuationMixin, tail: ContinuationFit) -> None:
    """Give ``model`` (either variant, configured by `continuation_config`) the identified
    continuation ODE: its early and late modes and its state."""
    model.set_continuation(
        tail.decay_per_s,
        tail.omega_rad_per_s,
        tail.state,
        tail.late_decay_per_s,
        tail.late_omega_rad_per_s,
    )


def segment_states(
    xn: np.ndarray,
    layout: SegmentLayout,
    poles: np.ndarray,
    rel_ridge: float,
    sample_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Start states of every segment: ridge least squares of the modes over the segment's window,
    weighted by its cross-fade weights.

    Args:
        xn: normalised clip, (layout.n_samples,).
        layout: the segments.
        poles: discrete modes (K,).
        rel_ridge: see `ridge_solve`.
        sample_weights: (layout.n_samples,) weights of the clip's samples (0 = held back), None
            for all alike.

    Returns:
        (layout.n_segments, 2K) states [Re c; Im c].
    """
    basis = modal_basis(poles, layout.window_samples)  # (W, 2K)
    weights = layout.training_weights().numpy().T  # (M, W)
    if sample_weights is not None:
        weights = (
            weights * layout.split(torch.from_numpy(np.asarray(sample_weights, float))).numpy().T
        )
    windows = layout.split(torch.from_numpy(xn)).numpy().T  # (M, W)
    states = np.empty((layout.n_segments, basis.shape[1]))
    # The normal matrix depends on the segment only through its cross-fade weights, and all but
    # the first and last segments share them: one matrix (and factorisation) per distinct pattern,
    # where one per segment cost O(M·W·K²).
    # Grouped by each row's bytes (np.unique(axis=0) sorted the M×W rows in one C call: 5.5 s on a
    # 60 s clip at 48 kHz with the machine loaded, during which SIGINT could not act).
    groups: dict[bytes, list[int]] = {}
    for m, row in enumerate(weights):
        groups.setdefault(row.tobytes(), []).append(m)
    for members in groups.values():
        w = weights[members[0]]
        with lapack_threads():
            gram = basis.T @ (w[:, None] * basis)
        # right-hand sides in blocks, so that no one numpy call runs long (signals act between them)
        for lo in range(0, len(members), SEGMENT_BLOCK_ROWS):
            rows = np.asarray(members[lo : lo + SEGMENT_BLOCK_ROWS])
            with lapack_threads():
                rhs = (weights[rows] * windows[rows]) @ basis  # (B, 2K)
            states[rows] = ridge_solve(gram, rhs, rel_ridge)
    return states


class _Background:
    """``work()`` on a daemon thread. A ThreadPoolExecutor's worker is joined when its ``with`` block
    is left and again at interpreter exit, so a SIGINT or --max-time during identification waited
    for the whole continuation (tens of seconds on a loaded machine) before the command could
    exit; a daemon thread is abandoned instead (its result is then never read)."""

    def __init__(self, work):
        self._done = threading.Event()
        self._value = self._error = None

        def run():
            try:
                self._value = work()
            except BaseException as err:  # handed to the waiting thread by result()
                self._error = err
            finally:
                self._done.set()

        threading.Thread(target=run, name="sonode-continuation", daemon=True).start()

    def result(self):
        """The work's return value (its exception re-raised). Waits in short slices, so that the
        main thread's signal handlers run while it waits."""
        while not self._done.wait(0.1):
            pass
        if self._error is not None:
            raise self._error
        return self._value


def initial_from_options(
    x: np.ndarray, sample_rate: int, options: FitOptions, continuation: bool = True
) -> tuple[SonodeModel, dict]:
    """`initial_model` with the sizes a fit's options set (no continuation when ``continuation`` is
    False: the choice between the global and the local modes needs the reconstruction only)."""
    fixed = None if options.latent_dim is None else options.latent_dim // 2
    return initial_model(
        x,
        sample_rate,
        fixed,
        options.hop_samples,
        options.overlap_samples,
        options.hidden,
        options.layers,
        options.lp_order,
        continuation_samples=options.continuation_samples if continuation else 0,
        max_modes=options.max_latent_dim // 2,
    )
