"""One deadline for the whole fit (--max-time): identification, training, the last check, the final
check and the continuation's training all fit in it (#30).

The training loop stops when the rest of the fit, estimated from what it measured so far, would
no longer fit before the deadline; the work after the loop then adapts to the time left (the last
parameters are checked only if that fits, the final check is the in-training one when the fine
one would take over FINAL_CHECK_SHARE of the budget, the continuation trains until the deadline).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# The final check (4× the substeps on 8× the segments) costs about this many in-training checks:
# measured 10.7-11.3× on a 1.5 s clip at 48 kHz, both cores loaded.
FINAL_CHECK_COST = 12
FINAL_CHECK_SHARE = 0.25  # above this share of the budget the final check is the in-training one
CONTINUATION_SHARE = 0.2  # of the budget, kept for the continuation's training after the loop
# The continuation's training costs at least this many times its identification (measured, CPU s,
# 1.5 s clips at 16 kHz, 30 steps: guitar 23.6 / 1.04, piano 37.6 / 1.12, organ 47.9 / 0.98,
# bell 26.1 / 1.11 = 23-49x). A training stopped by the deadline keeps nothing (the untrained
# continuation stays), so a share it cannot finish in is time taken from the steps for nothing.
CONTINUATION_TRAINING_PER_IDENTIFICATION = 20.0
NO_TIME_FOR_CONTINUATION = "would not finish in its share of --max-time"  # the report's "skipped"


class FitBudget:
    """Time accounting of one fit.

    Args:
        start: ``time.perf_counter()`` when the fit began (before identification).
        max_time_s: the budget (seconds), None for none.
        evaluation_s: measured seconds of one reconstruction and free run of the untrained model.
        check_s: measured seconds of one in-training solver check.
        reconstruction_batches: optimiser-step-sized batches in one reconstruction of the clip
            (a trained field's reconstruction costs about one step's solve per batch).
        continuation: whether a continuation is trained after the loop.
        continuation_identification_s: the identification's measured seconds for the
            continuation ODE; its share is reserved (and it is trained) only if its training's
            least cost, CONTINUATION_TRAINING_PER_IDENTIFICATION times that, fits in the share.
    """

    def __init__(
        self,
        start: float,
        max_time_s: float | None,
        evaluation_s: float,
        check_s: float,
        reconstruction_batches: int,
        continuation: bool,
        continuation_identification_s: float = 0.0,
    ):
        self.start = start
        self.budget_s = math.inf if max_time_s is None else float(max_time_s)
        self.evaluation_s = evaluation_s
        self.check_s = check_s
        self.batches = max(1, reconstruction_batches)
        self.fine_final = check_s * FINAL_CHECK_COST <= FINAL_CHECK_SHARE * self.budget_s
        bounded = continuation and max_time_s is not None
        share_s = CONTINUATION_SHARE * self.budget_s if bounded else 0.0
        least_s = CONTINUATION_TRAINING_PER_IDENTIFICATION * continuation_identification_s
        #: False: the continuation's training would not finish in its share; it is not started
        self.continuation_fits = not bounded or least_s <= share_s
        self.continuation_s = share_s if self.continuation_fits else 0.0
        self.step_s = 0.0  # slowest optimiser step so far
        self.consider_s: float | None = None  # the dearest in-training check's measured duration
        self.reconstruction_s: float | None = None  # a trained field's reconstruction, measured

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def out_of_time(self, margin_s: float = 0.0) -> bool:
        """True once the deadline minus ``margin_s`` has passed."""
        return self.elapsed_s() >= self.budget_s - margin_s

    def step_took(self, seconds: float) -> None:
        self.step_s = max(self.step_s, seconds)

    def consider_took(self, seconds: float) -> None:
        # the dearest check measured: one that refuses a worse reconstruction skips its free run
        # (`sonode.model.checks.consider`), and the next may not
        self.consider_s = seconds if self.consider_s is None else max(self.consider_s, seconds)

    def measure_reconstruction(self, estimate_s: Callable[[], float]) -> None:
        """Record ``estimate_s()``, the seconds of a reconstruction of the trained model, once, and
        only when there is a deadline."""
        if self.reconstruction_s is None and not math.isinf(self.budget_s):
            self.reconstruction_s = estimate_s()

    def consider_estimate_s(self) -> float:
        """Seconds of one check of the current parameters (`sonode.model.checks.consider`): as last
        measured, else the reconstruction (as measured by `measure_reconstruction`, else one step's
        solve per reconstruction batch) plus a solver check and a free run. (One step's solve per
        batch overstates a long clip's: the reconstruction has no gradient and larger batches; a
        60 s 48 kHz clip trained 1 step in 9 s of its 60 s, no second step "fitting".)"""
        if self.consider_s is not None:
            return self.consider_s
        reconstruction_s = self.reconstruction_s
        if reconstruction_s is None:
            reconstruction_s = self.step_s * self.batches
        return reconstruction_s + self.check_s + self.evaluation_s

    def final_check_s(self) -> float:
        return self.check_s * (FINAL_CHECK_COST if self.fine_final else 1)

    def train_more(self) -> bool:
        """Whether another step fits: the step, a check of the parameters it leads to, the final
        check and the continuation's share."""
        after = self.step_s + self.consider_estimate_s() + self.final_check_s()
        return self.elapsed_s() + after + self.continuation_s < self.budget_s

    def state_solve_fits(self, solve_s: float) -> bool:
        """Whether a joint state solve of ``solve_s`` seconds, a check of its result, the final
        check and the continuation's share fit before the deadline. (Unchecked, the solve took a
        60 s 48 kHz clip past --max-time 60 before any step: the fit ended with nothing written.)"""
        needed = solve_s + self.check_s + self.evaluation_s + self.final_check_s()
        return self.elapsed_s() + needed + self.continuation_s < self.budget_s

    def solve_fits(self, estimate_s: Callable[[], float]) -> bool:
        """`state_solve_fits` of the solve whose cost ``estimate_s()`` measures, probed only when
        there is a deadline (without one the answer is always yes)."""
        return math.isinf(self.budget_s) or self.state_solve_fits(estimate_s())

    def check_last(self, consider: bool = True) -> bool:
        """Whether the last parameters can still be checked (``consider``: they were not, at the
        step that left them) and the final check done in time. (Asking for a check of parameters
        already checked cost the quickstart its fine final check when its last step was the 75th.)"""
        needed = (self.consider_estimate_s() if consider else 0.0) + self.final_check_s()
        return self.elapsed_s() + needed < self.budget_s
