"""What the commands share: error handling, option callbacks and options, report formatting."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable

import click

from sonode.errors import SonodeError

OUTPUT_DIR = Path("outputs")
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3


def fail_cleanly(command: Callable) -> Callable:
    """Turn library errors into one line on stderr and a non-zero exit (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.pop("debug", False)
        try:
            return command(*args, **kwargs)
        except (SonodeError, ValueError, RuntimeError, OSError) as err:
            if debug:
                raise
            click.echo(f"sonode: error: {err}", err=True)
            sys.exit(2 if isinstance(err, (SonodeError, ValueError)) else 1)

    return click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(wrapper)


def positive(kind: type, allow_none: bool = True):
    """An option callback: the value converted to ``kind`` if it is > 0, else a usage error
    (None passes when ``allow_none``: the option was not given)."""

    def check(ctx, param, value):
        if value is None and allow_none:
            return value
        if not value > 0:
            raise click.BadParameter(f"must be > 0, got {value}")
        return kind(value)

    return check


def db(value, digits: int = 2) -> str:
    """A dB figure from a report: None stands for a value that is not finite (e.g. an exact fit)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def db_text(value: float | None) -> str:
    """An energy ratio from a report: None stands for none at all (-inf dB)."""
    return "none (-inf dB)" if value is None else f"{value:.1f} dB"


def _device(ctx, param, value: str):
    import torch

    if value == "cuda" or (value == "auto" and torch.cuda.is_available()):
        # The model and engine run in float64 on the CPU; say so rather than silently ignore it.
        if value == "cuda":
            raise click.BadParameter("this version of sonode runs on the CPU only (use --device cpu)")
    return "cpu"


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
        click.echo(f"\r  step {record.epoch:5d} | loss {record.loss:.3e} | SNR {record.snr_db:6.2f} dB "
                   f"(kept {best_snr:6.2f}) | {record.elapsed_s:6.1f} s{left}   ", err=True, nl=False)

    return show


device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                             show_default=True, callback=_device, help="Where to compute.")
out_rate_option = click.option("--rate", type=int, callback=positive(int),
                               help="Output rate in Hz (default: the clip's).")
force_option = click.option("--force", is_flag=True, help="Replace existing output files even if sonode did not "
                            "write them (inputs are never replaced); for several clips, also refit complete ones.")


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
            words += [w for v in values for w in (param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0],
                                                   str(v))]
    return shlex.join(words)
