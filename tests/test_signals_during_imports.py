"""Signals that arrive while Python imports a module (#30): an exception raised inside an import is
not delivered as itself, so sonode's handlers end the command at once or raise once the import is
done (sonode.cli.common.raise_interrupt, sonode.cli.stop_flag). Moved from test_hostile_signals.py."""

import subprocess
import sys

import pytest

from sonode.cli.common import interrupted_line
from tests.hostile_support import HANG_S


@pytest.mark.parametrize("handler", ["fail_cleanly", "fit", "training"])
def test_a_signal_during_an_import_is_raised_once_the_import_is_done(tmp_path, handler):
    """In CI a SIGTERM while `sonode fit` imported torch aborted the process (exit -6, pybind11) or
    came out as "RuntimeError: Error calling __set_name__": an exception raised inside an import is
    not delivered as itself. The handlers send the signal again once the import is done; in
    training the exception is StepAbandoned, raised in the step under way (which may import).
    A command's handler waits so only while there is something to clean up (here an atomic
    write, as when a writer imports lazily); the next test is the case without."""
    outcome = _import_signalled(tmp_path, handler, unfinished=True)
    assert outcome.stdout.strip() == "after the import", outcome.stdout + outcome.stderr


def test_a_signal_during_an_import_with_nothing_to_clean_up_exits_at_once(tmp_path):
    """Waiting for the import made a SIGTERM during `sonode fit`'s start wait for all of torch's
    import (44 s at load ~5); with no file being written nothing needs the exception."""
    outcome = _import_signalled(tmp_path, "fail_cleanly", unfinished=False)
    assert outcome.returncode == 130 and outcome.stdout == "", outcome.stdout + outcome.stderr
    assert outcome.stderr.strip() == interrupted_line("SIGTERM"), outcome.stderr


def _import_signalled(tmp_path, handler: str, unfinished: bool) -> subprocess.CompletedProcess:
    """A Python process that gets SIGTERM while it imports a module, with sonode's ``handler``;
    it prints where the signal was raised: "after the import" or "inside the import"."""
    (tmp_path / "slow_module.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.3)  # the handler runs here, inside the import\n"
        "DONE = True\n"
    )
    where = "'after the import' if 'slow_module' in sys.modules else 'inside the import'"
    if handler == "training":
        program = (
            "from sonode.cli.stop_flag import StopFlag\n"
            "flag = StopFlag().__enter__()\n"
            "flag()  # polled by the training loop: a signal now stops the fit\n"
            "with flag.abandonable() as step:\n"
            "    import slow_module\n"
            "    while True:  # until the signal, sent again, arrives (no guessed delay)\n"
            "        time.sleep(0.01)\n"
            f"print({where} if step.abandoned else 'not abandoned')\n"
        )
    else:
        install = (
            "from sonode.cli.common import raise_interrupt\n"
            "signal.signal(signal.SIGTERM, raise_interrupt)\n"
            if handler == "fail_cleanly"
            else "from sonode.cli.stop_flag import StopFlag\n"
            "StopFlag.WATCHDOG_S = 60  # its exit after 0.5 s held up is not what is tested here\n"
            "StopFlag().__enter__()\n"
        )
        program = (
            f"{install}"
            "import contextlib\n"
            "from sonode.cli.common import Interrupted\n"
            "from sonode.io.fileutil import unfinished\n"
            f"with unfinished() if {unfinished} else contextlib.nullcontext():\n"
            "    try:\n"
            "        import slow_module\n"
            "        while True:  # until the signal, sent again, arrives (no guessed delay)\n"
            "            time.sleep(0.01)\n"
            "    except Interrupted:\n"
            f"        print({where})\n"
        )
    program = f"import signal, sys, time\nsys.path.insert(0, {str(tmp_path)!r})\n{program}"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=HANG_S
    )
