"""cli/flags.py parses `run`, `create` and `exec` without argparse: on any command line it must
give what argparse gives, or step aside (None) and let argparse decide (and refuse)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mini_runtime import cli
from mini_runtime.cli import flags
from mini_runtime.errors import UsageError

#: Words a command line is made of: the hot commands' own flags (whole, glued to a value,
#: abbreviated, bundled), values, and what argparse treats specially ("--", "-", "-5", "").
WORDS = ["--rm", "-d", "-i", "-t", "-it", "-dit", "-ti", "-id", "-e", "--env", "--env=A=1", "-e=A",
         "-eA=1", "--name", "--name=web", "--nam", "--net", "--network=none", "--network", "-h",
         "--hostname", "-w", "/tmp", "-u", "1000", "--cgroupns", "host", "private", "bogus",
         "--cgroupns=host", "--restart", "--memory", "-m", "64m", "--memory-swap", "-1", "-5",
         "--help", "--rm=1", "-P", "-p", "80", "8080:80", "--", "-", "", "--detach-keys",
         "ctrl-x", "--init", "--read-only", "--tmpfs", "-x", "--bogus", "A=1", "busybox",
         "sh", "-c", "echo hi", "ls", "-l", "c1", "--user", "--workdir", "--ulimit", "--cpus",
         "0.5", "--interactive", "--tty", "--detach"]

command_lines = st.tuples(st.sampled_from(flags_commands := ["run", "create", "exec"]),
                          st.lists(st.sampled_from(WORDS), max_size=8))


def with_argparse(words: list[str]) -> dict | str:
    try:
        return vars(cli.build_parser(words[0]).parse_args(words))
    except UsageError as e:
        return f"refused: {e}"
    except SystemExit:  # --help prints and exits
        return "help"


@settings(max_examples=3000, deadline=None)
@given(command_lines)
def test_the_fast_path_agrees_with_argparse_or_steps_aside(line: tuple[str, list[str]]) -> None:
    command, words = line
    fast = flags.parse(command, words, cli.group_of(command).PARSERS[command])
    if fast is not None:
        assert vars(fast) == with_argparse([command, *words])


@pytest.mark.parametrize("words", [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "-it", "-e", "A=1", "--env=B=2", "--name", "web", "busybox", "sh", "-c", "echo $A"],
    ["run", "-d", "-p", "8080:80", "busybox", "--rm", "-x"],      # after the image: its command
    ["create", "--cgroupns", "host", "-m", "64m", "busybox"],
    ["exec", "-it", "c1", "ls", "-l"],
    ["exec", "-e", "K=V", "-w", "/tmp", "c1", "env"],
])
def test_plain_command_lines_take_the_fast_path(words: list[str]) -> None:
    """The lines users type most go without argparse (else the speed is gone unnoticed)."""
    fast = flags.parse(words[0], words[1:], cli.group_of(words[0]).PARSERS[words[0]])
    assert fast is not None and vars(fast) == with_argparse(words)


@pytest.mark.parametrize("words", [["run"], ["run", "--rmx", "busybox"], ["run", "--nam", "x", "busybox"],
                                   ["run", "--cgroupns", "bogus", "busybox"], ["exec", "-h"],
                                   ["run", "--name", "-x", "busybox"], ["run", "-eA=1", "busybox"]])
def test_what_argparse_must_decide_is_left_to_it(words: list[str]) -> None:
    assert flags.parse(words[0], words[1:], cli.group_of(words[0]).PARSERS[words[0]]) is None
