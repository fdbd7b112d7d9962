"""The one trajectory's limit cycle, chosen per clip by validation on held-back samples.

The one trajectory (`SonodeModel.trajectory`) is the free run of the model's ODE from its
trajectory state. With linear modes that free run is neutral: a held note is a set of modes at the
bank's smallest decay, and an amplitude pushed off it stays off. The limit cycle
(`sonode.model.limit_cycle.LimitCycle`, the same one the continuation uses for held notes) cancels
the modes' decays and adds the Hopf amplitude equation a' = κ a (1 − a²/a*²) shared by every mode,
at the energy E* of the trajectory state: a common real factor, so the modes' amplitude ratios and
relative phases (the note's waveform) are kept, and the orbit attracts.

Whether the clip's note is held is decided on its own samples: the trajectory state is fitted by
the same least squares on the first (1 − HOLD_FRACTION) of the trajectory's span, and both free
runs, without and with the cycle, are scored on the held-back rest by their frame-level error
(dB RMS over LEVEL_FRAME_S frames, as the continuation's cycle is chosen in
`sonode.model.predict`). A tie (within TIE_DB: a held note's frame levels wobble by that much)
goes to the cycle: both hold the level over the held-back span, and only the cycle is stable
against a perturbation. A decaying sound's held-back levels fall, which the cycle does not: it is
refused.
"""

from __future__ import annotations

import numpy as np
import torch

from sonode.dsp.lpc import modal_basis, modal_gram, ridge_solve
from sonode.model.limit_cycle import CycledField, LimitCycle
from sonode.model.modal import modal_readout
from sonode.model.predict import HELD_DB_PER_S, LEVEL_FRAME_S, level_error_db

HOLD_FRACTION = 0.25  # of the trajectory's span, held back to choose the cycle
MIN_HELD_S = 0.1  # a shorter held-back span (4 level frames) cannot tell a held note: no cycle
TIE_DB = 0.1
# a held note has most of its energy in modes that hold: with less, the cycle would hold a remnant
# (a sum of damped tones whose one slow mode carries 1e-6 of the energy ties, and is not a cycle)
MIN_MEMBER_SHARE = 0.5


def state_energy(state: torch.Tensor, member: torch.Tensor) -> float:
    """Σ_k |c_k|² over the modes ``member`` (K,) bool of a state (1, 2K) in the [u; v] layout."""
    k = member.shape[0]
    z = state.detach()[0]
    return float(torch.sum((z[:k] ** 2 + z[k:] ** 2)[member]))


def least_squares_state(poles: np.ndarray, x: np.ndarray, rel_ridge: float) -> np.ndarray:
    """The state (2K,) whose linear free run of the discrete modes ``poles`` (K,) best fits ``x``
    (n,) from its first sample (ridge least squares; how `initial_model` fits the trajectory state)."""
    n = x.shape[0]
    return ridge_solve(modal_gram(poles, n), x @ modal_basis(poles, n), rel_ridge)


def choose_trajectory_cycle(model, xn: np.ndarray, n_samples: int, rel_ridge: float) -> dict:
    """Switch ``model.trajectory_cycle`` on (at the energy of ``model.trajectory_state``) if the
    held-back test says the clip's note is held; leave it off otherwise.

    Args:
        model: a `SonodeModel` whose bank and trajectory state are identified.
        xn: the normalised clip (n,); the trajectory's span is its first ``n_samples``.
        rel_ridge: the trajectory state's ridge (see `ridge_solve`).

    Returns:
        {"chosen": bool, "held_back_s": float, "level_error_db": [linear, cycle]} (errors absent
        when the span is too short to hold any back).
    """
    rate = model.config.sample_rate
    held = int(HOLD_FRACTION * n_samples)
    bank = model.bank
    decay, omega = bank.decay_per_s.detach(), bank.omega_rad_per_s.detach()
    # the modes a held note is made of: those decaying slower than the continuation's held-note test
    member = decay > -HELD_DB_PER_S * np.log(10) / 20
    everything = torch.ones_like(member)
    share = state_energy(model.trajectory_state, member) / max(
        state_energy(model.trajectory_state, everything), 1e-300
    )
    report = {
        "chosen": False,
        "held_back_s": held / rate,
        "modes": int(member.sum()),
        "energy_share": round(share, 4),
    }
    if held < MIN_HELD_S * rate or share < MIN_MEMBER_SHARE:
        return report
    poles = np.exp((decay.numpy() + 1j * omega.numpy()) / rate)
    fit = n_samples - held
    state = torch.from_numpy(least_squares_state(poles, xn[:fit], rel_ridge))[None]
    cycle = LimitCycle(bank.n_modes)
    cycle.hold(state_energy(state, member), decay, member=member)
    local = torch.cat([torch.zeros(1), torch.arange(n_samples) / rate]).to(torch.float64)
    truth = xn[fit:n_samples]
    errors = []
    with torch.no_grad():
        for field in (model.field, CycledField(model.field, cycle)):
            run = modal_readout(bank, field, state, local, model.readout)[1:, 0]
            run = (run + model.readout_bias).numpy()[fit:]
            errors.append(level_error_db(truth, run, 0, int(LEVEL_FRAME_S * rate)))
    report["level_error_db"] = [round(e, 3) for e in errors]
    # a free run that cannot be scored (non-finite) is no evidence for the cycle
    report["chosen"] = bool(np.all(np.isfinite(errors)) and errors[1] <= errors[0] + TIE_DB)
    if report["chosen"]:
        model.trajectory_cycle.hold(
            state_energy(model.trajectory_state, member), decay, member=member
        )
    return report
