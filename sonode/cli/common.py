"""What the commands share: error handling, option callbacks and options, report formatting."""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click

from sonode.errors import SonodeError
from sonode.io.fileutil import nothing_unfinished
from sonode.limits import MAX_OUTPUT_RATE_HZ

OUTPUT_DIR = Path("outputs")
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program is (so that atomic writes clean up after themselves)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


class OutOfTime(BaseException):
    """--max-time ran out in a phase that cannot stop early with a result (e.g. identification).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""


def raise_interrupt(signum, frame):
    """Signal handler: raise `Interrupted` in the main thread. Inside an import (seconds, for torch)
    it cannot: the command ends at once if nothing is left to clean up
    (`sonode.io.fileutil.nothing_unfinished`), else the signal is raised once the import is done.
    While an earlier signal is still on its way out (`already_ending`) it does nothing."""
    if already_ending():
        return
    if _importing(frame):
        if nothing_unfinished():
            exit_at_once(f"\n{interrupted_line(signal.Signals(signum).name)}", EXIT_INTERRUPTED)
        _send_again_later(signum)
        return
    raise Interrupted(signum)


def already_ending() -> bool:
    """The main thread is handling an interruption or --max-time's end: a signal handler sees the
    exception of the ``except``/``finally`` it interrupted (e.g. an atomic write removing its
    temporary file). The command is already ending with that exception's exit status and line, so
    a second signal must not raise again: it would cut the cleanup short (a temporary file was
    left behind when two signals came in quick succession)."""
    return isinstance(sys.exc_info()[1], (KeyboardInterrupt, OutOfTime))


def exit_at_once(line: str, code: int) -> None:
    """Print ``line`` on stderr and end the process with ``code`` as `sonode.__main__` ends it (atexit
    handlers run, no interpreter teardown), from any thread or a signal handler."""
    import atexit

    os.write(2, f"{line}\n".encode())
    atexit._run_exitfuncs()
    os._exit(code)


IMPORT_RETRY_S = 0.02


def deferred_for_import(signum: int, frame) -> bool:
    """Whether the main thread (``frame``: the one a signal handler was given) is importing a module,
    in which case the signal is sent again IMPORT_RETRY_S later and the handler must not raise.

    An exception raised inside an import does not arrive as itself: Python 3.11 wraps it in a
    RuntimeError when it hits a class body's ``__set_name__`` (torch's functorch), and inside
    torch's C++ initialisation it aborts the process (pybind11, exit -6). Both were seen in CI."""
    if not _importing(frame):
        return False
    _send_again_later(signum)
    return True


