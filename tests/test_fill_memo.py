"""The memo of two-sided predictor fits (sonode.dsp.two_sided_fit): a hit returns exactly what the
fit computes, the reestimate candidate reuses the orders' fit, and the memo stays bounded."""

import numpy as np

from sonode.dsp.gap_candidates import bound_candidates, reestimated_fill
from sonode.dsp.interpolation import candidate_orders, interpolate_gap
from sonode.dsp.two_sided_fit import (
    PREDICTOR_MEMO,
    FitMemo,
    innovation_sigma,
    normal_matrix,
    predictor_from_gram,
    two_sided_predictor,
)

RATE = 16000


def _noisy_tones(n, seed=0):
    t = np.arange(n) / RATE
    rng = np.random.default_rng(seed)
    return (
        np.sin(2 * np.pi * 440 * t)
        + 0.3 * np.sin(2 * np.pi * 1234 * t + 1)
        + 0.05 * (rng.standard_normal(n))
    )


def test_the_memo_is_least_recently_used_and_computes_each_key_once():
    memo, calls = FitMemo(2), []

    def compute(v):
        return lambda: calls.append(v) or v

    assert memo.get("a", compute(1)) == 1
    assert memo.get("b", compute(2)) == 2
    assert memo.get("a", compute(99)) == 1  # a hit: not recomputed
    assert memo.get("c", compute(3)) == 3  # evicts "b", the least recently used
    assert memo.get("b", compute(4)) == 4
    assert calls == [1, 2, 3, 4] and (memo.hits, memo.misses) == (1, 4)


def test_the_memoised_predictor_is_the_direct_fit_on_the_whole_sides():
    x = _noisy_tones(6000)
    left, right, order, rows = x[:3000], x[3320:], 96, 384
    PREDICTOR_MEMO.clear()
    a, sigma = two_sided_predictor(left, right, order, rows)
    gram = normal_matrix([(left, rows, True), (right, rows, False)], order)
    direct = predictor_from_gram(gram)
    np.testing.assert_array_equal(a, direct)
    assert sigma == innovation_sigma(gram, direct, 2 * rows)
    # same samples read, other arrays: a hit; one sample changed within what is read: a new fit
    a2, _ = two_sided_predictor(left.copy(), right.copy(), order, rows)
    assert PREDICTOR_MEMO.hits == 1 and a2 is a
    changed = left.copy()
    changed[-1] += 1e-3
    a3, _ = two_sided_predictor(changed, right, order, rows)
    assert PREDICTOR_MEMO.misses == 2 and not np.array_equal(a3, a)


def test_the_reestimate_reuses_the_orders_fit_and_fills_the_same_as_without_the_memo():
    x = _noisy_tones(6000, seed=1)
    start, n_gap = 3000, 80
    left, right = x[:start], x[start + n_gap :]
    rate = 4000  # orders 32-256, as `sonode fill` scales them (the reestimate's own rule)
    orders = candidate_orders(rate)
    extra = bound_candidates(("reestimate",), rate)
    PREDICTOR_MEMO.clear()
    memoised = interpolate_gap(left, right, n_gap, orders, extra=extra)
    # every reestimate (one per pseudo-gap and the gap) starts from an order's memoised fit
    assert PREDICTOR_MEMO.hits >= 5
    fresh = FitMemo(0)  # size 0: nothing is ever kept
    PREDICTOR_MEMO.__dict__, saved = fresh.__dict__, dict(PREDICTOR_MEMO.__dict__)
    try:
        unmemoised = interpolate_gap(left, right, n_gap, orders, extra=extra)
        alone = reestimated_fill(left, right, n_gap, rate)
        assert PREDICTOR_MEMO.hits == 0
    finally:
        PREDICTOR_MEMO.__dict__ = saved
    np.testing.assert_array_equal(memoised.fill, unmemoised.fill)
    np.testing.assert_array_equal(memoised.candidate_fills[-1], alone)
