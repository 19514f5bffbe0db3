"""`mini network create | ls | rm | inspect | prune` (chapter 07): docker's flags and output."""

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
    create.add_argument("name", metavar="NETWORK")
    ls = verbs.add_parser("ls", aliases=["list"], help="list networks", usage="mini network ls [OPTIONS]")
    ls.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    ls.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    rm = verbs.add_parser("rm", aliases=["remove"], help="remove one or more networks",
                          usage="mini network rm NETWORK [NETWORK...]")
    rm.add_argument("names", nargs="+", metavar="NETWORK")
    inspect = verbs.add_parser("inspect", help="display detailed information on one or more networks",
                               usage="mini network inspect NETWORK [NETWORK...]")
    inspect.add_argument("names", nargs="+", metavar="NETWORK")
    prune = verbs.add_parser("prune", help="remove all unused networks", usage="mini network prune [OPTIONS]",
                             description="Remove all unused networks, and take the default bridge (mini0) "
                                         "and its rules down when no container is on it.")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")


def network(args: argparse.Namespace) -> int:
    if args.verb is None:
        raise UsageError("'mini network' needs a command: create, ls, rm, inspect or prune")
    if args.verb == "prune":
        return prune(args.force)
    engine = backend.connect()
    if args.verb == "create":
        if args.driver != "bridge":
            raise NotFound(f'plugin "{args.driver}" not found: only the bridge driver is built in')  # (404: exit 1)
        if len(args.subnet) < max(len(args.gateway), len(args.ip_range)):     # (docker's client's words)
            raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
        if len(args.subnet) > 1:            # (docker's bridge driver's words: a bridge has one subnet)
            raise InvalidParameter("bridge driver doesn't support multiple subnets")
        first = [values[0] if values else None for values in (args.subnet, args.gateway, args.ip_range)]
        print(engine.network_create(args.name, *first)["Id"])
        return 0
    if args.verb in ("ls", "list"):
        from mini_runtime.cli.formatting import table
        found = engine.network_list()
        ids = [n["Id"] if args.no_trunc else n["Id"][:12] for n in found]
        if args.quiet:
            sys.stdout.write("".join(i + "\n" for i in ids))
        else:
            sys.stdout.write(table([["NETWORK ID", "NAME", "DRIVER", "SCOPE"]] +
                                   [[i, n["Name"], n["Driver"], n["Scope"]] for i, n in zip(ids, found)]))
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
    if args.verb == "inspect":
        print(json.dumps(found, indent=4))
    return 1 if failed else 0


PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one container,\n"
                 "and take mini0 and its rules down if no container is on it.\n")


def prune(force: bool) -> int:
    """docker network prune: asks first unless -f (an answer other than y, or EOF, is no)."""
    if not force:
        sys.stdout.write(PRUNE_WARNING + "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    deleted = backend.connect().network_prune()["NetworksDeleted"]
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return 0


PARSERS = {"network": add_network}
HANDLERS = {"network": network}
