"""Command-line interface: a thin shell over `sonode.api` (one command per verb).

One module per group of commands: `fit` (one clip, or many on Dask), `render` (render,
extrapolate), `upsample`, `fill`, `score` (eval), `describe` (info, plot) and `report` (the
listening page); `common` holds what they share (error handling, options, number formatting).
"""

from __future__ import annotations

import sys

import click

from sonode.cli.common import EXIT_DIVERGED, EXIT_INTERRUPTED, OUTPUT_DIR
from sonode.cli.describe import info, plot
from sonode.cli.fill import fill_cmd
from sonode.cli.fit import fit
from sonode.cli.render import extrapolate_cmd, render_cmd
from sonode.cli.report import report_cmd
from sonode.cli.score import eval_cmd
from sonode.cli.upsample import upsample

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "OUTPUT_DIR", "main"]


class _OneLineGroup(click.Group):
    """click's group, with usage errors on one line ("sonode: error: Invalid value for '--hop': ...",
    exit 2) like every other error, instead of a usage banner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as err:
            click.echo(f"sonode: error: {' '.join(err.format_message().split())}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("sonode: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sonode")
def main():
    """sonode: model one audio clip as the trajectory of a neural ODE.

    Fit a clip (`sonode fit`), then read the fitted continuous-time signal at any rate
    (`render`, `upsample`) or past the clip's end (`extrapolate`).

    Every size is checked before any work (ranges shown with each option; the memory budget is
    SONODE_MEMORY_BUDGET bytes, default 2 GiB): a refusal is one line with the value and the limit,
    exit 2. See docs/security.md.
    """


for _command in (
    fit,
    info,
    render_cmd,
    upsample,
    extrapolate_cmd,
    fill_cmd,
    eval_cmd,
    plot,
    report_cmd,
):
    main.add_command(_command)
