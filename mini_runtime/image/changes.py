"""`commit --change` and `import --change`: Dockerfile instructions applied to an image's config.

`mini commit -c 'CMD ["sh"]' -c 'ENV MODE=prod' box snap` is a two-line Dockerfile with no
FROM and no RUN: instructions that only change the config (moby's BuildFromConfig). Docker 20.10
takes ten of them: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME and
WORKDIR; any other is "<name> is not a valid change command". As in a Dockerfile:

- the lines may continue with a trailing `\\`; `#` starts a comment line;
- CMD, ENTRYPOINT and HEALTHCHECK CMD take a JSON array (exec form) or a text that
  `/bin/sh -c` will run (shell form); ENTRYPOINT clears the CMD unless a CMD came before it;
- ENV, LABEL, EXPOSE, USER, VOLUME and WORKDIR expand `$NAME` from the config's Env as it
  was before the instruction (shellwords.py); a relative WORKDIR is joined to the current one.

Every line is parsed before any is applied, so a bad line changes nothing. The error messages
are docker's. Config keys are docker's container Config names ("Cmd", "Env", "ExposedPorts").
"""

from __future__ import annotations

import ipaddress
import json
import re

from mini_runtime.errors import InvalidParameter
from mini_runtime.image.shellwords import split_raw, word, words
from mini_runtime.units import go_duration, go_int, go_quote

VALID = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild", "user", "volume",
         "workdir")
#: Instructions whose JSON array is parsed with the line, whichever instruction it is.
JSON_FORMS = ("add", "cmd", "copy", "entrypoint", "run", "shell", "volume")
HEALTHCHECK_FLAGS = ("interval", "timeout", "start-period", "retries")
SHELL = ["/bin/sh", "-c"]
#: What commit takes from the container's Config into the image's (the OCI image config's fields).
COMMITTED = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
             "StopSignal")
NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def committed(image: dict, container: dict, changes: list[str]) -> dict:
    """A committed image's settings: the container's as it ran (its Cmd, its Env with the -e
    variables, its -w), over the image's; then the changes, merged back as moby's commit does."""
    ran = {**image, **{key: value for key, value in container.items() if key in COMMITTED}}
    return merge(apply(ran, changes), ran) if changes else ran


def apply(config: dict, changes: list[str]) -> dict:
    """A new config: `config` with every change applied, or InvalidParameter and nothing."""
    parsed = [split_command(line) for line in logical_lines(changes)]
    if not parsed:
        raise InvalidParameter("file with no instructions")
    for name, _, _ in parsed:
        if name not in VALID:
            raise InvalidParameter(f"{name} is not a valid change command")
    steps, cmd_given = [], False
    for name, flags, rest in parsed:
        if name == "entrypoint":  # it clears the CMD, unless a CMD with arguments came before it
            steps.append(parse_entrypoint(flags, rest, keep_cmd=cmd_given))
        else:
            steps.append(PARSERS[name](flags, rest))
        cmd_given = cmd_given or (name == "cmd" and has_arguments(rest))
    state = json.loads(json.dumps(config))  # a deep copy
    for step in steps:
        step(state)
    return state


def logical_lines(changes: list[str]) -> list[str]:
    """The changes as one text's instructions: continued lines joined, comments and blank
    lines left out (buildkit's parser)."""
    found, pending = [], ""
    for line in "\n".join(changes).split("\n"):
        if line.strip().startswith("#"):
            continue
        continued = re.search(r"\\[ \t]*$", line)
        pending += line[:continued.start()] if continued else line
        if not continued and pending.strip():
            found.append(pending.strip())
        if not continued:
            pending = ""
    if pending.strip():
        found.append(pending.strip())
    return found


def split_command(line: str) -> tuple[str, dict[str, str | None], str]:
    """`HEALTHCHECK --interval=5s CMD true` -> ("healthcheck", {"interval": "5s"}, "CMD true")."""
    parts = line.split(None, 1)
    name, rest = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
    flags: dict[str, str | None] = {}
    while rest.startswith("--"):
        token = rest.split(None, 1)[0]
        rest = rest[len(token):].lstrip()
        if token == "--":
            break
        key, equals, value = token[2:].partition("=")
        if key in flags:
            raise InvalidParameter(f"Duplicate flag specified: {key}")
        flags[key] = value if equals else None
    if name in JSON_FORMS:
        maybe_json(rest)  # the parser's one error: a JSON array with something other than strings
    return name, flags, rest


def check_flags(flags: dict[str, str | None], known: tuple[str, ...] = ()) -> None:
    for key, value in flags.items():
        if key not in known:
            raise InvalidParameter(f"Unknown flag: {key}")
        if value is None:
            raise InvalidParameter(f"Missing a value on flag: {key}")


