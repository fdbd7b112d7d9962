"""What a model learned, drawn: decay and frequency of its strongest modes against their amplitude.

The fields (`sonode.model.field`, `sonode.model.limit_cycle`) make each mode's decay and frequency
functions of the mode energies. Scaling a state by an amplitude factor a (all modes together, as a
note gets louder or softer) and reading the rates gives the curves: flat lines are a linear model
(the untrained start); a decay that crosses zero is a limit cycle, whose amplitude is where it does.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from sonode.plot.panels import new_figure, png_path, save_figure

AMPLITUDES_DB = np.linspace(-30.0, 12.0, 85)  # amplitude relative to the state's
STRONGEST = 5
DB_PER_NEPER = 20 / math.log(10)


@torch.no_grad()
def mode_rates(
    bank,
    field,
    state: torch.Tensor,
    amplitudes_db: np.ndarray = AMPLITUDES_DB,
    count: int = STRONGEST,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decay (dB/s, negative = decaying) and frequency (Hz) of the ``count`` strongest modes of
    ``state`` (1, 2K) scaled by each amplitude (dB), under the bank's modes plus the field's rates.

    Returns (mode indices (count,), decay (A, count), frequency (A, count))."""
    k = bank.n_modes
    energy = state[0, :k] ** 2 + state[0, k:] ** 2
    strongest = torch.argsort(energy, descending=True)[: min(count, k)]
    scale = torch.from_numpy(10 ** (amplitudes_db / 10))[:, None]  # energy ∝ amplitude²: 10^(dB/10)
    growth, shift = field.rates(scale * energy[None, :])
    decay = (bank.decay_per_s + growth)[:, strongest] * DB_PER_NEPER
    freq = (bank.omega_rad_per_s + shift)[:, strongest] / (2 * math.pi)
    return strongest.numpy(), decay.numpy(), freq.numpy()


def save_dynamics_png(path: str | os.PathLike, model, title: str = "learned dynamics") -> None:
    """Two rows: the continuation ODE (after its switch, with the limit cycle if it has one) and the
    model's own ODE (from its trajectory state); columns: decay and frequency shift against amplitude."""
    rows = []
    if model.config.tail_modes:
        rows.append(
            (
                "continuation",
                model.tail_late_bank,
                model.continuation_field(late=True),
                model.continuation_state.detach(),
            )
        )
    # the model's own ODE as its one trajectory runs it: with the trajectory's limit cycle if on
    trajectory_ode = getattr(model, "trajectory_ode", lambda: (model.bank, model.field))
    rows.append(("model", *trajectory_ode(), model.trajectory_state.detach()))
    figure = new_figure(11.0, 3.2 * len(rows))
    for r, (name, bank, field, state) in enumerate(rows):
        modes, decay, freq = mode_rates(bank, field, state)
        left = figure.add_subplot(len(rows), 2, 2 * r + 1)
        right = figure.add_subplot(len(rows), 2, 2 * r + 2)
        for i, _m in enumerate(modes):
            label = f"{freq[len(AMPLITUDES_DB) // 2, i]:.1f} Hz"
            left.plot(AMPLITUDES_DB, decay[:, i], label=label)
            right.plot(
                AMPLITUDES_DB, freq[:, i] - freq[np.argmin(np.abs(AMPLITUDES_DB)), i], label=label
            )
        left.axhline(0.0, color="k", lw=0.5)
        cycle = (name == "continuation" and model.tail_cycle.active) or (
            name == "model"
            and getattr(model, "trajectory_cycle", None) is not None
            and model.trajectory_cycle.active
        )
        left.set_title(
            f"{name}: decay of the {len(modes)} strongest modes"
            + (" (limit cycle at 0 dB)" if cycle else "")
        )
        left.set_xlabel("amplitude re the state (dB)")
        left.set_ylabel("dB/s (> 0 grows)")
        right.set_title(f"{name}: frequency shift")
        right.set_xlabel("amplitude re the state (dB)")
        right.set_ylabel("Hz")
        right.legend(fontsize=7, loc="best")
    figure.suptitle(title)
    save_figure(figure, png_path(path))
