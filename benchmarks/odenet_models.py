"""Data and the four models of Chen et al. (2018), Table 1, on MNIST digits or scikit-learn's 8x8 digits.

The architecture follows the authors' released MNIST example (odenet_mnist.py in torchdiffeq's examples folder):
conv downsampling -> 6 pre-activation residual blocks, or one ODE block -> GroupNorm, ReLU, average
pooling, linear head. The ODE block's field is the residual block's branch with time as an extra
input channel of each convolution (and a third GroupNorm), integrated over t in [0, 1].
"mnist" (28x28, data/mnist/mnist10k.npz): the paper's scale, two stride-2 convolutions to 7x7, width 64.
"digits8" (8x8, scikit-learn's load_digits): one stride-2 convolution (8x8 -> 4x4), width 32.
Engine only: the ODE block calls sonode.ode.odeint / odeint_adjoint; no audio code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sonode.ode import odeint, odeint_adjoint

MNIST_NPZ = Path(__file__).resolve().parents[1] / "data" / "mnist" / "mnist10k.npz"
MLP_HIDDEN = 300  # the paper's 1-layer MLP: one hidden layer of 300 units (784-300-10: 0.24 M)
N_CLASSES = 10
ODE_TOL = 1e-3  # rtol = atol of the ODE-Net's dopri5 solve (the released example's --tol default)


@dataclass(frozen=True)
class Dataset:
    """Image side (pixels), feature width (channels), stride-2 convolutions, split sizes, augmentation shift."""

    side: int
    width: int
    n_down: int
    n_test: int
    n_val: int  # held out of the training images for the plateau criterion (0: none)
    max_shift: int  # random shifts of up to this many pixels (the example's RandomCrop padding)


DATASETS = {
    # 1797 images: 599 test (one image = 0.17 percentage points), all other images train
    "digits8": Dataset(side=8, width=32, n_down=1, n_test=599, n_val=0, max_shift=1),
    # 10000 images: 2000 test, 8000 training of which 1000 are held out for validation
    "mnist": Dataset(side=28, width=64, n_down=2, n_test=2000, n_val=1000, max_shift=4),
}
WIDTH = DATASETS["digits8"].width


def _raw_images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, side, side) float32 pixel values and (N,) int64 labels of a bundled data set (no download)."""
    if dataset == "digits8":
        from sklearn.datasets import load_digits

        digits = load_digits()  # ships inside the scikit-learn wheel; values 0..16
        return digits.images.astype(np.float32)[:, None], digits.target.astype(np.int64)
    if dataset == "mnist":
        with np.load(MNIST_NPZ, allow_pickle=False) as npz:  # uint8 grey levels 0..255
            return npz["images"].astype(np.float32)[:, None], npz["labels"].astype(np.int64)
    raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASETS)}")


