"""The continuation's neural field and its limit cycle: what acts on the identified continuation modes.

The continuation ODE (`sonode.model.continuation`) is linear: modes s_k = σ_k + iω_k, identified on
the clip's end. Its field adds, in the modes' complex coordinates c_k (energies e_k = |c_k|²),

    dc_k/dt = (s_k + γ_k(e) + h_k(E)) c_k,    E = Σ_k e_k,

* γ = `ModalField` (a tanh MLP of the energies, last layer zero): amplitude-dependent decay and
  pitch, trained for prediction (`sonode.model.predict`); zero, the ODE is the identified one;
* h = the limit cycle (`LimitCycle`), used for held notes after the switch to the late modes: it
  cancels the late modes' decays and adds a Hopf amplitude equation shared by all modes,
  h = κ (1 − E/E*). With r² = E/E*, every mode's amplitude obeys a' = κ a (1 − a²/a*²) — the Hopf
  normal form a' = a(μ − a²) — so the orbit at E = E* (the energy at the switch) attracts: a halved
  amplitude returns to it with time constant ≈ 1/(2κ), a doubled one falls back. A common real
  factor keeps the modes' amplitude ratios and relative phases, so the harmonics of the held note
  stay phase-locked at the frequencies the late modes have (plus the field's pitch shift θ' = ω(a)).

Both act through `rates(energy)`, the interface of the fast envelope solver (`sonode.model.modal`).

The one trajectory of the model itself (`SonodeModel.trajectory`) uses the same `LimitCycle` on the
modes it holds (`member`), chosen per clip by `sonode.model.trajectory_cycle`: `HeldModes` runs those
modes neutral and `CycledField` adds the cycle to the model's field.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sonode.model.field import ModalField

# Attraction rate of the cycle (1/s): an amplitude 6 dB off the cycle is back within 1 dB in
# ≈ 0.1 s, faster than a player's swell (so the level holds over seconds) and slower than the
# note's period down to 10 Hz (so the cycle never modulates the waveform within a period).
ATTRACTION_PER_S = 20.0


class LimitCycle(nn.Module):
    """h(E) = κ (1 − E/E*) − σ_k on every mode: an attracting orbit at total energy E*.

    Args:
        n_modes: K. Off (κ = 0) until `hold` is called; buffers are saved with the model.
    """

    def __init__(self, n_modes: int):
        super().__init__()
        self.n_modes = n_modes
        self.register_buffer("rate_per_s", torch.zeros((), dtype=torch.float64))  # κ; 0: no cycle
        self.register_buffer("energy", torch.ones((), dtype=torch.float64))  # E*
        self.register_buffer(
            "cancel_per_s", torch.zeros(n_modes, dtype=torch.float64)
        )  # −σ_k of the late modes
        # 1 for the modes the cycle holds, 0 for those it leaves alone (all, for the continuation's
        # late modes; the one trajectory's fast-decaying modes — a note's onset and noise — are left
        # to decay: sustaining a mode that falls 2000/s would hold a transient forever)
        self.register_buffer("member", torch.ones(n_modes, dtype=torch.float64))

    @property
    def active(self) -> bool:
        return bool(self.rate_per_s > 0)

    @torch.no_grad()
    def hold(
        self,
        energy: float,
        decay_per_s: torch.Tensor,
        rate_per_s: float = ATTRACTION_PER_S,
        member: torch.Tensor | None = None,
    ) -> None:
        """Switch the cycle on: orbit energy E* = ``energy`` (Σ|c_k|² of the member modes at the
        switch), cancelling the modes' decays ``decay_per_s`` (K,) (1/s, ≤ 0), attraction
        ``rate_per_s``; ``member`` (K,) bool: the modes it holds (None: all)."""
        member = torch.ones(self.n_modes) if member is None else torch.as_tensor(member)
        self.member.copy_(member.to(torch.float64))
        self.rate_per_s.fill_(float(rate_per_s))
        self.energy.fill_(float(energy))
        self.cancel_per_s.copy_(-torch.as_tensor(decay_per_s, dtype=torch.float64) * self.member)

    @torch.no_grad()
    def release(self) -> None:
        self.rate_per_s.zero_()

    def rates(self, energy: torch.Tensor) -> torch.Tensor:
        """Growth h (..., K) in 1/s for mode energies (..., K)."""
        total = (energy * self.member).sum(-1, keepdim=True)
        return self.cancel_per_s + self.member * self.rate_per_s * (1.0 - total / self.energy)


class HeldModes:
    """``bank`` (an `OscillatorBank`) with the modes ``member`` (K,) bool made neutral (σ = 0): the
    modes a limit cycle holds, as the one trajectory runs them. Cancelling their decays inside the
    field instead (h = −σ, as the continuation's cycle does) overflows: the fast solver reads
    exp(Γ)·exp(λt) with Γ ≈ −σt, inf·0 past |σ|t ≈ 700 (a mode falling 3000 dB/s at 2 s). Not a
    module: it holds the bank's own parameters (frequencies, and the decays of the others)."""

    def __init__(self, bank: nn.Module, member: torch.Tensor):
        self.bank, self.member = bank, member.to(torch.bool)

    @property
    def n_modes(self) -> int:
        return self.bank.n_modes

    @property
    def decay_per_s(self) -> torch.Tensor:
        return torch.where(self.member, 0.0, self.bank.decay_per_s)

    @property
    def omega_rad_per_s(self) -> torch.Tensor:
        return self.bank.omega_rad_per_s

    @property
    def raw_damping(self) -> torch.Tensor:
        return self.bank.raw_damping


class CycledField(nn.Module):
    """γ(e) + h(E): ``field`` (any field with the `ModalField` interface) with the limit cycle
    ``cycle`` added — the one trajectory's ODE when its cycle is on (`SonodeModel.trajectory`).

    Unlike `ContinuationField` the trained part is not bounded: the trajectory's field is trained
    on the clip it reproduces, not extrapolated past it. The bank is not held (it is not a
    submodule), so the envelope solver's adjoint sees the bank's parameters once."""

    def __init__(self, field: nn.Module, cycle: LimitCycle):
        super().__init__()
        self.field, self.cycle, self.n_modes = field, cycle, cycle.n_modes

    @property
    def max_step_s(self) -> float:
        """The envelope solver's largest step (`sonode.model.modal.envelope_nodes`): |h λ| = 0.5
        for the orbit's linearised rate λ = −2κ, well inside dopri5's stability interval (≈ 3.3)."""
        return 0.25 / max(float(self.cycle.rate_per_s), 1e-12)

    def rates(self, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        growth, shift = self.field.rates(energy)
        return growth + self.cycle.rates(energy), shift

    def is_zero(self) -> bool:
        return not self.cycle.active and self.field.is_zero()

    forward = ModalField.forward


class ContinuationField(nn.Module):
    """min(γ(e), −σ) + h(E) as one field with the `ModalField` interface (n_modes, rates, is_zero,
    forward), for the modes σ + iω of ``bank``.

    The trained part may not make a mode grow (Re γ_k ≤ −σ_k): the held-back test scores 200 ms,
    and a field trained on it made a harpsichord's strongest partials grow by 10-20 dB/s near its
    level, holding a decaying note indefinitely. Only the cycle sustains. ``cycle`` None: the
    trained field alone (the continuation's first, Burg, phase)."""

    def __init__(self, modal: nn.Module | None, cycle: LimitCycle | None, bank: nn.Module):
        super().__init__()
        self.modal = modal  # None: no trained part in this phase
        self.cycle = cycle if cycle is not None and cycle.active else None
        self.n_modes = bank.n_modes
        self.bank = bank

    def rates(self, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.modal is None:
            growth = shift = torch.zeros_like(energy)
        else:
            growth, shift = (
                self.modal.rates(energy, self.bank.omega_rad_per_s.detach())
                if isinstance(self.modal, (LevelField, GlideTerms))
                else self.modal.rates(energy)
            )
            growth = torch.minimum(growth, -self.bank.decay_per_s.detach())
        if self.cycle is not None:
            growth = growth + self.cycle.rates(energy)
        return growth, shift

    def is_zero(self) -> bool:
        return self.cycle is None and (self.modal is None or self.modal.is_zero())

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """N(t, z) in the latent [u; v] coordinates (the reference solver's field)."""
        k = self.n_modes
        u, v = z[..., :k], z[..., k:]
        growth, shift = self.rates(u * u + v * v)
        return torch.cat([growth * u - shift * v, shift * u + growth * v], dim=-1)


class LevelField(nn.Module):
    """γ(e) = rate_scale · (MLP(log r) + g ⊙ (r − 1)), r = Σ_k e_k / energy_scale: every mode's decay
    and pitch as functions of the sound's level alone (a tanh MLP 1 → TAIL_HIDDEN → 2K whose last
    layer starts at zero, and a per-mode gain g (2K,), zero at the start).

    One input rather than K: the states the continuation is trained from (anchors in the clip) are
    a few dozen, at a few levels; K energies as inputs let the MLP fit each anchor's spectrum
    instead of the sound's level-dependence. The gain term is the physics of a string or a reed
    (tension modulation: decay and pitch shift linear in the energy) and vanishes at r = 1, the
    level at the clip's end, where the identified modes are right: it changes nothing at the first
    samples and more as the level departs, and it extrapolates to the levels the continuation
    reaches below the clip's (a tanh saturates). Same interface as `ModalField`."""

    def __init__(self, n_modes: int, hidden: int, energy_scale: float, rate_scale: float):
        super().__init__()
        out = nn.Linear(hidden, 2 * n_modes, dtype=torch.float64)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(nn.Linear(1, hidden, dtype=torch.float64), nn.Tanh(), out)
        self.gain = nn.Parameter(torch.zeros(2 * n_modes, dtype=torch.float64))
        # shared by all modes: decay b·rate_scale and relative pitch shift a (Δω_k = a ω_k), both per
        # unit of r − 1: one tension-modulated string shifts every partial by the same ratio
        self.glide = nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.n_modes = n_modes
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale), dtype=torch.float64))
        self.register_buffer("rate_scale", torch.tensor(float(rate_scale), dtype=torch.float64))

    def rates(
        self, energy: torch.Tensor, omega_rad_per_s: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re γ, Im γ) (..., K) in 1/s and rad/s for mode energies (..., K); the shared relative
        pitch shift needs the modes' frequencies ``omega_rad_per_s`` (K,) (None: left out)."""
        ratio = energy.sum(-1, keepdim=True) / self.energy_scale
        out = self.rate_scale * (self.mlp(torch.log(ratio + 1e-300)) + self.gain * (ratio - 1.0))
        growth = out[..., : self.n_modes] + self.rate_scale * self.glide[0] * (ratio - 1.0)
        shift = out[..., self.n_modes :]
        if omega_rad_per_s is not None:
            shift = shift + omega_rad_per_s * self.glide[1] * (ratio - 1.0)
        return growth, shift

    def is_zero(self) -> bool:
        return ModalField.is_zero(self) and not any(
            bool(torch.any(p != 0)) for p in (self.gain, self.glide)
        )

    forward = ModalField.forward


