"""A container's life after `run` (chapter 06): `ps`, `inspect`, `logs`, `stop`, `kill`, `wait`,
`start`, `restart`, `rename`; docker's flags, output and exit codes."""

from __future__ import annotations

import json
import re
import sys

from mini_runtime import backend
from mini_runtime.cli.flags import REMAINDER, add_detach_keys, int64
from mini_runtime.cli.several import each
from mini_runtime.errors import Conflict, InvalidParameter, MiniError, NotFound, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse
    from typing import Any



def parser(sub: argparse._SubParsersAction, name: str, text: str, usage: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, usage=f"mini {name} {usage}")


def add_ps(sub: argparse._SubParsersAction) -> None:
    ps = parser(sub, "ps", "List containers.", "[OPTIONS]")
    ps.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    ps.add_argument("-l", "--latest", action="store_true", help="show the latest created container")
    ps.add_argument("-n", "--last", type=int64, default=-1, metavar="N",
                    help="show the N last created containers (includes all states)")
    ps.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    ps.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    ps.add_argument("-s", "--size", action="store_true",
                    help="display total file sizes: the container's own, and with its image's (virtual)")
    ps.add_argument("--format", help="format output using a Go template")
    ps.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                    help='filter output based on conditions provided (status=, name=, id=, ancestor=, '
                         'label=, exited=, before=, since=, network=)')


def add_inspect(sub: argparse._SubParsersAction) -> None:
    inspect = parser(sub, "inspect", "Return low-level information on containers or images.",
                     "[OPTIONS] NAME|ID [NAME|ID...]")
    inspect.add_argument("-f", "--format", help="format output using a Go template")
    inspect.add_argument("-s", "--size", action="store_true", help="display total file sizes if the type is container")
    inspect.add_argument("--type", metavar="container|image",
                         help="return JSON for the specified type (a container first, then an image)")
    inspect.add_argument("names", nargs="+", metavar="NAME|ID")


def add_logs(sub: argparse._SubParsersAction) -> None:
    logs = parser(sub, "logs", "Fetch the logs of a container.", "[OPTIONS] CONTAINER")
    logs.add_argument("-f", "--follow", action="store_true", help="follow log output")
    logs.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    logs.add_argument("-n", "--tail", default="all",
                      help='number of lines to show from the end of the logs (default "all")')
    logs.add_argument("--since", help="show logs since a timestamp (e.g. 2013-01-02T13:23:37Z) "
                                      "or relative (e.g. 42m for 42 minutes)")
    logs.add_argument("--until", help="show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) "
                                      "or relative (e.g. 42m for 42 minutes)")
    logs.add_argument("--details", action="store_true", help="show extra details provided to logs")
    logs.add_argument("container", metavar="CONTAINER")


