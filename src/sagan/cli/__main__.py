"""`python -m sagan.cli`: the same as the `sagan` command."""

from sagan.cli import main

main()
