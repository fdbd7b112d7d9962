"""Closed-form initialisation: normalise the clip, identify modes, fit segment start states."""

from __future__ import annotations

import numpy as np
import torch

from sonode.model.decoder import ModelConfig, SonodeModel, build_model
from sonode.model.sysid import identify_modes, modal_basis, ridge_solve

CORRECTION_SCALE = 0.02


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


def initial_model(x: np.ndarray, sample_rate: int, n_modes: int, hop_samples: int, overlap_samples: int,
                  hidden: int, layers: int, lp_order: int = 256, rel_ridge: float = 1e-6,
                  continuation_samples: int = 0) -> SonodeModel:
    """A model that is the best linear fit of the clip, with a zero neural correction.

    Args:
        x: the clip in file amplitude, shape (n_samples,).
        sample_rate: Hz.
        n_modes: K (latent dimension 2K).
        hop_samples, overlap_samples: segment layout (see `SegmentLayout`).
        hidden, layers: size of the correction MLP.
        lp_order: order of the linear predictor whose poles are candidate modes.
        rel_ridge: ridge of the start-state least squares.
        continuation_samples: window (samples, capped at the clip) of the state that continues the
            sound past its end, fitted by least squares on the clip's last samples; 0 for none.

    Returns:
        The initial `SonodeModel`: its segment states solve a weighted ridge least-squares problem
        (each segment fitted over its own window with its cross-fade weights).
    """
    gain, offset = normalisation(x)
    xn = (x - offset) / gain
    continuation_samples = min(continuation_samples, int(x.shape[0]))
    config = ModelConfig(sample_rate=sample_rate, n_samples=int(x.shape[0]), hop_samples=hop_samples,
                         overlap_samples=overlap_samples, n_modes=n_modes, hidden=hidden, layers=layers,
                         gain=gain, offset=offset, continuation_samples=continuation_samples)
    layout = config.layout
    modes = identify_modes(xn, sample_rate, n_modes, layout.window_samples, lp_order, rel_ridge)
    poles = np.exp((modes.decay_per_s + 1j * modes.omega_rad_per_s) / sample_rate)
    basis = modal_basis(poles, layout.window_samples)  # (W, 2K)
    weights = layout.training_weights().numpy().T  # (M, W)
    windows = layout.split(torch.from_numpy(xn)).numpy().T  # (M, W)
    gram = np.einsum("wi,mw,wj->mij", basis, weights, basis)
    states = ridge_solve(gram, (weights * windows) @ basis, rel_ridge)  # (M, 2K)
    state_scale = float(np.sqrt(np.mean(states ** 2))) or 1.0
    # An O(1) MLP output then changes dz/dt by CORRECTION_SCALE of the linear part's typical rate:
    # the correction refines the identified dynamics instead of swamping them on the first steps.
    rate_scale = CORRECTION_SCALE * state_scale * float(np.median(modes.omega_rad_per_s))
    model = build_model(config, torch.from_numpy(modes.decay_per_s), torch.from_numpy(modes.omega_rad_per_s),
                        torch.from_numpy(states), state_scale=state_scale, rate_scale=rate_scale)
    if continuation_samples:
        tail = modal_basis(poles, continuation_samples)
        state = ridge_solve(tail.T @ tail, xn[-continuation_samples:] @ tail, rel_ridge)
        with torch.no_grad():
            model.continuation_state.copy_(torch.from_numpy(state)[None])
    return model
