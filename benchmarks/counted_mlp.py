"""The tanh MLP vector field of the engine benchmarks, counting its evaluations."""

from __future__ import annotations

import torch


class CountedMLP(torch.nn.Module):
    """f(t, y) = W2 tanh(W1 y + b1) + b2 with dims dim-hidden-dim, seeded with 0; counts calls."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, dim)
        )
        self.nfev = 0

    def forward(self, t, y):
        self.nfev += 1
        return self.net(y)
