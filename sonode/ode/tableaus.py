"""Butcher tableaus of the explicit Runge–Kutta methods, as plain data.

A tableau gives the stage times ``c`` (fractions of the step), the stage matrix ``a``
(strictly lower triangular, row i lists the weights of stages 0..i-1), the solution weights
``b``, the error weights ``b_err = b - b_hat`` of the embedded lower-order solution, and the
dense-output polynomials ``dense``: row i holds the coefficients of θ^1, θ^2, ... of b_i(θ),
so that inside a step of size h the interpolant is

    y(t0 + θ h) = y0 + h Σ_i b_i(θ) k_i,     θ ∈ [0, 1],

built from the stages k_i the step computed anyway (no extra evaluations of f).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import polynomial as P

from .tableau_dopri8 import DOPRI8_A, DOPRI8_B, DOPRI8_B_ERR, DOPRI8_C


@dataclass(frozen=True)
class ButcherTableau:
    """One explicit Runge–Kutta method.

    Attributes:
        name: method name as accepted by ``odeint(method=...)``.
        c: (s,) stage times as fractions of the step.
        a: s rows; row i has i entries (weights of the earlier stages).
        b: (s,) weights of the propagated solution.
        order: order of the propagated solution.
        b_err: (s,) ``b - b_hat`` (None for fixed-step methods).
        error_order: exponent k of the step-size law h ∝ err^(-1/k); the lower order of the
            pair plus one (None for fixed-step methods).
        fsal: the last stage is f(t0 + h, y1) and is reused as the first stage of the next step.
        dense: (s, deg) polynomial coefficients of b_i(θ) for θ^1..θ^deg (None: no interpolant).
        interpolate_outputs: read outputs inside a step from ``dense``; False: the interpolant is
            less accurate than the method, so steps land on every output time instead (it then
            serves only event location and odeint_dense).
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_err: tuple[float, ...] | None = None
    error_order: int | None = None
    fsal: bool = False
    dense: tuple[tuple[float, ...], ...] | None = None
    interpolate_outputs: bool = True

    @property
    def n_stages(self) -> int:
        return len(self.c)


def _as_rows(poly_rows: list[np.ndarray]) -> tuple[tuple[float, ...], ...]:
    """Drop the (zero) constant term and pad every b_i(θ) to the same degree."""
    deg = max(len(p) for p in poly_rows) - 1
    out = []
    for p in poly_rows:
        padded = np.zeros(deg + 1)
        padded[: len(p)] = p
        if abs(padded[0]) > 0.0:
            raise ValueError("dense-output polynomials must vanish at θ = 0")
        out.append(tuple(float(x) for x in padded[1:]))
    return tuple(out)


def _hermite_dense(b: tuple[float, ...], extra: tuple[float, ...] | None = None):
    """Cubic Hermite interpolant of an FSAL step (y0, f0, y1, f1), plus an optional quartic bubble.

    With y1 = y0 + h Σ b_i k_i, k_0 = f(t0, y0) and k_last = f(t0 + h, y1):
        b_i(θ) = h10(θ) δ_{i,0} + h01(θ) b_i + h11(θ) δ_{i,last} + θ²(1-θ)² extra_i,
    h10 = θ - 2θ² + θ³, h01 = 3θ² - 2θ³, h11 = θ³ - θ².  With ``extra`` = Hairer's d_i this is
    exactly the 4th-order continuous extension of DOPRI5 (Hairer, Nørsett & Wanner, *Solving ODEs I*,
    §II.6, code ``CONTD5``); without it, the 3rd-order interpolant used for Bogacki–Shampine.
    """
    s = len(b)
    h10 = np.array([0.0, 1.0, -2.0, 1.0])
    h01 = np.array([0.0, 0.0, 3.0, -2.0])
    h11 = np.array([0.0, 0.0, -1.0, 1.0])
    bubble = np.array([0.0, 0.0, 1.0, -2.0, 1.0])
    rows = []
    for i in range(s):
        p = h01 * b[i]
        if i == 0:
            p = P.polyadd(p, h10)
        if i == s - 1:
            p = P.polyadd(p, h11)
        if extra is not None:
            p = P.polyadd(p, bubble * extra[i])
        rows.append(p)
    return _as_rows(rows)


