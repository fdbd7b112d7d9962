"""What the command-line tests share: the options of a fit that takes about a second, and
`sonode ARGS` run in this process (click's runner).

These fits test the plumbing (outputs, exit codes, messages), never the quality of a fit.
"""

from __future__ import annotations

from click.testing import CliRunner, Result

from sonode.cli import main

#: A tiny model: 8 latent dimensions (4 modes), an 8-unit field, 64-sample hops, a 32-tap predictor.
TINY_MODEL = [
    "--latent-dim",
    "8",
    "--hidden",
    "8",
    "--hop",
    "64",
    "--overlap",
    "8",
    "--lp-order",
    "32",
]
#: Two optimiser steps of the tiny model (--continuation-steps is kept in the option contract).
TWO_STEPS = ["--steps", "2", *TINY_MODEL, "--continuation-steps", "2"]
#: `TWO_STEPS`, without progress output.
FAST = [*TWO_STEPS, "--quiet"]


def run(*args) -> Result:
    """`sonode ARGS` in this process; paths and numbers are passed as their text."""
    return CliRunner().invoke(main, [str(a) for a in args])
