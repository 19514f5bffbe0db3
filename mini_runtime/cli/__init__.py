"""The `mini` command: docker's shape, thin on purpose.

A file per command group (run, containers, lifecycle, running, images, system), each with its parsers beside its
handlers. Handlers talk only to the `Backend` interface (backend/__init__.py): they turn flags into
its calls and its Engine-API-shaped answers into docker's output. Only the parser of the command
being run is built, and none where the command line is plain (flags.py); heavier modules are
imported inside the commands, so `mini run` starts fast. Errors are printed here, in one place,
with docker's exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from mini_runtime.cli import flags
from mini_runtime.errors import BadArguments, ExecError, ImageNotFound, MiniError, NotFound, UsageError, reason

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

#: Each command, and the module of this package that defines its parser and handler.
GROUPS = {"run": "run", "create": "run", "rm": "containers", "diff": "containers", "export": "containers",
          "commit": "containers", "images": "images", "tag": "images", "rmi": "images",
          "history": "images", "import": "images", "image": "images", "save": "images", "load": "images",
          "doctor": "system", "version": "system", "info": "system", "system": "system", "ps": "lifecycle", "inspect": "lifecycle",
          "logs": "lifecycle", "stop": "lifecycle", "kill": "lifecycle", "wait": "lifecycle",
          "start": "lifecycle", "restart": "lifecycle", "rename": "lifecycle", "pause": "lifecycle",
          "unpause": "lifecycle", "top": "lifecycle", "attach": "attach",
          "network": "network", "exec": "running", "stats": "running", "port": "running",
          "container": "containers", "cp": "cp", "update": "update"}

#: docker's management commands, `mini image ls` for `mini images`, `mini container rm` for
#: `mini rm`: each group's verbs and the command each one is (main() rewrites the line first).
MANAGEMENT = {
    "system": {"info": "info"},                         # (and prune: cli/system.py)
    "image": {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "tag": "tag",
              "history": "history", "import": "import", "save": "save", "load": "load",
              "inspect": "inspect --type=image"},
    "container": {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm",
                  "inspect": "inspect --type=container",
                  **{name: name for name in ("run", "create", "rm", "start", "stop", "restart",
                                             "kill", "wait", "logs", "exec", "top",
                                             "port", "rename", "pause", "unpause", "attach",
                                             "diff", "export", "commit", "stats", "cp", "update")}},
}


#: A flag's value "--" while argparse parses: argparse drops a "--" even from `--name=--`. An
#: argument never holds a NUL, so this stands for nothing a user can type.
DASHES = "\0--"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of the command `only` (all of them without it: for `mini --help`)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a bad flag is docker's exit 125 with one line, not argparse's exit 2."""
        commands: dict[str, argparse.ArgumentParser] = {}   # each command's own parser, by name

        def __init__(self, *args: Any, **settings: Any) -> None:
            settings.setdefault("allow_abbrev", False)  # pflag: `--na` is no --name, `--pid` no --pids-limit
            super().__init__(*args, **settings)

        def error(self, message: str) -> NoReturn:
            import re

            counted = not any(a.nargs == argparse.PARSER for a in self._actions)  # (a verb's own)
            if message.startswith("the following arguments are required") or counted and \
                    message.startswith("unrecognized arguments: ") and message.split()[2][:1] != "-":
                raise BadArguments(f"{self.arity()} (see '{self.prog} --help')")
            if message.startswith("argument COMMAND: invalid choice: "):   # a group's unknown verb
                raise BadArguments(f"{message} (see '{self.prog} --help')")
            if message.startswith("unrecognized arguments: -"):
                word = message.split()[2]
                message = f"unknown flag: {word.partition('=')[0]}" if word.startswith("--") else \
                    f"unknown shorthand flag: {word[1:2]!r} in {word}"
            elif ": ignored explicit argument '" in message:   # `-aZ`: -a, then an unknown -Z
                rest = message.split(": ignored explicit argument ", 1)[1][1:-1]
                if rest[:1].isalnum():
                    message = f"unknown shorthand flag: {rest[0]!r} in -{rest}"
            elif bad := re.fullmatch(r"argument (\S+): invalid int64 value: '(.*)'", message, re.S):
                from mini_runtime.units import go_int
                flag, text = bad.group(1).replace("/", ", "), bad.group(2)   # (pflag's words)
                try:
                    go_int(text, base=0)
                except MiniError as why:
                    message = f'invalid argument "{text}" for "{flag}" flag: {why}'
            message = message.replace(repr(DASHES), "'--'")
            raise UsageError(f"{message} (see '{self.prog} --help')")

        def arity(self) -> str:
            """cobra's words for the arguments a command takes: `"mini tag" requires exactly 2
            arguments`, `... at least 1 ...`, `"mini ps" accepts no arguments`."""
            low, high = 0, 0.0
            for action in self._actions:
                if action.option_strings or action.nargs == argparse.PARSER:
                    continue
                low += {None: 1, "+": 1}.get(action.nargs, 0) + \
                    (action.nargs == "..." and str(action.metavar).startswith("COMMAND"))  # exec's 2
                high += float("inf") if action.nargs in ("+", "*", argparse.REMAINDER) else 1
            if not high:
                return f'"{self.prog}" accepts no arguments'
            if low == high:
                needs = f"exactly {low}"
            elif high == float("inf"):
                needs = f"at least {low}"
            else:
                needs = f"at least {low} and at most {high:.0f}" if low else f"at most {high:.0f}"
            return f'"{self.prog}" requires {needs} argument{"" if needs.endswith(" 1") else "s"}'

        def go_values(self, words: list[str]) -> list[str]:
            """A docker flag that takes a value takes the next word, whatever it starts with
            (Go's pflag): `-m -5m` is a memory of "-5m" (refused by its parser, not as a
            missing value), `--name -x` a name. argparse takes a word that starts with "-" for
            a flag ("expected one argument"), unless it is glued to its flag: `--memory=-5m`.
            The words after run's IMAGE are the container's; those after a sub-command, its
            parser's."""
            out, i = [], 0
            while i < len(words):
                word = words[i]
                if word == "--":
                    break
                action = self.value_flag(word)
                if action is not None and i + 1 == len(words):   # (pflag's words, not argparse's)
                    needs = word if word.startswith("--") else f"'{word[-1]}' in -{word[-1]}"
                    raise UsageError(f"flag needs an argument: {needs} (see '{self.prog} --help')")
                if action is not None:
                    value = DASHES if words[i + 1] == "--" else words[i + 1]
                    if not value.startswith("-"):
                        out += [word, value]
                    else:   # (the long name: `-e =x` glued as `-e=x` would lose its "=" to argparse)
                        long = next((o for o in action.option_strings if o.startswith("--")), None)
                        rest = [word[:-1]] if len(word) > 2 and not word.startswith("--") else []
                        out += rest + [f"{long}={value}" if long else word + value]
                    i += 2
                    continue
                if not word.startswith("-") or word == "-":
                    sub = next((a for a in self._actions
                                if a.nargs in (argparse.REMAINDER, argparse.PARSER)), None)
                    if sub is not None and sub.nargs == argparse.PARSER and word in sub.choices:
                        return [*out, word, *sub.choices[word].go_values(words[i + 1:])]
                    if sub is not None:   # (the container's command: its "--" is its own)
                        return [*out, word, *(DASHES if w == "--" else w for w in words[i + 1:])]
                out.append(word)
                i += 1
            return out + words[i:]

        def value_flag(self, word: str) -> argparse.Action | None:
            """The flag `word` ends with, if it takes a value and `word` does not carry it:
            `--name`, `-e`, `-de` (bundled switches, then -e), but not `--name=x` nor `-ex`."""
            if word.startswith("--"):
                found = self._option_string_actions.get(word)
                return found if found is not None and found.nargs is None else None
            if not word.startswith("-"):
                return None
            for k, letter in enumerate(word[1:], 2):
                found = self._option_string_actions.get("-" + letter)
                if found is None or found.nargs is None:
                    return found if found is not None and k == len(word) else None
            return None

    parser = Parser(prog="mini", description="A small container runtime, built chapter by chapter.")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in [only] if only in GROUPS else list(GROUPS):
        group_of(name).PARSERS[name](sub)
    parser.commands = sub.choices
    return parser