def _factored(scale: float, *factors) -> np.ndarray:
    """scale * Π factors, each factor given as polynomial coefficients (low degree first)."""
    p = np.array([scale])
    for f in factors:
        p = P.polymul(p, np.asarray(f, dtype=float))
    return p


EULER = ButcherTableau(name="euler", c=(0.0,), a=((),), b=(1.0,), order=1)

MIDPOINT = ButcherTableau(name="midpoint", c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2)

# The classical RK4 (Kutta 1901): sonode's historical "rk4", now under its own name.
RK4_CLASSICAL = ButcherTableau(
    name="rk4_classical",
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
)

# Kutta's 3/8 rule, torchdiffeq's "rk4" (smaller error constant than the classical RK4).
RK4 = ButcherTableau(
    name="rk4",
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
    order=4,
)

# Heun's 2nd-order method (explicit trapezoid) and Heun's 3rd-order method.
HEUN2 = ButcherTableau(name="heun2", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2)
HEUN3 = ButcherTableau(
    name="heun3",
    c=(0.0, 1 / 3, 2 / 3),
    a=((), (1 / 3,), (0.0, 2 / 3)),
    b=(0.25, 0.0, 0.75),
    order=3,
)


def _quadratic_dense(s: int, b: tuple[float, ...]):
    """y(θ) = y0 + h (θ k_0 + θ² (Σ b_i k_i − k_0)): matches y0, y'(t0) and y1; O(h³) error, enough
    for the 2nd-order pairs, whose last stage is not f(t1, y1) (no Hermite interpolant for free)."""
    rows = []
    for i in range(s):
        rows.append(np.array([0.0, 1.0 if i == 0 else 0.0, b[i] - (1.0 if i == 0 else 0.0)]))
    return _as_rows(rows)


# Heun–Euler 2(1) pair.
ADAPTIVE_HEUN = ButcherTableau(
    name="adaptive_heun",
    c=(0.0, 1.0),
    a=((), (1.0,)),
    b=(0.5, 0.5),
    order=2,
    b_err=(-0.5, 0.5),
    error_order=2,
    dense=_quadratic_dense(2, (0.5, 0.5)),
)

# Fehlberg (1969) RKF 2(1) pair (NASA TR R-315), advancing with the 2nd-order solution.
_F2_B = (1 / 512, 255 / 256, 1 / 512)
FEHLBERG2 = ButcherTableau(
    name="fehlberg2",
    c=(0.0, 0.5, 1.0),
    a=((), (0.5,), (1 / 256, 255 / 256)),
    b=_F2_B,
    order=2,
    b_err=(1 / 512 - 1 / 256, 0.0, 1 / 512),
    error_order=2,
    dense=_quadratic_dense(3, _F2_B),
)

_BS3_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
# Bogacki & Shampine (1989), "A 3(2) pair of Runge–Kutta formulas", Appl. Math. Lett. 2(4).
BOSH3 = ButcherTableau(
    name="bosh3",
    c=(0.0, 0.5, 0.75, 1.0),
    a=((), (0.5,), (0.0, 0.75), _BS3_B[:3]),
    b=_BS3_B,
    order=3,
    b_err=tuple(bi - bh for bi, bh in zip(_BS3_B, (7 / 24, 1 / 4, 1 / 3, 1 / 8), strict=False)),
    error_order=3,
    fsal=True,
    dense=_hermite_dense(_BS3_B),
)

