"""Identification's algebra: Aberth roots against the companion matrix's eigenvalues, the
structured lag Gram against the lag matrix's, the one-thread LAPACK limit."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_info

from sonode.dsp.linalg import aberth_roots, companion_roots, lapack_threads, polynomial_roots
from sonode.dsp.lpc import (
    burg,
    covariance_predictor,
    lag_gram,
    modal_basis,
    modal_gram,
    ridge_solve,
)


def _matched_distance(r1: np.ndarray, r2: np.ndarray) -> float:
    distance = np.abs(r1[:, None] - r2[None, :])
    rows, cols = linear_sum_assignment(distance)
    return float(distance[rows, cols].max())


def _predictor_of_noisy_modes(order: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = np.arange(4 * order)
    x = sum(
        np.exp(-d * n) * np.cos(w * n + ph)
        for w, d, ph in zip(
            rng.uniform(0.05, 3.0, 30),
            rng.uniform(0, 1e-3, 30),
            rng.uniform(0, 6, 30),
            strict=False,
        )
    )
    return burg(x + 1e-3 * rng.standard_normal(n.shape[0]), order)


@pytest.mark.parametrize("order", [128, 512])
def test_aberth_roots_equal_the_companion_eigenvalues(order):
    a = _predictor_of_noisy_modes(order)
    roots = aberth_roots(a)
    assert roots is not None and roots.shape == (order,)
    assert _matched_distance(roots, companion_roots(a)) < 1e-9


def test_aberth_finds_roots_outside_the_unit_circle():
    # the reversed predictor's roots are the predictor's reflected, 1/z: all outside the circle
    a = _predictor_of_noisy_modes(256, seed=2)
    inside = companion_roots(a)
    roots = aberth_roots(a[::-1].copy())
    assert roots is not None and np.all(np.abs(roots) > 1.0)
    assert _matched_distance(roots, 1.0 / inside) < 1e-9


def test_polynomial_roots_drops_roots_at_zero_and_falls_back_for_low_degree():
    a = np.real(np.poly([0.5, 0.25 + 0.5j, 0.25 - 0.5j]))
    roots = polynomial_roots(np.concatenate([a, [0.0, 0.0]]))  # two roots at 0, dropped
    assert _matched_distance(roots, np.array([0.5, 0.25 + 0.5j, 0.25 - 0.5j])) < 1e-12


def test_aberth_reports_failure_instead_of_returning_unconverged_roots():
    assert aberth_roots(_predictor_of_noisy_modes(128), max_iterations=1) is None


@pytest.mark.parametrize("n, order", [(13, 12), (50, 3), (3000, 40)])
def test_lag_gram_equals_the_lag_matrix_gram(n, order):
    x = np.random.default_rng(n).standard_normal(n)
    lagged = np.lib.stride_tricks.sliding_window_view(x, order + 1)[
        :, ::-1
    ]  # row: x[m], x[m-1], ...
    np.testing.assert_allclose(lag_gram(x, order), lagged.T @ lagged, rtol=0, atol=1e-12 * n)


def test_covariance_predictor_of_an_exact_recursion_is_exact():
    a_true = np.real(np.poly([0.9 * np.exp(0.3j), 0.9 * np.exp(-0.3j), 0.7]))
    x = np.zeros(200)
    x[:3] = [1.0, -0.5, 0.25]
    for n in range(3, 200):
        x[n] = -a_true[1:] @ x[n - 3 : n][::-1]
    np.testing.assert_allclose(covariance_predictor(x, 3, rel_ridge=0.0), a_true, atol=1e-10)


def test_lapack_threads_limits_openblas_and_restores_it():
    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    with lapack_threads(1):
        assert all(t == 1 for t in blas_threads())
    assert blas_threads() == before


@pytest.mark.parametrize("n", [1, 7, 2048])
def test_modal_gram_equals_the_basis_gram(n):
    rng = np.random.default_rng(n)
    poles = np.concatenate(
        [
            rng.uniform(0.5, 1.0, 20) * np.exp(1j * rng.uniform(0, np.pi, 20)),
            [1.0, 0.999999 * np.exp(1e-7j), np.exp(1e-7j), -0.7],
        ]
    )  # q = 1 and q near 1
    basis = modal_basis(poles, n)
    np.testing.assert_allclose(modal_gram(poles, n), basis.T @ basis, rtol=0, atol=1e-9 * n)


def test_ridge_solve_with_one_matrix_for_many_rows_equals_the_batched_solve():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    gram, rhs = a @ a.T, rng.standard_normal((4, 6))
    np.testing.assert_allclose(
        ridge_solve(gram, rhs, 1e-6),
        ridge_solve(np.broadcast_to(gram, (4, 6, 6)).copy(), rhs, 1e-6),
        rtol=1e-10,
    )


@pytest.mark.parametrize("n, first", [(0, 0), (1, 0), (65, 0), (300, 0), (200, 1000)])
def test_modal_basis_by_block_products_equals_the_powers(n, first):
    poles = np.array([0.999 * np.exp(0.3j), 0.5, np.exp(2.0j), 0.0])
    powers = poles[None, :] ** (first + np.arange(n))[:, None]
    expected = np.concatenate([powers.real, -powers.imag], axis=1)
    np.testing.assert_allclose(modal_basis(poles, n, first), expected, rtol=0, atol=1e-12)


def test_damped_exponential_sum_equals_the_direct_sum():
    from sonode.dsp.partial_continuation import damped_exponential_sum

    rng = np.random.default_rng(5)
    amplitude = rng.standard_normal(7) + 1j * rng.standard_normal(7)
    rates = -rng.uniform(0, 5, 7) + 2j * np.pi * rng.uniform(8000, 24000, 7)
    n, rate = 1000, 48000
    direct = np.real(np.exp(np.outer(np.arange(n) / rate, rates)) @ amplitude)
    np.testing.assert_allclose(
        damped_exponential_sum(amplitude, rates, n, rate), direct, rtol=0, atol=1e-11
    )


def test_real_roots_come_out_exactly_real():
    # real roots with Aberth's rounding-size imaginary parts of either sign would be dropped by
    # the Im ≥ 0 selection of the poles half of the time
    a = _predictor_of_noisy_modes(256, seed=4)
    expected = companion_roots(a)
    roots = polynomial_roots(a)
    assert np.sum(roots.imag == 0) == np.sum(expected.imag == 0) > 0
    assert np.sum(roots.imag >= 0) == np.sum(expected.imag >= 0)
