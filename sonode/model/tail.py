"""The continuation ODE as one runnable object: early modes, the switch to the late modes, the
trained field and the limit cycle, from a state fitted to the samples before the clip's end.

`Tail` is what `extrapolate` integrates past the clip and what `sonode.model.predict` trains and
scores: built from an identification (`Tail.from_fit`) or from a fitted model's parts
(`Tail.from_model`), which it shares, so training it trains the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sonode.model.continuation import STATE_RIDGE, ContinuationFit
from sonode.model.limit_cycle import (
    ContinuationField,
    LimitCycle,
    phase_field,
    tail_energy_scale,
    tail_modal_field,
)
from sonode.model.modal import modal_readout, modal_solve
from sonode.model.oscillator import OscillatorBank


@dataclass
class Tail:
    """A continuation ODE: early/late modes, switch, field, cycle, state and window (samples)."""

    early: OscillatorBank
    late: OscillatorBank
    switch_s: float  # after the clip's end
    field: torch.nn.Module  # `sonode.model.limit_cycle.tail_modal_field`
    cycle: LimitCycle
    state: torch.Tensor  # (1, 2K) at the window's start
    window: int

    @classmethod
    def from_fit(cls, fit: ContinuationFit, rate: int | None = None) -> Tail:
        """The identified ODE of ``fit``, untrained; ``rate`` (Hz) places the field's unit level at
        the clip's end (as a fitted model's), without it at the state's window start."""
        late_decay = fit.decay_per_s if fit.late_decay_per_s is None else fit.late_decay_per_s
        late_omega = (
            fit.omega_rad_per_s if fit.late_omega_rad_per_s is None else fit.late_omega_rad_per_s
        )
        k = fit.decay_per_s.shape[0]
        state = torch.as_tensor(fit.state, dtype=torch.float64)[None]
        energy = (
            tail_energy_scale(state)
            if rate is None
            else tail_energy_scale(state, fit.decay_per_s, fit.window_samples / rate)
        )

        def tensor(a):
            return torch.as_tensor(a, dtype=torch.float64)

        early, late = (
            OscillatorBank(tensor(fit.decay_per_s), tensor(fit.omega_rad_per_s)),
            OscillatorBank(tensor(late_decay), tensor(late_omega)),
        )
        early.requires_grad_(False)
        late.requires_grad_(False)
        return cls(
            early,
            late,
            fit.switch_after_end_s,
            tail_modal_field(k, energy),
            LimitCycle(k),
            state,
            fit.window_samples,
        )

    @classmethod
    def from_model(cls, model) -> Tail:
        return cls(
            model.tail_bank,
            model.tail_late_bank,
            model.config.continuation_switch_s,
            model.tail_field,
            model.tail_cycle,
            model.continuation_state.detach(),
            model.config.continuation_samples,
        )

    def run(
        self,
        z0: torch.Tensor,
        local_s: torch.Tensor,
        switch_local_s: float,
        gradient: str | None = None,
        linear_s: float = 0.0,
    ) -> torch.Tensor:
        """Samples (n, B) at local times (n,) ≥ linear_s (from the states z0 (B, 2K) at 0), the late
        modes and the cycle from switch_local_s on. The first ``linear_s`` (the state's window, up
        to the clip's end or the anchor) are the early modes alone: the field acts from there, at
        the level the modes were identified at, as `extrapolate` runs it."""
        if linear_s > 0:
            z0 = self.early.expm_apply(linear_s, z0)
            local_s, switch_local_s = local_s - linear_s, switch_local_s - linear_s
        k = self.early.n_modes
        ones = torch.cat([torch.ones(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)])
        early_field, late_field = (
            ContinuationField(phase_field(self.field, False), None, self.early),
            ContinuationField(self.field, self.cycle, self.late),
        )
        zero = torch.zeros(1, dtype=torch.float64)
        before = local_s < switch_local_s
        # a zero field that nothing trains is the closed form (no envelope solve); a phase without
        # trained parameters (field or modes, `sonode.model.mode_fit`) is solved without a graph
        early_field, late_field = self._solved(early_field), self._solved(late_field)
        early_gradient = gradient if early_field is not None or _trains(self.early) else None
        # the engine's adjoint of a solve that starts from another adjoint solve's output fails on
        # backward ("backward through the graph a second time"), so after an adjoint early
        # envelope solve the late one is differentiated through the solver
        late_gradient = (
            "backprop" if gradient == "adjoint" and early_gradient and early_field else gradient
        )

        def read(bank, field, z, times, how):  # the solver's grid starts at 0, once
            first = bool(times[0] == 0)
            grid = times if first else torch.cat([zero, times])
            return modal_readout(bank, field, z, grid, ones, how)[0 if first else 1 :]

        parts = []
        if bool(before.any()):
            parts.append(read(self.early, early_field, z0, local_s[before], early_gradient))
        if not bool(before.all()):
            z_switch = (
                z0
                if switch_local_s <= 0  # no early phase (a continuation without late modes)
                else modal_solve(
                    self.early,
                    early_field,
                    z0,
                    torch.tensor([0.0, switch_local_s], dtype=torch.float64),
                    early_gradient,
                )[-1]
            )
            parts.append(
                read(
                    self.late,
                    late_field,
                    z_switch,
                    local_s[~before] - switch_local_s,
                    late_gradient,
                )
            )
        return torch.cat(parts, 0)

    def _solved(self, field: ContinuationField) -> ContinuationField | None:
        """The field a phase is solved with: None (the linear ODE in closed form) when it is zero
        and none of the trained field's parameters takes a gradient."""
        if field.is_zero() and not _trains(self.field):
            return None
        return field

    def continue_clip(self, n_samples: int, rate: int) -> np.ndarray:
        """The continuation's first n_samples after the clip's end (normalised), as `extrapolate` gives it."""
        local = (self.window + torch.arange(n_samples, dtype=torch.float64)) / rate
        with torch.no_grad():
            return self.run(
                self.state, local, self.window / rate + self.switch_s, linear_s=self.window / rate
            )[:, 0].numpy()

    def states_at(
        self, x, anchors: np.ndarray, rate: int, fitted: int | None = None
    ) -> torch.Tensor:
        """Least-squares states (A, 2K) of the early modes at W samples before each anchor, fitted
        on the first ``fitted`` (default W) of those samples of the clip x (n,) (numpy or torch).

        The solve is differentiable in the modes (variable projection: `sonode.model.mode_fit`
        trains them through it); call it under ``torch.no_grad()`` for plain states."""
        w = self.window if fitted is None else fitted
        bank = self.early
        n = torch.arange(w, dtype=torch.float64)[:, None] / rate
        power = torch.exp(torch.complex(bank.decay_per_s * n, bank.omega_rad_per_s * n))  # (W, K)
        basis = torch.cat([power.real, -power.imag], 1)  # x[j] = basis @ [u; v]
        gram = basis.T @ basis
        # the ridge of the continuation's own state solve (`sonode.dsp.lpc.ridge_solve`)
        ridge = STATE_RIDGE * torch.trace(gram).detach() / gram.shape[0] + 1e-12
        x = torch.as_tensor(x, dtype=torch.float64)
        windows = torch.stack([x[a - self.window : a - self.window + w] for a in anchors])
        eye = torch.eye(gram.shape[0], dtype=torch.float64)
        return torch.linalg.solve(gram + ridge * eye, (windows @ basis).T).T


def _trains(module: torch.nn.Module) -> bool:
    """Some parameter of ``module`` takes a gradient."""
    return any(p.requires_grad for p in module.parameters())