def _send_again_later(signum: int) -> None:
    timer = threading.Timer(IMPORT_RETRY_S, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()


def _importing(frame) -> bool:
    """Whether ``frame`` (a signal handler's) or a caller of it runs the import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _install_interrupt_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}


def fail_cleanly(command: Callable) -> Callable:
    """Turn every failure into one line on stderr: exit 2 for errors (traceback with --debug), 130
    when interrupted by SIGINT or SIGTERM (which raise `Interrupted` wherever the command is, so that
    temporary files are removed; a fit installs its own, gentler handlers, see sonode.cli.fit)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.pop("debug", False)
        previous = _install_interrupt_handlers()
        try:
            return command(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as err:
            name = err.name if isinstance(err, Interrupted) else "SIGINT"
            click.echo(f"\n{interrupted_line(name)}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OutOfTime as err:
            click.echo(f"sonode: error: {err}", err=True)
            sys.exit(2)
        except Exception as err:  # noqa: BLE001 - the promise is one line and exit 2, never a traceback
            if debug:
                raise
            click.echo(f"sonode: error: {one_line(err)}", err=True)
            sys.exit(2)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    return click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(wrapper)


def interrupted_line(name: str) -> str:
    """What an interrupted command says (``name``: "SIGINT" or "SIGTERM")."""
    return (
        f"sonode: interrupted by {name}; files already complete were kept, no partial file was left"
    )


def one_line(err: BaseException) -> str:
    """The message of an error on one line; errors that are not sonode's own also name their type
    (they are unexpected: a bug to report, e.g. "MemoryError: ...")."""
    text = " ".join(str(err).split())
    if isinstance(err, (SonodeError, click.exceptions.ClickException)):
        return text
    if isinstance(err, MemoryError):
        return (
            f"out of memory ({text or 'MemoryError'}); lower the sizes or rates given, or raise "
            "SONODE_MEMORY_BUDGET only if the machine has the memory"
        )
    if isinstance(err, (ValueError, OSError)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text} (unexpected; rerun with --debug for the traceback and report it)"


def positive(kind: type, allow_none: bool = True, limit: float | None = None, hint: str = ""):
    """An option callback: the value converted to ``kind`` if it is finite, > 0 and (when ``limit``
    is given) at most ``limit``, else a usage error (None passes when ``allow_none``: the option
    was not given)."""

    def check(ctx, param, value):
        if value is None and allow_none:
            return value
        if not (value > 0 and math.isfinite(value)):
            raise click.BadParameter(f"must be a finite number > 0, got {value}")
        if limit is not None and value > limit:
            raise click.BadParameter(
                f"{value:g} is over the limit of {limit:g}" + (f"; {hint}" if hint else "")
            )
        return kind(value)

    return check


def positive_option(*decls: str, kind: type, limit: float | None = None, hint: str = "", **kw):
    """A click option for a number > 0 of ``kind`` (int or float), at most ``limit``, checked by
    `positive` (one-line usage errors); a default, when there is one, is shown in the help."""
    if kw.get("default") is not None:
        kw.setdefault("show_default", True)
    return click.option(*decls, type=kind, callback=positive(kind, limit=limit, hint=hint), **kw)


def db(value, digits: int = 2) -> str:
    """A dB figure from a report: None stands for a value that is not finite (e.g. an exact fit)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def db_text(value: float | None) -> str:
    """An energy ratio from a report: None stands for none at all (-inf dB)."""
    return "none (-inf dB)" if value is None else f"{value:.1f} dB"


def _device(ctx, param, value: str):
    # "auto" is the CPU, the reference, with or without a GPU: a GPU is used only when asked for
    # (docs/devices.md). torch is imported only then (a batch's parent on the CPU never needs it).
    if value != "cuda":
        return "cpu"
    from sonode.model.device import DeviceError, resolve_device

    try:
        resolve_device("cuda")
    except DeviceError as err:
        raise click.BadParameter(str(err)) from None
    return "cuda"


def progress_printer(quiet: bool, max_time_s: float | None, steps: int | None):
    """An in-place progress line on stderr: step, loss, SNR of this step, SNR of the kept model
    (the best parameters that passed the periodic solver check), elapsed / remaining."""
    if quiet:
        return None

    def show(record, best_snr: float) -> None:
        remaining = []
        if max_time_s is not None:
            remaining.append(max_time_s - record.elapsed_s)
        if steps:
            remaining.append(record.elapsed_s / record.epoch * (steps - record.epoch))
        left = f" | ~{max(0.0, min(remaining)):.0f} s left" if remaining else ""
        click.echo(
            f"\r  step {record.epoch:5d} | loss {record.loss:.3e} | SNR {record.snr_db:6.2f} dB "
            f"(kept {best_snr:6.2f}) | {record.elapsed_s:6.1f} s{left}   ",
            err=True,
            nl=False,
        )

    return show


device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    callback=_device,
    help="Where to compute: auto and cpu are the CPU, in float64 (the reference); cuda trains the "
    "global model in float32 on the GPU and renders there in float64 (docs/devices.md).",
)
out_rate_option = positive_option(
    "--rate",
    kind=int,
    limit=MAX_OUTPUT_RATE_HZ,
    help=f"Output rate in Hz (default: the clip's; at most {MAX_OUTPUT_RATE_HZ}).",
)
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    callback=lambda c, p, v: check_threads(v),
    help="CPU threads for torch (at most 4 x the cores).",
)
# Fits default to one torch thread: with two, a 1 s fit took 5 steps in its 60 s instead of 77 when
# the machine's other core was busy (README quickstart, 2026-12-06), as torch's threads wait on each other.
fit_threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    callback=lambda c, p, v: check_threads(v),
    help="CPU threads for torch (at most 4 x the cores); more help only on an idle machine.",
)


def check_threads(value: int | None) -> int | None:
    """--threads: at most `sonode.limits.max_threads` (a usage error beyond)."""
    from sonode.limits import max_threads

    if value is not None and value > max_threads():
        raise click.BadParameter(
            f"{value} is over the limit of {max_threads()} (4 x the {max_threads() // 4} "
            "cores this process may use)",
            param_hint="--threads",
        )
    return value


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU threads to --threads (None: leave torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


# (`fit CLIP... | DIR` also refits complete clips with it: its own help says so)
force_option = click.option(
    "--force",
    is_flag=True,
    help="Replace existing output files even if sonode did not write them (inputs are never "
    "replaced).",
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress output.")


def command_line(ctx: click.Context) -> str:
    """The command as a user would retype it: `sonode <command>`, the arguments and every option
    not left at its default (however sonode was started: script, python -m, or a test runner)."""
    import shlex

    words = ["sonode", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        source = ctx.get_parameter_source(param.name)
        if param.name == "debug" or source in (None, click.core.ParameterSource.DEFAULT):
            continue
        values = list(value) if isinstance(value, (tuple, list)) else [value]
        if isinstance(param, click.Argument):
            words += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            words += [param.opts[0]] if value else []
        else:
            words += [
                w
                for v in values
                for w in (
                    param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0],
                    str(v),
                )
            ]
    return shlex.join(words)
