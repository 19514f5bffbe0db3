"""`python -m mini_runtime ...` is the same as the `mini` command."""

from mini_runtime.cli import command

command()
