"""The hot commands' flags (`run`, `create`, `exec`) parsed without argparse, when that is easy.

Why: importing argparse and building a parser costs about 4 ms of every `mini run`, a tenth of
its start (argparse's gettext lookups import `locale`, and each add_argument asks for the
terminal's size). Why not a second parser: the flags are declared once, by the add_argument
calls in run.py and running.py. Here those calls are only recorded (`Recorder` stands in for
argparse's objects), and argv is matched against the record in the plain cases:

    --name VALUE   --name=VALUE   -n VALUE   -d   -it (switches bundled)
    then the first word that is not a flag (the image, or the container), and everything after
    it, untouched (the container's command and its own flags)

Anything else returns None, and argparse parses the command line, with its own errors: an
unknown or abbreviated flag, --help, a value that starts with "-", `-eK=V` glued together, a
value outside `choices`, a "--" anywhere. So this path either agrees with argparse or steps aside:
tests/test_unit.py checks that on random command lines.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

#: argparse.REMAINDER's value (the declarations use this one, so that they need no argparse).
REMAINDER = "..."


class Recorder:
    """What PARSERS[command] is given instead of argparse's subparsers action: add_parser()
    returns the recorder itself, and add_argument() records each flag."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}   # "--rm", "-d" -> the flag's settings
        self.positionals: list[dict[str, Any]] = []
        self.defaults: dict[str, Any] = {}

    def add_parser(self, name: str, **settings: Any) -> Recorder:
        if settings.get("add_help", True):
            self.add_argument("-h", "--help", action="help")
        return self

    def add_argument(self, *names: str, **settings: Any) -> None:
        action = settings.get("action", "store")
        if not names[0].startswith("-"):
            self.positionals.append(dict(settings, dest=names[0]))
            self.defaults[names[0]] = settings.get("default")
            return
        long = next((n for n in names if n.startswith("--")), names[0])
        dest = settings.get("dest") or long.lstrip("-").replace("-", "_")
        flag = dict(settings, action=action, dest=dest)
        for name in names:
            self.options[name] = flag
        if action != "help":
            self.defaults[dest] = False if action == "store_true" else settings.get("default")


def parse(command: str, words: list[str], declare: Callable[[Any], None]) -> SimpleNamespace | None:
    """`words` (after the command) as argparse would give them for `command`, whose flags
    `declare` adds; None where argparse must decide (or refuse)."""
    record = Recorder()
    declare(record)
    if [p.get("nargs") for p in record.positionals] != [None, REMAINDER]:
        return None                                 # (only the shape of run, create and exec)
    values = {dest: list(default) if isinstance(default, list) else default
              for dest, default in record.defaults.items()}
    i = 0
    while i < len(words) and words[i].startswith("-"):
        word = words[i]
        name, equals, value = word.partition("=")
        flag = record.options.get(name)
        if word.startswith("--") and flag is not None:
            if flag["action"] == "store_true" and not equals:
                values[flag["dest"]] = True
            elif flag["action"] in ("store", "append") and not equals:
                if i + 1 == len(words) or words[i + 1].startswith("-"):
                    return None
                i += 1
                if not store(values, flag, words[i]):
                    return None
            elif flag["action"] in ("store", "append") and not store(values, flag, value):
                return None
            elif flag["action"] not in ("store", "append"):
                return None                         # (--help, --rm=x: argparse's to say)
        elif not word.startswith("--") and not equals and len(word) > 1:
            switches = [record.options.get("-" + c) for c in word[1:]]
            if len(word) == 2 and switches[0] is not None and switches[0]["action"] in ("store", "append"):
                if i + 1 == len(words) or words[i + 1].startswith("-"):
                    return None
                i += 1
                if not store(values, switches[0], words[i]):
                    return None
            elif all(s is not None and s["action"] == "store_true" for s in switches):
                for s in switches:
                    values[s["dest"]] = True
            else:
                return None
        else:
            return None
        i += 1
    if i == len(words) or "--" in words[i + 1:]:
        return None                                 # no image (or container): argparse says so;
                                                    # "--" in the command: argparse drops some
    first, rest = record.positionals
    values[first["dest"]], values[rest["dest"]] = words[i], words[i + 1:]
    return SimpleNamespace(version=False, command=command, **values)


def store(values: dict[str, Any], flag: dict[str, Any], value: str) -> bool:
    """Set a flag's value; False for a value argparse would refuse (not one of its choices)."""
    if "choices" in flag and value not in flag["choices"]:
        return False
    if flag["action"] == "append":
        values[flag["dest"]] = values[flag["dest"]] + [value]
    else:
        values[flag["dest"]] = value
    return True
