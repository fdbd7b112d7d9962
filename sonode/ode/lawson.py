"""Lawson RK4: classical RK4 in the integrating-factor variable, for y' = L y + N(t, y).

With w(t) = exp(-L t) y(t) the linear part drops out (w' = exp(-L t) N(t, exp(L t) w)), and RK4
on w is exact when N = 0 for any step, stable for stiff-but-linear L (e.g. fast oscillators),
and 4th order otherwise (Lawson 1967, "Generalized Runge–Kutta processes ...", SIAM J. Numer. Anal.).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .rk import Func


@runtime_checkable
class LinearOperator(Protocol):
    """The linear part L of y' = L y + N(t, y), acting on the last dimension of the state."""

    def expm_apply(self, h: float, y: torch.Tensor) -> torch.Tensor:
        """exp(L h) applied to y along its last dimension; y may have any leading dims.

        h is a step in units of t (python float, may be negative).
        """
        ...


class DenseLinear:
    """L given as a dense (d, d) matrix ``A`` (may require grad); exp via torch.linalg.matrix_exp.

    Meant for small d and tests; structured operators (diagonal, rotations) should implement
    ``expm_apply`` in closed form.
    """

    def __init__(self, A: torch.Tensor):
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(
                f"DenseLinear needs a square (d, d) matrix, got shape {tuple(A.shape)}"
            )
        self.A = A

    def expm_apply(self, h: float, y: torch.Tensor) -> torch.Tensor:
        # y (..., d) as rows: (exp(A h) y^T)^T = y exp(A h)^T
        return y @ torch.linalg.matrix_exp(self.A * h).T


def lawson_rk4_step(
    func: Func, linear: LinearOperator, times, h: float, y0: torch.Tensor
) -> torch.Tensor:
    """One Lawson RK4 step (4 evaluations of N, 3 calls of ``expm_apply`` at h/2).

    Args:
        func: N(t, y), the nonlinear part only.
        linear: L, see :class:`LinearOperator`.
        times: time arguments for f at (t0, t0 + h/2, t0 + h) — indices 0, 1, 2.
        h: step in units of t (python float, may be negative).
        y0: state (..., d).

    Returns:
        y1 = E(h) y0 + h/6 (E(h) k1 + 2 E(h/2)(k2 + k3) + k4), with E(τ) = exp(L τ), computed as
        E(h/2)[E(h/2) y0 + h/6 (E(h/2) k1 + 2 (k2 + k3))] + h/6 k4 so that E(h) = E(h/2)²
        and every expm_apply call is batched over the vectors that need it.
    """
    half = 0.5 * h
    k1 = func(times[0], y0)
    u, v, e1 = linear.expm_apply(half, torch.stack([torch.add(y0, k1, alpha=half), y0, k1])).unbind(
        0
    )
    k2 = func(times[1], u)  # u = E(h/2)(y0 + h/2 k1)
    k3 = func(times[1], torch.add(v, k2, alpha=half))  # v = E(h/2) y0
    ey, e3 = linear.expm_apply(half, torch.stack([v, k3])).unbind(0)  # E(h) y0, E(h/2) k3
    k4 = func(times[2], torch.add(ey, e3, alpha=h))
    inner = torch.add(v, torch.add(e1, k2 + k3, alpha=2.0), alpha=h / 6)
    return torch.add(linear.expm_apply(half, inner), k4, alpha=h / 6)
