"""The one trajectory's limit cycle, chosen per clip by validation on held-back samples.

The one trajectory (`SonodeModel.trajectory`) is the free run of the model's ODE from its
trajectory state. With linear modes that free run is neutral at best (a held note as modes at the
bank's smallest decay: an amplitude pushed off it stays off) and dies out at worst (the bank is
identified for 16 ms segments, and on real held notes most of the state's energy sits in modes
falling hundreds of dB/s). The limit cycle (`sonode.model.limit_cycle.LimitCycle`, the one the
continuation uses for held notes) runs its *member* modes neutral (`HeldModes`) and adds the Hopf
amplitude equation a' = κ a (1 − a²/a*²) shared by them, at the energy E* of the orbit: a common
real factor, so the members' amplitude ratios and relative phases (the note's waveform) are kept,
and the orbit attracts. The other modes (a note's onset, noise) decay as identified.

Whether the note is held, and which modes hold it, is decided on the clip's own samples. The
trajectory's span is split: on its first (1 − HOLD_FRACTION) the state is fitted by least squares
(i) as identified, (ii) for each bound of MEMBER_DB_PER_S, as the orbit with the modes decaying
slower than the bound neutral. Each free run is scored on the held-back rest by its frame-level
error (dB RMS over LEVEL_FRAME_S frames, as the continuation's cycle is chosen in
`sonode.model.predict`). The best cycle is kept if its level error is lower by more than TIE_DB
(a held note's frame levels wobble by that much), or within TIE_DB and its held-back SNR is not
lower by more than TIE_DB (on a tie of both — the same runs — the cycle: only it is stable against
a perturbation); the state is then refitted as that orbit on the whole span. A decaying sound's
held-back levels fall, which the cycle's do not: it is refused.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sonode.dsp.lpc import modal_basis, modal_gram, ridge_solve
from sonode.model.held_back import LEVEL_FRAME_S, level_error_db, snr
from sonode.model.limit_cycle import CycledField, HeldModes, LimitCycle
from sonode.model.modal import modal_readout

HOLD_FRACTION = 0.25  # of the trajectory's span, held back to choose the cycle
MIN_HELD_S = 0.1  # a shorter held-back span (4 level frames) cannot tell a held note: no cycle
TIE_DB = 0.1
# Candidate members: the modes decaying slower than each of these (dB/s). The bank is identified
# for 16 ms segments, so a held note's energy sits in modes decaying at hundreds of dB/s (measured
# on the seven sustained clips of data/: median 200-500 dB/s); which of them make the held orbit
# is decided by the held-back test, not fixed.
MEMBER_DB_PER_S = (3.0, 30.0, 300.0, 3000.0, math.inf)
# a held note has most of its energy in the modes that hold: with less, the cycle would hold a
# remnant (a sum of damped tones whose one slow mode carries 1e-6 of the energy ties, not a cycle)
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


def _held_poles(poles: np.ndarray, member: np.ndarray) -> np.ndarray:
    """``poles`` (K,) with the ``member`` (K,) bool ones moved onto the unit circle (neutral, as the
    cycle runs them)."""
    return np.where(member, poles / np.abs(poles), poles)


class _OrbitFits:
    """Least-squares states of ``x`` (n,) for ``poles`` (K,) with any set of member modes neutral:
    the orbit that best fits x (the other modes decaying as identified). The projections of x on
    both bases are computed once (the basis is the cost: n × 2K complex powers), the Gram matrix in
    closed form per set."""

    def __init__(self, poles: np.ndarray, x: np.ndarray, rel_ridge: float):
        self.poles, self.n, self.rel_ridge = poles, x.shape[0], rel_ridge
        held = _held_poles(poles, np.ones(poles.shape[0], dtype=bool))
        self.rhs = [x @ modal_basis(p, self.n) for p in (poles, held)]  # (2K,) each

    def state(self, member: np.ndarray) -> torch.Tensor:
        """(1, 2K) for the members ``member`` (K,) bool (none: the linear fit)."""
        both = np.concatenate([member, member])  # columns Re then −Im of each mode
        rhs = np.where(both, self.rhs[1], self.rhs[0])
        gram = modal_gram(_held_poles(self.poles, member), self.n)
        return torch.from_numpy(ridge_solve(gram, rhs, self.rel_ridge))[None]


def _cycle_wins(level_db: float, snr_db: float, linear_level_db: float, linear_snr_db: float):
    """The cycle's held-back (level error, SNR) against the linear run's: a clear win on the level
    (what the cycle is for), or a tie on it (within TIE_DB) and no loss of SNR beyond TIE_DB (a tie
    on both — the same runs, as on a noise-free held note — goes to the cycle: only it is stable)."""
    if not math.isfinite(linear_level_db):
        return True
    if level_db < linear_level_db - TIE_DB:
        return True
    return level_db <= linear_level_db + TIE_DB and not snr_db < linear_snr_db - TIE_DB


def choose_trajectory_cycle(model, xn: np.ndarray, n_samples: int, rel_ridge: float) -> dict:
    """Switch ``model.trajectory_cycle`` on if the held-back test says the clip's note is held,
    with the trajectory state refitted as the held orbit; leave both alone otherwise.

    Candidates: the linear free run (the state as fitted) and, for each of MEMBER_DB_PER_S, the
    cycle on the modes decaying slower than that, its state fitted with those modes neutral. Each
    is fitted on the span's first (1 − HOLD_FRACTION) and scored by its frame-level error on the
    rest; the best cycle is chosen if it wins (`_cycle_wins`).

    Args:
        model: a `SonodeModel` whose bank and trajectory state are identified.
        xn: the normalised clip (n,); the trajectory's span is its first ``n_samples``.
        rel_ridge: the trajectory state's ridge (see `ridge_solve`).

    Returns:
        {"chosen": bool, "held_back_s", "member_db_per_s" (the chosen bound), "modes" (members),
        "level_error_db": {"linear": e, "<bound>": e, ...}} (errors absent when the span is too
        short to hold any back).
    """
    rate = model.config.sample_rate
    held = int(HOLD_FRACTION * n_samples)
    report = {"chosen": False, "held_back_s": held / rate}
    if held < MIN_HELD_S * rate:
        return report
    bank = model.bank
    decay, omega = bank.decay_per_s.detach(), bank.omega_rad_per_s.detach()
    poles = np.exp((decay.numpy() + 1j * omega.numpy()) / rate)
    fit = n_samples - held
    # read at the held-back samples only (the run still starts at the span's first sample)
    local = torch.cat([torch.zeros(1), torch.arange(fit, n_samples) / rate]).to(torch.float64)
    truth = xn[fit:n_samples]

    def held_back_error(bank, field, state) -> tuple[float, float]:
        """(level error dB, SNR dB) of the free run on the held-back samples."""
        with torch.no_grad():
            run = modal_readout(bank, field, state, local, model.readout)[1:, 0]
            run = (run + model.readout_bias).numpy()
        return level_error_db(truth, run, 0, int(LEVEL_FRAME_S * rate)), snr(truth, run)

    fits = _OrbitFits(poles, xn[:fit], rel_ridge)
    linear = held_back_error(bank, model.field, fits.state(np.zeros(len(poles), bool)))
    errors, snrs = {"linear": linear[0]}, {"linear": linear[1]}
    best, tried = None, []
    for bound_db_per_s in MEMBER_DB_PER_S:
        member = decay > -bound_db_per_s * np.log(10) / 20
        if any(torch.equal(member, other) for other in tried):  # the same members: the same run
            continue
        tried.append(member)
        state = fits.state(member.numpy())
        share = state_energy(state, member) / max(state_energy(state, member | ~member), 1e-300)
        if share < MIN_MEMBER_SHARE:
            continue
        cycle = LimitCycle(bank.n_modes)
        cycle.hold(state_energy(state, member), torch.zeros_like(decay), member=member)
        error, run_snr = held_back_error(
            HeldModes(bank, member), CycledField(model.field, cycle), state
        )
        errors[f"{bound_db_per_s:g}"], snrs[f"{bound_db_per_s:g}"] = error, run_snr
        # a free run that cannot be scored (non-finite) is no evidence for the cycle
        if math.isfinite(error) and (best is None or error < best[0]):
            best = (error, run_snr, bound_db_per_s, member)
    report["level_error_db"] = {name: round(e, 3) for name, e in errors.items()}
    report["snr_db"] = {name: round(e, 3) for name, e in snrs.items()}
    if best is None or not _cycle_wins(best[0], best[1], *linear):
        return report
    _, _, bound_db_per_s, member = best
    held_poles = _held_poles(poles, member.numpy())
    state = torch.from_numpy(least_squares_state(held_poles, xn[:n_samples], rel_ridge))[None]
    with torch.no_grad():
        model.trajectory_state.copy_(state)
    # the members' decays are zeroed by `HeldModes`, not cancelled by the cycle
    model.trajectory_cycle.hold(state_energy(state, member), torch.zeros_like(decay), member=member)
    report.update(chosen=True, member_db_per_s=bound_db_per_s, modes=int(member.sum()))
    return report
