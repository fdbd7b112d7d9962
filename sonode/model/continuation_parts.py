"""The continuation ODE's parts that every model variant carries (`sonode.model.continuation`).

What continues the sound past the span: an ODE of the same kind as the model's whose modes are
identified on the clip's end and whose state is fitted on its last continuation_samples. Both the
global decoder (`sonode.model.decoder`) and the local-mode model (`sonode.model.local`) hold these
tensors under the same names, so `sonode.model.rendering` and `sonode.model.predict` read either.
"""

from __future__ import annotations

import torch

from sonode.model.limit_cycle import (
    ContinuationField,
    LimitCycle,
    phase_field,
    tail_energy_scale,
    tail_modal_field,
)
from sonode.model.oscillator import OscillatorBank


class ContinuationMixin:
    """Mixed into an nn.Module: `_init_continuation` registers the parts, in this order."""

    def _init_continuation(self, k_tail: int) -> None:
        """Register the continuation of ``k_tail`` modes (0: none), all untrained."""
        self.tail_bank = OscillatorBank(
            -torch.ones(k_tail, dtype=torch.float64), torch.ones(k_tail, dtype=torch.float64)
        )
        # its modes from continuation_switch_s past the end on: decays measured over the clip's
        # last second, beating modes merged (see `sonode.model.continuation`)
        self.tail_late_bank = OscillatorBank(
            -torch.ones(k_tail, dtype=torch.float64), torch.ones(k_tail, dtype=torch.float64)
        )
        self.continuation_state = torch.nn.Parameter(
            torch.zeros((1 if k_tail else 0, 2 * k_tail), dtype=torch.float64)
        )
        # what acts on the continuation's modes (`sonode.model.limit_cycle`): a field trained for
        # prediction (`sonode.model.predict`) and, for a held note, a limit cycle after the switch;
        # both zero/off, the continuation is the identified linear ODE exactly
        self.tail_field = tail_modal_field(k_tail)
        self.tail_cycle = LimitCycle(k_tail)

    def continuation_field(self, late: bool) -> ContinuationField:
        """The continuation ODE's field before (late False) or after the switch to its late modes."""
        return ContinuationField(
            phase_field(self.tail_field, late),
            self.tail_cycle if late else None,
            self.tail_late_bank if late else self.tail_bank,
        )

    def set_continuation(
        self, decay_per_s, omega_rad_per_s, state, late_decay_per_s=None, late_omega_rad_per_s=None
    ) -> None:
        """Install the continuation ODE's modes (K_tail,), its state (2 K_tail,) and its late modes
        ((K_tail,) each; None: the early ones) — numpy or torch, in 1/s and rad/s."""
        late_decay_per_s = decay_per_s if late_decay_per_s is None else late_decay_per_s
        late_omega_rad_per_s = (
            omega_rad_per_s if late_omega_rad_per_s is None else late_omega_rad_per_s
        )
        with torch.no_grad():
            for bank, decay, omega in (
                (self.tail_bank, decay_per_s, omega_rad_per_s),
                (self.tail_late_bank, late_decay_per_s, late_omega_rad_per_s),
            ):
                fresh = OscillatorBank(
                    torch.as_tensor(decay, dtype=torch.float64),
                    torch.as_tensor(omega, dtype=torch.float64),
                )
                bank.load_state_dict(fresh.state_dict())
                bank.requires_grad_(False)
            self.continuation_state.copy_(torch.as_tensor(state, dtype=torch.float64)[None])
            self.tail_field.energy_scale.fill_(
                tail_energy_scale(
                    self.continuation_state,
                    decay_per_s,
                    self.config.continuation_samples / self.config.sample_rate,
                )
            )
        self.continuation_state.requires_grad_(False)


def legacy_continuation_tensors(tensors: dict, fresh: dict) -> None:
    """Complete, in place, the continuation tensors of files written before they existed: late
    modes (then the early ones throughout), field and cycle (then the untrained ones)."""
    for name in [n for n in tensors if n.startswith("tail_bank.")]:
        tensors.setdefault(name.replace("tail_bank.", "tail_late_bank.", 1), tensors[name])
    if not any(n.startswith(("tail_field.", "tail_cycle.")) for n in tensors):
        tensors.update(
            {n: t for n, t in fresh.items() if n.startswith(("tail_field.", "tail_cycle."))}
        )
    # ...and before the continuation's field had its gain terms: zero (the same field); before the
    # cycle had members: all modes (the same cycle)
    for name in ("tail_field.gain", "tail_field.glide", "tail_cycle.member"):
        if name in fresh:
            tensors.setdefault(name, fresh[name])