def tail_modal_field(
    n_modes: int, energy_scale: float = 1.0, rate_scale: float = 10.0
) -> nn.Module:
    """The continuation's trainable field (`LevelField` or, with TAIL_INPUT "modes", a `ModalField`)."""
    with (
        warnings.catch_warnings()
    ):  # a model without a continuation has 0 tail modes: empty weights
        warnings.simplefilter("ignore", UserWarning)
        if TAIL_INPUT == "modes":
            return ModalField(n_modes, TAIL_HIDDEN, 1, energy_scale, rate_scale)
        return LevelField(n_modes, TAIL_HIDDEN, energy_scale, rate_scale)


TAIL_HIDDEN = 16  # the continuation's level → rates map: a few shared envelope features suffice
# The trained field acts after the switch to the late modes only ("late") or from the clip's end
# ("both"). Measured (docs/continuation_trained.md §6): acting from the end, kept fields cost the first
# milliseconds (the bass: −7.6 dB over 5 ms), and with every horizon guarded none was kept.
FIELD_PHASES = "late"
# What training moves: "mlp" (the level MLP, as measured in docs/continuation_trained.md §6), "gain" (the
# gain terms, zero at the clip's end level so the first samples stay Burg's), "glide" (the two
# shared terms alone) or "all"
TAIL_TRAIN = "mlp"
TAIL_INPUT = "level"  # "level": `LevelField`; "modes": every mode's energy (`ModalField`)


