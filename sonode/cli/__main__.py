"""`python -m sonode.cli`: the `sonode` command."""

from sonode.cli import main

main()
