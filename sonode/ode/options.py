"""Typed, validated solver options: the only place where ``method`` and ``options`` dicts are read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .implicit_tableaus import IMPLICIT_METHODS, IMPLICIT_OPTIONS, IMPLICIT_TABLEAUS, check_implicit_options
from .tableaus import TABLEAUS

FIXED_METHODS = ("euler", "midpoint", "rk4", "lawson_rk4", "reversible_heun", "reversible_rk4")
ADAPTIVE_METHODS = ("bosh3", "dopri5", "tsit5")
SOLVERS: tuple[str, ...] = FIXED_METHODS + ADAPTIVE_METHODS + IMPLICIT_METHODS

_FIXED_OPTIONS = ("step_size",)
_LAWSON_OPTIONS = ("step_size", "linear")
_ADAPTIVE_OPTIONS = (
    "first_step",
    "max_step",
    "max_steps",
    "safety",
    "ifactor",
    "dfactor",
    "pcoeff",
    "icoeff",
    "per_sample",
)


def valid_option_names(method: str) -> tuple[str, ...]:
    """Names accepted in ``options`` for ``method`` (which must be in ``SOLVERS``)."""
    if method in IMPLICIT_METHODS:
        return IMPLICIT_OPTIONS
    if method == "lawson_rk4":
        return _LAWSON_OPTIONS
    if method in FIXED_METHODS:
        return _FIXED_OPTIONS
    return _ADAPTIVE_OPTIONS


@dataclass(frozen=True)
class SolveOptions:
    """Everything that decides how an ODE is solved; build it with :meth:`build`.

    Common:
        method: one of ``SOLVERS``.
        rtol, atol: relative / absolute tolerance of the adaptive methods' local error test
            (per-component scale ``atol + rtol * max(|y0|, |y1|)``, RMS norm over the state).
    Fixed-step (``euler``, ``midpoint``, ``rk4``, ``lawson_rk4``):
        step_size: step in the units of t (seconds for audio). None: one step per output
            interval. Otherwise each interval is cut into steps of ``step_size`` and the last
            one is shortened to land exactly on the output time.
        linear: (``lawson_rk4`` only, required) the linear part L of y' = L y + N(t, y), an
            object with ``expm_apply(h, y)`` (see :class:`sonode.ode.lawson.LinearOperator`).
    Adaptive (``bosh3``, ``dopri5``, ``tsit5``):
        first_step: initial |h| in units of t; None selects it by Hairer's algorithm (2 f evals).
        max_step: upper bound on |h| (default: unbounded).
        max_steps: attempted steps (accepted + rejected) before a RuntimeError.
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
    rtol: float = 1e-6
    atol: float = 1e-8
    step_size: float | None = None
    linear: Any = None
    first_step: float | None = None
    max_step: float = math.inf
    max_steps: int = 100_000
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

    @property
    def adaptive(self) -> bool:
        return self.method in ADAPTIVE_METHODS or self.doubling

    @property
    def tableau(self):
        """The Butcher tableau (None for ``lawson_rk4``, whose step is not a plain RK step)."""
        return TABLEAUS.get(self.method) or IMPLICIT_TABLEAUS.get(self.method)

    @classmethod
    def build(
        cls, method: str, rtol: float, atol: float, options: dict[str, Any] | None = None
    ) -> "SolveOptions":
        """Validate ``method`` and the ``options`` dict and return the typed options.

        Raises:
            ValueError: unknown method, an option the method does not take (the message lists
                the valid ones), or an out-of-range value.
        """
        if isinstance(options, SolveOptions):
            return options
        if method not in SOLVERS:
            raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(SOLVERS)}")
        options = dict(options or {})
        valid = valid_option_names(method)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                f"valid options: {', '.join(valid)}"
            )
        if "adaptive" in options:  # implicit methods: the option's name, not the property's
            options["doubling"] = options.pop("adaptive")
        opts = cls(method=method, rtol=float(rtol), atol=float(atol), **options)
        opts._check()
        return opts

    def _check(self) -> None:
        def positive(name: str, value, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not (isinstance(value, (int, float)) and value > 0 and not math.isnan(value)):
                raise ValueError(f"option {name} must be a positive number, got {value!r}")

        if self.adaptive:
            positive("rtol", self.rtol)
            if not self.atol >= 0:
                raise ValueError(f"atol must be >= 0, got {self.atol!r}")
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
        if self.method in IMPLICIT_METHODS:
            check_implicit_options(self, positive)
        if self.method == "lawson_rk4" and not callable(getattr(self.linear, "expm_apply", None)):
            raise ValueError(
                "method 'lawson_rk4' needs options['linear']: an object with expm_apply(h, y) "
                f"(e.g. sonode.ode.DenseLinear(A)); got {self.linear!r}"
            )
