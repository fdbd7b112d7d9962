"""The linear part of the audio ODE: a bank of damped oscillators, integrated exactly."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class OscillatorBank(nn.Module):
    """L = block-diag of 2×2 rotation-decay blocks [[σ_k, −ω_k], [ω_k, σ_k]].

    The state (..., 2K) is laid out as [u_1..u_K, v_1..v_K]; mode k is the complex number
    u_k + i v_k, which L multiplies by s_k = σ_k + iω_k. exp(L h) is a rotation by ω_k h times a
    decay e^{σ_k h}, so `expm_apply` is exact for any step h: the integrator's step size is not
    limited by the highest frequency (docs/design.md). It implements the engine's LinearOperator.

    Args:
        decay_per_s: σ, shape (K,), ≤ 0 (1/s). Stored as σ = −softplus(ρ) so no mode can grow
            during training either: a free run of the linear part never explodes.
        omega_rad_per_s: ω, shape (K,) (rad/s).
    """

    def __init__(self, decay_per_s: torch.Tensor, omega_rad_per_s: torch.Tensor):
        super().__init__()
        damping = torch.clamp(-decay_per_s.to(torch.float64), min=1e-3)
        # inverse softplus, written to stay finite for large damping
        self.raw_damping = nn.Parameter(damping + torch.log(-torch.expm1(-damping)))
        self.omega_rad_per_s = nn.Parameter(omega_rad_per_s.to(torch.float64).clone())

    @property
    def n_modes(self) -> int:
        return int(self.omega_rad_per_s.shape[0])

    @property
    def decay_per_s(self) -> torch.Tensor:
        """σ, shape (K,), in 1/s (always < 0)."""
        return -F.softplus(self.raw_damping)

    def expm_apply(self, h: float, z: torch.Tensor) -> torch.Tensor:
        """exp(L h) z for a step of h seconds (any sign); z has shape (..., 2K)."""
        k = self.n_modes
        u, v = z[..., :k], z[..., k:]
        cos, sin = self._rotation(h)
        return torch.cat([cos * u - sin * v, sin * u + cos * v], dim=-1)

    def _rotation(self, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(e^{σh} cos ωh, e^{σh} sin ωh), each (K,).

        Without autograd (rendering, the adjoint's forward sweep) the factors of the few step
        sizes in use are cached: a long free run applies the same three exponentials millions of
        times. The cache is keyed on the parameters' version counters, so any update (an
        optimiser step, load_state_dict) invalidates it.
        """
        if torch.is_grad_enabled() and (
            self.raw_damping.requires_grad or self.omega_rad_per_s.requires_grad
        ):
            return self._compute_rotation(h)
        key = (
            float(h),
            self.raw_damping._version,
            self.omega_rad_per_s._version,
            id(self.raw_damping),
            id(self.omega_rad_per_s),
            self.raw_damping.dtype,  # Module.to() swaps the data, not the version or the id
            self.raw_damping.device,
        )
        cache = self.__dict__.setdefault("_rotation_cache", {})
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            with torch.no_grad():
                cache[key] = self._compute_rotation(h)
        return cache[key]

    def _compute_rotation(self, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        scale = torch.exp(self.decay_per_s * h)
        return scale * torch.cos(self.omega_rad_per_s * h), scale * torch.sin(
            self.omega_rad_per_s * h
        )
