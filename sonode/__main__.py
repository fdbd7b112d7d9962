"""`python -m sonode`: the `sonode` command."""

from sonode.cli import main

main()