def parse(words: list[str], command: str | None) -> argparse.Namespace:
    """The command line's flags: without argparse if flags.py can (plain command lines).

    As docker's, flags may come after the names (`mini rm web -f db`): argparse's intermixed
    parsing. Except where a positional takes the rest of the line (run, create, exec, top: the
    container's command is not ours to parse) or sub-commands follow (network, image), which
    argparse refuses to intermix with a TypeError: there flags stop at the first positional,
    as in docker's commands that turn interspersed flags off."""
    if command in GROUPS and words[:1] == [command]:
        args = flags.parse(command, words[1:], group_of(command).PARSERS[command])
        if args is not None:
            return args  # type: ignore[return-value]  (the same attributes)
    return parse_with_argparse(words, command)


def parse_with_argparse(words: list[str], command: str | None) -> argparse.Namespace:
    """`parse`'s slow path: argparse, made to take words as pflag does (see `go_values`)."""
    parser = build_parser(command)
    words = go_booleans(words)
    if command in GROUPS and words[:1] == [command]:
        own = parser.commands[command]
        words = [command, *own.go_values(words[1:])]
        try:
            args = own.parse_intermixed_args(words[1:])
        except TypeError:
            args = own.parse_args(words[1:])        # (its errors name its own --help)
        for key, value in vars(args).items():   # (a flag's "--", kept from argparse)
            if value == DASHES or isinstance(value, list) and DASHES in value:
                setattr(args, key, "--" if value == DASHES else ["--" if v == DASHES else v for v in value])
        args.command, args.version = command, False
        return args
    return parser.parse_args(words)


def group_of(command: str):  # -> the module: its PARSERS and HANDLERS
    """The module of `command`, imported now (with the import statement's own function:
    `importlib.import_module` would be one more package to import at every start)."""
    name = f"mini_runtime.cli.{GROUPS[command]}"
    __import__(name)
    return sys.modules[name]


