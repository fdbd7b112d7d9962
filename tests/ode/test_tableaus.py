"""Butcher tableaus: order conditions hold and each interpolant ends at the step's solution."""

import numpy as np
import pytest
from ode_cases import ORDER

from sonode.ode.tableaus import TABLEAUS


def _order_conditions(b, A, c):
    """Residuals of the RK order conditions up to order 5 (Butcher trees, rooted form)."""
    b, A, c = map(np.asarray, (b, A, c))
    Ac, Ac2, Ac3 = A @ c, A @ c**2, A @ c**3
    AAc, AAc2 = A @ Ac, A @ Ac2
    AAAc = A @ AAc
    return {
        1: [b.sum() - 1],
        2: [b @ c - 1 / 2],
        3: [b @ c**2 - 1 / 3, b @ Ac - 1 / 6],
        4: [b @ c**3 - 1 / 4, b @ (c * Ac) - 1 / 8, b @ Ac2 - 1 / 12, b @ AAc - 1 / 24],
        5: [
            b @ c**4 - 1 / 5,
            b @ (c**2 * Ac) - 1 / 10,
            b @ (c * Ac2) - 1 / 15,
            b @ (c * AAc) - 1 / 30,
            b @ (Ac * Ac) - 1 / 20,
            b @ Ac3 - 1 / 20,
            b @ AAc2 - 1 / 60,
            b @ (A @ (c * Ac)) - 1 / 40,
            b @ AAAc - 1 / 120,
        ],
    }


def _matrix(tab):
    s = tab.n_stages
    A = np.zeros((s, s))
    for i, row in enumerate(tab.a):
        A[i, : len(row)] = row
    return A


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_solution_weights_have_the_claimed_order(name):
    tab = TABLEAUS[name]
    A = _matrix(tab)
    np.testing.assert_allclose(A.sum(1), tab.c, atol=1e-14)  # row sums = c
    res = _order_conditions(tab.b, A, tab.c)
    for p in range(1, min(ORDER[name], 5) + 1):  # conditions written out up to order 5 (dopri8: 8)
        np.testing.assert_allclose(res[p], 0.0, atol=1e-12, err_msg=f"order {p} condition")
    if ORDER[name] < 5:  # and not one order more (the claimed order is sharp)
        assert max(abs(r) for r in res[ORDER[name] + 1]) > 1e-3


@pytest.mark.parametrize("name", ["bosh3", "dopri5", "tsit5"])
def test_embedded_pair_has_order_one_less(name):  # (dopri8's embedded solution is 5th order)
    tab = TABLEAUS[name]
    b_hat = np.asarray(tab.b) - np.asarray(tab.b_err)
    res = _order_conditions(b_hat, _matrix(tab), tab.c)
    for p in range(1, ORDER[name]):
        np.testing.assert_allclose(res[p], 0.0, atol=1e-12)
    assert max(abs(r) for r in res[ORDER[name]]) > 1e-5  # really a lower-order solution
    assert tab.error_order == ORDER[name] if name != "bosh3" else tab.error_order == 3


@pytest.mark.parametrize("name", ["bosh3", "dopri5", "tsit5"])
def test_interpolant_starts_at_y0_and_ends_at_y1(name):
    tab = TABLEAUS[name]
    dense = np.asarray(tab.dense)  # b_i(θ) = Σ_j dense[i, j] θ^(j+1): b_i(0) = 0 by construction
    np.testing.assert_allclose(dense.sum(axis=1), tab.b, atol=1e-13)  # b_i(1) = b_i
    # derivative at θ = 1 is the FSAL stage (C¹ continuity across steps): b_i'(1) = δ_{i,last}
    deriv = dense @ np.arange(1, dense.shape[1] + 1)
    np.testing.assert_allclose(deriv, np.eye(tab.n_stages)[-1], atol=1e-12)
