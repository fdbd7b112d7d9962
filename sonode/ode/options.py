"""Typed, validated solver options: the only place where ``method`` and ``options`` dicts are read."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from .methods import METHODS, get_method

# Every registered method name (a live view: methods registered later appear too).
SOLVERS = METHODS
GRIDS = ("uniform", "outputs")
INTERPS = ("linear", "cubic")


def _tolerance(name: str, value):
    """rtol/atol as a float, or a tensor (per-component tolerances; torchdiffeq accepts both)."""
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ValueError(f"{name} cannot require gradient")
        if value.numel() == 1:
            return float(value)
        if bool((value < 0).any()) or not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite and >= 0 everywhere")
        return value.detach()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or a tensor, got {type(value).__name__}")
    return float(value)


def _times(name: str, value) -> tuple[float, ...] | None:
    if value is None:
        return None
    tt = (
        value.detach()
        if isinstance(value, torch.Tensor)
        else torch.tensor(value, dtype=torch.float64)
    )
    tt = tt.to(torch.float64).reshape(-1)
    if not bool(torch.isfinite(tt).all()):
        raise ValueError(f"option {name} must hold finite times")
    return tuple(tt.tolist())


@dataclass(frozen=True)
class SolveOptions:
    """Everything that decides how an ODE is solved; build it with :meth:`build`.

    Common:
        method: a registered name (``SOLVERS``; see docs/engine.md).
        rtol, atol: relative / absolute tolerance of the adaptive methods' local error test
            (per-component scale ``atol + rtol * max(|y0|, |y1|)``, RMS norm over the state);
            floats or tensors broadcastable to the state (per-component tolerances).
        norm: norm(tensor) -> scalar of the scaled error (and of the initial-step estimate);
            default RMS. Fixed-step methods accept and ignore it (as torchdiffeq).
    Fixed-step (``euler``, ``midpoint``, ``rk4``, ``rk4_classical``, ``heun2``, ``heun3``, ``lawson_rk4``):
        step_size: step in the units of t (seconds for audio). None: the grid is t itself.
        grid: "uniform" (torchdiffeq's semantics, default): the grid is t[0] + k step_size up to
            t[-1] (the last point set to t[-1]); outputs between grid points are interpolated.
            "outputs" (sonode's own): every output interval is cut into steps of step_size, the
            last one shortened to land exactly on the output time (no interpolation).
        grid_constructor: f(func, y0, t) -> the grid (a tensor from t[0] to t[-1]); excludes step_size.
        interp: "linear" (default) or "cubic" (Hermite, one extra f evaluation per output step).
        perturb: evaluate f at the step ends one ulp inside the step (for f discontinuous at grid points).
        linear: (``lawson_rk4`` only, required) the linear part L of y' = L y + N(t, y), an
            object with ``expm_apply(h, y)`` (see :class:`sonode.ode.lawson.LinearOperator`).
    Adaptive (``bosh3``, ``dopri5``, ``tsit5``):
        first_step: initial |h| in units of t; None selects it by Hairer's algorithm (2 f evals).
        max_step: upper bound on |h| (default: unbounded).
        min_step: lower bound on |h|; a step of min_step is accepted whatever its error.
        max_steps (alias max_num_steps): attempted steps before a RuntimeError (default 2**31 - 1).
        step_t: times the steps must land on. jump_t: as step_t, and f is re-evaluated just after
            each (a discontinuity of f), so FSAL does not carry the value from the other side.
        dtype: accepted for torchdiffeq compatibility: time is always kept in float64.
        safety, ifactor, dfactor: h_new = h * clip(safety * controller, dfactor, ifactor).
        pcoeff, icoeff: PI controller, h_new ∝ ε_n^(-(pcoeff+icoeff)/k) ε_{n-1}^(pcoeff/k) with
            k the method's error order (Söderlind's form, as in diffrax). The defaults reproduce
            the stabilised controller of Hairer's DOPRI5 code (β = 0.04) for 5th-order pairs.
        per_sample: give every batch element (dim 0 of y0) its own t, h and accept/reject.
    Implicit (``implicit_euler``, ``trapezoid``, ``radauIIA3/5``, ``gl4/6``, ...; implicit_solve.py):
        step_size as fixed-step; options["adaptive"]=True (field ``doubling``): step doubling with the
        adaptive options above; newton_tol, max_iters: Newton's stopping rule (implicit.py).
    """

    method: str = "dopri5"
    rtol: Any = 1e-7
    atol: Any = 1e-9
    step_size: float | None = None
    grid: str = "uniform"
    grid_constructor: Any = None
    interp: str = "linear"
    perturb: bool = False
    norm: Any = None
    linear: Any = None
    first_step: float | None = None
    max_step: float = math.inf
    min_step: float = 0.0
    max_steps: int = 2**31 - 1
    step_t: tuple | None = None
    jump_t: tuple | None = None
    dtype: Any = torch.float64
    extra: Any = None  # method-specific options (names the registered Method lists), as a dict
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    pcoeff: float = 0.2
    icoeff: float = 0.65
    per_sample: bool = False
    # Implicit methods (implicit_solve.py): options["adaptive"] (step doubling), Newton's stopping rule.
    doubling: bool = False
    newton_tol: float = 1e-3
    max_iters: int = 20

    def option(self, name: str, default=None):
        """A method-specific option (see ``Method.options``), or ``default``."""
        return (self.extra or {}).get(name, default)

    @property
    def spec(self):
        """The registered :class:`~sonode.ode.methods.Method`."""
        return get_method(self.method)

    @property
    def adaptive(self) -> bool:
        return self.spec.adaptive or self.doubling

    @property
    def tableau(self):
        """The Butcher tableau (None for methods whose step is not a plain RK step)."""
        return self.spec.tableau

    @classmethod
    def build(cls, method, rtol, atol, options: dict[str, Any] | None = None) -> SolveOptions:
        """Validate ``method`` and the ``options`` dict and return the typed options.

        Raises:
            ValueError: unknown method, an option the method does not take (the message lists
                the valid ones), or an out-of-range value.
        """
        if isinstance(options, SolveOptions):
            return options
        spec = get_method(method)
        options = dict(options or {})
        valid = spec.options
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for method {spec.name!r}; "
                f"valid options: {', '.join(valid)}"
            )
        if "adaptive" in options:  # implicit methods: the option's name, not the property's
            options["doubling"] = options.pop("adaptive")
        if "max_num_steps" in options:
            if "max_steps" in options:
                raise ValueError("give max_num_steps or max_steps (the same option), not both")
            options["max_steps"] = options.pop("max_num_steps")
        for name in ("step_t", "jump_t"):
            if name in options:
                options[name] = _times(name, options[name])
        for name in ("step_size", "first_step", "max_step", "min_step"):
            if isinstance(options.get(name), torch.Tensor):
                options[name] = float(options[name])
        if isinstance(options.get("max_steps"), torch.Tensor):
            options["max_steps"] = int(options["max_steps"])
        own = {f.name for f in fields(cls)} - {"extra", "method", "rtol", "atol"}
        extra = {k: options.pop(k) for k in list(options) if k not in own}
        opts = cls(
            method=spec.name,
            extra=extra,
            rtol=_tolerance("rtol", rtol),
            atol=_tolerance("atol", atol),
            **options,
        )
        opts._check()
        return opts

    def _check(self) -> None:
        def positive(name: str, value, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
                raise ValueError(f"option {name} must be a positive number, got {value!r}")

        if self.norm is not None and not callable(self.norm):
            raise ValueError(
                f"option norm must be a callable norm(tensor) -> scalar, got {self.norm!r}"
            )
        if self.adaptive:
            if isinstance(self.rtol, float):
                positive("rtol", self.rtol)
            if isinstance(self.atol, float) and not self.atol >= 0:
                raise ValueError(f"atol must be >= 0, got {self.atol!r}")
            if not (
                isinstance(self.min_step, (int, float)) and 0 <= self.min_step <= self.max_step
            ):
                raise ValueError(f"option min_step must be in [0, max_step], got {self.min_step!r}")
            if not (isinstance(self.dtype, torch.dtype) and self.dtype.is_floating_point):
                raise ValueError(f"option dtype must be a floating torch dtype, got {self.dtype!r}")
            positive("first_step", self.first_step, allow_none=True)
            positive("max_step", self.max_step)
            if not (isinstance(self.max_steps, int) and self.max_steps > 0):
                raise ValueError(f"option max_steps must be a positive int, got {self.max_steps!r}")
            if not 0 < self.safety <= 1:
                raise ValueError(f"option safety must be in (0, 1], got {self.safety!r}")
            if not self.ifactor > 1:
                raise ValueError(f"option ifactor must be > 1, got {self.ifactor!r}")
            if not 0 < self.dfactor < 1:
                raise ValueError(f"option dfactor must be in (0, 1), got {self.dfactor!r}")
            if not self.icoeff > 0 or self.pcoeff < 0:
                raise ValueError(
                    f"PI coefficients need icoeff > 0 and pcoeff >= 0, got "
                    f"icoeff={self.icoeff!r}, pcoeff={self.pcoeff!r}"
                )
            if not isinstance(self.per_sample, bool):
                raise ValueError(f"option per_sample must be a bool, got {self.per_sample!r}")
        else:
            positive("step_size", self.step_size, allow_none=True)
            if self.grid not in GRIDS:
                raise ValueError(f"option grid must be one of {GRIDS}, got {self.grid!r}")
            if self.interp not in INTERPS:
                raise ValueError(f"option interp must be one of {INTERPS}, got {self.interp!r}")
            if self.grid_constructor is not None:
                if not callable(self.grid_constructor):
                    raise ValueError(
                        "option grid_constructor must be callable (func, y0, t) -> grid"
                    )
                if self.step_size is not None:
                    raise ValueError(
                        "step_size and grid_constructor are mutually exclusive options"
                    )
            if not isinstance(self.perturb, bool):
                raise ValueError(f"option perturb must be a bool, got {self.perturb!r}")
        if self.spec.check is not None:
            self.spec.check(self, positive)
        if self.spec.needs_linear and not callable(getattr(self.linear, "expm_apply", None)):
            raise ValueError(
                f"method {self.method!r} needs options['linear']: an object with expm_apply(h, y) "
                f"(e.g. sonode.ode.DenseLinear(A)); got {self.linear!r}"
            )