def tail_energy_scale(
    state: torch.Tensor, decay_per_s: torch.Tensor | None = None, window_s: float = 0.0
) -> float:
    """The field's energy unit for continuation state (1, 2K) at the window's start: its total
    energy Σ_k |c_k|² at the clip's end, ``window_s`` later under the modes' decays (K,) in 1/s
    (a `LevelField` is then at r = 1 where the continuation starts), or its mean mode energy (a
    `ModalField`'s). Without decays: the energy at the state."""
    k = state.shape[-1] // 2
    energy = state[0, :k] ** 2 + state[0, k:] ** 2
    if decay_per_s is not None:
        energy = energy * torch.exp(2 * torch.as_tensor(decay_per_s, dtype=energy.dtype) * window_s)
    return float(energy.sum() if TAIL_INPUT == "level" else energy.mean()) or 1.0


class GlideTerms(nn.Module):
    """The shared glide terms of a `LevelField` alone (decay b and relative pitch shift a per unit
    of r − 1): what acts before the switch when the rest of the field acts late. They vanish at the
    clip's end level, so the first samples stay Burg's, and they are what a continuation
    identified anywhere in the clip shares (`sonode.model.glide_fit` trains them there)."""

    def __init__(self, field: LevelField):
        super().__init__()
        self.level = [field]  # a list: not a submodule (its parameters stay the field's own)
        self.n_modes = field.n_modes

    def rates(
        self, energy: torch.Tensor, omega_rad_per_s: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(growth per s, frequency shift in rad/s), each shaped as ``energy`` (..., K), the modes'
        |c|²: the glide's decay and, given ``omega_rad_per_s`` (K,), its pitch shift."""
        field = self.level[0]
        excess = energy.sum(-1, keepdim=True) / field.energy_scale - 1.0
        growth = (field.rate_scale * field.glide[0] * excess).expand_as(energy)
        shift = torch.zeros_like(energy)
        if omega_rad_per_s is not None:
            shift = omega_rad_per_s * field.glide[1] * excess
        return growth, shift

    def is_zero(self) -> bool:
        return not bool(torch.any(self.level[0].glide != 0))

    forward = ModalField.forward


def phase_field(field: nn.Module, late: bool) -> nn.Module | None:
    """The trained field where it acts (`FIELD_PHASES`). Before the switch, when it acts late: its
    glide terms (`GlideTerms`) if they are set or being trained, else nothing."""
    if late or FIELD_PHASES == "both":
        return field
    if isinstance(field, LevelField) and (
        field.glide.requires_grad or bool(torch.any(field.glide != 0))
    ):
        return GlideTerms(field)
    return None