def load_split(dataset: str = "digits8", limit: int | None = None) -> dict:
    """One fixed stratified split (random_state=0) for every seed and model, like MNIST's fixed test set.

    Returns {"x_train": (N_tr, 1, side, side) float32, "y_train": (N_tr,) int64, "x_val", "y_val" (empty
    when the data set holds none out), "x_test", "y_test", "background": the scaled value of a blank
    pixel}; pixels scaled by the training images' mean and standard deviation. ``limit`` keeps a
    stratified subset of that many images first (tests), with the split's proportions.
    """
    from sklearn.model_selection import train_test_split

    x, y = _raw_images(dataset)
    spec = DATASETS[dataset]
    n_test, n_val = spec.n_test, spec.n_val
    if limit is not None and limit < len(y):
        n_test, n_val = (
            max(10, n_test * limit // len(y)),
            (max(10, n_val * limit // len(y)) if n_val else 0),
        )
        x, _, y, _ = train_test_split(x, y, train_size=limit, stratify=y, random_state=0)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=n_test, stratify=y, random_state=0)
    x_va, y_va = x_tr[:0], y_tr[:0]
    if n_val:
        x_tr, x_va, y_tr, y_va = train_test_split(
            x_tr, y_tr, test_size=n_val, stratify=y_tr, random_state=0
        )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    scaled = {
        k: torch.from_numpy((v - mean) / std)
        for k, v in (("x_train", x_tr), ("x_val", x_va), ("x_test", x_te))
    }
    return {
        **scaled,
        "y_train": torch.from_numpy(y_tr),
        "y_val": torch.from_numpy(y_va),
        "y_test": torch.from_numpy(y_te),
        "background": -mean / std,
    }


def load_digits_split() -> dict:
    """scikit-learn's 8x8 digits: 1198 training / 599 test images (see `load_split`)."""
    return load_split("digits8")


def random_shift(
    x: torch.Tensor, background: float, generator: torch.Generator, max_shift: int = 1
) -> torch.Tensor:
    """Shift each image of (B, 1, H, W) by -max_shift..+max_shift pixels in each direction (the released
    example's random-crop augmentation); uncovered pixels take the ``background`` value."""
    b, _, h, w = x.shape
    s = max_shift
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=background)
    dy, dx = torch.randint(0, 2 * s + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (B, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (B, 1, w)
    return padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(32, C) groups, as in the released example."""
    return nn.GroupNorm(min(32, channels), channels)


def downsampling(width: int, n_down: int) -> nn.Sequential:
    """(B, 1, H, W) -> (B, width, H / 2**n_down, W / 2**n_down): conv 3x3, then n_down times
    GroupNorm, ReLU, conv 4x4 stride 2 (the released example: n_down = 2, 28x28 -> 7x7)."""
    layers = [nn.Conv2d(1, width, 3, 1, 1)]
    for _ in range(n_down):
        layers += [norm(width), nn.ReLU(), nn.Conv2d(width, width, 4, 2, 1)]
    return nn.Sequential(*layers)


def head(width: int) -> nn.Sequential:
    """(B, width, h, w) -> (B, 10) logits."""
    return nn.Sequential(
        norm(width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, N_CLASSES)
    )


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(relu(norm(conv(relu(norm(x))))))."""

    def __init__(self, width: int):
        super().__init__()
        self.branch = nn.Sequential(
            norm(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
            norm(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1, bias=False),
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
    1 / n_steps; "dopri5": adaptive with rtol = atol = ``tol``. adjoint_mode None: gradients by
    backprop through the solver (RK-Net);
    "backsolve": the paper's continuous adjoint (ODE-Net; memory O(1) in the number of steps);
    "checkpoint": sonode's discrete adjoint (gradient = backprop's to round-off), one stored state per
    accepted step (checkpoint_every = 1: memory = the states plus one step's graph); "reversible" (with
    the reversible methods): the reversible adjoint (backprop's gradient at O(1) memory, docs/reversible.md).
    """

    def __init__(
        self,
        width: int,
        method: str,
        adjoint_mode: str | None,
        n_steps: int = 6,
        tol: float = ODE_TOL,
    ):
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
        adjoint_options = {"mode": self.adjoint_mode}
        if self.adjoint_mode == "checkpoint":
            adjoint_options["checkpoint_every"] = 1
        return odeint_adjoint(self.func, x, t, adjoint_options=adjoint_options, **kw)[-1]


# ODE-block models: name -> (method, adjoint mode); the step count of the "rk4" ones is the depth L.
ODE_MODELS = {
    "rknet": ("rk4", None),  # backprop through the solver
    # How the ODE-Net is trained: the engine's best gradient, the reversible adjoint of reversible
    # Heun (backprop's gradient at O(1) memory, docs/reversible.md), 6 steps (L = depth).
    "odenet": ("reversible_heun", "reversible"),
    # dopri5 at tol with sonode's exact discrete adjoint (the ODE-Net before issue 31's reversible
    # choice) and with the paper's continuous adjoint, for comparison
    "odenet-checkpoint": ("dopri5", "checkpoint"),
    "odenet-backsolve": ("dopri5", "backsolve"),
    "odenet-fixed": ("rk4", "backsolve"),  # memory sweep: L steps forced, continuous adjoint
    "odenet-fixed-checkpoint": ("rk4", "checkpoint"),  # memory sweep: L steps, discrete adjoint
    "odenet-reversible": ("reversible_heun", "reversible"),  # memory sweep: the trained ODE-Net
    "odenet-reversible-rk4": ("reversible_rk4", "reversible"),  # McCallum–Foster, 8 f per step
}
MODEL_NAMES = ("mlp", "resnet", *ODE_MODELS)


def build_model(
    name: str, depth: int = 6, dataset: str = "digits8", tol: float = ODE_TOL
) -> nn.Module:
    """One of the table's models for ``dataset``'s images (see `DATASETS`).

    name: "mlp" (side²-300-10, ReLU), "resnet" (``depth`` residual blocks), or one ODE block of
    `ODE_MODELS`: "rknet" (RK4 with ``depth`` steps, backprop), "odenet" (reversible Heun with
    ``depth`` steps, reversible adjoint), "odenet-checkpoint" / "odenet-backsolve" (dopri5 at
    rtol = atol = ``tol``, checkpoint / backsolve adjoint), "odenet-fixed" /
    "odenet-fixed-checkpoint" (RK4 with ``depth`` steps, backsolve / checkpoint adjoint).
    Input (B, 1, side, side) float32, output (B, 10) logits.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; one of {sorted(DATASETS)}")
    spec = DATASETS[dataset]
    width = spec.width
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(spec.side**2, MLP_HIDDEN),
            nn.ReLU(),
            nn.Linear(MLP_HIDDEN, N_CLASSES),
        )
    if name == "resnet":
        features = nn.Sequential(*[ResBlock(width) for _ in range(depth)])
    elif name in ODE_MODELS:
        method, mode = ODE_MODELS[name]
        features = ODEBlock(width, method, mode, n_steps=depth, tol=tol)
    else:
        raise ValueError(f"unknown model {name!r}; one of {list(MODEL_NAMES)}")
    return nn.Sequential(downsampling(width, spec.n_down), features, head(width))


def n_params(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def ode_func(model: nn.Module) -> ODEFunc | None:
    """The ODEFunc of a model with an ODE block (for counting evaluations), else None."""
    for m in model.modules():
        if isinstance(m, ODEFunc):
            return m
    return None