_DP5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP5_B_HAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
# Hairer's d_i of the DOPRI5 continuous extension (dopri5.f, CONTD5).
_DP5_D = (
    -12715105075 / 11282082432,
    0.0,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380423,
)
# Dormand & Prince (1980), "A family of embedded Runge–Kutta formulae", J. Comp. Appl. Math. 6(1).
DOPRI5 = ButcherTableau(
    name="dopri5",
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        _DP5_B[:6],
    ),
    b=_DP5_B,
    order=5,
    b_err=tuple(bi - bh for bi, bh in zip(_DP5_B, _DP5_B_HAT, strict=False)),
    error_order=5,
    fsal=True,
    dense=_hermite_dense(_DP5_B, _DP5_D),
)

_TS5_B = (
    0.09646076681806523,
    0.01,
    0.4798896504144996,
    1.379008574103742,
    -3.290069515436081,
    2.324710524099774,
    0.0,
)
# Tsitouras (2011), "Runge–Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62(2). Error weights b - b_hat with the sign of the last entry
# corrected (the paper prints it with the wrong sign); interpolant from the same paper (factored).
TSIT5 = ButcherTableau(
    name="tsit5",
    c=(0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0),
    a=(
        (),
        (0.161,),
        (-0.008480655492356989, 0.335480655492357),
        (2.897153057105493, -6.359448489975075, 4.3622954328695815),
        (5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525),
        (
            5.86145544294642,
            -12.92096931784711,
            8.159367898576159,
            -0.071584973281401,
            -0.028269050394068383,
        ),
        _TS5_B[:6],
    ),
    b=_TS5_B,
    order=5,
    b_err=(
        -0.00178001105222577714,
        -0.0008164344596567469,
        0.007880878010261995,
        -0.1447110071732629,
        0.5823571654525552,
        -0.45808210592918697,
        1 / 66,
    ),
    error_order=5,
    fsal=True,
    dense=_as_rows(
        [
            _factored(
                -1.0530884977290216,
                [0, 1],
                [-1.3299890189751412, 1],
                [0.7139816917074209, -1.4364028541716351, 1],
            ),
            _factored(0.1017, [0, 0, 1], [1.2949852507374631, -2.1966568338249754, 1]),
            _factored(
                2.490627285651252793, [0, 0, 1], [1.57803468208092486, -2.38535645472061657, 1]
            ),
            _factored(
                -16.54810288924490272,
                [0, 0, 1],
                [-1.21712927295533244, 1],
                [-0.61620406037800089, 1],
            ),
            _factored(
                47.37952196281928122,
                [0, 0, 1],
                [-1.203071208372362603, 1],
                [-0.658047292653547382, 1],
            ),
            _factored(-34.87065786149660974, [0, 0, 1], [-1.2, 1], [-0.666666666666666667, 1]),
            _factored(2.5, [0, 0, 1], [-1.0, 1], [-0.6, 1]),
        ]
    ),
)

# Dormand–Prince 8th order (DOP853), error estimated against its embedded 5th-order solution.
# Its own 7th-order interpolant needs 3 more stages; the free cubic Hermite one is far less accurate
# than the steps, so outputs are step ends (steps land on them) and the cubic serves events only.
DOPRI8 = ButcherTableau(
    name="dopri8",
    c=DOPRI8_C,
    a=DOPRI8_A,
    b=DOPRI8_B,
    order=8,
    b_err=DOPRI8_B_ERR,
    error_order=6,
    fsal=True,
    dense=_hermite_dense(DOPRI8_B),
    interpolate_outputs=False,
)

TABLEAUS: dict[str, ButcherTableau] = {
    tab.name: tab
    for tab in (
        EULER,
        MIDPOINT,
        RK4,
        RK4_CLASSICAL,
        HEUN2,
        HEUN3,
        ADAPTIVE_HEUN,
        FEHLBERG2,
        BOSH3,
        DOPRI5,
        TSIT5,
        DOPRI8,
    )
}
