"""`mini run`: docker's flags for a container, checked here, before anything is created."""

from __future__ import annotations

import os
import sys

from mini_runtime.cli import netflags
from mini_runtime.cli.envfiles import add_env_file, env_flags, kv_file
from mini_runtime.cli.flags import REMAINDER, add_detach_keys, int64
from mini_runtime.cli.limits import int_flag, parse_limits
from mini_runtime.config import check_limits, check_namespace_modes
from mini_runtime.errors import MiniError, UsageError
from mini_runtime.units import human_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse


def add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="Run a command in a new container.", add_help=False,
                         usage="mini run [OPTIONS] IMAGE [COMMAND] [ARG...]",
                         description="Run a command in a new container.")
    run.add_argument("-d", "--detach", action="store_true",
                     help="run the container in the background and print its ID")
    add_detach_keys(run)
    container_flags(run)


def add_create(sub: argparse._SubParsersAction) -> None:
    create = sub.add_parser("create", help="Create a new container.", add_help=False,
                            usage="mini create [OPTIONS] IMAGE [COMMAND] [ARG...]",
                            description="Create a new container (`mini start` runs it).")
    container_flags(create)


def container_flags(run: argparse.ArgumentParser) -> None:
    """The flags `run` and `create` share: what the container is."""
    run.add_argument("--help", action="help", help="show this help message and exit")
    run.add_argument("-h", "--hostname", metavar="NAME",
                     help="container host name (default: the short container id)")
    run.add_argument("--init", action="store_true",
                     help="run an init inside the container that forwards signals and reaps processes")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("--stop-signal", metavar="SIGNAL",
                     help="the signal `stop` sends first (default: the image's STOPSIGNAL, else SIGTERM)")
    run.add_argument("--stop-timeout", type=int64, default=None, metavar="SECONDS",
                     help="seconds `stop` waits before SIGKILL, unless `stop -t` says (default 10)")
    run.add_argument("--cidfile", metavar="FILE", help="write the container ID to the file")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                     help="set an environment variable (K alone: take it from this shell)")
    add_env_file(run)
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    run.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m, 1g)")
    run.add_argument("--memory-swap", metavar="BYTES",
                     help="memory plus swap limit; -1 for unlimited swap (default: twice --memory)")
    run.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    run.add_argument("-c", "--cpu-shares", metavar="N", help="CPU shares, relative weight (default 1024)")
    run.add_argument("--pids-limit", metavar="N", help="most processes at once (-1: unlimited)")
    run.add_argument("--cpu-period", metavar="US", help="CFS period in microseconds (exercise 04's extension)")
    run.add_argument("--cpu-quota", metavar="US",
                     help="CFS quota: microseconds of CPU time per period (exercise 04's extension)")
    run.add_argument("--memory-reservation", metavar="BYTES",
                     help="memory soft limit (exercise 04's extension)")
    run.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs the container may use (0-1, 0,2)")
    run.add_argument("--cgroupns", choices=("host", "private"), metavar="MODE",
                     help="cgroup namespace: 'private' (the default on cgroup v2) or 'host' (on v1)")
    run.add_argument("--pid", metavar="MODE", help="PID namespace: 'host' or 'container:NAME' (default: its own)")
    run.add_argument("--ipc", metavar="MODE",
                     help="IPC namespace: 'private' (default), 'shareable', 'none', 'host' or 'container:NAME'")
    run.add_argument("--uts", metavar="MODE", help="UTS namespace: 'host' (default: its own)")
    run.add_argument("--read-only", action="store_true",
                     help="mount the container's root filesystem read-only")
    run.add_argument("--name", help="assign a name to the container")
    run.add_argument("-l", "--label", action="append", default=[], metavar="K=V",
                     help="set metadata on the container (ps --filter label=K=V finds it)")
    run.add_argument("--label-file", action="append", default=[], metavar="FILE",
                     help="read labels from a file of K=V lines")
    run.add_argument("--entrypoint", metavar="CMD", help="overwrite the image's ENTRYPOINT (and drop its CMD)")
    run.add_argument("-u", "--user", metavar="USER", help="user name or uid, and optionally group: NAME|UID[:GROUP|GID]")
    run.add_argument("--no-pivot", action="store_true",
                     help="use chroot(2) instead of pivot_root(2): a teaching mode, escapable!")
    run.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                     help="a resource limit, e.g. nofile=1024:2048 (exercise 01's extension)")
    run.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTIONS]",
                     help="mount a tmpfs at PATH, e.g. /run:size=64m (exercise 02's extension)")
    run.add_argument("--uptime-offset", metavar="SECONDS",
                     help="shift the container's uptime, a time namespace (exercise 03's extension)")
    run.add_argument("-i", "--interactive", action="store_true",
                     help="keep STDIN open even if not attached")
    run.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    run.add_argument("-a", "--attach", action="append", default=[], metavar="STREAM",
                     help="attach to STDIN, STDOUT or STDERR (default: STDOUT and STDERR)")
    run.add_argument("-p", "--publish", action="append", default=[], metavar="SPEC",
                     help="publish a container's port to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]")
    run.add_argument("-P", "--publish-all", action="store_true",
                     help="publish every port the image exposes, each on a free host port")
    run.add_argument("--restart", default="no", metavar="POLICY",
                     help="no (default), on-failure[:N], always, unless-stopped (exercise 06's extension)")
    run.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                     help="add a line to /etc/hosts; IP may be host-gateway (exercise 07's extension)")
    run.add_argument("--network", "--net", metavar="NETWORK",
                     help="bridge (default), none, host, container:NAME, or a network of `mini network create`")
    run.add_argument("--network-alias", action="append", default=[], metavar="ALIAS",
                     help="another name the container has on its user-defined network")
    run.add_argument("--ip", metavar="ADDRESS", help="IPv4 address on a user-defined network created with --subnet")
    netflags.add_network_flags(run)
    run.add_argument("image", metavar="IMAGE")
    run.add_argument("args", nargs=REMAINDER, metavar="[COMMAND] [ARG...]")  # (the image's Cmd)


