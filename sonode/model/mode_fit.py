"""Output-error training of the continuation's own modes: fit the H-step prediction, not the next sample.

Burg (and the covariance method) choose the continuation's modes s_k = σ_k + iω_k by minimising
the one-step prediction error over the clip's end (`sonode.model.continuation`). The task is to
predict H ahead: 5 ms to 200 ms. A frequency 0.5 Hz off costs nothing in one step and a third of a
cycle of phase after 200 ms. This is classical prediction-error identification with a multi-step
horizon (output-error fitting), done here by L-BFGS on the modes themselves:

* **As extrapolate runs it.** At anchors a over the clip's late part the state is solved, not
  free: the early modes' least-squares fit to the W samples before a, as the continuation's state
  is fitted before the clip's end (differentiated through the solve: variable projection). From
  it the continuation ODE runs H ahead exactly as `extrapolate` runs it (`Tail.run`: early modes,
  switch, late modes, the field and cycle if any) and is compared with the clip.
* **What moves.** The early and late modes' frequencies and decays (`OscillatorBank`'s ω and ρ,
  σ = −softplus(ρ), so none can grow). Amplitudes are the solved states.
* **Curriculum.** The horizon grows over `STAGES_S` (up to what the clip allows): a frequency is
  first corrected over a few ms, where the loss has one basin, then over longer spans. Each stage
  is deterministic (fixed anchors, every ``stride_and_anchors`), so L-BFGS with a strong-Wolfe line
  search applies.
* **The gradient** is exact: the linear ODE is solved in closed form (exp(L t), the engine's own
  solution of it) and autograd differentiates it; a nonzero field's envelope goes through the
  engine's adjoint (`sonode.model.modal`).

`sonode.model.predict` runs this on the clip minus its held-back end and keeps the trained modes
only where the held-back score improves (the untrained modes are the floor).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sonode.model.continuation import terminal_fade_samples
from sonode.model.limit_cycle import tail_energy_scale
from sonode.model.tail import Tail
from sonode.model.task_loss import _objective

STAGES_S = (0.005, 0.02, 0.05, 0.2)  # horizons of the curriculum (the held-back test's)
# Each stage's loss sees about RESIDUALS samples: every STRIDE-th of a horizon (STRIDE grows so a
# horizon gives at most HORIZON_SAMPLES), from as many anchors as that takes (MIN_ANCHORS to
# MAX_ANCHORS, evenly over ANCHOR_SPAN_S before the end − H). A 5 ms stage from 16 anchors would
# see 320 samples for ~2000 parameters.
RESIDUALS = 8000
HORIZON_SAMPLES = 400
MIN_ANCHORS, MAX_ANCHORS = 16, 128
ANCHOR_SPAN_S = 0.3
ENERGY_SHARE = 1.0  # the modes trained carry this share of the anchors' energy (1: all)
TRAIN = "both"  # what moves: "both" (frequencies and decays), "omega" or "decay"
ITERATIONS = 10  # L-BFGS iterations per stage
LOSSES = ("db", "snr", "lsd")
LSD_FRAME = 256


def mode_parameters(tail: Tail, phase: str = "both") -> list[torch.nn.Parameter]:
    """The continuation's linear part: the early and late modes' decays (ρ) and frequencies (rad/s),
    or those of the early or late ``phase`` alone."""
    banks = [tail.early] if tail.late is tail.early else [tail.early, tail.late]
    banks = {"early": banks[:1], "late": banks[-1:]}.get(phase, banks)
    names = {"both": ("raw_damping", "omega_rad_per_s"), "omega": ("omega_rad_per_s",)}.get(
        TRAIN, ("raw_damping",)
    )
    return [getattr(bank, name) for bank in banks for name in names]


def stride_and_anchors(horizon: int) -> tuple[int, int]:
    """Every how many samples a horizon is compared, and from how many anchors (see RESIDUALS)."""
    stride = max(1, -(-horizon // HORIZON_SAMPLES))
    per_anchor = -(-horizon // stride)
    return stride, min(MAX_ANCHORS, max(MIN_ANCHORS, -(-RESIDUALS // per_anchor)))


def horizon_loss(
    tail: Tail, x: torch.Tensor, anchors: np.ndarray, horizon: int, rate: int, loss: str
) -> torch.Tensor:
    """The task loss of the continuation run ``horizon`` samples from each anchor (states solved)."""
    w = tail.window
    j = torch.arange(0, horizon, 1 if loss == "lsd" else stride_and_anchors(horizon)[0])
    z0 = tail.states_at(x, anchors, rate)
    pred = tail.run(
        z0, (w + j.to(torch.float64)) / rate, w / rate + tail.switch_s, "adjoint", w / rate
    )
    truth = x[torch.as_tensor(anchors)[None, :] + j[:, None]]
    if loss == "lsd":
        return _log_spectral(pred, truth)
    return _objective(pred, truth, j.to(torch.float64) / rate, "mse" if loss == "snr" else "db")


def _log_spectral(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the log power spectra (Hann frames, hop half a frame) of
    predictions and truth (n, A); the spectra's floor is 60 dB below the truth's peak."""
    frame = min(LSD_FRAME, pred.shape[0])
    window = torch.hann_window(frame, periodic=False, dtype=torch.float64)
    hop = max(1, frame // 2)

    def spectra(y):
        frames = y.T.unfold(1, frame, hop) * window  # (A, F, frame)
        return torch.fft.rfft(frames, dim=-1).abs() ** 2

    p, t = spectra(pred), spectra(truth)
    floor = 1e-6 * t.amax(dim=(1, 2), keepdim=True) + 1e-30
    return torch.mean((torch.log10(p + floor) - torch.log10(t + floor)) ** 2)


def stage_anchors(n: int, window: int, horizon: int, rate: int, count: int) -> np.ndarray:
    """``count`` anchors evenly over ANCHOR_SPAN_S before n − horizon (each with W samples before)."""
    last = n - horizon
    first = max(window, last - int(ANCHOR_SPAN_S * rate))
    return np.unique(np.linspace(first, last, count).round().astype(int))


class _Stopped(Exception):
    """should_stop() said so within an L-BFGS stage."""


def fit_modes(
    tail: Tail,
    x: np.ndarray,
    rate: int,
    loss: str = "db",
    iterations: int = ITERATIONS,
    stages_s: tuple[float, ...] = STAGES_S,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train ``tail``'s modes (in place) to predict the normalised clip x (n,) H ahead over the
    curriculum ``stages_s``; the state at the clip's end is solved again for the new modes.

    Returns a report: the loss before and after each stage, the horizons and the anchors used.
    A stage whose loss does not fall is undone; ``should_stop()`` True ends the fit with the modes
    as they were before the stage."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    # anchors stay before a terminal fade (an edit, not the sound's dynamics)
    n, w = x.shape[0] - terminal_fade_samples(x, rate), tail.window
    target = torch.from_numpy(np.asarray(x, dtype=np.float64))
    params = mode_parameters(tail)
    report: dict = {"loss_name": loss, "horizons_s": [], "loss": [], "anchors": 0}
    flags = {id(p): p.requires_grad for p in [*params, *tail.field.parameters()]}
    for p in tail.field.parameters():  # the field is held: a zero one stays the closed form
        p.requires_grad_(False)
    try:
        for horizon_s in stages_s:
            horizon = min(int(round(horizon_s * rate)), n - w - 1)
            if horizon < 8:
                break
            chosen = stage_anchors(n, w, horizon, rate, stride_and_anchors(horizon)[1])
            report["anchors"] = max(report["anchors"], len(chosen))
            # a horizon within the early modes' span trains them; a longer one the late modes alone,
            # so it cannot cost the shorter horizons what the earlier stages gained
            late = tail.switch_s > 0 and horizon > round(tail.switch_s * rate)
            moved = mode_parameters(
                tail, "late" if late else "early" if tail.switch_s > 0 else "both"
            )
            if late:  # the late decays, measured over the clip's last second, are the only
                # evidence for the level past the held-back span (`held_back.contradicts_trend`);
                # fitted to 200 ms from earlier anchors they held notes the trend check refused
                moved = [tail.late.omega_rad_per_s] if TRAIN != "decay" else []
            if not moved:
                continue
            before = [p.detach().clone() for p in moved]
            for p in params:
                p.requires_grad_(any(p is q for q in moved))
            try:
                start, end = _stage(
                    tail, moved, target, chosen, horizon, rate, loss, iterations, should_stop
                )
            except (RuntimeError, _Stopped) as error:
                _restore(moved, before)
                report["stopped" if isinstance(error, _Stopped) else "failed"] = True
                break
            if not math.isfinite(end) or end > start:
                _restore(moved, before)
                end = start
            report["horizons_s"].append(horizon / rate)
            report["loss"].append([start, end])
            if horizon_s * rate >= n - w - 1:
                break
    finally:
        for p in [*params, *tail.field.parameters()]:
            p.requires_grad_(flags[id(p)])
    resolve_end_state(tail, x, rate)
    return report


def _restore(params: list[torch.nn.Parameter], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(v)


def _stage(tail, params, target, anchors, horizon, rate, loss, iterations, should_stop):
    """L-BFGS on the modes ``params`` for the loss over ``horizon``; returns the loss before and
    after."""
    optimiser = torch.optim.LBFGS(params, lr=1, max_iter=iterations, line_search_fn="strong_wolfe")
    with torch.no_grad():
        mask = strong_modes(tail.states_at(target, anchors, rate)).to(torch.float64)

    def closure() -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise _Stopped
        optimiser.zero_grad(set_to_none=False)
        value = horizon_loss(tail, target, anchors, horizon, rate, loss)
        value.backward()
        for p in params:  # the weak modes (the noise floor's) stay as identified
            p.grad.mul_(mask)
        return value

    with torch.no_grad():
        start = float(horizon_loss(tail, target, anchors, horizon, rate, loss))
    optimiser.step(closure)
    with torch.no_grad():
        return start, float(horizon_loss(tail, target, anchors, horizon, rate, loss))


def strong_modes(states: torch.Tensor) -> torch.Tensor:
    """(K,) bool: the fewest modes that carry ENERGY_SHARE of the states' (A, 2K) total energy."""
    k = states.shape[1] // 2
    energy = torch.sum(states[:, :k] ** 2 + states[:, k:] ** 2, 0)
    order = torch.argsort(energy, descending=True)
    share = torch.cumsum(energy[order], 0) / torch.clamp(energy.sum(), min=1e-300)
    count = int(torch.searchsorted(share, torch.tensor(ENERGY_SHARE, dtype=share.dtype))) + 1
    mask = torch.zeros(k, dtype=torch.bool)
    mask[order[: min(k, count)]] = True
    return mask


def resolve_end_state(tail: Tail, x: np.ndarray, rate: int) -> None:
    """Solve the continuation's state again for its (trained) modes on the clip's last W samples,
    in place (a model's ``continuation_state`` with it), and put its field's level unit there."""
    n = x.shape[0]
    fitted = tail.window - terminal_fade_samples(x, rate)  # the state is fitted before a fade
    with torch.no_grad():
        state = tail.states_at(np.asarray(x, dtype=np.float64), np.array([n]), rate, fitted)
        tail.state.copy_(state)
        if hasattr(tail.field, "energy_scale"):
            tail.field.energy_scale.fill_(
                tail_energy_scale(tail.state, tail.early.decay_per_s, tail.window / rate)
            )


def snapshot(tail: Tail) -> list[torch.Tensor]:
    """Copies of what `fit_modes` changes: the modes, the state and the field's level unit."""
    tensors = [*mode_parameters(tail), tail.state]
    if hasattr(tail.field, "energy_scale"):
        tensors.append(tail.field.energy_scale)
    return [t.detach().clone() for t in tensors]


def restore(tail: Tail, saved: list[torch.Tensor]) -> None:
    """Put back what `snapshot` copied (the untrained modes: the floor)."""
    tensors = [*mode_parameters(tail), tail.state]
    if hasattr(tail.field, "energy_scale"):
        tensors.append(tail.field.energy_scale)
    with torch.no_grad():
        for t, v in zip(tensors, saved, strict=True):
            t.copy_(v)
