"""Print a line ``sonode-phase: NAME`` on stderr each time a `sonode fit` child enters another phase,
so that a test or benchmark sends its signal in a known phase instead of after a guessed delay.

Imported by the child wrapper of tests/hostile_support.py when SONODE_TEST_PHASES=1 (`start(...,
phases=True)`). It wraps the functions that begin each phase where the fit looks them up (module
globals), so sonode itself is unchanged. Phases, in order: identification, checks (the untrained
model's solver check), training, checks (the last parameters', the final one), continuation,
report (the energy above Nyquist), writing.
"""

from __future__ import annotations

import functools
import os

import sonode.api
import sonode.model.train

PHASE_PREFIX = "sonode-phase: "
_current = [""]


def _announce(name: str, function):
    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        if _current[0] != name:  # os.write: unbuffered, at once, as the child's own lines
            _current[0] = name
            os.write(2, f"\n{PHASE_PREFIX}{name}\n".encode())
        return function(*args, **kwargs)

    return wrapped


def install() -> None:
    train = sonode.model.train
    for attribute, name in (
        ("initial_from_options", "identification"),
        ("step_loss", "training"),
        ("consider", "checks"),
        ("fast_vs_reference_db", "checks"),
        ("stoppable_check_db", "checks"),
        ("train_continuation", "continuation"),
    ):
        setattr(train, attribute, _announce(name, getattr(train, attribute)))
    sonode.api.model_energy_above_db = _announce("report", sonode.api.model_energy_above_db)
    sonode.api.Fitted.save = _announce("writing", sonode.api.Fitted.save)
