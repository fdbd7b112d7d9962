"""sonode.ode: a general ODE engine in PyTorch (no audio code), a drop-in for torchdiffeq.

``odeint(func, y0, t, *, rtol=1e-7, atol=1e-9, method=None, options=None, event_fn=None)`` solves
y' = func(t, y); see :func:`sonode.ode.solve.odeint` for shapes, units and options, and
docs/engine.md for the methods (registry: :mod:`sonode.ode.methods`).
"""

from . import adams, implicit_solve, reversible, scipy_solver  # noqa: F401  (register their methods)
from .adjoint import odeint_adjoint
from .adjoint_options import AdjointOptions
from .entry import odeint_dense, odeint_event
from .jvp import LyapunovEstimate, finite_time_lyapunov, odeint_jvp
from .lawson import DenseLinear, LinearOperator
from .methods import METHODS, Method, get_method, register
from .options import SOLVERS, SolveOptions
from .records import SolveResult, SolveStats, StepRecord
from .solve import odeint, replay_step, solve

__all__ = [
    "odeint",
    "odeint_event",
    "odeint_dense",
    "METHODS",
    "Method",
    "register",
    "get_method",
    "solve",
    "replay_step",
    "SOLVERS",
    "SolveOptions",
    "SolveStats",
    "SolveResult",
    "StepRecord",
    "LinearOperator",
    "DenseLinear",
    "odeint_adjoint",
    "AdjointOptions",
    "odeint_jvp",
    "finite_time_lyapunov",
    "LyapunovEstimate",
]
