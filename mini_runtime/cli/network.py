"""`mini network create | ls | rm | inspect | connect | disconnect | prune` (chapter 07): docker's
flags and output."""

from __future__ import annotations

import json
import sys

from mini_runtime import backend
from mini_runtime.errors import InvalidParameter, MiniError, NotFound, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse


def add_network(sub: argparse._SubParsersAction) -> None:
    network = sub.add_parser("network", help="Manage networks.", description="Manage networks.",
                             usage="mini network COMMAND")
    verbs = network.add_subparsers(dest="verb", metavar="COMMAND", prog="mini network")
    create = verbs.add_parser("create", help="create a network", usage="mini network create [OPTIONS] NETWORK")
    create.add_argument("--subnet", action="append", default=[],
                        help="subnet in CIDR format (default: a free /24 of 172.30.0.0/16)")
    create.add_argument("--gateway", action="append", default=[],
                        help="IPv4 gateway for the subnet (default: its first address)")
    create.add_argument("--ip-range", action="append", default=[],
                        help="allocate container IPs from a sub-range (CIDR)")
    create.add_argument("-d", "--driver", default="bridge", help='driver (only "bridge")')
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="set metadata on a network (ls and prune --filter label=KEY)")
    create.add_argument("name", metavar="NETWORK")
    ls = verbs.add_parser("ls", aliases=["list"], help="list networks", usage="mini network ls [OPTIONS]")
    ls.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    ls.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                    help="filter output based on conditions provided (driver=, id=, label=, name=, scope=, "
                         "type=custom|builtin, dangling=true|false)")
    ls.add_argument("--format", help="pretty-print networks using a Go template")
    rm = verbs.add_parser("rm", aliases=["remove"], help="remove one or more networks",
                          usage="mini network rm NETWORK [NETWORK...]")
    rm.add_argument("names", nargs="+", metavar="NETWORK")
    inspect = verbs.add_parser("inspect", help="display detailed information on one or more networks",
                               usage="mini network inspect NETWORK [NETWORK...]")
    inspect.add_argument("-f", "--format", help="format the output using the given Go template")
    inspect.add_argument("-v", "--verbose", action="store_true",
                         help="verbose output for diagnostics (a local network has nothing more to show)")
    inspect.add_argument("names", nargs="+", metavar="NETWORK")
    connect = verbs.add_parser("connect", help="connect a container to a network",
                               usage="mini network connect [OPTIONS] NETWORK CONTAINER")
    connect.add_argument("--alias", action="append", default=[], help="add network-scoped alias for the container")
    connect.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    connect.add_argument("network", metavar="NETWORK")
    connect.add_argument("container", metavar="CONTAINER")
    disconnect = verbs.add_parser("disconnect", help="disconnect a container from a network",
                                  usage="mini network disconnect [OPTIONS] NETWORK CONTAINER")
    disconnect.add_argument("-f", "--force", action="store_true",
                            help="force the container to disconnect from a network")
    disconnect.add_argument("network", metavar="NETWORK")
    disconnect.add_argument("container", metavar="CONTAINER")
    prune = verbs.add_parser("prune", help="remove all unused networks", usage="mini network prune [OPTIONS]",
                             description="Remove all unused networks, and take the default bridge (mini0) "
                                         "and its rules down when no container is on it.")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    prune.add_argument("--filter", action="append", default=[], metavar="FILTER",
                       help="provide filter values (e.g. 'until=<timestamp>', 'label=KEY')")


