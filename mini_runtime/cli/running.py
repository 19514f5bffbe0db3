"""Commands for a container that runs (chapter 06): `exec`, `stats`, `port`; docker's flags,
output and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from mini_runtime import backend
from mini_runtime.cli.envfiles import add_env_file, env_flags
from mini_runtime.cli.flags import REMAINDER, add_detach_keys
from mini_runtime.errors import BadArguments, Conflict, InvalidParameter, MiniError, NotFound, UsageError
from mini_runtime.units import bytes_size, human_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse
    from typing import Any

#: `docker stats`' columns, in its order, and the headers of its fields for --format.
STATS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def parser(sub: argparse._SubParsersAction, name: str, text: str, usage: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, usage=f"mini {name} {usage}")


def add_exec(sub: argparse._SubParsersAction) -> None:
    p = parser(sub, "exec", "Run a command in a running container.", "[OPTIONS] CONTAINER COMMAND [ARG...]")
    p.add_argument("-d", "--detach", action="store_true", help="detached mode: run command in the background")
    add_detach_keys(p)
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set environment variables")
    add_env_file(p)
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    p.add_argument("-u", "--user", metavar="USER", help="username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND [ARG...]")


def add_stats(sub: argparse._SubParsersAction) -> None:
    p = parser(sub, "stats", "Display a live stream of container(s) resource usage statistics.",
               "[OPTIONS] [CONTAINER...]")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--format", help="pretty-print stats using a Go template")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


def add_port(sub: argparse._SubParsersAction) -> None:
    p = parser(sub, "port", "List port mappings or a specific mapping for the container.",
               "CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


# --- exec --------------------------------------------------------------------------------------

def exec_(args: argparse.Namespace) -> int:
    """docker exec: create the exec, start it attached (or not: -d), its exit code is ours."""
    if not args.cmd:
        raise BadArguments('"mini exec" requires at least 2 arguments (see \'mini exec --help\')')
    from mini_runtime.cli import terminal

    engine = backend.connect(warm_cgroups=True)          # (the command joins the container's cgroup)
    config = {"Cmd": args.cmd, "Env": env_flags(args.env, args.env_file), "User": args.user or "",
              "WorkingDir": args.workdir or "", "Tty": args.tty, "AttachStdin": args.interactive,
              "AttachStdout": not args.detach, "AttachStderr": not args.detach, "Detach": args.detach}
    if args.tty:                                        # (docker's fillConsoleSize)
        config["ConsoleSize"] = list(terminal.window_size(1) or terminal.window_size(0) or (0, 0))
    try:
        engine.container_inspect(args.container)       # (as docker: "No such container" first)
        if not args.detach and terminal.stdin_refused(args.interactive, args.tty):
            return 1
        made = engine.exec_create(args.container, config)
        keys = terminal.detach_sequence(args.detach_keys, "escape")   # (docker's daemon: then)
    except (Conflict, NotFound, InvalidParameter) as e:  # (a 404 is the client's own words)
        print(f"Error: {e}" if isinstance(e, NotFound) else f"Error response from daemon: {e}", file=sys.stderr)
        return 1
    engine.exec_start(made["Id"], console=(lambda master: console(master, args.interactive, keys))
                      if args.tty else None)
    code = engine.exec_inspect(made["Id"])["ExitCode"]
    return 0 if args.detach else 1 if code is None else code  # (None: detached, as docker's: 1)


class PtyStream:
    """A pty master as the stream terminal.relay reads and writes (the local backend hands us the
    exec's pty master; chapter 09's remote one hands a hijacked socket instead)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def recv(self, size: int) -> bytes:
        try:
            return os.read(self.fd, size)
        except OSError:                     # EIO: every process holding the pty has ended
            return b""

    def sendall(self, data: bytes) -> None:
        from mini_runtime.cli.terminal import write_all

        write_all(self.fd, data)

    def send(self, data: bytes, flags: int = 0) -> int:
        """As much as the pty takes now (relay sends only when select says it can)."""
        os.set_blocking(self.fd, False)
        try:
            return os.write(self.fd, data)
        finally:
            os.set_blocking(self.fd, True)

    def shutdown(self, how: int) -> None:
        """(A pty has no half-close: the line discipline's ctrl-D is the end of input.)"""


def console(master: int, interactive: bool, keys: bytes) -> bool:
    """-t: the exec's pty relayed to our terminal (raw with -i) until it ends, or until the user
    types the detach `keys` (True: the command runs on, docker's line said); its window size
    is ours, and follows ours (SIGWINCH)."""
    import fcntl
    import struct
    import termios

    from mini_runtime.cli import terminal

    def resize() -> None:
        size = terminal.window_size(0) or terminal.window_size(1)
        if size:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))

    resize()
    with terminal.raw(0) if interactive else contextlib.nullcontext():
        detached = terminal.relay(PtyStream(master), tty=True, stdin=0 if interactive else None,
                                  detach_keys=keys, on_resize=resize)
    if detached:
        print("read escape sequence", file=sys.stderr)
    return detached


