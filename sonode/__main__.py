"""`python -m sonode` and the `sonode` command.

Signal handlers are set before anything heavy is imported: torch and the audio libraries take
seconds to import (17-21 s measured on a loaded machine), and a SIGTERM then killed the process
(exit −15) while SIGINT printed a KeyboardInterrupt traceback. Nothing is written before a command
starts, so the start-up handler exits at once; each command installs its own (`fail_cleanly`).
"""

import os
import signal

EXIT_INTERRUPTED = 130  # as sonode.cli.common, not imported: it would import the CLI first


def _starting(signum, frame):
    os.write(
        2,
        f"sonode: interrupted by {signal.Signals(signum).name} while starting; nothing was "
        "written\n".encode(),
    )
    os._exit(EXIT_INTERRUPTED)


def run() -> None:
    """Entry point of the `sonode` command."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _starting)
    from sonode.cli import main

    main()


if __name__ == "__main__":
    run()
