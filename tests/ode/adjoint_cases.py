"""Shared test material for the adjoint and forward-mode tests: a tiny MLP field and a reference gradient."""

from __future__ import annotations

import torch
from torch import nn

from sonode.ode import DenseLinear, odeint, odeint_adjoint


class MLPField(nn.Module):
    """f(t, y) = W2 tanh(W1 [y, t] + b1) + b2: time-dependent, nonlinear, float64 by default."""

    def __init__(self, d: int = 3, hidden: int = 8, seed: int = 0, dtype=torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(0.6 * torch.randn(hidden, d + 1, generator=gen, dtype=dtype))
        self.b1 = nn.Parameter(0.1 * torch.randn(hidden, generator=gen, dtype=dtype))
        self.w2 = nn.Parameter(0.6 * torch.randn(d, hidden, generator=gen, dtype=dtype))
        self.b2 = nn.Parameter(0.1 * torch.randn(d, generator=gen, dtype=dtype))

    def forward(self, t, y):
        # t is 0-d, or (B,) per sample (per_sample=True): one time column per batch row
        tt = t.to(y.dtype).reshape(*t.shape, *([1] * (y.dim() - t.dim()))).expand(*y.shape[:-1], 1)
        return torch.tanh(torch.cat([y, tt], -1) @ self.w1.T + self.b1) @ self.w2.T + self.b2


def lawson_linear(d: int = 3, seed: int = 1) -> DenseLinear:
    """A trainable damped-rotation L for lawson_rk4 (A requires grad)."""
    gen = torch.Generator().manual_seed(seed)
    rot = torch.zeros(d, d, dtype=torch.float64)
    rot[0, 1], rot[1, 0] = 3.0, -3.0
    A = (
        rot
        - 0.2 * torch.eye(d, dtype=torch.float64)
        + 0.1 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    )
    return DenseLinear(A.requires_grad_())


def case_options(method: str, **kw) -> dict:
    if method == "lawson_rk4":
        kw.setdefault("linear", lawson_linear())
    return kw


def weighted_loss(ys: torch.Tensor, seed: int = 2) -> torch.Tensor:
    """<W, ys> with a fixed random W: every output time and component gets its own cotangent."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(ys.shape, generator=gen, dtype=ys.dtype) * ys).sum()


def backprop_grads(func, y0, t, inputs, method, options, rtol=1e-7, atol=1e-9):
    """Reference: gradients of weighted_loss by ordinary autograd through odeint."""
    ys = odeint(func, y0, t, method=method, rtol=rtol, atol=atol, options=options)
    return ys, torch.autograd.grad(weighted_loss(ys), inputs)


def max_rel_err(got, ref) -> float:
    return max(
        float((g - r).norm() / r.norm().clamp_min(1e-300)) for g, r in zip(got, ref, strict=False)
    )


def adjoint_gradcheck(method: str, options: dict, adjoint_options: dict, t: torch.Tensor) -> bool:
    """Finite differences (float64 gradcheck) of the whole map (y0, W) -> ys of
    y' = sin(W y)·(1 + t), 2 states, solved tightly and differentiated by ``odeint_adjoint`` with
    ``adjoint_options``; ``t``: output times (n,)."""
    W = (
        0.5 * torch.randn(2, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ).requires_grad_()
    y0 = torch.tensor([0.4, -0.7], dtype=torch.float64, requires_grad=True)

    def f(y0, W):
        def field(t, y):
            return torch.sin(y @ W.T) * (1 + t)

        return odeint_adjoint(
            field,
            y0,
            t,
            method=method,
            rtol=1e-11,
            atol=1e-13,
            options=options,
            adjoint_params=[W],
            adjoint_options=adjoint_options,
        )

    return torch.autograd.gradcheck(f, (y0, W), atol=1e-6, rtol=1e-5)
