"""Identifying the two-sided predictor (`sonode.dsp.two_sided_fit`) against dense references.

The normal matrix of several sides is built in one pass down its diagonals, and the
forward-backward predictor is solved through the centrosymmetric split into two half-size
systems; both must equal the textbook computations (lagged products summed, the bordered normal
equations solved densely by scipy) to rounding, at odd and even sizes.
"""

import numpy as np
import pytest
import scipy.linalg

from sonode.dsp.two_sided_fit import (
    PREDICTOR_RIDGE,
    innovation_sigma,
    normal_matrix,
    predictor_from_gram,
    side_gram,
    two_sided_predictor,
)


def _lagged_gram(x, order, rows, near_end):
    lagged = np.lib.stride_tricks.sliding_window_view(x, order + 1)[:, ::-1]
    n = min(rows, x.size - order)
    lagged = lagged[-n:] if near_end else lagged[:n]
    return lagged.T @ lagged


def _sound(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    tones = np.sin(2 * np.pi * 440 * t) + 0.4 * np.sin(2 * np.pi * 1234.5 * t + 1)
    return tones + 0.05 * rng.standard_normal(n) + 0.02 * np.cumsum(rng.standard_normal(n))


@pytest.mark.parametrize(("order", "rows"), [(1, 10), (6, 30), (47, 200), (64, 5000)])
def test_normal_matrix_of_several_sides_is_the_sum_of_their_lagged_products(order, rows):
    left, right, third = _sound(3000, 1), _sound(2500, 2), _sound(40, 3)
    sides = [(left, rows, True), (right, rows, False), (third, rows, True)]
    direct = sum(_lagged_gram(x, order, r, end) for x, r, end in sides if x.size > order)
    gram = normal_matrix(sides, order)
    np.testing.assert_allclose(gram, direct, rtol=0, atol=1e-12 * np.abs(direct).max())
    np.testing.assert_array_equal(gram, gram.T)
    # a side too short for any row adds nothing; none at all gives zeros
    assert not normal_matrix([(left[:order], rows, True)], order).any()


def _dense_predictor(gram, forward_backward=True):
    if forward_backward:
        gram = gram + gram[::-1, ::-1]
    order = gram.shape[0] - 1
    normal = gram[1:, 1:] + (PREDICTOR_RIDGE * np.trace(gram[1:, 1:]) / order) * np.eye(order)
    return np.concatenate([[1.0], scipy.linalg.solve(normal, -gram[1:, 0], assume_a="pos")])


@pytest.mark.parametrize("order", [1, 2, 3, 8, 9, 64, 65, 300])
def test_forward_backward_predictor_equals_the_dense_solve_at_odd_and_even_sizes(order):
    x = _sound(6 * order + 400, order)
    gram = side_gram(x[:-200], order, 4 * order + 100, True) + side_gram(
        x[-200 - 4 * order :], order, 4 * order, False
    )
    a, reference = predictor_from_gram(gram), _dense_predictor(gram)
    assert a[0] == 1.0
    np.testing.assert_allclose(a, reference, rtol=0, atol=1e-9 * np.abs(reference).max())
    one_way = predictor_from_gram(gram, forward_backward=False)
    np.testing.assert_allclose(one_way, _dense_predictor(gram, False), rtol=1e-9, atol=1e-9)


def test_innovation_sigma_is_the_rms_error_of_the_forward_and_reversed_rows():
    x = _sound(4000, 5)
    order, rows = 40, 800
    lagged = np.lib.stride_tricks.sliding_window_view(x, order + 1)[-rows:, ::-1]
    gram = lagged.T @ lagged
    a = predictor_from_gram(gram)
    errors = np.concatenate([lagged @ a, lagged @ a[::-1]])  # forward rows, time-reversed rows
    expected = np.sqrt(np.mean(errors**2))
    assert innovation_sigma(gram, a, rows) == pytest.approx(expected, rel=1e-10)
    one_way = np.sqrt(np.mean((lagged @ a) ** 2))
    assert innovation_sigma(gram, a, rows, forward_backward=False) == pytest.approx(one_way, 1e-10)


def test_two_sided_predictor_restores_an_exact_recursion_from_both_sides():
    # two steady sinusoids obey one order-4 recursion forward and backward in time alike
    t = np.arange(3000)
    x = np.cos(0.5 * t) + 0.5 * np.cos(1.3 * t + 1)
    a, sigma = two_sided_predictor(x[:1400], x[1500:], 4, 400)
    exact = np.convolve([1, -2 * np.cos(0.5), 1], [1, -2 * np.cos(1.3), 1])
    np.testing.assert_allclose(a, exact, atol=1e-6)
    assert np.max(np.abs(np.convolve(x, a, mode="valid"))) < 1e-6 and sigma < 1e-6