def maybe_json(rest: str) -> list[str] | None:
    """The exec form's array, or None for the shell form (text that is not a JSON array)."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text)  # what follows the array is ignored, as in Go
    except ValueError:
        return None
    if not all(isinstance(item, str) for item in value):
        raise InvalidParameter(NOT_STRINGS)
    return [re.sub("[\ud800-\udfff]", "\ufffd", item) for item in value]  # a lone "\ud800": Go's U+FFFD


def command_line(rest: str, state: dict) -> list[str]:
    """CMD/ENTRYPOINT's value: the exec form as given, the shell form run by the config's shell."""
    exec_form = maybe_json(rest)
    if exec_form is not None:
        return exec_form
    return [*(state.get("Shell") or SHELL), *([rest] if rest else [])]


def has_arguments(rest: str) -> bool:
    """Whether a CMD says something (`CMD []` and a bare `CMD` do not)."""
    exec_form = maybe_json(rest)
    return bool(exec_form) if exec_form is not None else bool(rest)


def at_least_one(name: str, rest: str) -> None:
    if not rest.strip():
        raise InvalidParameter(f"{name} requires at least one argument")


# --- the instructions: each parses now and returns what applies it later ---------------------------

def parse_cmd(flags: dict, rest: str):
    check_flags(flags)

    def step(state: dict) -> None:
        state["Cmd"] = command_line(rest, state)
    return step


def parse_entrypoint(flags: dict, rest: str, keep_cmd: bool = False):
    check_flags(flags)

    def step(state: dict) -> None:
        state["Entrypoint"] = command_line(rest, state) or None  # `ENTRYPOINT []`: none
        if not keep_cmd:
            state["Cmd"] = None
    return step


def name_values(instruction: str, rest: str) -> list[tuple[str, str]]:
    """ENV/LABEL's pairs, not yet expanded: `k=v k2="v 2"`, or the old `k the value`."""
    at_least_one(instruction, rest)
    raw = split_raw(rest)
    if "=" not in raw[0]:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{instruction} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for item in raw:
        if "=" not in item:
            raise InvalidParameter(f"Syntax error - can't find = in {go_quote(item)}. "
                                   "Must be of the form: name=value")
        key, _, value = item.partition("=")
        if not key:
            raise InvalidParameter(f"{instruction} names can not be blank")
        pairs.append((key, value))
    return pairs


def parse_env(flags: dict, rest: str):
    check_flags(flags)
    pairs = name_values("ENV", rest)

    def step(state: dict) -> None:
        env = list(state.get("Env") or [])
        for key, value in [(word(k, env), word(v, env)) for k, v in pairs]:
            at = next((i for i, entry in enumerate(env) if entry.partition("=")[0] == key), None)
            if at is None:
                env.append(f"{key}={value}")
            else:
                env[at] = f"{key}={value}"
        state["Env"] = env
    return step


def parse_label(flags: dict, rest: str):
    check_flags(flags)
    pairs = name_values("LABEL", rest)

    def step(state: dict) -> None:
        env = state.get("Env") or []
        state["Labels"] = dict(sorted({**(state.get("Labels") or {}),        # (as Go writes a map)
                                       **{word(k, env): word(v, env) for k, v in pairs}}.items()))
    return step


def parse_expose(flags: dict, rest: str):
    at_least_one("EXPOSE", rest)
    check_flags(flags)

    def step(state: dict) -> None:
        env = state.get("Env") or []
        specs = [spec for raw in rest.split() for spec in words(raw, env)]
        keys = [key for spec in specs for key in exposed(spec)]
        state["ExposedPorts"] = {**(state.get("ExposedPorts") or {}), **{key: {} for key in keys}}
    return step


def port_range(text: str) -> tuple[int, int] | None:
    """Go's nat.ParsePortRange: "80" or "8000-8002", each 0-65535 in ASCII digits."""
    first, dash, last = text.partition("-")
    last = last.split("-")[0] if dash else first
    if not all(p.isascii() and p.isdigit() and int(p) <= 65535 for p in (first, last)):
        return None
    return (int(first), int(last)) if int(last) >= int(first) else None