def label_flags(values: list[str], files: list[str]) -> list[str]:
    """--label-file's KEY=VALUE lines (a bare KEY dropped, as docker's client does), then
    -l K=V: a later one wins."""
    found = [line for path in files for line in kv_file(path, None)]
    for item in values:
        if "=" not in item:   # docker 20.10's ValidateLabel
            raise UsageError(f'invalid argument "{item}" for "-l, --label" flag: bad attribute format: {item}')
        found.append(item)
    for item in found:
        if not item.partition("=")[0] or "\0" in item:
            raise UsageError(f"invalid label {item!r}: a label is KEY=VALUE, KEY not empty")
    return found


def run(args: argparse.Namespace) -> int:
    """docker run: create, start, and (in the foreground) wait; the container's monitor cleans
    up, --rm too. With -d, its id at once."""
    from mini_runtime import backend

    from mini_runtime.cli import terminal

    config = config_of(args)
    if args.detach and config.attach:
        print("mini: Conflicting options: -a and -d", file=sys.stderr)   # (docker's, exit 1)
        return 1
    shown = config.attach_fields
    if not args.detach and terminal.stdin_refused(shown["AttachStdin"], args.tty):
        return 1
    engine = backend.connect(warm_cgroups=True)
    if not args.detach and not (shown["AttachStdout"] or shown["AttachStderr"]):
        return run_stdin_only(engine, config, args)
    if (args.tty or args.interactive or config.restart != "no") and not args.detach:
        return run_attached(engine, config, args)
    if args.detach_keys is not None:
        terminal.detach_sequence(args.detach_keys)     # docker's message for a bad one
    container_id = create_container(engine, config, "run", stdio=not args.detach)
    engine.container_start(container_id)
    if args.detach:
        engine.container_detach(container_id)
        print(container_id)
        return 0
    return report(config, engine.container_wait(container_id))


def run_attached(engine, config, args: argparse.Namespace) -> int:
    """run -i / -t, as docker's: a detached monitor, attached to before it starts (none of the
    output is lost); our terminal raw with -it; ctrl-p ctrl-q leaves the container running."""
    from mini_runtime.cli import attach, terminal

    keys = terminal.detach_sequence(args.detach_keys)  # (checked before anything is created)
    container_id = create_container(engine, config, "run")
    attached = None
    try:
        attached = engine.container_attach(container_id, stdin=args.interactive, streams=tuple(
            stream for stream in ("stdout", "stderr") if config.attach_fields["Attach" + stream.title()]))
        if args.tty:
            attach.resize_now(engine, container_id)
        engine.container_start(container_id)
    except BaseException:
        engine.container_detach(container_id)
        if attached is not None:
            attached.stream.close()
        raise
    if attach.session(engine, container_id, attached, stdin=args.interactive, keys=keys):
        engine.container_detach(container_id)
        return 0
    return report(config, engine.container_wait(container_id))


def run_stdin_only(engine, config, args: argparse.Namespace) -> int:
    """run -a stdin (no stdout, no stderr): as docker's client, the id is printed, our stdin
    (with -i) is the container's until its EOF, and run returns 0 without waiting: the
    container's output goes to its log only."""
    import socket

    container_id = create_container(engine, config, "run")
    attached = engine.container_attach(container_id, stdin=True, streams=()) if config.open_stdin else None
    try:
        engine.container_start(container_id)
        print(container_id, flush=True)
        while attached is not None and (data := os.read(0, 65536)):
            attached.stream.sendall(data)
        if attached is not None:
            attached.stream.shutdown(socket.SHUT_WR)        # the container's stdin ends
    finally:
        if attached is not None:
            attached.stream.close()
        engine.container_detach(container_id)
    return 0


