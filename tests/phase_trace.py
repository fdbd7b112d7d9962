"""Print a line ``sonode-phase: NAME`` on stderr each time a `sonode fit` child enters another phase,
so that a test or benchmark sends its signal in a known phase instead of after a guessed delay;
`announced` and `in_phase` read those lines on the parent's side.

Imported by the child wrapper of tests/hostile_support.py when SONODE_TEST_PHASES=1 (`start(...,
phases=True)`). It wraps the functions that begin each phase where the fit looks them up (module
globals), so sonode itself is unchanged. Phases, in order: identification, checks (the untrained
model's solver check), training, checks (the last parameters', the final one), continuation,
report (the energy above Nyquist), writing; `sonode render` announces rendering once part of
the signal is rendered. With SONODE_TEST_HOLD=1 the child waits, stopped,
after each announcement until the test continues it (`_HOLD`).

Two more hooks, each also without changing sonode: `announce_imports` prints ``sonode-phase:
importing NAME`` as the import of module NAME begins (the start-up, where a signal once met torch's
import), and `hold_after_checkpoint` freezes the process (SIGSTOP) once a fit has written its first
periodic checkpoint, so a test kills it (kill -9) at a known step rather than at whatever step the
machine's load let it reach.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

PHASE_PREFIX = "sonode-phase: "
_current = [""]
#: SONODE_TEST_HOLD=1: the process stops itself (SIGSTOP) after each announcement until the test
#: continues it (SIGCONT), having sent its signal first if this is the phase it waited for: the
#: signal is then handled as the phase begins, however late the loaded test process reads the line.
_HOLD = os.environ.pop("SONODE_TEST_HOLD", "") == "1"
#: SONODE_TEST_CLOCK_JUMP=PHASE:SECONDS: as PHASE is first announced the process's clocks
#: (time.perf_counter, time.monotonic) jump SECONDS ahead, as if the machine had paused there that
#: long: --max-time then runs out at a known point of the fit, whatever the load.
_JUMP_PHASE, _, _JUMP_S = os.environ.pop("SONODE_TEST_CLOCK_JUMP", "").partition(":")


def announced(err: str) -> list[str]:
    """The phases a child announced on stderr, in order."""
    return [ln[len(PHASE_PREFIX) :] for ln in err.splitlines() if ln.startswith(PHASE_PREFIX)]


def in_phase(name: str, after: str = ""):
    """A readiness test (tests/held_child.py's `signal_when`, bench_deadline's `_latency`): the
    child announced phase ``name`` (after ``after``, if given)."""

    def ready(err: str) -> bool:
        seen = announced(err)
        if after:
            seen = seen[seen.index(after) + 1 :] if after in seen else []
        return name in seen

    return ready


def _jump_clocks(seconds: float) -> None:
    import time

    for name in ("perf_counter", "monotonic"):
        clock = getattr(time, name)
        setattr(time, name, lambda clock=clock: clock() + seconds)


def _say(phase: str) -> None:
    global _JUMP_PHASE
    if phase == _JUMP_PHASE:
        _JUMP_PHASE = ""  # once
        _jump_clocks(float(_JUMP_S))
    os.write(2, f"\n{PHASE_PREFIX}{phase}\n".encode())  # unbuffered, at once
    if _HOLD:
        os.kill(os.getpid(), signal.SIGSTOP)


def _announce(name: str, function):
    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        if _current[0] != name:
            _current[0] = name
            _say(name)
        return function(*args, **kwargs)

    return wrapped


def install() -> None:
    import sonode.api
    import sonode.model.train

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
    render = sonode.api.Fitted.render

    @functools.wraps(render)
    def render_announced(self, *args, progress=None, **kwargs):
        def report(done: int, total: int) -> None:
            if done > 0 and _current[0] != "rendering":  # part of the signal rendered, not all
                _current[0] = "rendering"
                _say("rendering")
            if progress is not None:
                progress(done, total)

        return render(self, *args, progress=report, **kwargs)

    sonode.api.Fitted.render = render_announced


def announce_imports(names) -> None:
    """Announce ``importing NAME`` when the first import of each module in ``names`` begins (a
    finder consulted first that finds nothing itself); imports nothing of sonode's."""
    waiting = set(names)

    class _Announcer:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname in waiting:
                waiting.discard(fullname)
                _say(f"importing {fullname}")
            return None

    sys.meta_path.insert(0, _Announcer)


def hold_after_checkpoint(epoch: int = 1) -> None:
    """Stop this process (SIGSTOP), once, when the fit has written a checkpoint taken after
    ``epoch`` steps (with --checkpoint-every below a step's time, exactly after ``epoch``)."""
    import sonode.model.train

    save = sonode.model.train.save_checkpoint
    held = [False]

    @functools.wraps(save)
    def save_and_hold(path, state, *args, **kwargs):
        save(path, state, *args, **kwargs)
        if state.epoch >= epoch and not held[0]:  # once: a test may continue it (SIGCONT)
            held[0] = True
            os.kill(os.getpid(), signal.SIGSTOP)

    sonode.model.train.save_checkpoint = save_and_hold
