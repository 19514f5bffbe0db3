"""Command lines parsed without argparse, when that is easy (every command's plain lines).

Why: importing argparse and building a parser costs about 5 ms of every `mini` command
(`mini ps -a` 41.7 → 37.7 ms here): argparse's gettext lookups import `locale`, and each
add_argument asks for the terminal's size, which imports `shutil`, which imports `bz2` and
`lzma`. Why not a second parser: the flags are declared once, by the add_argument calls of each
command's module. Here those calls are only recorded (`Recorder` stands in for argparse's
objects), and argv is matched against the record in the plain cases:

    --name VALUE   --name=VALUE   -n VALUE   -d   -it (switches bundled)   -n 5 (type=int)
    the positionals together, before or after the flags: `rm -f a b`, `logs c1 -f`
    run, create, exec, top: the first word that is not a flag (the image, or the container),
    and everything after it, untouched (the container's command and its own flags)

Anything else returns None, and argparse parses the command line, with its own errors: an
unknown or abbreviated flag, --help, a value that starts with "-" (cli.go_values glues it to
its flag first, as pflag takes it), `-eK=V` glued together, a
value outside `choices` or not of its `type`, a "--" or "-" anywhere, positionals split by a
flag, too few or too many of them, and every command that declares what the record does not
know (sub-commands, other actions). So this path either agrees with argparse or steps aside:
tests/test_flags.py checks that on random command lines of every command.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from mini_runtime.errors import InvalidParameter
from mini_runtime.units import go_int

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: argparse.REMAINDER's value (the declarations use this one, so that they need no argparse).
REMAINDER = "..."
#: What the record understands: anything else in a declaration hands the command to argparse.
ACTIONS = ("store", "store_true", "append", "help")


class Recorder:
    """What PARSERS[command] is given instead of argparse's subparsers action: add_parser()
    returns the recorder itself, and add_argument() records each flag."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}   # "--rm", "-d" -> the flag's settings
        self.positionals: list[dict[str, Any]] = []
        self.defaults: dict[str, Any] = {}
        self.plain = True                              # False: argparse's to parse

    def add_parser(self, name: str, **settings: Any) -> Recorder:
        if settings.get("add_help", True):
            self.add_argument("-h", "--help", action="help")
        return self

    def add_argument(self, *names: str, **settings: Any) -> None:
        action = settings.get("action", "store")
        if not names[0].startswith("-"):
            if {"type", "choices"} & settings.keys():
                self.plain = False
            self.positionals.append(dict(settings, dest=names[0]))
            self.defaults[names[0]] = settings.get("default")
            return
        if (action not in ACTIONS or {"nargs", "required", "const"} & settings.keys()
                or ("type" in settings and isinstance(settings.get("default"), str))):
            self.plain = False                         # (argparse would convert a str default)
        long = next((n for n in names if n.startswith("--")), names[0])
        dest = settings.get("dest") or long.lstrip("-").replace("-", "_")
        flag = dict(settings, action=action, dest=dest)
        for name in names:
            self.options[name] = flag
        if action != "help":
            self.defaults[dest] = False if action == "store_true" else settings.get("default")

    def __getattr__(self, name: str) -> Callable[..., Recorder]:
        """add_subparsers, set_defaults, groups...: not for this path."""
        def unknown(*args: Any, **settings: Any) -> Recorder:
            self.plain = False
            return self
        return unknown


def parse(command: str, words: list[str], declare: Callable[[Any], None]) -> SimpleNamespace | None:
    """`words` (after the command) as argparse would give them for `command`, whose flags
    `declare` adds; None where argparse must decide (or refuse)."""
    record = Recorder()
    declare(record)
    shape = [p.get("nargs") for p in record.positionals]
    command_line = shape == [None, REMAINDER]       # run, create, exec, top: IMAGE COMMAND...
    if not record.plain or (not command_line and any(n is not None for n in shape[:-1])):
        return None                                 # (else only the last positional may vary)
    values = {dest: list(default) if isinstance(default, list) else default
              for dest, default in record.defaults.items()}
    found: list[str] = []                           # the positionals' words, in one run
    closed = False                                  # a flag came after them: no more
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--", "-"):
            return None
        if word.startswith("-"):
            i = flag(record, values, words, i)
            if i < 0:
                return None
            closed = bool(found)
        elif closed:
            return None                             # a second run of positionals: argparse's
        elif command_line:
            found = words[i:]                       # the container's command, untouched
            break
        else:
            found.append(word)
        i += 1
    positionals = assign(record.positionals, found, command_line)
    if positionals is None:
        return None
    return SimpleNamespace(version=False, command=command, **{**values, **positionals})


