"""A `sonode` child held at each phase it announces (tests/phase_trace.py), for the signal and
--max-time tests of tests/test_hostile_signals.py: signals go when the child is held at a named
phase, never after a guessed delay, and "at once" is "no further phase began"."""

import os
import signal
import time

import pytest

from tests.hostile_support import HANG_S, finish, release, start, stopped
from tests.phase_trace import announced


def skip_if_short_of_memory(outcome) -> None:
    """The fit refuses a clip that does not fit in 80 % of the memory available now (sonode.limits):
    on a machine that other work has filled, that refusal (exit 2, one line) is right, and the
    timing the signal tests check cannot be measured."""
    if outcome.code == 2 and ("memory" in outcome.stderr and "over the limit" in outcome.stderr):
        pytest.skip(f"the machine is short of memory: {outcome.error_lines()[-1]}")


def signal_when(
    args,
    ready,
    signals,
    tmp_path,
    phases=True,
    imports=(),
    may_end_first=False,
    wait_s=0.0,
    env=None,
    forbidden=(),
):
    """Start sonode (announcing its phases, or with ``imports`` the imports of these modules: see
    `start`), wait until ``ready(stderr so far)``, send ``signals``; returns (outcome, the phases
    announced after the first signal). A process that ends before it is ready fails the test
    (unless ``may_end_first``: then the phases after are None). With ``wait_s`` the child stays
    held at least that long before the signals (--max-time's deadline passes meanwhile: a lower
    bound on time, which load can only lengthen).

    The child stops after each announcement (``hold``) until it is continued, here after the first
    signal when it announced the phase waited for: the signal is handled as that phase begins,
    however long this process took to read the line. Each further signal goes when the child is
    held again (its next announcement) or has ended, never after a guessed delay. So nothing here
    depends on the machine's load: "at once" is checked as no further phase, not as seconds. A
    child held at a phase in ``forbidden`` after the signals is killed there: the test fails on
    that phase at once, not after whatever work (or hang) a broken child goes on to."""
    proc, fd = start(args, cwd=tmp_path, phases=phases, imports=imports, hold=True, env=env)
    began = time.monotonic()
    err = out = b""  # stdout is drained too: a full pipe would hold the child up
    for stream in (proc.stderr, proc.stdout):
        os.set_blocking(stream.fileno(), False)

    def read() -> str:
        nonlocal err, out
        try:
            err += proc.stderr.read() or b""
            out += proc.stdout.read() or b""
        except (BlockingIOError, TypeError):
            pass
        return err.decode(errors="replace")

    while True:
        if ready(read()) and stopped(proc.pid):  # held at the phase, not only about to be
            break
        if proc.poll() is not None:  # ended before the phase: say why (or skip, short of memory)
            so_far = read()
            early = _finish_read(proc, fd, args, began)
            early.stderr = so_far + early.stderr
            early.stdout = out.decode(errors="replace") + early.stdout
            skip_if_short_of_memory(early)
            if may_end_first:
                return early, None
            raise AssertionError(early.describe())
        assert time.monotonic() - began < HANG_S, "never became ready"  # a hang net only
        if not ready(err.decode(errors="replace")):
            release(proc)  # held at a phase that is not the one waited for
        time.sleep(0.01)
    before = len(announced(err.decode(errors="replace")))
    time.sleep(wait_s)
    for k, signum in enumerate(signals):
        if k:  # the next one when the child is held at its next phase (or has ended)
            while not (stopped(proc.pid) or proc.poll() is not None):
                assert time.monotonic() - began < HANG_S, "never held again"  # a hang net only
                read()
                time.sleep(0.01)
        proc.send_signal(signum)
        release(proc)
    while proc.poll() is None:  # the phases that follow are held too: each continued, or killed
        assert time.monotonic() - began < HANG_S, "never ended"  # a hang net only
        if stopped(proc.pid):  # read after it stopped: its announcement is in the pipe by then
            if set(announced(read())[before:]) & set(forbidden):
                os.killpg(proc.pid, signal.SIGKILL)  # its own group (`start`): nothing else
                break
            release(proc)
        read()
        time.sleep(0.005)
    so_far = read()
    outcome = _finish_read(proc, fd, args, began)
    outcome.stderr = so_far + outcome.stderr
    outcome.stdout = out.decode(errors="replace") + outcome.stdout
    return outcome, announced(outcome.stderr)[before:]


def _finish_read(proc, fd, args, began):
    """`finish` on a child whose pipes `signal_when` read without blocking until now."""
    for stream in (proc.stderr, proc.stdout):
        os.set_blocking(stream.fileno(), True)
    return finish(proc, fd, args, began, HANG_S)
