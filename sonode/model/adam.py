"""Adam without torch.optim: the same update, bit for bit, and the same state_dict layout.

Constructing any `torch.optim` optimiser imports `torch._dynamo` (1.2 s of CPU on the reference
machine, measured; 9 s of wall time there under load): a tenth of a 60 s fit's budget went to an
import before the first step. This is the update of `torch.optim.Adam`'s single-tensor path (the
one it takes on CPU) with betas (0.9, 0.999), eps 1e-8, no weight decay, in the same order of
operations, so a fit takes the same steps as it did with torch's (tested against it), and
checkpoints keep their layout ({"state": {index: {"step", "exp_avg", "exp_avg_sq"}},
"param_groups": [{..., "params": [indices]}]}).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8


class Adam:
    """Adam over parameter groups (dicts with "params" and "lr"; other keys are kept, e.g. base_lr).

    A group with ``"sparse_rows": True`` updates only the rows of its 2-D parameters whose gradient
    is not all zero, each row with its own step count (see `_sparse_rows_step`); its gradients may
    be sparse (COO, rows named), which saves a dense one of a long clip's states.

    Attributes:
        param_groups: the groups, as in `torch.optim.Optimizer`.
        state: per-parameter moments; clear() it to restart them (as after a rollback).
    """

    def __init__(self, groups: Iterable[dict[str, Any]]):
        self.param_groups = [
            {**group, "params": list(group["params"]), "betas": BETAS, "eps": EPS}
            for group in groups
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": torch.tensor(0.0, dtype=torch.float32),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
                if group.get("sparse_rows") and p.dim() == 2:
                    _sparse_rows_step(p, grad, state, group)
                    continue
                if grad.is_sparse:
                    grad = grad.to_dense()
                state["step"] += 1
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
                step = state["step"].item()
                step_size = group["lr"] / (1 - beta1**step)
                denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(group["eps"])
                p.addcdiv_(state["exp_avg"], denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: moments}, "param_groups": [group without tensors, "params": indices]}."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index[p] = len(index)
                ids.append(index[p])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore moments and group settings (lr, base_lr, ...) saved by `state_dict` (or by
        `torch.optim.Adam` with the same groups).

        Raises:
            ValueError: the saved groups do not match these parameters.
        """
        params = [p for group in self.param_groups for p in group["params"]]
        saved_groups = saved["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
            len(s["params"]) != len(g["params"])
            for s, g in zip(saved_groups, self.param_groups, strict=False)
        ):
            raise ValueError("the saved optimiser state has other parameter groups")
        for group, saved_group in zip(self.param_groups, saved_groups, strict=False):
            for key in ("lr", "base_lr"):
                if key in saved_group:
                    group[key] = saved_group[key]
        self.state = {}
        for index, moments in saved["state"].items():
            p = params[int(index)]
            if any(
                isinstance(v, torch.Tensor) and k not in ("step", "row_step") and v.shape != p.shape
                for k, v in moments.items()
            ):
                raise ValueError("the saved optimiser state does not fit the parameters' shapes")
            self.state[p] = {
                k: _moment(k, v, p)
                for k, v in moments.items()
                if k in ("step", "exp_avg", "exp_avg_sq", "row_step")
            }


def _moment(key: str, value, p: torch.Tensor) -> torch.Tensor:
    """A saved moment (read on the CPU) as a copy on ``p``'s device and in its dtype; the 0-d step
    count stays a CPU scalar, as `Adam.step` makes it."""
    if not isinstance(value, torch.Tensor):
        return torch.tensor(float(value))
    if key == "step":
        return value.clone()
    return value.to(device=p.device, dtype=p.dtype, copy=True)


def gradient_values(grad: torch.Tensor) -> torch.Tensor:
    """The values a gradient holds: all of a dense one, the named rows of a sparse one."""
    return grad.coalesce().values() if grad.is_sparse else grad


def _sparse_rows_step(p: torch.Tensor, grad: torch.Tensor, state: dict, group: dict) -> None:
    """Adam on the rows of ``p`` whose gradient is not all zero ("lazy" Adam), in place.

    For per-segment parameters trained a sample of segments per step (the segment states of a long
    clip): dense Adam keeps moving a row for tens of steps after its segment left the sample, on
    momentum gathered for other values of the shared parameters, while its segment's error is not
    measured. Here a row moves only when its segment is trained, and its bias correction counts
    its own steps, so its first update is a full-sized one however late it comes."""
    beta1, beta2 = group["betas"]
    if grad.is_sparse:  # the rows a step chose (`objective.piece_reconstruction`), in order
        grad = grad.coalesce()
        named, values = grad.indices()[0], grad.values()
        nonzero = values.ne(0).any(dim=1)
        rows, g = named[nonzero], values[nonzero]
    else:
        rows = torch.nonzero(grad.ne(0).any(dim=1)).flatten()
        g = grad[rows]
    if "row_step" not in state:
        state["row_step"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)  # exact < 2**24
    state["step"] += 1
    state["row_step"][rows] += 1
    step = state["row_step"][rows][:, None]
    exp_avg = state["exp_avg"][rows].lerp_(g, 1 - beta1)
    exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
    state["exp_avg"][rows] = exp_avg
    state["exp_avg_sq"][rows] = exp_avg_sq
    denom = (exp_avg_sq.sqrt() / (1 - beta2**step).sqrt()).add_(group["eps"])
    p[rows] -= group["lr"] / (1 - beta1**step) * exp_avg / denom
