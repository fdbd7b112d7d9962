"""Fit budgets in CPU seconds, for benchmarks on a shared machine.

`fit_samples` stops at ``max_time_s`` of wall-clock time. On a machine whose cores other jobs keep
busy, a 60 s wall budget buys a few seconds of work, and how many depends on the others' load, so
two fits measured one after the other are not comparable. With `use_cpu_clock` the fit's clock is
the process's CPU time instead: a budget of 60 s is then 60 s of work, what a fit gets on an
otherwise idle core, whatever the load while the benchmark runs.
"""

from __future__ import annotations

import time
import types


def use_cpu_clock() -> None:
    """Make `sonode.model.train`'s clock the process's CPU time (all threads) for this process."""
    import sonode.model.budget as budget
    import sonode.model.checks as checks
    import sonode.model.linear_step as linear_step
    import sonode.model.train as train

    # every clock of a fit: the loop's, FitBudget's (which compares against the loop's start) and
    # the cost probes' (a state solve's, a reconstruction's), which the budget extrapolates
    for module in (train, budget, checks, linear_step):
        module.time = types.SimpleNamespace(perf_counter=time.process_time)


def time_calls(module, labels: dict[str, str], clock, spent: dict[str, float]) -> None:
    """Wrap ``module``'s functions named in ``labels`` (those it has: an older tree may lack some) so
    that each call adds its ``clock()`` seconds to ``spent[labels[name]]``."""
    for name, label in labels.items():
        if not hasattr(module, name):
            continue
        original = getattr(module, name)

        def timed(*a, _original=original, _label=label, **k):
            start = clock()
            try:
                return _original(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + clock() - start

        setattr(module, name, timed)
