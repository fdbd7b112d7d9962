"""Data and the four models of Chen et al. (2018), Table 1, scaled to scikit-learn's 8x8 digits.

The architecture follows the authors' released MNIST example (odenet_mnist.py in torchdiffeq's examples folder):
conv downsampling -> 6 pre-activation residual blocks, or one ODE block -> GroupNorm, ReLU, average
pooling, linear head. The ODE block's field is the residual block's branch with time as an extra
input channel of each convolution (and a third GroupNorm), integrated over t in [0, 1].
Images are 8x8 here, not 28x28: one stride-2 convolution (8x8 -> 4x4) instead of two, width 32.
Engine only: the ODE block calls sonode.ode.odeint / odeint_adjoint; no audio code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sonode.ode import odeint, odeint_adjoint

WIDTH = 32  # channels of the feature maps (the paper: 64 for 28x28 MNIST)
MLP_HIDDEN = 300  # the paper's 1-layer MLP: one hidden layer of 300 units (784-300-10: 0.24 M)
N_CLASSES = 10
TEST_FRACTION = 1 / 3  # 599 test images out of 1797: one image = 0.17 percentage points
ODE_TOL = 1e-3  # rtol = atol of the ODE-Net's dopri5 solve (the released example's --tol default)


def load_digits_split() -> dict:
    """scikit-learn's bundled 8x8 digits (1797 images, shipped in the wheel: no download).

    Returns {"x_train": (1198, 1, 8, 8) float32, "y_train": (1198,) int64, "x_test": (599, 1, 8, 8),
    "y_test": (599,), "background": the scaled value of a blank pixel}: one fixed stratified split (random_state=0) for every seed and model, like
    MNIST's fixed test set; pixels scaled by the training set's mean and standard deviation.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, stratify=y, random_state=0)
    mean, std = float(x_tr.mean()), float(x_tr.std())
    as_t = torch.from_numpy
    return {
        "x_train": as_t((x_tr - mean) / std),
        "y_train": as_t(y_tr),
        "x_test": as_t((x_te - mean) / std),
        "y_test": as_t(y_te),
        "background": -mean / std,
    }


def random_shift(x: torch.Tensor, background: float, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of (B, 1, 8, 8) by -1, 0 or +1 pixel in each direction (the released example's
    random-crop augmentation at this scale); uncovered pixels take the ``background`` value."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=background)
    dy, dx = torch.randint(0, 3, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, w)
    return padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(32, C) groups, as in the released example."""
    return nn.GroupNorm(min(32, channels), channels)


def downsampling(width: int) -> nn.Sequential:
    """(B, 1, 8, 8) -> (B, width, 4, 4)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, 1, 1),
        norm(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 4, 2, 1),
    )


def head(width: int) -> nn.Sequential:
    """(B, width, 4, 4) -> (B, 10) logits."""
    return nn.Sequential(norm(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, N_CLASSES))


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(norm(conv(relu(norm(x))))))."""

    def __init__(self, width: int):
        super().__init__()
        self.branch = nn.Sequential(
            norm(width), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1, bias=False),
            norm(width), nn.ReLU(), nn.Conv2d(width, width, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ConcatConv2d(nn.Module):
    """3x3 convolution of [t, x]: the time enters as one constant extra input channel."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(width + 1, width, 3, 1, 1)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = torch.ones_like(x[:, :1]) * t.to(x.dtype)
        return self.conv(torch.cat([tt, x], dim=1))


class ODEFunc(nn.Module):
    """dz/dt = f(t, z): the residual branch with time as an input channel; counts its calls (nfe)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm1, self.conv1 = norm(width), ConcatConv2d(width)
        self.norm2, self.conv2 = norm(width), ConcatConv2d(width)
        self.norm3 = norm(width)
        self.nfe = 0

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        out = self.conv1(t, torch.relu(self.norm1(z)))
        out = self.conv2(t, torch.relu(self.norm2(out)))
        return self.norm3(out)


class ODEBlock(nn.Module):
    """z(1) of dz/dt = f(t, z), z(0) = x, by the sonode engine.

    method "rk4" (classical RK4), "reversible_heun" or "reversible_rk4": ``n_steps`` steps of
    1 / n_steps; "dopri5": adaptive with rtol = atol = ``tol``. adjoint_mode None: gradients by backprop through the solver (RK-Net);
    "backsolve": the paper's continuous adjoint (ODE-Net; memory O(1) in the number of steps);
    "checkpoint": sonode's discrete adjoint (gradient = backprop's to round-off); "reversible" (with
    the reversible methods): the reversible adjoint (backprop's gradient at O(1) memory, docs/reversible.md).
    """

    def __init__(self, width: int, method: str, adjoint_mode: str | None, n_steps: int = 6, tol: float = ODE_TOL):
        super().__init__()
        if method not in ("rk4", "dopri5", "reversible_heun", "reversible_rk4"):
            raise ValueError(f"unknown ODE block method {method!r}")
        self.func = ODEFunc(width)
        self.method, self.adjoint_mode, self.n_steps, self.tol = method, adjoint_mode, n_steps, tol

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.tensor([0.0, 1.0], dtype=torch.float64)
        kw = {"method": self.method}
        if self.method != "dopri5":  # fixed step
            kw["options"] = {"step_size": 1.0 / self.n_steps}
        else:
            kw["rtol"] = kw["atol"] = self.tol
        if self.adjoint_mode is None:
            return odeint(self.func, x, t, **kw)[-1]
        return odeint_adjoint(self.func, x, t, adjoint_options={"mode": self.adjoint_mode}, **kw)[-1]


def build_model(name: str, depth: int = 6, width: int = WIDTH, tol: float = ODE_TOL) -> nn.Module:
    """One of the table's models.

    name: "mlp" (64-300-10, ReLU), "resnet" (``depth`` residual blocks), "rknet" (one ODE block,
    RK4 with ``depth`` steps, backprop), "odenet" (one ODE block, dopri5 at ``tol``, backsolve
    adjoint), "odenet-fixed" (one ODE block, RK4 with ``depth`` steps, backsolve adjoint).
    Input (B, 1, 8, 8) float32, output (B, 10) logits.
    """
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, N_CLASSES))
    if name == "resnet":
        features = nn.Sequential(*[ResBlock(width) for _ in range(depth)])
    elif name == "rknet":
        features = ODEBlock(width, "rk4", None, n_steps=depth)
    elif name == "odenet":
        features = ODEBlock(width, "dopri5", "backsolve", tol=tol)
    elif name == "odenet-fixed":
        features = ODEBlock(width, "rk4", "backsolve", n_steps=depth)
    else:
        raise ValueError(f"unknown model {name!r}")
    return nn.Sequential(downsampling(width), features, head(width))


def n_params(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def ode_func(model: nn.Module) -> ODEFunc | None:
    """The ODEFunc of a model with an ODE block (for counting evaluations), else None."""
    for m in model.modules():
        if isinstance(m, ODEFunc):
            return m
    return None