def create_container(engine, config, command: str, **settings) -> str:
    """ContainerCreate; with --cidfile, the id written to its file as docker's client does. The
    limits are checked here, where docker's daemon checks them (after the client's parse)."""
    check_limits(memory=config.memory, memory_swap=config.memory_swap, cpus=config.cpus,
                 cpuset_cpus=config.cpuset_cpus)
    if config.cidfile is None:
        return engine.container_create(config, **settings)["Id"]
    from mini_runtime.cli import cidfile
    return cidfile.create(engine, config, command, **settings)


def report(config, result: dict) -> int:
    """The container's exit code, and why if the OOM killer struck or cleanup left something."""
    if result.get("OOMKilled"):
        print(oom_message(config.memory or 0, result["StatusCode"]), file=sys.stderr)
    if result.get("Error"):
        print(f"mini: warning: {result['Error']['Message']}", file=sys.stderr)
    return result["StatusCode"]


def create(args: argparse.Namespace) -> int:
    """docker create: the container waits, with its monitor, for `mini start`."""
    from mini_runtime import backend

    engine = backend.connect()
    config = config_of(args)                        # (docker's client: a bad flag is its 125)
    try:
        container_id = create_container(engine, config, "create")
    except MiniError as e:                          # (docker's create: the daemon's refusal is 1,
        e.exit_code = getattr(e, "exit_code", None) or 1    # where run says 125)
        raise
    engine.container_detach(container_id)
    print(container_id)
    return 0


def attach_flags(values: list[str]) -> list[str]:
    """-a's streams, as docker's ValidateAttach takes them: any case, kept lowercase."""
    for value in values:
        if value.lower() not in ("stdin", "stdout", "stderr"):
            raise UsageError(f'invalid argument "{value}" for "-a, --attach" flag: '
                             "valid streams are STDIN, STDOUT and STDERR")
    return list(dict.fromkeys(value.lower() for value in values))


def checked_hostname(name: str) -> None:
    """-h: what sethostname(2) takes (at most 64 bytes), and only printable characters: a
    newline would add a line to the container's own /etc/hosts, and a byte that is not UTF-8
    cannot go into its record."""
    if len(os.fsencode(name)) > 64:
        raise UsageError(f"invalid hostname {name!r}: 1 to 64 bytes (sethostname(2))")
    if not name.isprintable():
        raise UsageError(f"invalid hostname {name!a}: a host name is letters, digits, '-' and '.'")


def config_of(args: argparse.Namespace):  # -> backend.ContainerConfig
    """The flags, checked, as the value a backend runs."""
    from mini_runtime import backend

    args.hostname = args.hostname or None       # docker: an empty -h is no -h (the short id)
    if args.hostname is not None:
        checked_hostname(args.hostname)
    limits = parse_limits(args)
    check_namespace_modes(pid=args.pid, ipc=args.ipc, uts=args.uts, hostname=args.hostname)
    config = backend.ContainerConfig(**limits, image=args.image, command=args.args,
                             env=env_flags(args.env, args.env_file), workdir=args.workdir,
                             remove=args.rm, read_only=args.read_only, pivot=not args.no_pivot,
                             hostname=args.hostname, init=args.init,
                             name=args.name, entrypoint=args.entrypoint, user=args.user,
                             cgroupns=args.cgroupns, tty=args.tty, open_stdin=args.interactive,
                             pid=args.pid or None, ipc=args.ipc or None, uts=args.uts or None,
                             stdin_once=args.interactive and not getattr(args, "detach", False),
                             attached=not getattr(args, "detach", False),
                             network=args.network, publish=args.publish, ip=args.ip or None,
                             network_aliases=args.network_alias,
                             publish_all=args.publish_all, ulimits=args.ulimit, tmpfs=args.tmpfs,
                             uptime_offset=int_flag("--uptime-offset", args.uptime_offset),
                             restart=args.restart or "no", add_hosts=args.add_host,
                             dns=[netflags.ip_address(a) for a in args.dns], dns_options=netflags.dns_options(args.dns_option),
                             dns_search=[netflags.search_domain(d) for d in args.dns_search],
                             expose=netflags.exposed_ports(args.expose),
                             mac_address=netflags.mac_address(args.mac_address),
                             labels=label_flags(args.label, args.label_file),
                             stop_signal=args.stop_signal or None, stop_timeout=args.stop_timeout,
                             cidfile=args.cidfile or None, attach=attach_flags(args.attach))
    if args.network and args.network.startswith("container:") and args.hostname is not None:
        raise UsageError("conflicting options: hostname and the network mode")
    return config


# >>> report-oom
def oom_message(memory: int, exit_code: int) -> str:
    """An OOM kill looks like any SIGKILL (137); the cgroup's counter told the pipeline it was one
    (`State.OOMKilled`, as docker inspect shows). Its one line on stderr:"""
    limit_text = human_size(memory) if memory % (1 << 20) else f"{memory >> 20} MiB"
    who = "the container was" if exit_code == 137 else "a process in the container was"
    return f"mini: {who} killed: out of memory (its --memory limit is {limit_text})"
# <<< report-oom


PARSERS = {"run": add_run, "create": add_create}
HANDLERS = {"run": run, "create": create}
