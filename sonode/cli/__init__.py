"""Command-line interface: a thin shell over `sonode.api` (one command per verb).

One module per group of commands: `fit` (one clip, or many on Dask), `render` (render, upsample,
extrapolate), `fill`, `score` (eval), `describe` (info, plot) and `report` (the listening page); `common` holds what they share
(error handling, options, number formatting).
"""

from __future__ import annotations

import click

from sonode.cli.common import EXIT_DIVERGED, EXIT_INTERRUPTED, OUTPUT_DIR
from sonode.cli.describe import info, plot
from sonode.cli.fill import fill_cmd
from sonode.cli.fit import fit
from sonode.cli.render import extrapolate_cmd, render_cmd, upsample
from sonode.cli.report import report_cmd
from sonode.cli.score import eval_cmd

__all__ = ["EXIT_DIVERGED", "EXIT_INTERRUPTED", "OUTPUT_DIR", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sonode")
def main():
    """sonode: model one audio clip as the trajectory of a neural ODE.

    Fit a clip (`sonode fit`), then read the fitted continuous-time signal at any rate
    (`render`, `upsample`) or past the clip's end (`extrapolate`).
    """


for _command in (fit, info, render_cmd, upsample, extrapolate_cmd, fill_cmd, eval_cmd, plot, report_cmd):
    main.add_command(_command)
