"""Butcher tableaus of the implicit Runge–Kutta methods (full stage matrix A), as plain data.

Stage equations, in the increments Z_i = Y_i − y0 of the stage values:

    Z_i = h Σ_j a_ij f(t0 + c_j h, y0 + Z_j),      y1 = y0 + Σ_j d_j Z_j,

with d = bᵀA⁻¹ (so y1 = y0 + h Σ b_j f(Y_j) once the stages are solved), or d = e_s for stiffly
accurate methods (b = the last row of A; also those with a singular A, such as the trapezoid rule).
Names follow torchdiffeq where it has the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_S2, _S3, _S6, _S15 = math.sqrt(2.0), math.sqrt(3.0), math.sqrt(6.0), math.sqrt(15.0)


@dataclass(frozen=True)
class ImplicitTableau:
    """name, c (s,), a (s rows of s), b (s,), order p of y1 (local error O(h^(p+1))), d (s,) as above."""

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    d: tuple[float, ...] = ()

    @property
    def n_stages(self) -> int:
        return len(self.c)


def _tableau(name: str, c, a, b, order: int) -> ImplicitTableau:
    a_np, b_np = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    if np.array_equal(a_np[-1], b_np):
        d = np.eye(len(b))[-1]  # stiffly accurate: y1 is the last stage value
    else:
        d = np.linalg.solve(a_np.T, b_np)  # d = bᵀ A⁻¹
    return ImplicitTableau(
        name, tuple(c), tuple(map(tuple, a)), tuple(b), order, tuple(float(x) for x in d)
    )


_G = (2.0 - _S2) / 2.0  # SDIRK2's diagonal: L-stable two-stage, order 2
_TG = 2.0 - _S2  # TR-BDF2: the trapezoid covers [t0, t0 + γh], BDF2 the rest
_TD, _TW = _TG / 2.0, _S2 / 4.0

IMPLICIT_TABLEAUS: dict[str, ImplicitTableau] = {
    t.name: t
    for t in (
        _tableau("implicit_euler", [1.0], [[1.0]], [1.0], 1),
        _tableau("implicit_midpoint", [0.5], [[0.5]], [1.0], 2),
        _tableau("trapezoid", [0.0, 1.0], [[0.0, 0.0], [0.5, 0.5]], [0.5, 0.5], 2),
        _tableau("radauIIA3", [1 / 3, 1.0], [[5 / 12, -1 / 12], [3 / 4, 1 / 4]], [3 / 4, 1 / 4], 3),
        _tableau(
            "radauIIA5",
            [0.4 - _S6 / 10, 0.4 + _S6 / 10, 1.0],
            [
                [11 / 45 - 7 * _S6 / 360, 37 / 225 - 169 * _S6 / 1800, -2 / 225 + _S6 / 75],
                [37 / 225 + 169 * _S6 / 1800, 11 / 45 + 7 * _S6 / 360, -2 / 225 - _S6 / 75],
                [4 / 9 - _S6 / 36, 4 / 9 + _S6 / 36, 1 / 9],
            ],
            [4 / 9 - _S6 / 36, 4 / 9 + _S6 / 36, 1 / 9],
            5,
        ),
        _tableau(
            "gl4",
            [0.5 - _S3 / 6, 0.5 + _S3 / 6],
            [[0.25, 0.25 - _S3 / 6], [0.25 + _S3 / 6, 0.25]],
            [0.5, 0.5],
            4,
        ),
        _tableau(
            "gl6",
            [0.5 - _S15 / 10, 0.5, 0.5 + _S15 / 10],
            [
                [5 / 36, 2 / 9 - _S15 / 15, 5 / 36 - _S15 / 30],
                [5 / 36 + _S15 / 24, 2 / 9, 5 / 36 - _S15 / 24],
                [5 / 36 + _S15 / 30, 2 / 9 + _S15 / 15, 5 / 36],
            ],
            [5 / 18, 4 / 9, 5 / 18],
            6,
        ),
        _tableau("sdirk2", [_G, 1.0], [[_G, 0.0], [1.0 - _G, _G]], [1.0 - _G, _G], 2),
        _tableau(
            "trbdf2",
            [0.0, _TG, 1.0],
            [[0.0, 0.0, 0.0], [_TD, _TD, 0.0], [_TW, _TW, _TD]],
            [_TW, _TW, _TD],
            2,
        ),
    )
}
IMPLICIT_METHODS: tuple[str, ...] = tuple(IMPLICIT_TABLEAUS)
# Options of the implicit methods: fixed grid (step_size) or, with adaptive=True, step doubling.
IMPLICIT_OPTIONS = (
    "step_size",
    "adaptive",
    "newton_tol",
    "max_iters",
    "first_step",
    "max_step",
    "max_steps",
    "safety",
    "ifactor",
    "dfactor",
    "pcoeff",
    "icoeff",
)


def check_implicit_options(opts, positive) -> None:
    """ValueError for bad implicit-method options (``positive(name, value)`` raises unless > 0)."""
    if not isinstance(opts.doubling, bool):
        raise ValueError(f"option adaptive must be a bool, got {opts.doubling!r}")
    if opts.doubling and opts.step_size is not None:
        raise ValueError(
            "options step_size and adaptive=True exclude each other (adaptive chooses the steps)"
        )
    positive("newton_tol", opts.newton_tol)
    if (
        isinstance(opts.max_iters, bool)
        or not isinstance(opts.max_iters, int)
        or opts.max_iters < 1
    ):
        raise ValueError(f"option max_iters must be an int >= 1, got {opts.max_iters!r}")
    if not (opts.rtol >= 0 and opts.atol >= 0 and opts.rtol + opts.atol > 0):
        raise ValueError(
            f"rtol and atol scale Newton's stopping test: both >= 0, not both 0; got {opts.rtol!r}, {opts.atol!r}"
        )
