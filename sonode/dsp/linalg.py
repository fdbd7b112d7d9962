"""Dense algebra of the identification: polynomial roots, and LAPACK on one thread.

The identification finds the roots of order-1024 predictors three times per fit (the modes, the
continuation's validation and its final predictor). The eigenvalues of the companion matrix cost
O(p³) (≈ 40 products of two 1024² matrices); Aberth's simultaneous iteration costs O(p²) per
iteration and converges in 13-18 iterations on predictors of recorded sound: 5-7× faster at order
1024, roots equal to the eigenvalues' to 2e-12 and residuals |A(z)| as small or smaller
(benchmarks/bench_identify.py, docs/training.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from threadpoolctl import threadpool_limits

ABERTH_MIN_DEGREE = (
    128  # below this LAPACK's eigenvalues are as fast (order 64: 0.01-0.02 s either way)
)
REAL_ROOT_TOLERANCE = 1e-10  # |Im z| below this (relative) is rounding: the root is real
ABERTH_MAX_ITERATIONS = 60  # not converged by then (never seen): the companion matrix's eigenvalues


@contextlib.contextmanager
def lapack_threads(count: int = 1) -> Iterator[None]:
    """numpy/scipy's BLAS and LAPACK (OpenBLAS) limited to ``count`` threads inside the block.

    Identification's dense algebra runs here rather than in torch: torch's MKL, at two threads on
    the shared 2-core machine, reported "Parameter 6 was incorrect on entry to DLASWP" and hung in
    the batched solve of the segment states (measured, torch 2.14.1), and with the other core busy
    two threads were several times slower than one (15 s against 0.4 s for roots at order 512).
    Only the BLAS API is limited, not OpenMP, so torch's own thread count is never touched
    (switching it to one and back also left MKL hanging)."""
    with threadpool_limits(limits=count, user_api="blas"):
        yield


def polynomial_roots(a: np.ndarray) -> np.ndarray:
    """Roots of the polynomial a[0] z^p + ... + a[p] (a[0] ≠ 0; trailing zero coefficients, i.e.
    roots at 0, are dropped), shape (p,) complex128, in no particular order.

    Degree ≥ ABERTH_MIN_DEGREE: Aberth's iteration (`aberth_roots`); smaller degrees, or if it
    does not converge, the eigenvalues of the companion matrix (LAPACK, one thread)."""
    a = np.trim_zeros(np.asarray(a, dtype=np.float64), "b")
    p = a.shape[0] - 1
    if p < 1:
        return np.zeros(0, dtype=np.complex128)
    if p >= ABERTH_MIN_DEGREE:
        roots = aberth_roots(a)
        if roots is not None:
            # A real root comes out with an imaginary part of rounding size and either sign (LAPACK's
            # real Schur form gives exactly 0): on the real axis it is kept by the Im ≥ 0 selection
            # of the poles (`stable_poles`) whatever the sign (measured: a dropped real root changed
            # the horn's mode ranking, its linear start 1 dB worse).
            real = np.abs(roots.imag) <= REAL_ROOT_TOLERANCE * np.maximum(np.abs(roots), 1.0)
            roots[real] = roots[real].real
            return roots
    return companion_roots(a)


def companion_roots(a: np.ndarray) -> np.ndarray:
    """Eigenvalues of the companion matrix of a[0] z^p + ... + a[p] (p ≥ 1, a[p] ≠ 0): (p,) complex."""
    p = a.shape[0] - 1
    companion = np.zeros((p, p))
    companion[0] = -a[1:] / a[0]
    companion[np.arange(1, p), np.arange(p - 1)] = 1.0
    with lapack_threads():
        return np.linalg.eigvals(companion).astype(np.complex128)


def aberth_roots(a: np.ndarray, max_iterations: int = ABERTH_MAX_ITERATIONS) -> np.ndarray | None:
    """All roots of a[0] z^p + ... + a[p] (a[p] ≠ 0) by the Aberth-Ehrlich iteration, or None if
    some did not converge within ``max_iterations``.

    Every approximation z_i moves by N_i / (1 − N_i Σ_{j≠i} 1/(z_i − z_j)) with N_i = A(z_i)/A'(z_i):
    Newton's step, repelled from the other approximations so that no two converge to one root.
    A(z) is evaluated by Horner's rule for |z| ≤ 1 and through the reversed polynomial at 1/z
    outside, so nothing overflows. An approximation stops once |A(z_i)| is within the rounding
    bound 4·p·eps·Σ|a_k||z_i|^k of Horner's rule (nothing more can be resolved: a backward-stable
    root). The start is p points on the circle of the roots' geometric mean radius |a_p/a_0|^(1/p),
    where high-order predictors of sound put most of their roots.

    Args:
        a: (p + 1,) float64, a[0] ≠ 0 ≠ a[p].
        max_iterations: iteration limit.

    Returns:
        (p,) complex128 or None.
    """
    p = a.shape[0] - 1
    forward = a / a[0]
    reverse = forward[::-1] / forward[-1]
    radius = abs(forward[-1]) ** (1.0 / p)
    z = radius * np.exp(1j * (2 * np.pi * np.arange(p) / p + 0.4))  # offset: none on the real axis
    active = np.arange(p)
    for _ in range(max_iterations):
        za = z[active]
        newton, converged = np.empty(za.shape, dtype=np.complex128), np.empty(za.shape, dtype=bool)
        inside = np.abs(za) <= 1.0
        if inside.any():
            value, slope, bound = _horner(forward, za[inside])
            newton[inside] = value / slope
            converged[inside] = np.abs(value) <= 4 * p * np.finfo(float).eps * bound
        if not inside.all():
            zo = za[~inside]
            w = 1.0 / zo
            value, slope, bound = _horner(reverse, w)
            # A(z) = z^p·R(1/z) ⇒ A/A' = z / (p − w R'(w)/R(w)), w = 1/z
            newton[~inside] = zo / (p - w * slope / value)
            converged[~inside] = np.abs(value) <= 4 * p * np.finfo(float).eps * bound
        if not np.all(np.isfinite(newton)):
            return None
        differences = za[:, None] - z[None, :]
        differences[np.arange(active.shape[0]), active] = np.inf  # j ≠ i
        repulsion = (1.0 / differences).sum(axis=1)
        z[active] = za - newton / (1.0 - newton * repulsion)
        active = active[~converged]
        if active.shape[0] == 0:
            return z
    return None


def _horner(c: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(z), P'(z), Σ|c_k|·|z|^(p−k)) of P with coefficients c (highest degree first) at z (m,)."""
    value = np.full(z.shape, c[0], dtype=np.complex128)
    slope = np.zeros(z.shape, dtype=np.complex128)
    bound = np.full(z.shape, abs(c[0]))
    magnitude, coefficient_size = np.abs(z), np.abs(c)
    for k in range(1, c.shape[0]):
        slope = slope * z + value
        value = value * z + c[k]
        bound = bound * magnitude + coefficient_size[k]
    return value, slope, bound
