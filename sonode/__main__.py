"""`python -m sonode` and the `sonode` command.

Signal handlers are set before anything heavy is imported: torch and the audio libraries take
seconds to import (17-21 s measured on a loaded machine), and a SIGTERM then killed the process
(exit −15) while SIGINT printed a KeyboardInterrupt traceback. Nothing is written before a command
starts, so the start-up handler exits at once; each command installs its own (`fail_cleanly`).

The command ends without the interpreter's teardown (`_exit_now`): freeing torch's and
matplotlib's modules took 2.0-2.7 s after every command at load ~8 (0.1 s without it), which alone
broke the promise that a signal ends sonode within a second.
"""

import os
import signal
import sys
import threading

EXIT_INTERRUPTED = 130  # as sonode.cli.common, not imported: it would import the CLI first


def _starting(signum, frame):
    os.write(
        2,
        f"sonode: interrupted by {signal.Signals(signum).name} while starting; nothing was "
        "written\n".encode(),
    )
    os._exit(EXIT_INTERRUPTED)


def _exit_now(code) -> None:
    """Exit with ``code`` (a SystemExit code) as the interpreter would, minus the teardown: other
    non-daemon threads are joined (not when interrupted: the user asked to stop), atexit handlers
    run (logging, Dask, tempfile finalizers), the standard streams are flushed, then os._exit."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if code != EXIT_INTERRUPTED:
        # as the interpreter does: wakes idle thread pools' workers, then joins non-daemon threads
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`sonode info | head`): nothing to keep
            pass
    os._exit(code)


def run() -> None:
    """Entry point of the `sonode` command."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _starting)
    from sonode.cli import main

    try:
        main()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


if __name__ == "__main__":
    run()