#: Commands whose docker client inspects the container before it acts: a missing one is the
#: client's "Error: No such container: X", not a line of the daemon's (cp's: "No such
#: container:path: X:PATH", of the container or of the path; start: -a/-i's, plain start says
#: its own).
LOOKS_UP_FIRST = ("logs", "attach", "port", "cp", "start")


def exit_code(command: str | None, error: MiniError) -> int:
    """docker's numbers for a failure: 126/127 when the container's command cannot be executed
    or found, 125 for its own failures in `run`/`create` and for bad flags anywhere, 1 otherwise
    (a wrong count of arguments too: cobra's check, not a flag's)."""
    if isinstance(error, ExecError) or getattr(error, "exit_code", None):
        return error.exit_code                          # (and a template that does not parse)
    if isinstance(error, BadArguments):
        return 1
    return 125 if command in ("run", "create") or isinstance(error, UsageError) else 1


#: docker's boolean flags that default to true, by command: Go's `--pause=false` is `--no-pause`.
BOOLEAN_FLAGS = {"history": ("-H", "--human"), "commit": ("-p", "--pause"), "attach": ("--sig-proxy",)}


def go_booleans(argv: list[str]) -> list[str]:
    """docker's boolean flags also take `--human=false` (Go's flag syntax): argparse's form is
    `--no-human`."""
    flags = BOOLEAN_FLAGS.get(args_command(argv) or "")
    if flags is None:
        return argv  # (never touch a container's command line)
    out = []
    for word in argv:
        name, eq, value = word.partition("=")
        if eq and name in flags and value.lower() in ("0", "f", "false", "1", "t", "true"):
            word = flags[-1] if value.lower() in ("1", "t", "true") else "--no-" + flags[-1][2:]
        out.append(word)
    return out


def management(words: list[str]) -> list[str]:
    """`image ls -q` is `images -q`, `container rm -f web` is `rm -f web`, `image inspect X`
    is `inspect --type=image X`."""
    verbs = MANAGEMENT.get(words[0]) if words else None
    if verbs and len(words) > 1 and words[1] in verbs:
        return [*verbs[words[1]].split(), *words[2:]]
    return words


def args_command(argv: Sequence[str] | None) -> str | None:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    words = management(list(sys.argv[1:] if argv is None else argv))
    command = args_command(words)
    if words in (["-v"], ["--version"]):                 # (no parser at all: the CLI's floor)
        from mini_runtime import __version__
        print(f"mini version {__version__}")
        return 0
    if words == ["help"]:                               # (docker's `help` is --help)
        build_parser().print_help()
        return 0
    if words in (["image"], ["container"], ["network"], ["system"]):    # (docker's: the group's usage, 0)
        try:
            build_parser().parse_args([*words, "--help"])
        except SystemExit:                              # (argparse's --help: printed, "exit 0")
            return 0
    if command is not None and command not in GROUPS and words[:1] == [command]:
        print(f"mini: '{command}' is not a mini command.\nSee 'mini --help'", file=sys.stderr)
        return 1                                        # (docker's two lines and exit)
    try:
        args = parse(words, command)
        if args.version:
            args.command = "version"
        if args.command is None:
            build_parser().print_help()
            return 0
        return group_of(args.command).HANDLERS[args.command](args)
    except MiniError as e:
        message = str(e)
        if isinstance(e, ImageNotFound) and command in ("run", "create"):  # docker's CLI, about to pull
            message = (f"Unable to find image '{e.name}' locally (until chapter 10 adds pull, "
                       "'mini images' lists what you can run)")
        missing = isinstance(e, NotFound) and command in LOOKS_UP_FIRST   # (the client's own 404)
        print(f"{'Error' if missing else 'mini'}: {message}", file=sys.stderr)
        return exit_code(command, e)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `mini save | head -c 10`: what a C or Go program does on SIGPIPE
        return 128 + 13
    except OSError as e:  # e.g. no permission on the state root, a full disk: still one line
        print(f"mini: {reason(e)}", file=sys.stderr)
        return 125 if command in ("run", "create") else 1
    except Exception as e:  # a bug, or a state file damaged by hand: one line, and how to see more
        if os.environ.get("MINI_DEBUG"):                # (the tests set it: a bug must show)
            raise
        from mini_runtime import paths
        print(f"mini: internal error: {type(e).__name__}: {str(e)[:200]} (a bug in mini, or a file "
              f"under {paths.state_root()} damaged by hand; MINI_DEBUG=1 shows where)", file=sys.stderr)
        return 125 if command in ("run", "create") else 1


def command() -> NoReturn:
    """The `mini` command: main(), its output flushed, and an exit without the interpreter's
    teardown. Tearing down the hundred modules a `mini run` has imported costs 3-5 ms of every
    start; a command has nothing left to tear down (main has closed, waited for and removed
    what it made), so os._exit skips it. Tests call main(), which returns; under a profiler or
    a tracer (cProfile, coverage) the exit is the normal one, so that they write their report."""
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mini ps | head -1`): nothing to say
            pass
    os._exit(code)


if __name__ == "__main__":
    command()
