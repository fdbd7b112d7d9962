"""sonode.ode: a general ODE engine in PyTorch (no audio code), torchdiffeq-style API.

``odeint(func, y0, t, *, method="dopri5", rtol=1e-6, atol=1e-8, options=None)`` solves
y' = func(t, y); see :func:`sonode.ode.solve.odeint` for shapes, units and options.
"""

from .adjoint import AdjointOptions, odeint_adjoint
from .jvp import LyapunovEstimate, finite_time_lyapunov, odeint_jvp
from .lawson import DenseLinear, LinearOperator
from .options import SOLVERS, SolveOptions
from .records import SolveResult, SolveStats, StepRecord
from .solve import odeint, replay_step, solve

__all__ = [
    "odeint",
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
