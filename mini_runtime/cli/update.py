"""`mini update` (`mini container update`): docker's flags for changing a container's limits and
restart policy after it was created, running or not (chapter 04's control, chapter 06's records)."""

from __future__ import annotations

from mini_runtime import backend
from mini_runtime.cli.limits import parse_limits
from mini_runtime.cli.several import each
from mini_runtime.errors import Exercise, InvalidParameter

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse

#: The flags, as `run` names them (its parsers read them: cli/run.py's parse_limits).
LIMITS = ("memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
          "cpu_quota", "cpuset_cpus", "pids_limit")


def add_update(sub: argparse._SubParsersAction) -> None:
    text = "Update configuration of one or more containers."
    update = sub.add_parser("update", help=text, description=text,
                            usage="mini update [OPTIONS] CONTAINER [CONTAINER...]")
    update.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m, 1g)")
    update.add_argument("--memory-swap", metavar="BYTES",
                        help="memory plus swap limit; -1 for unlimited swap")
    update.add_argument("--memory-reservation", metavar="BYTES",
                        help="memory soft limit (exercise 04's extension)")
    update.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    update.add_argument("-c", "--cpu-shares", metavar="N", help="CPU shares, relative weight")
    update.add_argument("--cpu-period", metavar="US", help="CFS period in microseconds (exercise 04's extension)")
    update.add_argument("--cpu-quota", metavar="US",
                        help="CFS quota: microseconds of CPU time per period (exercise 04's extension)")
    update.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs the container may use (0-1, 0,2)")
    update.add_argument("--pids-limit", metavar="N", help="most processes at once (-1: unlimited)")
    update.add_argument("--restart", metavar="POLICY",
                        help="restart policy when the container exits (exercise 06's extension, but 'no')")
    update.add_argument("containers", nargs="+", metavar="CONTAINER")


def update(args: argparse.Namespace) -> int:
    """docker update: each container's name as given once it is changed (live, if it runs), the
    daemon's line for each one that is not, exit 1 if any. A flag whose work is an exercise's
    stops the command before any container is changed, as `run` says it (125)."""
    if all(getattr(args, name) is None for name in (*LIMITS, "restart")):
        raise InvalidParameter("you must provide one or more flags when using this command")  # (exit 1)
    changes = dict(parse_limits(args), restart=args.restart or None)  # ("": not given, as docker's)
    engine = backend.connect()

    def act(name: str) -> None:
        engine.container_update(name, changes)
    return each(args.containers, act, fatal=(Exercise,))


PARSERS = {"update": add_update}
HANDLERS = {"update": update}
