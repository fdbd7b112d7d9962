"""The continuation's task loss and its adjoint training (`sonode.model.predict` selects and keeps).

From states at anchors in the clip the continuation ODE (`sonode.model.tail.Tail`) is integrated
H ahead exactly as `extrapolate` runs it, and compared with the clip; H grows from H_MIN_S to
H_MAX_S (curriculum). See `sonode.model.predict` for the recipe and docs/continuation_trained.md §6-§7.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sonode.model import limit_cycle
from sonode.model.tail import Tail

H_MIN_S = 0.002
H_MAX_S = 0.2
CURRICULUM_FRACTION = 0.7
ANCHORS = 8  # prediction starts per step (random, over the clip's last ANCHOR_SPAN_S)
ANCHOR_SPAN_S = (
    1.0  # the late modes describe the clip's last second; earlier states obey other decays
)
SAMPLE_STRIDE = (
    8  # every 8th sample of a horizon (rotating offset): an unbiased estimate of its error
)
# ...and at most this many per horizon (200 ms at 48 kHz): the step's graph holds several
# (points × anchors × 2K) float64 arrays, so above 48 kHz the stride grows instead (#30)
MAX_HORIZON_POINTS = 1200
LR = 3e-3
BANDS_S = (0.0, 0.005, 0.02, 0.05, math.inf)


def train_field(
    tail: Tail,
    x: np.ndarray,
    rate: int,
    steps: int,
    loss: str = "db",
    seed: int = 0,
    horizon_max_s: float = H_MAX_S,
    stop_after: int | None = None,
    on_step: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[float]:
    """Train ``tail.field`` to predict the clip x (normalised, (n,)) from anchors in it; returns the
    loss per step. The field is left as trained (the caller keeps or resets it).

    ``steps`` sets the curriculum; ``stop_after`` ends it early (the first steps of the same run);
    ``on_step(k)`` is called after step k (1-based); ``should_stop()`` True ends it before a step."""
    n, w = x.shape[0], tail.window
    h_max = int(min(horizon_max_s * rate, (n - w) // 2))
    # a field acting after the switch only is first trained a few ms past it
    first = int(H_MIN_S * rate) + (
        int(tail.switch_s * rate) if limit_cycle.FIELD_PHASES == "late" else 0
    )
    h_min = max(1, min(h_max, first))
    lo_anchor = max(w, n - int(ANCHOR_SPAN_S * rate))
    if steps <= 0 or h_max < 1:
        return []
    generator = np.random.default_rng(seed)
    trained = trained_parameters(tail.field)
    optimiser = torch.optim.Adam(trained, lr=LR)
    target = torch.from_numpy(x)
    history = []
    # the field's other parameters are held fixed: a frozen glide keeps the phase before the switch
    # out of the graph (`limit_cycle.phase_field`)
    frozen = [p for p in tail.field.parameters() if all(p is not q for q in trained)]
    flags = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    try:
        for step in range(steps if stop_after is None else min(steps, stop_after)):
            if should_stop is not None and should_stop():
                break
            progress = min(1.0, step / max(1.0, CURRICULUM_FRACTION * steps))
            h = int(round(h_min * (h_max / h_min) ** progress))
            hi_anchor = n - h
            anchors = np.sort(generator.integers(min(lo_anchor, hi_anchor), hi_anchor + 1, ANCHORS))
            with torch.no_grad():  # the states are data here: the modes are not trained
                z0 = tail.states_at(x, anchors, rate)
            stride = max(SAMPLE_STRIDE, -(-h // MAX_HORIZON_POINTS))
            offset = step % stride if h > stride else 0
            j = torch.arange(offset, h, stride if h > stride else 1)
            local = (w + j.to(torch.float64)) / rate
            optimiser.zero_grad(set_to_none=True)
            try:
                pred = tail.run(
                    z0, local, w / rate + tail.switch_s, gradient="adjoint", linear_s=w / rate
                )  # (h', A)
            except RuntimeError:  # the engine refused a non-finite solve: skip the step
                continue
            truth = target[torch.as_tensor(anchors)[None, :] + j[:, None]]
            objective = _objective(pred, truth, j.to(torch.float64) / rate, loss)
            if not bool(torch.isfinite(objective)) or not objective.requires_grad:
                continue
            objective.backward()
            optimiser.step()
            history.append(float(objective.detach()))
            if on_step is not None:
                on_step(step + 1)
    finally:
        for p, flag in zip(frozen, flags, strict=True):
            p.requires_grad_(flag)
    return history


def trained_parameters(field: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of the continuation's field that training moves (`limit_cycle.TAIL_TRAIN`)."""
    if not hasattr(field, "glide"):  # a `ModalField`: all of it
        return list(field.parameters())
    return {
        "mlp": list(field.mlp.parameters()),
        "gain": [field.gain, field.glide],
        "glide": [field.glide],
        "all": list(field.parameters()),
    }[limit_cycle.TAIL_TRAIN]


def _objective(
    pred: torch.Tensor, truth: torch.Tensor, after_s: torch.Tensor, loss: str
) -> torch.Tensor:
    """The task loss of predictions (n, A) of truth (n, A) at times after_s (n,) past each anchor.

    "db": the mean over anchors and horizon bands (BANDS_S: 0-5, 5-20, 20-50, 50-200 ms) of the
    log relative error, so a few ms count as much as the last 150 (pooled, the later, larger errors
    decide the gradient: measured on the guitar, 30 steps gained 2 dB at 200 ms and lost 5.6 dB at
    50 ms); "mse": the log of the pooled relative error."""
    if loss == "mse":
        return torch.log(torch.sum((pred - truth) ** 2) / (torch.sum(truth**2) + 1e-12))
    terms = []
    for lo, hi in zip(BANDS_S[:-1], BANDS_S[1:], strict=False):
        inside = (after_s >= lo) & (after_s < hi)
        if bool(inside.any()):
            err = torch.mean((pred[inside] - truth[inside]) ** 2, 0)
            terms.append(torch.log(err / (torch.mean(truth[inside] ** 2, 0) + 1e-12) + 1e-30))
    return torch.mean(torch.stack(terms))
