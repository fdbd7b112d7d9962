"""Further candidate fillers of one gap, weighed against the ODE orders on pseudo-gaps next to it.

`sonode.dsp.interpolation.interpolate_gap` compares every candidate on pseudo-gaps punched into the
known audio beside the gap and averages their fills of the real gap with weights ∝ 1/error². The
orders of the two-sided covariance predictor are always candidates; the fillers registered here
are other estimators of the same thing, so a sound that one estimator models badly can be carried
by another (docs/fill.md, "Why it lost off the bundled clips"):

- ``reestimate``: Janssen's iteration on the ODE's own predictor. The predictor of the largest
  order the context supports fills the gap, is re-identified on the whole segment with the gap
  filled (every row, the ones through the gap included, forward and time-reversed), and fills it
  again: the rows nearest the gap, which describe the sound there best, are no longer left out.
- ``janssen``: gap-wise Janssen with Burg estimation (`sonode.dsp.ar_fill.janssen_fill`, order
  ≤ 1024, 4096 samples per side, 3 iterations): a different estimator (Burg's forward-backward
  lattice) on a different window.

Every candidate is ``f(left, right, n_gap, rate) -> (n_gap,)`` (left newest last, right oldest
first, mono float64). `register_gap_candidate` adds one: the hook for a trained model filling from
both sides (the learned-dynamics work), which must only read ``left`` and ``right``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sonode.dsp.ar_fill import janssen_fill
from sonode.dsp.interpolation import (
    ROWS_PER_ORDER,
    _usable,
    candidate_orders,
    most_likely_fill,
    predictor_from_gram,
    side_gram,
    two_sided_predictor,
)

GapCandidate = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]
# Janssen's iterations inside the candidate: the classic filler's own (3, keep the best); the
# 20 of the reference cost 7x the time for the same SNR on the flute (29.6 dB either way).
CANDIDATE_JANSSEN_ITERATIONS = 3
REESTIMATE_ITERATIONS = 1


def reestimated_fill(
    left: np.ndarray,
    right: np.ndarray,
    n_gap: int,
    rate: int,
    orders: tuple[int, ...] | None = None,
    iterations: int = REESTIMATE_ITERATIONS,
) -> np.ndarray:
    """Janssen's iteration on the two-sided covariance predictor (see the module docstring),
    ``iterations`` re-identifications (each on the segment with the previous fill).

    The order is the largest of ``orders`` (default `candidate_orders(rate)`) the context
    supports; the segment is ROWS_PER_ORDER·p rows plus p samples on each side of the gap.

    Returns:
        (n_gap,) float64.
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    usable = [o for o in (orders or candidate_orders(rate)) if _usable(o, left.size, right.size)]
    order = max(usable) if usable else max(1, min(left.size, right.size) // 3)
    span = (ROWS_PER_ORDER + 1) * order
    left, right = left[-span:], right[:span]
    # the orders of `interpolate_gap` have just fitted this predictor on these samples: memoised
    start, _ = two_sided_predictor(left, right, order, ROWS_PER_ORDER * order)
    fill = most_likely_fill(left, right, n_gap, start)
    for _ in range(iterations):
        segment = np.concatenate([left, fill, right])
        whole = side_gram(segment, order, segment.size - order, True)
        fill = most_likely_fill(left, right, n_gap, predictor_from_gram(whole))
    return fill


def janssen_candidate(left: np.ndarray, right: np.ndarray, n_gap: int, rate: int) -> np.ndarray:
    """`janssen_fill` in its classical setting at every rate (order ≤ 1024, 4096 samples per
    side, CANDIDATE_JANSSEN_ITERATIONS) → (n_gap,). Not scaled with the rate as the orders are:
    at 44.1-48 kHz order 2048 on 12288 samples per side made this one candidate cost more than all
    the orders together (Burg is O(context·order) per iteration, 5 fills per gap). ``rate`` is
    the candidates' common signature (`GapCandidate`), unused here for that reason."""
    del rate
    return janssen_fill(left, right, n_gap, iterations=CANDIDATE_JANSSEN_ITERATIONS)


GAP_CANDIDATES: dict[str, GapCandidate] = {
    "reestimate": reestimated_fill,
    "janssen": janssen_candidate,
}
# What `sonode fill` weighs against the orders unless told otherwise (FillSettings.candidates).
DEFAULT_GAP_CANDIDATES = ("reestimate", "janssen")


def register_gap_candidate(name: str, function: GapCandidate | None = None):
    """Add a candidate ``f(left, right, n_gap, rate) -> (n_gap,)`` under ``name``; as a decorator
    without ``function``. Raises ValueError for a name already taken or not an identifier."""
    if not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"a gap candidate's name must be a Python identifier, got {name!r}")
    if name in GAP_CANDIDATES:
        raise ValueError(f"a gap candidate named {name!r} already exists; choose another name")

    def add(f: GapCandidate) -> GapCandidate:
        GAP_CANDIDATES[name] = f
        return f

    return add if function is None else add(function)


def bound_candidates(names: tuple[str, ...], rate: int) -> dict[str, Callable]:
    """{name: f(left, right, n_gap)} for `interpolate_gap`'s ``extra``, the rate bound.

    Raises:
        ValueError: an unknown name (listing the valid ones).
    """
    unknown = [n for n in names if n not in GAP_CANDIDATES]
    if unknown:
        raise ValueError(
            f"unknown gap candidate {unknown[0]!r}; valid: {', '.join(GAP_CANDIDATES)}"
        )
    return {
        n: (lambda left, right, n_gap, f=GAP_CANDIDATES[n]: f(left, right, n_gap, rate))
        for n in names
    }
