"""The fast solver of the audio ODE: exact oscillation, adaptive integration of the slow part.

With the field of `sonode.model.field.ModalField`, mode k obeys dc_k/dt = (λ_k + γ_k(e)) c_k,
λ_k = σ_k + iω_k. Writing c_k(t) = c_k(0) · exp(λ_k t + Γ_k(t)) gives the exact solution once the
complex "envelope" Γ is known, and Γ solves

    dΓ_k/dt = γ_k(e(t)),   e_k(t) = |c_k(0)|² · exp(2 σ_k t + 2 Re Γ_k(t)),   Γ(0) = 0,

an ODE with no oscillation in it: its solution varies on the time scale of the sound's envelope
(milliseconds to seconds), not of its waveform. The engine integrates it adaptively (dopri5) and
reads it at every output time through its dense output at no extra cost, so a segment of 288
samples takes a handful of steps instead of 288 Lawson RK4 steps of four evaluations each, and
any output rate costs the same. Gradients come from the engine's checkpointed adjoint of this
ODE (or backprop through it), plus autograd through the closed-form oscillation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sonode.model.device import on
from sonode.model.field import ModalField
from sonode.model.oscillator import OscillatorBank
from sonode.ode import odeint, odeint_adjoint

RTOL = 1e-6  # local error of Γ, i.e. relative amplitude/phase error per step: ≈ −120 dB
ATOL = 1e-8
# Γ is solved at nodes this far apart and read between them by cubic Hermite interpolation (its
# derivative at a node is the field itself). The engine's dense output at every audio sample costs
# several times the whole solve; Γ varies on envelope time scales, and the interpolation error,
# ≤ NODE_SPACING_S⁴/384 · max|d⁴Γ/dt⁴|, is ≈ −130 dB for envelopes changing at ~100/s and
# ≈ −70 dB at 1000/s (a 1 ms attack); the discretisation check measures what it really is.
NODE_SPACING_S = 2e-3
HERMITE_MATRIX_MAX_NODES = 32
READOUT_CHUNK_SAMPLES = (
    8192  # samples of a graph-free read-out summed in one piece (see modal_readout)
)


class EnvelopeODE(nn.Module):
    """dΓ/dt for a batch of start states; the state is g = [Re Γ, Im Γ], shape (B, 2K)."""

    def __init__(self, bank: OscillatorBank, field: ModalField, energy0: torch.Tensor):
        super().__init__()
        self.bank, self.field = bank, field
        self.energy0 = energy0  # (B, K): |c_k(0)|²

    def forward(self, t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        k = self.field.n_modes
        energy = self.energy0 * torch.exp(2.0 * (self.bank.decay_per_s * t + g[..., :k]))
        joined = getattr(self.field, "joined_rates", None)  # a ModalField: no split and cat
        if joined is not None:
            return joined(energy)
        growth, shift = self.field.rates(energy)
        return torch.cat([growth, shift], dim=-1)


def modal_coordinates(
    bank: OscillatorBank,
    field: ModalField | None,
    z0: torch.Tensor,
    local_s: torch.Tensor,
    gradient: str | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> torch.Tensor:
    """Complex mode coordinates c(t) = c(0)·exp(λt + Γ(t)) of the trajectories from ``z0``.

    Args:
        bank: the oscillator bank (L).
        field: the modal field (γ); None for a linear ODE (Γ ≡ 0).
        z0: start states, shape (B, 2K), layout [u; v] (c = u + i v).
        local_s: output times in seconds, shape (n,), monotone, local_s[0] == 0 (may
            decrease: integration backward in time).
        gradient: None (no graph), "adjoint" (engine's checkpointed adjoint of the envelope ODE)
            or "backprop" (autograd through the solver).
        rtol, atol: tolerances of the envelope solve.

    Returns:
        complex tensor (complex128 for a float64 model) (n, B, K).
    """
    k = bank.n_modes
    u0, v0 = z0[..., :k], z0[..., k:]
    with torch.set_grad_enabled(gradient is not None and torch.is_grad_enabled()):
        exponent = _exponent(bank, field, u0 * u0 + v0 * v0, local_s, gradient, rtol, atol)
        return torch.complex(u0, v0) * torch.exp(exponent)


@torch.no_grad()
def modal_factors(
    bank: OscillatorBank,
    field: ModalField | None,
    z0: torch.Tensor,
    local_s: torch.Tensor,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> torch.Tensor:
    """exp(λ_k t + Γ_k(t)) of the trajectories from ``z0`` (no gradient), so that
    c(t) = c(0) · factors: the basis in which a trajectory is linear in its start state once the
    envelope Γ (which depends on z0 through the mode energies only) is held fixed.

    Arguments as in `modal_coordinates`. Returns complex (n, B, K).
    """
    k = bank.n_modes
    energy0 = z0[..., :k] ** 2 + z0[..., k:] ** 2
    exponent = _exponent(bank, field, energy0, local_s, None, rtol, atol)
    return torch.exp(exponent.expand(local_s.shape[0], z0.shape[0], k))


def _exponent(bank, field, energy0, local_s, gradient, rtol, atol) -> torch.Tensor:
    """λ_k t + Γ_k(t) at ``local_s`` for start energies ``energy0`` (B, K): complex (n, B, K),
    or (n, 1, K) when there is no envelope to solve (a linear ODE: the same for every start)."""
    k = bank.n_modes
    t = local_s.to(bank.omega_rad_per_s.dtype)[:, None]
    exponent = torch.complex(bank.decay_per_s * t, bank.omega_rad_per_s * t)[:, None, :]
    if needs_envelope(field, gradient):
        envelope = _envelope(bank, field, energy0, local_s, gradient, rtol, atol)
        exponent = exponent + torch.complex(envelope[..., :k], envelope[..., k:])
    return exponent


def modal_solve(
    bank: OscillatorBank,
    field: ModalField | None,
    z0: torch.Tensor,
    local_s: torch.Tensor,
    gradient: str | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> torch.Tensor:
    """States z(t) of dz/dt = L z + γ(e(z)) ⊙ z from z0, read at ``local_s``: (n, B, 2K).

    Arguments as in `modal_coordinates`; the states are laid out [u; v] like z0.
    """
    c = modal_coordinates(bank, field, z0, local_s, gradient, rtol, atol)
    return torch.cat([c.real, c.imag], dim=-1)


def needs_envelope(field: ModalField | None, gradient: str | None) -> bool:
    """Γ must be integrated unless the ODE is linear: no field, or a zero field and no gradient
    wanted (a zero output layer still has a gradient, so training must integrate it)."""
    return field is not None and (gradient is not None or not field.is_zero())


def _envelope(
    bank: OscillatorBank,
    field: ModalField,
    energy0: torch.Tensor,
    local_s: torch.Tensor,
    gradient: str | None,
    rtol: float,
    atol: float,
) -> torch.Tensor:
    """g = [Re Γ, Im Γ] at local_s, shape (n, B, 2K): dopri5 at nodes, cubic Hermite between."""
    t = local_s.to(energy0.dtype)
    nodes, values, slopes = envelope_nodes(
        bank, field, energy0, float(t[0]), float(t[-1]), gradient, rtol, atol
    )
    with torch.set_grad_enabled(gradient is not None and torch.is_grad_enabled()):
        return hermite(nodes, values, slopes, t)


def envelope_nodes(
    bank: OscillatorBank,
    field: ModalField,
    energy0: torch.Tensor,
    first_s: float,
    last_s: float,
    gradient: str | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Γ solved at equally spaced nodes from first_s (where Γ = 0) to last_s, ≤ NODE_SPACING_S apart.

    Args:
        bank, field, gradient, rtol, atol: as in `modal_coordinates`.
        energy0: |c_k|² at first_s, shape (B, K).
        first_s, last_s: local times in seconds (last_s < first_s integrates backward).

    Returns:
        (nodes (N,) float64 seconds, values g = [Re Γ, Im Γ] (N, B, 2K), slopes dg/dt (N, B, 2K)).
    """
    func = EnvelopeODE(bank, field, energy0)
    # A field may bound the step (a limit cycle: at its orbit the error estimate vanishes, the steps
    # grow past the stability bound of its attraction, and the solution's gradient — the discrete
    # map's — is then wrong by orders of magnitude while the solution itself is right)
    max_step_s = getattr(field, "max_step_s", None)
    options = None if max_step_s is None else {"max_step": max_step_s}
    like = on(energy0)  # the states' device and dtype
    g0 = torch.zeros(energy0.shape[:-1] + (2 * field.n_modes,), **like)
    n_nodes = max(2, math.ceil(abs(last_s - first_s) / NODE_SPACING_S - 1e-9) + 1)
    nodes = torch.linspace(first_s, last_s, n_nodes, **like)
    if gradient is None:
        with torch.no_grad():
            values = odeint(func, g0, nodes, method="dopri5", rtol=rtol, atol=atol, options=options)
    elif gradient == "adjoint":
        params = [*field.parameters(), bank.raw_damping, energy0]
        values = odeint_adjoint(
            func,
            g0,
            nodes,
            method="dopri5",
            rtol=rtol,
            atol=atol,
            options=options,
            adjoint_params=[p for p in params if p.requires_grad],
            adjoint_options={"mode": "checkpoint"},  # the exact discrete adjoint, not the default
        )
    elif gradient == "backprop":
        values = odeint(func, g0, nodes, method="dopri5", rtol=rtol, atol=atol, options=options)
    else:
        raise ValueError(f"gradient must be 'adjoint', 'backprop' or None, got {gradient!r}")
    with torch.set_grad_enabled(gradient is not None and torch.is_grad_enabled()):
        slopes = func(nodes[:, None, None], values)  # dΓ/dt at every node, one batched evaluation
    return nodes, values, slopes


def hermite(
    nodes: torch.Tensor, values: torch.Tensor, slopes: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Cubic Hermite interpolation of (values, slopes) at equally spaced ``nodes`` (n_nodes, ...),
    read at times ``t`` (n,) inside [nodes[0], nodes[-1]] (either direction): (n, ...).

    Few nodes (a segment's window): one product with the (n, 2·n_nodes) basis matrix, a single
    cheap autograd node. Many nodes (a long free run): four gathers, linear in n."""
    n_nodes = nodes.shape[0]
    step = float(nodes[1] - nodes[0])
    position = torch.clamp((t - nodes[0]) / step, 0.0, n_nodes - 1.0)
    left = torch.clamp(position.floor().long(), max=n_nodes - 2)
    weights = _hermite_basis((position - left).to(values.dtype), step)
    if n_nodes <= HERMITE_MATRIX_MAX_NODES:
        basis = torch.zeros(t.shape[0], 2 * n_nodes, **on(values))
        rows = torch.arange(t.shape[0], device=values.device)
        for column, weight in zip(
            (left, left + 1, n_nodes + left, n_nodes + left + 1), weights, strict=False
        ):
            basis[rows, column] = weight
        stacked = torch.cat([values, slopes]).reshape(2 * n_nodes, -1)
        return (basis @ stacked).reshape((t.shape[0],) + values.shape[1:])
    shape = (-1,) + (1,) * (values.ndim - 1)
    w00, w01, w10, w11 = (w.reshape(shape) for w in weights)
    return w00 * values[left] + w01 * values[left + 1] + w10 * slopes[left] + w11 * slopes[left + 1]


def hermite_fractions(
    values: torch.Tensor, slopes: torch.Tensor, step: float, fractions: torch.Tensor
) -> torch.Tensor:
    """`hermite` read at the same fractions (F,) in [0, 1] of every interval of nodes ``step``
    apart, values and slopes (n_nodes, ...): (n_nodes − 1, F, ...). Four terms per output, where
    `hermite`'s basis matrix would multiply 2·n_nodes."""
    weights = torch.stack(_hermite_basis(fractions.to(values.dtype), step), 1)  # (F, 4)
    stacked = torch.stack(
        [values[:-1], values[1:], slopes[:-1], slopes[1:]], 1
    )  # (n_nodes − 1, 4, ...)
    out = weights @ stacked.reshape(stacked.shape[0], 4, -1)
    return out.reshape((stacked.shape[0], fractions.shape[0]) + values.shape[1:])


def _hermite_basis(th: torch.Tensor, step: float) -> tuple[torch.Tensor, ...]:
    """Weights of (left value, right value, left slope, right slope) at fractions th of an interval."""
    th2 = th * th
    th3 = th2 * th
    return 2 * th3 - 3 * th2 + 1, 3 * th2 - 2 * th3, step * (th3 - 2 * th2 + th), step * (th3 - th2)


class _ModalReadout(torch.autograd.Function):
    """x[t, b] = Re Σ_k a[b, k] · exp(λ_k t + Γ[t, b, k]) with a hand-written backward.

    The sum over modes is the readout of every trajectory sample, the bulk of a training step
    (samples × segments × modes complex terms). Autograd would keep several (T, B, K) complex
    intermediates and walk them with generic complex kernels; this keeps one and walks it a few
    times. Γ arrives as real g = [Re Γ, Im Γ] (T, B, 2K) or None (Γ ≡ 0). Gradients (PyTorch's
    convention for complex inputs, grad = ∂L/∂Re + i ∂L/∂Im): with P = a·exp(λt + Γ) and
    g_x = ∂L/∂x, ∂L/∂Γ = g_x·conj(P), ∂L/∂a = Σ_t g_x·conj(P/a), ∂L/∂λ = Σ_{t,b} g_x·t·conj(P).
    """

    @staticmethod
    def forward(ctx, a, lam, envelope, t):
        rotation = torch.exp(lam[None, :] * t[:, None])[
            :, None, :
        ]  # (T, 1, K), shared by all segments
        if envelope is None:
            q = rotation.expand(t.shape[0], a.shape[0], a.shape[1])
        else:
            k = a.shape[1]
            # in place: each (T, B, K) complex temporary is 150 MB for a run of 256 segments, and
            # this product is a fit's peak memory (measured on a 300 s clip)
            q = torch.complex(envelope[..., :k], envelope[..., k:]).exp_().mul_(rotation)
        ctx.save_for_backward(a, q, t)
        ctx.has_envelope = envelope is not None
        return torch.einsum("bk,tbk->tb", a, q).real

    @staticmethod
    def backward(ctx, grad_x):
        a, q, t = ctx.saved_tensors
        g = grad_x.to(q.dtype)
        grad_a = torch.einsum("tb,tbk->bk", g, q).conj() if ctx.needs_input_grad[0] else None
        grad_lam = None
        if ctx.needs_input_grad[1]:
            # Σ_{t,b} t·g_x·P = Σ_b a_b · Σ_t (t·g_x) q: a batched product like grad_a's (the
            # (T, B, K) sum weighted by t, read across its strides, cost 3.5 % of a step)
            timed = torch.einsum("tb,tbk->bk", g * t.to(q.dtype)[:, None], q)
            grad_lam = torch.sum(timed * a, dim=0).conj()
        grad_envelope = None
        if ctx.has_envelope and ctx.needs_input_grad[2]:
            # conj(g_x·P) split into real and imaginary parts, written in place (no negated copy)
            weighted = (g[..., None] * q).mul_(a[None])  # g_x·P, (T, B, K), one temporary
            k = q.shape[-1]
            grad_envelope = torch.empty(q.shape[:-1] + (2 * k,), **on(weighted))
            grad_envelope[..., :k] = weighted.real
            torch.neg(weighted.imag, out=grad_envelope[..., k:])
        return grad_a, grad_lam, grad_envelope, None


def modal_readout(
    bank: OscillatorBank,
    field: ModalField | None,
    z0: torch.Tensor,
    local_s: torch.Tensor,
    readout: torch.Tensor,
    gradient: str | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    end_s: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Read-out samples x(t) = C z(t) (without bias) of the trajectories from ``z0``.

    Same as ``modal_solve(...) @ readout`` without forming the (n, B, 2K) states.

    Args:
        bank, field, z0, local_s, gradient, rtol, atol: as in `modal_coordinates`.
        readout: C, shape (2K,), over the [u; v] layout.
        end_s: also return the states z(end_s), a time inside local_s's span, from the same
            envelope solve (Γ read from its nodes): a training step's continuity defects need the
            segments' states at the hop, and a second solve over the hop and its adjoint cost a
            quarter of the step (0.13 of 0.47 CPU s, 1.5 s clip at 16 kHz).

    Returns:
        (n, B) in the readout's dtype; with ``end_s``, ((n, B), (B, 2K) states [u; v] at end_s).
    """
    k = bank.n_modes
    with torch.set_grad_enabled(gradient is not None and torch.is_grad_enabled()):
        # x = Σ_k C_u,k Re c_k + C_v,k Im c_k = Re Σ_k c_k (C_u,k − i C_v,k)
        c0 = torch.complex(z0[..., :k], z0[..., k:])
        a = c0 * torch.complex(readout[:k], -readout[k:])
        lam = torch.complex(bank.decay_per_s, bank.omega_rad_per_s)
        t = local_s.to(readout.dtype)
        nodes = None
        if needs_envelope(field, gradient):
            energy0 = z0[..., :k] ** 2 + z0[..., k:] ** 2
            nodes = envelope_nodes(
                bank, field, energy0, float(t[0]), float(t[-1]), gradient, rtol, atol
            )

        def envelope(times: torch.Tensor) -> torch.Tensor | None:  # Γ read at ``times``
            return None if nodes is None else hermite(*nodes, times)

        if end_s is not None:
            exponent = lam * end_s
            if nodes is not None:
                at_end = envelope(torch.tensor([end_s], **on(t)))[0]  # (B, 2K)
                exponent = exponent + torch.complex(at_end[..., :k], at_end[..., k:])
            ends = c0 * torch.exp(exponent)
            x = _ModalReadout.apply(a, lam, envelope(t), t)
            return x, torch.cat([ends.real, ends.imag], dim=-1)
        if torch.is_grad_enabled() or t.shape[0] <= READOUT_CHUNK_SAMPLES:
            return _ModalReadout.apply(a, lam, envelope(t), t)
        # Without a graph, a long read-out (a free run over seconds) is read and summed in pieces:
        # one (T, B, K) complex exp of 96000 samples took 3.9 s on a loaded machine, during which
        # SIGINT could not act; and Γ itself, (T, B, 2K) float64, is read per piece from its
        # nodes: read whole, 2 s at 48 kHz of a 513-mode continuation peaked at +2.2 GB (#30).
        out = torch.empty((t.shape[0],) + a.shape[:-1], dtype=a.real.dtype, device=a.device)
        for begin in range(0, t.shape[0], READOUT_CHUNK_SAMPLES):
            piece = t[begin : begin + READOUT_CHUNK_SAMPLES]
            out[begin : begin + piece.shape[0]] = _ModalReadout.apply(
                a, lam, envelope(piece), piece
            )
        return out
