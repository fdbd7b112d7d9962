"""The continuation's training inside a fit's budget: before the optimiser's steps, capped, measured.

The continuation ODE (the model's ``tail_*`` modules) is identified in closed form and trained
apart from the reconstruction model: nothing in the training loop reads or moves it, and its
training (`sonode.model.predict.train_continuation`) reads only the clip. Trained after the loop,
its time had to be reserved in advance — a fixed CONTINUATION_SHARE of the budget, 12 s of the
quickstart's 60 where it took 6–9 — and what it did not use was lost. Trained first, it takes what
it takes, and the loop's deadline sees the time actually left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from sonode.model.predict import train_continuation
from sonode.model.stopping import unless_abandoned

#: The most of the budget the continuation's training may take (it is abandoned, the identified
#: continuation kept, when it would take more). Its training is all or nothing — stopped, it
#: leaves the identified ODE — while the loop's steps each count, so it is given a generous cap
#: and the loop the rest. (Trained last, it had at least 0.2 of the budget plus whatever the loop
#: left; a 60 s 48 kHz clip's took 63 s of CPU, measured, inside a 240 s budget.)
CONTINUATION_SHARE = 1 / 3
TAIL_PREFIX = "tail_"  # the continuation's parameters and buffers in a model's state_dict


def train_tail_first(
    model,
    target: torch.Tensor,
    options,
    should_stop: Callable[[], bool] | None,
    time_left_s: Callable[[], float] | None = None,
) -> dict:
    """Train ``model``'s continuation (in place) within CONTINUATION_SHARE of ``options.max_time_s``.

    Args:
        model: the identified `SonodeModel`.
        target: the normalised clip (n_samples,).
        options: the fit's `FitOptions` (continuation_training_steps, seed, continuation_samples,
            lp_order, max_time_s: None for no cap).
        should_stop: the caller's stop (a signal); True abandons the training.
        time_left_s: seconds the rest of the fit may still use before its deadline, minus what
            it must keep (its checks): the training also stops when that runs out.

    Returns:
        The continuation's training report (`fit_dynamics`; its ``wall_time_s`` is what it took).
    """
    if options.continuation_training_steps <= 0:
        return {}
    start = time.perf_counter()
    cap_s = math.inf if options.max_time_s is None else CONTINUATION_SHARE * options.max_time_s

    def stop() -> bool:
        return (
            time.perf_counter() - start >= cap_s
            or (time_left_s is not None and time_left_s() <= 0)
            or (should_stop is not None and should_stop())
        )

    report = unless_abandoned(
        should_stop,
        lambda: train_continuation(
            model,
            target.numpy(),
            options.continuation_training_steps,
            seed=options.seed,
            window_samples=options.continuation_samples,
            max_order=options.lp_order,
            should_stop=stop,
        ),
        model,
        (TAIL_PREFIX,),
    )
    return report or {"field_kept": False, "cycle": False, "skipped": "stopped"}


def tail_state(model) -> dict[str, torch.Tensor]:
    """Copies of the continuation's entries of ``model.state_dict()``."""
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(TAIL_PREFIX)}


def with_tail(state: dict[str, torch.Tensor], tail: dict[str, torch.Tensor]) -> dict:
    """``state`` (a state_dict) with the continuation's entries replaced by ``tail``'s."""
    return {**state, **tail}
