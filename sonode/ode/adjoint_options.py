"""`AdjointOptions`: the validated ``adjoint_options`` of `sonode.ode.adjoint.odeint_adjoint` (its
mode, checkpoint spacing and backward solver), each bad key or value refused with the valid ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .methods import get_method

_MODES = ("checkpoint", "backsolve", "reversible")
# Accepted steps per stored state. Larger pieces mean fewer (per-call expensive) autograd.grad calls
# and fewer stored states, smaller ones a smaller transient graph; 32 RK4 steps of an audio-sized
# MLP make a graph of a few MB, and beyond ~32 the time no longer improves (benchmarks/README.md).
DEFAULT_CHECKPOINT_EVERY = 32
_OWN_KEYS = ("mode", "checkpoint_every", "method", "rtol", "atol")


@dataclass(frozen=True)
class AdjointOptions:
    """Validated ``adjoint_options`` of `odeint_adjoint` (plus its adjoint_rtol/atol/method).

    mode: "backsolve" (continuous adjoint as torchdiffeq's, memory O(1) in the number of steps, error
        of the order of the solver tolerance; the default), "checkpoint" (discrete adjoint, exact to
        round-off) or "reversible" (reversible methods only: exact and O(1) memory). The default
        per method is `Method.default_adjoint_mode`.
    checkpoint_every: accepted steps per stored state in checkpoint mode (int >= 1).
    method, rtol, atol: solver of the backward sweep in backsolve mode (None = as the forward
        solve); also given as odeint_adjoint's adjoint_method / adjoint_rtol / adjoint_atol.
    solver_options: options of the backward solver (backsolve), e.g. step_size, and ``norm``:
        "seminorm" (error control on [y, a] only: fewer backward steps), a callable
        norm((t, y, a, *param_grads)), or None (all of [y, a, param_grads], as torchdiffeq).
    Checkpoint mode replays the forward solver exactly, so the backward-solver settings do not
    apply to it (they are accepted, as a torchdiffeq call passes them, and unused).
    """

    mode: str = "backsolve"
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    method: str | None = None
    rtol: Any = None
    atol: Any = None
    solver_options: dict | None = None

    @classmethod
    def from_dict(
        cls,
        adjoint_options: dict[str, Any] | None,
        default_mode: str = "backsolve",
        forward_method: str | None = None,
        **overrides,
    ) -> AdjointOptions:
        """Build from the user's dict; ValueError naming the bad key or value and the valid ones."""
        given = dict(adjoint_options or {})
        own = {k: given.pop(k) for k in _OWN_KEYS if k in given}
        for key, value in overrides.items():
            if value is not None:
                if own.get(key) is not None and own[key] != value:
                    raise ValueError(
                        f"adjoint_{key} and adjoint_options[{key!r}] disagree; give one"
                    )
                own[key] = value
        own.setdefault("mode", default_mode)
        opts = cls(**own, solver_options=given)
        if opts.mode not in _MODES:
            raise ValueError(f"adjoint_options['mode']={opts.mode!r} is not one of {list(_MODES)}")
        if "checkpoint_every" in own and opts.mode != "checkpoint":  # else silently unused
            raise ValueError(
                f"adjoint_options['checkpoint_every'] applies to mode='checkpoint' only, and the mode is "
                f"{opts.mode!r} (the default is torchdiffeq's 'backsolve'); add 'mode': 'checkpoint'"
            )
        every = opts.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(
                f"adjoint_options['checkpoint_every']={every!r} must be an int >= 1 (accepted steps per stored state)"
            )
        back_method = get_method(opts.method if opts.method is not None else forward_method)
        for name in ("rtol", "atol"):
            value = getattr(opts, name)
            if isinstance(value, torch.Tensor):
                bad = bool((value < 0).any())
            else:
                bad = value is not None and not (isinstance(value, (int, float)) and value >= 0)
            if bad:
                raise ValueError(
                    f"adjoint_options[{name!r}] / adjoint_{name}={value!r} must be a number >= 0 or None"
                )
        norm = given.get("norm")
        if norm is not None and norm != "seminorm" and not callable(norm):
            raise ValueError(
                f"adjoint_options['norm'] must be 'seminorm' or a callable, got {norm!r}"
            )
        unknown = sorted(set(given) - set(back_method.options) - {"norm"})
        if unknown:
            raise ValueError(
                f"unknown adjoint_options {unknown} for adjoint method {back_method.name!r}; valid keys: "
                f"{list(_OWN_KEYS) + list(back_method.options)}"
            )
        return opts