def network(args: argparse.Namespace) -> int:
    if args.verb is None:
        raise UsageError("'mini network' needs a command: create, ls, rm, inspect, connect, disconnect or prune")
    if args.verb == "prune":
        return prune(args.force, args.filter)
    engine = backend.connect()
    if args.verb == "create":
        if args.driver != "bridge":
            raise NotFound(f'plugin "{args.driver}" not found: only the bridge driver is built in')  # (404: exit 1)
        if len(args.subnet) < max(len(args.gateway), len(args.ip_range)):     # (docker's client's words)
            raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
        if len(args.subnet) > 1:            # (docker's bridge driver's words: a bridge has one subnet)
            raise InvalidParameter("bridge driver doesn't support multiple subnets")
        first = [values[0] if values else None for values in (args.subnet, args.gateway, args.ip_range)]
        labels = dict(item.partition("=")[::2] for item in args.label)   # (docker's: KEY alone is "")
        print(engine.network_create(args.name, *first, labels=labels)["Id"])
        return 0
    if args.verb in ("ls", "list"):
        return ls(engine, args)
    if args.verb == "connect":
        engine.network_connect(args.network, args.container, args.alias, args.ip or None)
        return 0
    if args.verb == "disconnect":
        engine.network_disconnect(args.network, args.container, args.force)
        return 0
    failed = False
    found = []
    for name in args.names:
        try:
            if args.verb == "inspect":
                found.append(engine.network_inspect(name))
            else:
                print(engine.network_delete(name))
        except MiniError as e:
            missing = isinstance(e, NotFound) and args.verb == "inspect"    # (docker's client's words)
            print(f"Error: No such network: {name}" if missing else f"Error response from daemon: {e}",
                  file=sys.stderr)
            failed = True
    if args.verb == "inspect" and args.format:
        from mini_runtime.cli.template import render
        for data in found:
            print(render(args.format, data, fields=INSPECT_FIELDS))
    elif args.verb == "inspect":
        print(json.dumps(found, indent=4))
    return 1 if failed else 0


#: The fields of docker's NetworkResource (as JSON): `network inspect -f '{{.Nope}}'` is an error.
INSPECT_FIELDS = frozenset("Name Id Created Scope Driver EnableIPv6 IPAM Internal Attachable Ingress "
                           "ConfigFrom ConfigOnly Containers Options Labels Peers Services".split())


def ls(engine: backend.Backend, args: argparse.Namespace) -> int:
    """docker network ls: the networks the filters keep, sorted by name ("net2" before
    "net10"), as a table or as --format says (docker's fields: .ID, .Name, .Driver, .Scope,
    .IPv6, .Internal, .Labels, .Label "KEY", .CreatedAt); -q is "{{.ID}}" unless --format says."""
    from mini_runtime.cli.formatting import NETWORKS_FORMAT, NETWORKS_HEADERS, natural
    from mini_runtime.cli.lifecycle import filter_flags
    from mini_runtime.cli.template import render_table

    found = sorted(engine.network_list(filter_flags(args.filter)), key=lambda n: natural(n["Name"]))
    rows = [{"ID": n["Id"] if args.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"], "IPv6": str(n["EnableIPv6"]).lower(), "Internal": str(n["Internal"]).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in sorted((n["Labels"] or {}).items())),
             "Label": lambda key, labels=n["Labels"] or {}: labels.get(key, ""),
             "CreatedAt": go_time_string(n["Created"])} for n in found]
    format = args.format if args.format not in (None, "", "table") else None
    if format == "raw":                                       # (docker's other named format)
        format = "network_id: {{.ID}}" if args.quiet else RAW_FORMAT
    format = format or ("{{.ID}}" if args.quiet else NETWORKS_FORMAT)
    sys.stdout.write(render_table(format, rows, NETWORKS_HEADERS, "*network.networkContext"))
    return 0


RAW_FORMAT = r"network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"


def go_time_string(stamp: str) -> str:
    """An Engine API time (RFC 3339, UTC) as Go's Time.String() prints it once the CLI parsed
    it: "2026-12-07 20:56:03.123456789 +0000 UTC", the fraction without its trailing zeros."""
    day, _, clock = stamp.rstrip("Z").partition("T")
    whole, _, fraction = clock.partition(".")
    fraction = fraction.rstrip("0")
    return f"{day} {whole}{'.' + fraction if fraction else ''} +0000 UTC"


PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one container,\n"
                 "and take mini0 and its rules down if no container is on it.\n")


def prune(force: bool, filter_words: list[str] = ()) -> int:
    """docker network prune: asks first unless -f (an answer other than y, or EOF, is no)."""
    from mini_runtime.cli.lifecycle import filter_flags
    from mini_runtime.cli.streams import confirmed

    filters = filter_flags(filter_words, "--filter")
    if not force and not confirmed(PRUNE_WARNING):
        return 0
    deleted = backend.connect().network_prune(filters)["NetworksDeleted"]
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return 0


PARSERS = {"network": add_network}
HANDLERS = {"network": network}
