"""Two signals in quick succession (#30): the second must not cut short the cleanup the first set off
(`sonode.cli.common.already_ending`). An atomic write's temporary file was left behind, under a
line saying that no partial file was left."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sonode.cli.common import interrupted_line
from tests.hostile_support import HANG_S, ROOT, stopped

# A command under `fail_cleanly` (the handlers of every command but a fit's) that stops itself
# (SIGSTOP) inside an atomic write, after it has written part of the file. In the "fit" variant
# StopFlag's handlers are on, as when a fit writes its outputs (`abort`: signals and --max-time's
# end raise there).
_WRITER = """
import os, signal, sys, time
import click
from sonode.cli.common import fail_cleanly
from sonode.cli.stop_flag import StopFlag
from sonode.io.fileutil import atomic_write

def write_and_hold():
    with atomic_write(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half of it")
        os.write(2, b"inside the write\\n")
        os.kill(os.getpid(), signal.SIGSTOP)
        while True:
            time.sleep(0.01)

@click.command()
@fail_cleanly
def write():
    if sys.argv[2] == "fit":
        with StopFlag(max_time_s=600) as flag:
            flag()  # a model exists (its watchdog keeps out of the way)...
            flag.abort()  # ...and is being written
            write_and_hold()
    write_and_hold()

write.main(args=[])  # the path and the variant are this program's own arguments
"""


_OUT_OF_TIME = "sonode: error: --max-time ran out"


@pytest.mark.parametrize(
    "handlers, first, second, code, line",
    [
        ("command", signal.SIGINT, signal.SIGTERM, 130, interrupted_line("SIGINT")),
        ("fit", signal.SIGINT, signal.SIGTERM, 130, interrupted_line("SIGINT")),
        ("fit", signal.SIGINT, signal.SIGALRM, 130, interrupted_line("SIGINT")),
        ("fit", signal.SIGALRM, signal.SIGTERM, 2, _OUT_OF_TIME),
    ],
    ids=["command", "fit", "fit-then-max-time", "fit-max-time-then-signal"],
)
def test_two_signals_inside_an_atomic_write_leave_no_temporary_file(
    tmp_path, handlers, first, second, code, line
):
    """Both signals are pending when the held writer continues: Python runs the handler of the
    lower-numbered one first, whose exception starts the cleanup, then the other's at its next
    chance, which is inside that cleanup (contextlib's __exit__ or the writer's ``except``).
    SIGALRM is --max-time's end in a fit (StopFlag raises OutOfTime while outputs are written)."""
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(out), handlers],
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    began = time.monotonic()
    assert proc.stderr.readline() == b"inside the write\n"
    while not stopped(proc.pid):  # held inside the write, not only about to be
        assert proc.poll() is None and time.monotonic() - began < HANG_S  # a hang net only
        time.sleep(0.01)
    proc.send_signal(first)
    proc.send_signal(second)
    os.kill(proc.pid, signal.SIGCONT)
    stderr = proc.communicate(timeout=HANG_S)[1].decode()
    assert proc.returncode == code, stderr
    assert stderr.strip() == line, stderr  # one line (the first signal's), no traceback
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())  # no temporary, no partial
