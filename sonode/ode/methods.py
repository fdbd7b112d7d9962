"""The solver registry: method name -> :class:`Method` (what it is, what it supports, how it runs).

Everything that depends on the method (which options it takes, whether it is adaptive, whether
the adjoint can replay it, whether it needs a linear operator ...) is a property of its registered
``Method``; no other module compares method names. A new solver registers itself with
:func:`register`:

- a fixed-step method gives ``step(func, opts, t0, h, y0, times) -> y1`` (or just a Butcher
  tableau), and gets the step grid, interpolation, callbacks, both adjoints and forward mode;
- an adaptive embedded Runge–Kutta pair gives its tableau (with ``b_err``, ``dense``);
- anything else (multistep, implicit with its own controller, scipy) gives
  ``solver(func, y0, t_out, opts, record_steps) -> SolveResult`` and sets ``replayable=False``
  (the checkpoint adjoint then falls back to backsolve).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .lawson import lawson_rk4_step
from .tableaus import TABLEAUS, ButcherTableau

# Option names shared by families of methods (torchdiffeq's names, plus sonode's extras).
FIXED_OPTIONS = ("step_size", "grid_constructor", "perturb", "interp", "grid", "norm")
ADAPTIVE_OPTIONS = (
    "first_step",
    "max_step",
    "min_step",
    "max_num_steps",
    "max_steps",
    "safety",
    "ifactor",
    "dfactor",
    "pcoeff",
    "icoeff",
    "step_t",
    "jump_t",
    "dtype",
    "norm",
    "per_sample",
)


@dataclass(frozen=True)
class Method:
    """One registered solver.

    name: the ``method=`` string. order: order of the propagated solution.
    adaptive: error-controlled step size (rtol/atol apply). implicit: solves a nonlinear system per step.
    options: option names it accepts (anything else is a ValueError).
    tableau: the explicit RK tableau (None for non-RK steps).
    step: fixed-step update ``step(func, opts, t0, h, y0, times) -> y1`` (times: f's time
        arguments for the tableau's stages, see ``fixed.stage_times``); None: the tableau's RK step.
    evals: evaluations of f per step (fixed-step statistics).
    solver: a whole-solve function for methods outside the two built-in loops (None: built-in).
    replayable: steps can be re-run exactly (checkpoint adjoint, record_steps).
    needs_linear: takes options["linear"] (y' = L y + N); f is then N only.
    time_gradient: dL/dt by the continuous formula is available (needs the full f).
    check: extra option validation ``check(opts, positive)`` (positive(name, value) raises unless > 0).
    replay: re-run of one accepted step of its own adaptive loop, ``replay(func, opts, t0, h, y0,
        times) -> (y1, outs)`` (None: the RK replay of ``solve.replay_step``).
    backsolve: the continuous (backsolve) adjoint can integrate it on the augmented state.
    adjoint_mode: odeint_adjoint's default mode for it (None: see `default_adjoint_mode`).
    callbacks: the func.callback_* names its forward solve calls (None: all three if the solve is
        adaptive, else callback_step); odeint warns about the others, as torchdiffeq does.
    description: one line for docs and error messages.
    """

    name: str
    order: int
    adaptive: bool
    implicit: bool = False
    options: tuple[str, ...] = ()
    tableau: ButcherTableau | None = None
    step: Callable | None = None
    evals: int | None = None
    solver: Callable | None = None
    replayable: bool = True
    needs_linear: bool = False
    time_gradient: bool = True
    check: Callable | None = None
    replay: Callable | None = None
    backsolve: bool = True
    adjoint_mode: str | None = None
    callbacks: tuple[str, ...] | None = None
    description: str = ""

    @property
    def default_adjoint_mode(self) -> str:
        """odeint_adjoint's mode when adjoint_options names none: torchdiffeq's continuous adjoint
        ("backsolve") wherever it can integrate the method, so a torchdiffeq call gets torchdiffeq's
        backward pass; else the exact discrete "checkpoint" (implicit methods, lawson_rk4)."""
        if self.adjoint_mode is not None:
            return self.adjoint_mode
        return "backsolve" if self.backsolve and not self.needs_linear else "checkpoint"

    @property
    def n_evals(self) -> int:
        return self.evals if self.evals is not None else self.tableau.n_stages


METHODS: dict[str, Method] = {}


def register(method: Method, *aliases: str) -> Method:
    """Add ``method`` (and optional alias names) to the registry; returns it."""
    for name in (method.name, *aliases):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = method
    return method


def get_method(name: Any) -> Method:
    """The registered method ``name`` (None means "dopri5", as in torchdiffeq); ValueError otherwise."""
    if name is None:
        name = "dopri5"
    method = METHODS.get(name) if isinstance(name, str) else None
    if method is None:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return method


_DESCRIBE = {
    "euler": "explicit Euler",
    "midpoint": "explicit midpoint",
    "rk4": "Kutta's 3/8 rule (torchdiffeq's rk4)",
    "rk4_classical": "classical Runge–Kutta 4",
    "heun2": "Heun's method (explicit trapezoid)",
    "heun3": "Heun's 3rd-order method",
    "adaptive_heun": "Heun–Euler 2(1)",
    "fehlberg2": "Runge–Kutta–Fehlberg 2(1)",
    "bosh3": "Bogacki–Shampine 3(2)",
    "dopri5": "Dormand–Prince 5(4)",
    "tsit5": "Tsitouras 5(4)",
    "dopri8": "Dormand–Prince 8(5) (DOP853)",
}


def _rk4_step(func, opts, t0: float, h: float, y0, at, k1=None):
    """Kutta's 3/8 rule in torchdiffeq's own arithmetic (same values as the tableau, same rounding:
    float32 solves then match torchdiffeq's to the last bit, not just to round-off).
    k1: f(t0, y0) if already known (the Adams start-up has it in its history)."""
    k1 = func(at(0.0), y0) if k1 is None else k1
    k2 = func(at(1 / 3), y0 + h * k1 * (1 / 3))
    k3 = func(at(2 / 3), y0 + h * (k2 - k1 * (1 / 3)))
    k4 = func(at(1.0), y0 + h * (k1 - k2 + k3))
    return y0 + (k1 + 3 * (k2 + k3) + k4) * h * 0.125


for _names, _adaptive, _options in (
    (("euler", "midpoint", "rk4", "rk4_classical", "heun2", "heun3"), False, FIXED_OPTIONS),
    (("adaptive_heun", "fehlberg2", "bosh3", "dopri5", "tsit5", "dopri8"), True, ADAPTIVE_OPTIONS),
):
    for _name in _names:
        _tab = TABLEAUS[_name]
        register(
            Method(
                _name,
                _tab.order,
                adaptive=_adaptive,
                options=_options,
                tableau=_tab,
                step=_rk4_step if _name == "rk4" else None,
                description=_DESCRIBE[_name],
            )
        )


def _lawson_step(func, opts, t0: float, h: float, y0, at):
    return lawson_rk4_step(func, opts.linear, [at(0.0), at(0.5), at(1.0)], h, y0)


register(
    Method(
        "lawson_rk4",
        4,
        adaptive=False,
        options=FIXED_OPTIONS + ("linear",),
        step=_lawson_step,
        evals=4,
        needs_linear=True,
        time_gradient=False,
        description="classical RK4 in the integrating-factor variable of y' = L y + N(t, y) (sonode)",
    )
)