def exposed(spec: str) -> list[str]:
    """EXPOSE's `80`, `53/udp`, `8000-8002`, even `ip:host:80` (nat.ParsePortSpec): the keys."""
    parts = spec.split(":")
    container = parts[-1]
    address = ":".join(parts[:-2]) if len(parts) > 2 else ""
    host = parts[-2] if len(parts) > 1 else ""
    port, slash, proto = container.partition("/")
    proto = (proto.split("/")[0] if slash else "") or "tcp"
    if address:
        bare = address.removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            raise InvalidParameter(f"Invalid ip address: {bare}") from None
    if not port:
        raise InvalidParameter(f"No port specified: {spec}<empty>")
    ports = port_range(port)
    if ports is None:
        raise InvalidParameter(f"Invalid containerPort: {port}")
    if host and port_range(host) is None:
        raise InvalidParameter(f"Invalid hostPort: {host}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"Invalid proto: {proto}")
    return [f"{number}/{proto.lower()}" for number in range(ports[0], ports[1] + 1)]


def exactly_one(name: str, rest: str) -> None:
    if not rest.strip():
        raise InvalidParameter(f"{name} requires exactly one argument")


def parse_user(flags: dict, rest: str):
    exactly_one("USER", rest)
    check_flags(flags)

    def step(state: dict) -> None:
        state["User"] = word(rest, state.get("Env") or [])
    return step


def parse_workdir(flags: dict, rest: str):
    exactly_one("WORKDIR", rest)
    check_flags(flags)

    def step(state: dict) -> None:
        path = word(rest, state.get("Env") or [])
        if not path.startswith("/"):
            path = f"/{state.get('WorkingDir') or ''}/{path}"
        state["WorkingDir"] = clean(path)
    return step


def clean(path: str) -> str:
    """Go's path.Clean for an absolute path: no "//", no ".", no "..", no trailing "/"."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def parse_volume(flags: dict, rest: str):
    at_least_one("VOLUME", rest)
    check_flags(flags)
    listed = maybe_json(rest)
    paths = listed if listed is not None else rest.split()

    def step(state: dict) -> None:
        env = state.get("Env") or []
        expanded = [word(path, env) for path in paths]
        if any(path == "" for path in expanded):
            raise InvalidParameter("VOLUME specified can not be an empty string")
        state["Volumes"] = {**(state.get("Volumes") or {}), **{path: {} for path in expanded}}
    return step


def parse_onbuild(flags: dict, rest: str):
    """ONBUILD keeps its instruction as text, for a build FROM this image to run."""
    at_least_one("ONBUILD", rest)
    check_flags(flags)
    trigger = rest.split(None, 1)[0].upper()
    if trigger == "ONBUILD":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")

    def step(state: dict) -> None:
        state["OnBuild"] = [*(state.get("OnBuild") or []), rest]
    return step


def parse_healthcheck(flags: dict, rest: str):
    """`HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] CMD …`: docker's Healthcheck, in
    nanoseconds, zero fields left out. (mini records it; chapter 08's daemon could run it.)"""
    at_least_one("HEALTHCHECK", rest)
    check_flags(flags, HEALTHCHECK_FLAGS)
    kind, _, command = rest.partition(" ")
    kind, command = kind.upper(), command.strip()
    if kind == "NONE":
        if command:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        health: dict = {"Test": ["NONE"]}
    elif kind == "CMD":
        exec_form = maybe_json(command)
        if not command or exec_form == []:
            raise InvalidParameter("Missing command after HEALTHCHECK CMD")
        health = {"Test": ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
            if flags.get(flag):
                health[key] = interval(flag, flags[flag])
        if flags.get("retries"):
            health["Retries"] = retries(flags["retries"])
        health = {key: value for key, value in health.items() if value}
    else:
        raise InvalidParameter(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")

    def step(state: dict) -> None:
        state["Healthcheck"] = health
    return step


def interval(flag: str, text: str) -> int:
    """A Go duration of at least 1ms (0 means the default), in nanoseconds."""
    nanoseconds = go_duration(text)
    if nanoseconds != 0 and nanoseconds < 10**6:
        raise InvalidParameter(f"Interval {go_quote(flag)} cannot be less than 1ms")
    return nanoseconds


def retries(text: str) -> int:
    if go_int(text, 32) < 1:
        raise InvalidParameter(f"--retries must be at least 1 (not {int(text)})")
    return int(text)


PARSERS = {"cmd": parse_cmd, "entrypoint": parse_entrypoint, "env": parse_env, "expose": parse_expose,
           "healthcheck": parse_healthcheck, "label": parse_label, "onbuild": parse_onbuild,
           "user": parse_user, "volume": parse_volume, "workdir": parse_workdir}


def merge(new: dict, old: dict) -> dict:
    """What commit keeps of the container's config where the changes left a field empty
    (moby's daemon/commit.go merge): an empty CMD and ENTRYPOINT come back, env variables,
    labels, ports and volumes the changes did not name are kept."""
    merged = dict(new)
    merged["User"] = new.get("User") or old.get("User") or ""
    merged["ExposedPorts"] = {**(old.get("ExposedPorts") or {}), **(new.get("ExposedPorts") or {})} or None
    names = {entry.partition("=")[0] for entry in new.get("Env") or []}
    merged["Env"] = [*(new.get("Env") or []),
                     *(entry for entry in old.get("Env") or [] if entry.partition("=")[0] not in names)]
    merged["Labels"] = dict(sorted({**(old.get("Labels") or {}), **(new.get("Labels") or {})}.items()))
    if not new.get("Entrypoint") and not new.get("Cmd"):
        merged["Cmd"], merged["Entrypoint"] = old.get("Cmd"), old.get("Entrypoint")
    if new.get("Healthcheck") and old.get("Healthcheck"):
        merged["Healthcheck"] = {**old["Healthcheck"], **new["Healthcheck"]}
    elif old.get("Healthcheck"):
        merged["Healthcheck"] = old["Healthcheck"]
    merged["WorkingDir"] = new.get("WorkingDir") or old.get("WorkingDir") or ""
    merged["Volumes"] = {**(new.get("Volumes") or {}), **(old.get("Volumes") or {})} or None
    if old.get("StopSignal") and not new.get("StopSignal"):
        merged["StopSignal"] = old["StopSignal"]
    return merged
