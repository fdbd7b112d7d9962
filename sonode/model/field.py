"""The neural part of the audio ODE: a smooth MLP correction N_θ(z) to the oscillator bank."""

from __future__ import annotations

import torch
from torch import nn


class CorrectionField(nn.Module):
    """N_θ(t, z) = rate_scale · MLP(z / state_scale), the nonlinear part of dz/dt = L z + N_θ(z).

    tanh keeps N smooth and globally Lipschitz (theory.md §1). The last layer starts at zero, so
    a fresh model is exactly the identified linear system and training can only move it where the
    loss improves. The two scales make the MLP's inputs and outputs O(1): states are in the
    clip's normalised amplitude, rates in units of that amplitude per second.

    Args:
        dim: latent dimension d = 2K.
        hidden: width of the hidden layers.
        layers: number of hidden layers (≥ 1).
        state_scale: typical |z| (normalised amplitude).
        rate_scale: typical |dz/dt| the correction may need (amplitude per second).
    """

    def __init__(self, dim: int, hidden: int, layers: int, state_scale: float, rate_scale: float):
        super().__init__()
        widths = [dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(n_in, n_out, dtype=torch.float64), nn.Tanh()]
        out = nn.Linear(widths[-1], dim, dtype=torch.float64)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(*blocks, out)
        self.register_buffer("state_scale", torch.tensor(float(state_scale), dtype=torch.float64))
        self.register_buffer("rate_scale", torch.tensor(float(rate_scale), dtype=torch.float64))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """N(t, z) for z of shape (..., d); t (seconds) is unused: the field is autonomous."""
        return self.rate_scale * self.mlp(z / self.state_scale)
