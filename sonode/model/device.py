"""Where a fit or a render computes, and in which floating-point type training runs there.

The CPU in float64 is the reference and the default ("auto" means the CPU: a GPU is used only when
asked for). On CUDA the trained parts of a fit (the training steps, the state solves, the checks in
training) run in float32, the GPU's fast type; the final discretisation check, the continuation's
identification and training, and every model file are float64 on the CPU, so a file does not record
where it was fitted and loads on either device. Renders run in float64 on the device they are given:
absolute times over minutes need it (float32 resolves 1.5e-5 s at 180 s, under a sample at 48 kHz).
Identification (numpy, LAPACK) always runs on the CPU. See docs/devices.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from sonode.errors import SonodeError

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float64", "float32")


class DeviceError(SonodeError):
    """The device asked for does not exist here (e.g. cuda without a CUDA build or GPU)."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for ``name``: "auto" and "cpu" → the CPU; "cuda" (or "cuda:N") → that GPU.

    Raises:
        DeviceError: CUDA was asked for and torch sees no CUDA device.
        ValueError: ``name`` is none of these.
    """
    text = str(name)
    if text in ("auto", "cpu"):
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(no_cuda_message())
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"there is no {text} (torch sees {torch.cuda.device_count()} GPU(s))")
        return device
    raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {text!r}")


def no_cuda_message() -> str:
    """The one line saying why --device cuda cannot run here."""
    build = torch.version.cuda
    why = (
        f"torch {torch.__version__} (CUDA {build}) finds no GPU"
        if build
        else (f"torch {torch.__version__} is a CPU-only build")
    )
    return f"no CUDA device: {why}; use --device cpu (the default)"


def training_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """The floating-point type training runs in: float32 on CUDA, float64 elsewhere ("auto"), or
    the one named ("float32" forces the GPU's type on the CPU, as the tests of that path do)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return torch.float32 if device.type == "cuda" else torch.float64
    return getattr(torch, dtype)


def on(reference: torch.Tensor) -> dict:
    """``device=`` and ``dtype=`` of ``reference``, for a factory call that must match it (a real
    dtype: a complex reference gives its real counterpart)."""
    dtype = reference.real.dtype if reference.is_complex() else reference.dtype
    return {"device": reference.device, "dtype": dtype}


@contextlib.contextmanager
def moved(model: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """``model`` on ``device`` (its dtype unchanged) inside the block, back where it was after, so
    that a render on a GPU leaves the caller's model on the CPU."""
    home = next(model.parameters()).device
    model.to(device)
    try:
        yield model
    finally:
        model.to(home)
