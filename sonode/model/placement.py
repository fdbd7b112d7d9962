"""A global fit's training on its device and dtype, and the model's return to the CPU in float64.

`sonode.model.train.fit_samples` identifies the model on the CPU in float64 (numpy), trains it
where `FitOptions.device` / `dtype` say (`sonode.model.device`), and hands the trained model back
in float64 on the CPU: what the rest of the fit (continuation, report) and every model file use.
"""

from __future__ import annotations

import numpy as np
import torch

from sonode.model.decoder import SonodeModel
from sonode.model.device import resolve_device, training_dtype
from sonode.model.objective import param_groups

REFERENCE = (torch.device("cpu"), torch.float64)


class Placement:
    """Moves a model to its training device and dtype and back (`back`).

    Only the parameters training moves are rounded to the training dtype: the other entries (the
    continuation ODE, limit cycles, the field's scales) are kept here in float64 and put back
    unchanged by `back`, so a float32 fit changes nothing it did not train."""

    def __init__(self, model: SonodeModel, device: str, dtype: str):
        self.device = resolve_device(device)
        self.dtype = training_dtype(self.device, dtype)
        self.moved = (self.device, self.dtype) != REFERENCE
        self._kept: dict[str, torch.Tensor] = {}
        if self.moved:
            trained = {id(p) for g in param_groups(model, 1.0, 1.0) for p in g["params"]}
            named = dict(model.named_parameters())
            self._kept = {
                name: value.detach().clone()
                for name, value in model.state_dict().items()
                if id(named.get(name)) not in trained
            }
            model.to(device=self.device, dtype=self.dtype)

    def tensor(self, x: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``x`` as a tensor on the training device, in the training dtype (or ``dtype``)."""
        return torch.from_numpy(x).to(device=self.device, dtype=dtype or self.dtype)

    def back(self, model: SonodeModel, x: np.ndarray, clip, target, coarse):
        """(model, clip, target, coarse) in float64 on the CPU after training: the model's untrained
        entries as they were before, the clip (file amplitude) and target (normalised) from ``x``,
        and ``coarse``, the kept model's reconstruction, solved there if it was not (None). As
        given when nothing moved. The kept model's figures in the report are measured on these."""
        if not self.moved:
            return model, clip, target, coarse
        model.to(*REFERENCE)
        model.load_state_dict(self._kept, strict=False)
        if coarse is None:
            coarse = model.reconstruct()[0]
        target = torch.from_numpy((x - model.config.offset) / model.config.gain)
        return model, torch.from_numpy(x), target, coarse.to(*REFERENCE)
