"""The read-out's hand-written backward (`sonode.model.modal._ModalReadout`, the bulk of a training
step) against finite differences and against autograd through the plain formula."""

from __future__ import annotations

import torch

from sonode.model.modal import _ModalReadout


def _inputs(seed: int = 0, t_len: int = 7, batch: int = 3, modes: int = 4):
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape, dtype=torch.float64):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    a = normal(batch, modes, dtype=torch.complex128).requires_grad_()
    lam = torch.complex(-5.0 * normal(modes).abs(), 300.0 * normal(modes)).requires_grad_()
    envelope = (0.1 * normal(t_len, batch, 2 * modes)).requires_grad_()
    t = torch.linspace(0.0, 0.01, t_len, dtype=torch.float64)
    return a, lam, envelope, t


def _plain(a, lam, envelope, t):
    """x[t, b] = Re Σ_k a[b, k] exp(λ_k t + Γ[t, b, k]) by autograd's own complex kernels."""
    k = a.shape[1]
    gamma = torch.complex(envelope[..., :k], envelope[..., k:])
    return torch.sum(a[None] * torch.exp(lam[None, None, :] * t[:, None, None] + gamma), -1).real


def test_readout_gradients_pass_gradcheck():
    a, lam, envelope, t = _inputs()
    assert torch.autograd.gradcheck(
        lambda a, lam, envelope: _ModalReadout.apply(a, lam, envelope, t),
        (a, lam, envelope),
        eps=1e-7,
        atol=1e-6,
        rtol=1e-5,
    )


def test_readout_gradients_equal_autograd_of_the_formula():
    for envelope_on in (True, False):
        a, lam, envelope, t = _inputs(seed=3, t_len=11, batch=5, modes=6)
        weights = torch.randn(t.shape[0], a.shape[0], dtype=torch.float64)
        if not envelope_on:
            envelope = None
        ours = _ModalReadout.apply(a, lam, envelope, t)
        zero = torch.zeros(t.shape[0], a.shape[0], 2 * a.shape[1], dtype=torch.float64)
        plain = _plain(a, lam, zero if envelope is None else envelope, t)
        assert torch.allclose(ours, plain, rtol=1e-12, atol=1e-12)
        wanted = [a, lam] + ([envelope] if envelope is not None else [])
        mine = torch.autograd.grad(torch.sum(weights * ours), wanted)
        reference = torch.autograd.grad(torch.sum(weights * plain), wanted)
        for got, expected in zip(mine, reference, strict=True):
            assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)