def add_stop(sub: argparse._SubParsersAction) -> None:
    stop = parser(sub, "stop", "Stop one or more running containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    stop.add_argument("-t", "--time", type=int64, default=None, metavar="SECONDS",
                      help="seconds to wait before killing the container (default 10)")
    stop.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_kill(sub: argparse._SubParsersAction) -> None:
    kill = parser(sub, "kill", "Kill one or more running containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    kill.add_argument("-s", "--signal", default="KILL", help='signal to send (default "KILL")')
    kill.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_wait(sub: argparse._SubParsersAction) -> None:
    wait = parser(sub, "wait", "Block until one or more containers stop, then print their exit codes.",
                  "CONTAINER [CONTAINER...]")
    wait.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_start(sub: argparse._SubParsersAction) -> None:
    start = parser(sub, "start", "Start one or more stopped containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    start.add_argument("-a", "--attach", action="store_true", help="attach STDOUT/STDERR and forward signals")
    start.add_argument("-i", "--interactive", action="store_true", help="attach container's STDIN")
    add_detach_keys(start)
    start.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_rename(sub: argparse._SubParsersAction) -> None:
    rename = parser(sub, "rename", "Rename a container.", "CONTAINER NEW_NAME")
    rename.add_argument("container", metavar="CONTAINER")
    rename.add_argument("name", metavar="NEW_NAME")


def add_restart(sub: argparse._SubParsersAction) -> None:
    restart = parser(sub, "restart", "Restart one or more containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    restart.add_argument("-t", "--time", type=int64, default=None, metavar="SECONDS",
                         help="seconds to wait before killing the container (default 10)")
    restart.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_pause(sub: argparse._SubParsersAction) -> None:
    parser(sub, "pause", "Pause all processes within one or more containers.",
           "CONTAINER [CONTAINER...]").add_argument("containers", nargs="+", metavar="CONTAINER")


def add_unpause(sub: argparse._SubParsersAction) -> None:
    parser(sub, "unpause", "Unpause all processes within one or more containers.",
           "CONTAINER [CONTAINER...]").add_argument("containers", nargs="+", metavar="CONTAINER")


def add_top(sub: argparse._SubParsersAction) -> None:
    top = parser(sub, "top", "Display the running processes of a container.", "CONTAINER [ps OPTIONS]")
    top.add_argument("container", metavar="CONTAINER")
    top.add_argument("ps_args", nargs=REMAINDER, metavar="ps OPTIONS")


def filter_flags(texts: list[str], flag: str = "-f, --filter") -> dict[str, list[str]]:
    """`-f status=exited -f name=web` as the Engine API's `filters` object. A key is
    case-insensitive and may be padded (`Status = exited`), as docker's CLI takes it."""
    filters: dict[str, list[str]] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{text}" for "{flag}" flag: '
                             'bad format of filter (expected name=value)')
        filters.setdefault(key.strip().lower(), []).append(value)
    return filters


def image_column(image: str, image_id: str, truncate: bool) -> str:
    """docker's ps IMAGE: the name it ran by, or (that name now naming another image) its
    image's id, which truncated is 12 digits, as every id in a table."""
    if truncate and image.removeprefix("sha256:")[:12] == image_id.removeprefix("sha256:")[:12]:
        return image_id.removeprefix("sha256:")[:12]
    return image


def ps(args: argparse.Namespace) -> int:
    from mini_runtime.cli.formatting import PS_FORMAT, PS_HEADERS, PS_QUIET_FORMAT
    from mini_runtime.cli.template import TemplateError, render_table

    limit = 1 if args.latest else (args.last if args.last > 0 else None)
    rows = []
    filters = filter_flags(args.filter)
    quiet = args.quiet and (args.format or "table") == "table"   # docker's: a --format of one's own wins
    # docker's rule: a template that reads .Size asks for sizes, and `{{json .}}` reads every field
    size = not quiet and (args.size or ".Size" in (args.format or "")
                          or re.search(r"\bjson\s+\.(?![\w.])", args.format or "") is not None)
    for summary in backend.connect().container_list(all=args.all, limit=limit, filters=filters, size=size):
        rows.append(ps_row(summary, args.no_trunc))
    own = args.format if args.format != "table" else None        # ("table" alone: the default)
    format = PS_QUIET_FORMAT if quiet else (own or PS_FORMAT + "\t{{.Size}}" * args.size)
    try:
        sys.stdout.write(render_table(format, rows, PS_HEADERS, "*formatter.ContainerContext"))
    except TemplateError as e:      # docker's ps parses and tries the template first: its words
        error = str(e).removeprefix("template parsing error: ")
        raise TemplateError(f"failed to {'parse' if e.parsing else 'execute'} template: {error}") from None
    return 0


def ps_row(summary: dict[str, Any], no_trunc: bool = False) -> dict[str, Any]:
    """A container's row, as docker's ContainerContext has its fields (ps, and system df -v)."""
    from mini_runtime.cli.formatting import command_column, go_time, ports_column
    from mini_runtime.units import ago, human_size

    changed, seen = human_size(summary.get("SizeRw", 0)), human_size(summary.get("SizeRootFs", 0))
    row = {"ID": summary["Id"] if no_trunc else summary["Id"][:12],
           "Image": image_column(summary["Image"], summary["ImageID"], not no_trunc),
           "Command": command_column(summary["Command"], truncate=not no_trunc),
           "CreatedAt": go_time(summary["Created"]), "RunningFor": ago(summary["Created"]),
           "Status": summary["Status"], "State": summary["State"],
           "Ports": ports_column(summary.get("Ports") or []),
           "Names": ",".join(n.lstrip("/") for n in summary["Names"]),
           "Labels": ",".join(f"{k}={v}" for k, v in sorted((summary["Labels"] or {}).items())),
           "Label": lambda key, labels=summary["Labels"] or {}: labels.get(key, ""),
           "Mounts": "", "Networks": ",".join(sorted((summary.get("NetworkSettings") or {}).get("Networks") or {})),
           "Size": f"{changed} (virtual {seen})" if summary.get("SizeRootFs") else changed,
           "LocalVolumes": "0"}                         # (no volumes in mini)
    return dict(sorted(row.items()))                    # `{{json .}}`: docker's keys, a Go map's order


#: The fields of docker's ContainerJSON and ImageInspect: `inspect -f '{{.Nope}}'` is an error.
INSPECT_FIELDS = {
    "container": frozenset("Id Created Path Args State Image ResolvConfPath HostnamePath HostsPath LogPath "
                           "Node Name RestartCount Driver Platform MountLabel ProcessLabel AppArmorProfile "
                           "ExecIDs HostConfig GraphDriver SizeRw SizeRootFs Mounts Config NetworkSettings".split()),
    "image": frozenset("Id RepoTags RepoDigests Parent Comment Created Container ContainerConfig DockerVersion "
                       "Author Config Architecture Variant Os OsVersion Size VirtualSize GraphDriver RootFS "
                       "Metadata".split())}


def inspect(args: argparse.Namespace) -> int:
    """docker inspect: each name as a container, else as an image (--type: only that one)."""
    from mini_runtime.cli.template import check, render

    if args.type not in (None, "container", "image"):
        raise InvalidParameter(f'"{args.type}" is not a valid value for --type')   # (docker's, exit 1)
    check(args.format or "")
    engine, found, failed = backend.connect(), [], False
    kinds = [args.type] if args.type else ["container", "image"]
    for text in args.names:
        for kind in kinds:
            try:
                found.append((kind, engine.container_inspect(text, size=args.size) if kind == "container"
                                     else engine.image_inspect(text)))
                break
            except MiniError as e:
                if isinstance(e, NotFound) or kind == "image":
                    continue
                print(f"Error response from daemon: {e}", file=sys.stderr)  # (an id prefix of two)
                failed = True
                break
        else:
            print(f"Error: No such {args.type or 'object'}: {text}", file=sys.stderr)
            failed = True
    if args.format:
        for kind, data in found:
            print(render(args.format, data, fields=INSPECT_FIELDS[kind]))
    else:
        print(json.dumps([data for _, data in found], indent=4, ensure_ascii=False)
              .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    return 1 if failed else 0


def logs(args: argparse.Namespace) -> int:
    from mini_runtime.units import api_timestamp, timestamp_ns

    try:                                   # docker's daemon: what is no number ("all") is all
        tail = None if args.tail == "all" else int(args.tail)
    except ValueError:
        tail = None
    since, until = (timestamp_ns(api_timestamp(text, flag)) if text else None
                    for text, flag in ((args.since, "since"), (args.until, "until")))
    outputs = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for stream, data in backend.connect().container_logs(args.container, follow=args.follow, tail=tail,
                                                         since=since, until=until, details=args.details,
                                                         timestamps=args.timestamps):
        out = outputs.get(stream, sys.stdout.buffer)
        out.write(data)
        out.flush()
    return 0


def stop(args: argparse.Namespace) -> int:
    engine = backend.connect()
    return each(args.containers, lambda text: engine.container_stop(text, args.time), parallel=True)


def kill(args: argparse.Namespace) -> int:
    engine = backend.connect()
    return each(args.containers, lambda text: engine.container_kill(text, args.signal), parallel=True)


def wait(args: argparse.Namespace) -> int:
    engine = backend.connect()
    return each(args.containers, lambda text: engine.container_wait(text)["StatusCode"])


def start(args: argparse.Namespace) -> int:
    """docker start; with -a/-i attached (before it starts: nothing is lost) until it ends, its
    exit code, or until ctrl-p ctrl-q (0)."""
    from mini_runtime.cli import attach, terminal

    keys = terminal.detach_sequence(args.detach_keys)
    engine = backend.connect()
    if not (args.attach or args.interactive):
        return each(args.containers, engine.container_start, "failed to start containers")
    if len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    found = engine.container_inspect(args.containers[0])
    if found["State"]["Paused"]:                        # (attached, it would wait for output a
        print(f"Error response from daemon: container {args.containers[0]} is paused, "  # frozen
              "unpause the container before attach", file=sys.stderr)   # container cannot write)
        return 1
    container_id, stdin = found["Id"], args.interactive and bool(found["Config"].get("OpenStdin"))
    try:
        attached = engine.container_attach(container_id, stdin=stdin)
    except Conflict:
        if not found["State"]["Running"]:
            raise
        engine.container_wait(container_id)           # it ended as we looked: once its monitor
        found = engine.container_inspect(container_id)  # has finished, start it again, attached
        attached = engine.container_attach(container_id, stdin=stdin)
    if not found["State"]["Running"]:                   # (running: docker just attaches)
        try:
            if attached.tty:
                attach.resize_now(engine, container_id)
            engine.container_start(container_id)
        except BaseException:
            attached.stream.close()
            engine.container_detach(container_id)
            raise
    if attach.session(engine, container_id, attached, stdin=stdin, keys=keys):
        engine.container_detach(container_id)
        return 0
    try:
        return engine.container_wait(container_id)["StatusCode"]
    except MiniError:
        return 0                                        # --rm: gone already


def rename(args: argparse.Namespace) -> int:
    """docker rename; a failure is the daemon's line, then the client's own."""
    if not args.container.strip() or not args.name.strip():
        print("Error: Neither old nor new names may be empty", file=sys.stderr)
        return 1
    try:
        backend.connect().container_rename(args.container, args.name)
    except MiniError as e:
        print(f"Error response from daemon: {e}", file=sys.stderr)
        print(f"Error: failed to rename container named {args.container}", file=sys.stderr)
        return 1
    return 0


def restart(args: argparse.Namespace) -> int:
    """docker restart: stop (as `stop -t`), then start again, detached."""
    engine = backend.connect()

    def again(text: str) -> None:
        engine.container_stop(text, args.time)
        engine.container_start(text)
    return each(args.containers, again)


def pause(args: argparse.Namespace) -> int:
    engine = backend.connect()
    act = engine.container_pause if args.command == "pause" else engine.container_unpause
    return each(args.containers, act, parallel=True)


def top(args: argparse.Namespace) -> int:
    from mini_runtime.cli.formatting import tabwriter

    found = backend.connect().container_top(args.container, " ".join(args.ps_args))
    lines = ["\t".join(found["Titles"])] + ["\t".join(row) for row in found["Processes"]]
    sys.stdout.write(tabwriter("".join(line + "\n" for line in lines), minwidth=20, padding=3))
    return 0


PARSERS = {"ps": add_ps, "inspect": add_inspect, "logs": add_logs, "stop": add_stop,
           "kill": add_kill, "wait": add_wait, "start": add_start, "rename": add_rename,
           "restart": add_restart, "pause": add_pause, "unpause": add_unpause, "top": add_top}
HANDLERS = {"ps": ps, "inspect": inspect, "logs": logs, "stop": stop, "kill": kill,
            "wait": wait, "start": start, "rename": rename, "restart": restart, "pause": pause,
            "unpause": pause, "top": top}