def flag(record: Recorder, values: dict[str, Any], words: list[str], i: int) -> int:
    """Apply the flag at words[i] (and its value): the index of its last word, or -1."""
    word = words[i]
    name, equals, value = word.partition("=")
    known = record.options.get(name)
    if word.startswith("--") and known is not None:
        if known["action"] == "store_true" and not equals:
            values[known["dest"]] = True
            return i
        if known["action"] in ("store", "append") and equals:
            return i if store(values, known, value) else -1
        if known["action"] in ("store", "append"):
            return next_word(values, known, words, i)
        return -1                                   # (--help, --rm=x: argparse's to say)
    if word.startswith("--") or equals or len(word) < 2:
        return -1
    switches = [record.options.get("-" + c) for c in word[1:]]
    if len(word) == 2 and switches[0] is not None and switches[0]["action"] in ("store", "append"):
        return next_word(values, switches[0], words, i)
    if all(s is not None and s["action"] == "store_true" for s in switches):
        for s in switches:
            values[s["dest"]] = True
        return i
    return -1


def next_word(values: dict[str, Any], known: dict[str, Any], words: list[str], i: int) -> int:
    """`--name web`, `-n 3`: the next word is the value (i + 1), unless there is none or it
    looks like a flag, which argparse decides about (-1)."""
    if i + 1 == len(words) or words[i + 1].startswith("-"):
        return -1
    return i + 1 if store(values, known, words[i + 1]) else -1


def assign(declared: list[dict[str, Any]], found: list[str], command_line: bool) -> dict[str, Any] | None:
    """The positionals' values from their words, as argparse gives them; None when their
    number is wrong (argparse's error to report)."""
    if command_line:                                # CONTAINER COMMAND...: at least the first
        return {declared[0]["dest"]: found[0], declared[1]["dest"]: found[1:]} if found else None
    fixed = [p for p in declared if p.get("nargs") is None]
    last = declared[-1] if len(declared) > len(fixed) else None     # "?", "*" or "+"
    rest = found[len(fixed):]
    nargs = last["nargs"] if last else None
    if (len(found) < len(fixed) or (nargs is None and rest) or (nargs == "?" and len(rest) > 1)
            or (nargs == "+" and not rest) or nargs not in (None, "?", "*", "+")):
        return None
    values = {p["dest"]: word for p, word in zip(fixed, found)}
    if last is not None and nargs == "?":
        values[last["dest"]] = rest[0] if rest else last.get("default")
    elif last is not None:
        values[last["dest"]] = rest or (last["default"] if last.get("default") is not None else [])
    return values


def int64(text: str) -> int:
    """An int flag as docker's (a Go int: 64 bits); argparse names this function when it refuses
    one ("invalid int64 value"), in one line."""
    try:
        return go_int(text, base=0)                     # (pflag's: Go's integer literals)
    except InvalidParameter:
        raise ValueError(text) from None


def store(values: dict[str, Any], known: dict[str, Any], value: str) -> bool:
    """Set a flag's value; False for a value argparse would refuse (not of its type, not one
    of its choices)."""
    if "type" in known:
        try:
            value = known["type"](value)
        except (TypeError, ValueError):
            return False
    if "choices" in known and value not in known["choices"]:
        return False
    if known["action"] == "append":
        values[known["dest"]] = values[known["dest"]] + [value]
    else:
        values[known["dest"]] = value
    return True


def add_detach_keys(parser: Any) -> None:
    """--detach-keys, as run, start, attach and exec declare it."""
    parser.add_argument("--detach-keys", metavar="KEYS",
                        help='override the key sequence for detaching a container (default "ctrl-p,ctrl-q")')
