"""docker's -e, --env-file (and --label-file's reader): KEY=VALUE lines, as docker's client
reads them. Apart from run.py, whose flags `exec` does not need: `exec` takes -e and --env-file
too, and importing run's flags (netflags, limits) would cost every exec about 1 ms."""

from __future__ import annotations

import os

from mini_runtime.errors import InvalidParameter, NotFound, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse
    from collections.abc import Mapping


def add_env_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", action="append", default=[], metavar="FILE",
                        help="read in a file of environment variables (KEY=VALUE lines)")


def env_flags(values: list[str], files: list[str] = ()) -> list[str]:
    """Each --env-file's variables, then -e K=V as given (a later one wins); -e K takes K from
    our own environment (and is dropped if unset)."""
    result = [line for path in files for line in kv_file(path, os.environ)]
    for item in values:
        if item.partition("=")[0] == "":
            raise UsageError(f'invalid argument "{item}" for "-e, --env" flag: invalid environment variable: {item}')
        if "=" in item:
            result.append(item)
        elif item in os.environ:
            result.append(f"{item}={os.environ[item]}")
    return result


def kv_file(path: str, environ: Mapping[str, str] | None, longest: int = 64 * 1024) -> list[str]:
    """--env-file and --label-file as docker's client reads them (opts.ParseEnvFile): KEY=VALUE
    lines, the value kept exactly as written, quotes too (no shell reads these files); a bare
    KEY takes its value from `environ` (ours, for --env-file) or is dropped; blank lines and
    #comments skipped. A line is at most 64 KiB, as Go's bufio.Scanner: `--env-file /dev/zero`
    is an error, not all of memory."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise NotFound(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    found = []
    with f:
        for number, raw in enumerate(iter(lambda: f.readline(longest + 1), b""), 1):
            raw = raw.removesuffix(b"\n")
            if len(raw) > longest:
                raise InvalidParameter(f"{path}: line {number} is longer than 64 KiB "
                                       "(docker's: bufio.Scanner: token too long)")
            raw = raw.removesuffix(b"\r")
            try:
                line = raw.decode()
            except UnicodeDecodeError:
                raise InvalidParameter(f"env file {path} contains invalid utf8 bytes at line {number}: "
                                       f"[{' '.join(map(str, raw))}]") from None
            line = (line.removeprefix("\ufeff") if number == 1 else line).lstrip()
            if not line or line.startswith("#"):
                continue
            variable, equals, value = line.partition("=")
            if " " in variable or "\t" in variable:
                raise InvalidParameter(f"poorly formatted environment: variable '{variable}' contains whitespaces")
            if not variable:
                raise InvalidParameter(f"poorly formatted environment: no variable name on line '{line}'")
            if equals:
                found.append(f"{variable}={value}")
            elif environ is not None and variable in environ:
                found.append(f"{variable}={environ[variable]}")
    return found
