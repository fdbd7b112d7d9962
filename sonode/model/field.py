"""The neural part of the audio ODE: amplitude-dependent decay and pitch of each mode.

The field is N_θ(z) = γ_θ(e(z)) ⊙ z in the modes' complex coordinates c_k = u_k + i v_k, where
e_k = |c_k|² is mode k's energy and γ_θ(e) ∈ C^K comes from a small tanh MLP. Re γ_k changes
mode k's decay (or, negative damping, sustains it: a limit cycle), Im γ_k its frequency, both as
functions of every mode's energy. This is the form that nonlinear modal audio models take
(pitch glides with amplitude, energy-dependent damping, Hopf-type self-oscillation), and it has
two properties a general MLP lacks:

* it cannot create energy at new frequencies: a mode is only modulated by the slowly varying
  energies, so the model's content stays at its modes' frequencies (below the clip's Nyquist) and
  nothing aliases back into the band when the model is read on the training grid;
* in each mode's rotating frame the dynamics are slow (see `sonode.model.modal`), so the ODE can
  be integrated with steps of many samples, the oscillation itself being exact.
"""

from __future__ import annotations

import torch
from torch import nn


class ModalField(nn.Module):
    """γ_θ(e) = rate_scale · MLP(log1p(e / energy_scale)), and the field N(z) = γ(e(z)) ⊙ z.

    The last layer starts at zero, so a fresh model is exactly the identified linear system and
    training only moves it where the loss improves.

    Args:
        n_modes: K (latent dimension d = 2K, laid out [u_1..u_K, v_1..v_K]).
        hidden: width of the hidden layers.
        layers: number of hidden layers (≥ 1).
        energy_scale: typical mode energy |c_k|² (normalised amplitude squared); features are
            log1p(e/energy_scale), linear for small energies and logarithmic for large ones.
        rate_scale: typical size of γ in 1/s (decay) and rad/s (frequency shift).
    """

    def __init__(
        self, n_modes: int, hidden: int, layers: int, energy_scale: float, rate_scale: float
    ):
        super().__init__()
        widths = [n_modes] + [hidden] * layers
        blocks: list[nn.Module] = []
        for n_in, n_out in zip(widths[:-1], widths[1:], strict=False):
            blocks += [nn.Linear(n_in, n_out, dtype=torch.float64), nn.Tanh()]
        out = nn.Linear(widths[-1], 2 * n_modes, dtype=torch.float64)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(*blocks, out)
        self.n_modes = n_modes
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale), dtype=torch.float64))
        self.register_buffer("rate_scale", torch.tensor(float(rate_scale), dtype=torch.float64))

    def rates(self, energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Re γ, Im γ) for mode energies ``energy`` (..., K): each (..., K), in 1/s and rad/s."""
        out = self.joined_rates(energy)
        return out[..., : self.n_modes], out[..., self.n_modes :]

    def joined_rates(self, energy: torch.Tensor) -> torch.Tensor:
        """[Re γ, Im γ] for mode energies ``energy`` (..., K): (..., 2K), in 1/s and rad/s.

        The layers' own ``forward`` is called, not the modules: `nn.Module.__call__`'s hook
        machinery cost ~20-40 µs per evaluation (of ~60 at a check's 8 segments), and a training
        step evaluates the field ~600 times, the final check ~9000 times. The same operations:
        bit-identical, gradients included (no hooks are set on the layers)."""
        h = torch.log1p(energy / self.energy_scale)
        for layer in self.mlp._modules.values():
            h = layer.forward(h)
        return self.rate_scale * h

    def is_zero(self) -> bool:
        """True while the output layer is exactly zero (the field vanishes: a linear model)."""
        last = self.mlp[-1]
        return not bool(torch.any(last.weight != 0) or torch.any(last.bias != 0))

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """N(t, z) = γ(e(z)) ⊙ z for states z (..., 2K); t is unused (the field is autonomous).

        This is the field in the latent coordinates, solved by the engine's Lawson RK4 as the
        reference the fast modal solver is checked against.
        """
        k = self.n_modes
        u, v = z[..., :k], z[..., k:]
        growth, shift = self.rates(u * u + v * v)
        return torch.cat([growth * u - shift * v, shift * u + growth * v], dim=-1)