# --- stats -------------------------------------------------------------------------------------

def cpu_percent(s: dict[str, Any]) -> float:
    """docker's: the container's CPU time over the machine's in the same interval, per CPU."""
    now, before = s["cpu_stats"], s.get("precpu_stats") or {}
    used = now["cpu_usage"]["total_usage"] - (before.get("cpu_usage") or {}).get("total_usage", 0)
    system = now.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    if used <= 0 or system <= 0 or not before:
        return 0.0
    return used / system * (now.get("online_cpus") or 1) * 100.0


def memory_used(memory: dict[str, Any]) -> int:
    """docker's: usage less the page cache the kernel can drop at once (inactive files)."""
    usage, counters = memory.get("usage", 0), memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):       # v1, v2
        if key in counters and counters[key] < usage:
            return usage - counters[key]
    return usage


def stats_row(s: dict[str, Any], trunc: bool, asked: str) -> dict[str, str]:
    """docker's StatsContext: `.Container` is the container as it was asked for."""
    memory = s.get("memory_stats") or {}
    used, limit = memory_used(memory), memory.get("limit", 0)
    rx = sum(n["rx_bytes"] for n in (s.get("networks") or {}).values())
    tx = sum(n["tx_bytes"] for n in (s.get("networks") or {}).values())
    io = {"read": 0, "write": 0}
    for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        if entry["op"].lower() in io:
            io[entry["op"].lower()] += entry["value"]
    return {"Container": asked, "ID": s["id"][:12] if trunc else s["id"], "Name": s["name"].lstrip("/"),
            "CPUPerc": f"{cpu_percent(s):.2f}%", "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
            "MemPerc": f"{used / limit * 100 if limit else 0:.2f}%", "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(io['read'])} / {human_size(io['write'])}",
            "PIDs": str((s.get("pids_stats") or {}).get("current", 0))}


def stats(args: argparse.Namespace) -> int:
    """docker stats: a table a second (cleared between, on a terminal) until ctrl-C; with
    --no-stream, one (each row from two samples a second apart, for CPU %)."""
    from mini_runtime.cli.template import render_table

    engine = backend.connect()
    streams: dict[str, Iterator[dict[str, Any]]] = {}
    failed = False
    while True:
        wanted = args.containers or [s["Id"] for s in engine.container_list(all=args.all)]
        for text in wanted:
            if text not in streams:
                try:
                    streams[text] = engine.container_stats(text)
                except MiniError as e:
                    print(f"Error response from daemon: {e}", file=sys.stderr)
                    failed = True
        rows = []
        for text in wanted:
            try:
                rows.append(stats_row(next(streams[text]), not args.no_trunc, text))
            except (KeyError, MiniError, OSError):
                streams.pop(text, None)                 # removed meanwhile: not shown
        if failed and args.containers:
            return 1
        if not args.no_stream and sys.stdout.isatty():
            sys.stdout.write("\033[2J\033[H")
        sys.stdout.write(render_table(args.format or STATS_FORMAT, rows, STATS_HEADERS,
                                      "*formatter.statsContext"))
        sys.stdout.flush()
        if args.no_stream:
            return 0
        for gone in set(streams) - set(wanted):
            del streams[gone]


# --- port --------------------------------------------------------------------------------------

def host_port(binding: dict[str, str]) -> str:
    address = binding.get("HostIp") or "0.0.0.0"
    return f"[{address}]:{binding.get('HostPort', '')}" if ":" in address else f"{address}:{binding.get('HostPort', '')}"


def port(args: argparse.Namespace) -> int:
    """docker port: the container's published ports (NetworkSettings.Ports, chapter 07)."""
    from mini_runtime.cli import formatting

    found = backend.connect().container_inspect(args.container)
    ports = (found.get("NetworkSettings") or {}).get("Ports") or {}
    if args.private:
        number, _, proto = args.private.partition("/")
        if not number.isdigit():
            raise UsageError(f"Invalid port: {number}")
        key = f"{int(number)}/{proto or 'tcp'}"
        if not ports.get(key):
            print(f"Error: No public port '{key}' published for {args.container}", file=sys.stderr)
            return 1
        for binding in ports[key]:
            print(host_port(binding))
        return 0
    lines = [f"{key} -> {host_port(b)}" for key, bindings in ports.items() for b in bindings or []]
    for line in sorted(lines, key=formatting.natural):
        print(line)
    return 0


PARSERS = {"exec": add_exec, "stats": add_stats, "port": add_port}
HANDLERS = {"exec": exec_, "stats": stats, "port": port}
