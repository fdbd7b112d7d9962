"""`python -m sonode.cli`: the `sonode` command (as `python -m sonode`: same signal handling and exit)."""

from sonode.__main__ import run

run()
