"""What a solve returns besides the trajectory: statistics and the record of accepted steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SolveStats:
    """Work done by one solve.

    nfev: evaluations of f (for ``per_sample``: a (B,) int64 tensor counting the evaluations
        each sample took part in while still integrating; shared-step: an int).
    n_steps: accepted steps (int or (B,) tensor).
    n_rejected: rejected steps (int or (B,) tensor).
    n_calls: calls of f actually made (one call evaluates the whole batch).
    """

    nfev: int | torch.Tensor
    n_steps: int | torch.Tensor
    n_rejected: int | torch.Tensor
    n_calls: int | None = None

    def __post_init__(self):
        if self.n_calls is None:
            self.n_calls = self.nfev if isinstance(self.nfev, int) else int(self.nfev.max())


@dataclass
class StepRecord:
    """The accepted steps of a (shared-step) solve, enough to replay any of them.

    t0: (n_steps,) float64 start time of each step (units of t).
    h: (n_steps,) float64 signed step (units of t); step i covers [t0[i], t0[i] + h[i]].
    y0: (n_steps, *state_shape) state at each step's start.
    out_index: (n_steps + 1,) int64; outputs with index in [out_index[i], out_index[i+1]) lie in
        step i's closed interval (output 0, at t[0], belongs to step 0).
    """

    t0: torch.Tensor
    h: torch.Tensor
    y0: torch.Tensor
    out_index: torch.Tensor

    @classmethod
    def build(
        cls,
        t0: list[float],
        h: list[float],
        y0: list[torch.Tensor],
        out_index: list[int],
        like: torch.Tensor,
    ):
        states = torch.stack(y0) if y0 else like.new_empty((0, *like.shape))
        return cls(
            t0=torch.tensor(t0, dtype=torch.float64),
            h=torch.tensor(h, dtype=torch.float64),
            y0=states,
            out_index=torch.tensor(out_index, dtype=torch.int64),
        )

    @property
    def n_steps(self) -> int:
        return int(self.h.shape[0])


@dataclass
class SolveResult:
    """ys: (len(t), *y0.shape) states at the output times; stats; steps (when recorded)."""

    ys: torch.Tensor
    stats: SolveStats
    steps: StepRecord | None = None
    last_step: tuple | None = None  # (t0, h, y0, y1, ks) of the step where an event search stopped


def real_dtype(like: torch.Tensor) -> torch.dtype:
    """The real dtype of a (possibly complex) state: the dtype f receives t in."""
    return like.real.dtype if like.is_complex() else like.dtype


def time_arg(t: float, like: torch.Tensor, nudge: float = 0.0) -> torch.Tensor:
    """The time passed to f: a 0-d tensor in the state's real dtype, on its device (torchdiffeq's
    convention: a float32 f may concatenate t with its state). Time itself is kept in float64
    (python floats) by the solvers; only the argument is rounded.

    nudge: +1 / -1 moves the argument one ulp (of its dtype) up / down: f is evaluated just inside
    a step whose end sits on a discontinuity (options perturb, jump_t).
    """
    out = torch.tensor(t, dtype=real_dtype(like), device=like.device)
    if nudge:
        out = torch.nextafter(out, torch.full_like(out, math.copysign(math.inf, nudge)))
    return out


def check_finite_outputs(ys: torch.Tensor, t_out: list[float]) -> None:
    """RuntimeError naming the first output time whose state is not finite (fixed-step solves)."""
    if bool(torch.isfinite(ys).all()):
        return
    per_output = torch.isfinite(ys.detach().reshape(ys.shape[0], -1)).all(dim=1)
    i = int((~per_output).nonzero()[0])
    raise RuntimeError(
        f"the solution became non-finite (inf/nan) between t={t_out[i - 1]!r} and t={t_out[i]!r}; "
        "the ODE may blow up there or the step is too large for its stiffness: use a smaller "
        "step_size or an adaptive method"
    )
