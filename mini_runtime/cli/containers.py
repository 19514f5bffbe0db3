"""The containers that `run` keeps: `rm`, `diff`, `export`, `commit`."""

from __future__ import annotations

import sys

from mini_runtime import backend
from mini_runtime.cli.streams import output_to
from mini_runtime.errors import InvalidParameter, MiniError, NotFound, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse

#: The Engine API's change kinds, as docker diff prints them.
KIND_LETTERS = {0: "C", 1: "A", 2: "D"}


def simple(sub: argparse._SubParsersAction, name: str, text: str, usage: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, usage=f"mini {name} {usage}")


def add_rm(sub: argparse._SubParsersAction) -> None:
    rm = simple(sub, "rm", "Remove one or more containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    rm.add_argument("-f", "--force", action="store_true",
                    help="force the removal of a running container (uses SIGKILL)")
    rm.add_argument("-v", "--volumes", action="store_true",
                    help="remove the container's anonymous volumes (mini has no volumes: nothing to do)")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")


def add_diff(sub: argparse._SubParsersAction) -> None:
    diff = simple(sub, "diff", "Inspect changes to files or directories on a container's filesystem.",
                  "CONTAINER")
    diff.add_argument("container", metavar="CONTAINER")


def add_export(sub: argparse._SubParsersAction) -> None:
    export = simple(sub, "export", "Export a container's filesystem as a tar archive.", "[OPTIONS] CONTAINER")
    export.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    export.add_argument("container", metavar="CONTAINER")


def add_commit(sub: argparse._SubParsersAction) -> None:
    from argparse import BooleanOptionalAction  # (--x=false: argparse parses this command)

    commit = simple(sub, "commit", "Create a new image from a container's changes.",
                    "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    commit.add_argument("-a", "--author", default="",
                        help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    commit.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                        help="apply Dockerfile instruction to the created image")
    commit.add_argument("-m", "--message", default="", help="commit message")
    commit.add_argument("-p", "--pause", action=BooleanOptionalAction, default=True,
                        help="pause the container during commit (default true)")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("repository", nargs="?")


def rm(args: argparse.Namespace) -> int:
    """docker rm. A missing container is the client's own "Error: No such container" (a 404),
    and with -f no failure: `rm -f NAME` is how a script makes sure NAME is gone."""
    if "" in args.containers:
        raise InvalidParameter("Container name cannot be empty")     # (docker's client, exit 1)
    engine, failed = backend.connect(), False
    for text in args.containers:
        try:
            engine.container_delete(text, force=args.force)
            print(text)
        except NotFound as e:
            print(f"Error: {e}", file=sys.stderr)
            failed = failed or not args.force
        except MiniError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def diff(args: argparse.Namespace) -> int:
    for change in backend.connect().container_changes(args.container):
        print(f"{KIND_LETTERS[change['Kind']]} {change['Path']}")
    return 0


def export(args: argparse.Namespace) -> int:
    engine = backend.connect()
    with output_to(args.output) as out:
        engine.container_export(args.container, out)
    return 0


def commit(args: argparse.Namespace) -> int:
    made = backend.connect().image_commit(args.container, args.repository, author=args.author,
                                          comment=args.message, pause=args.pause,
                                          changes=args.change)
    print(made["Id"])
    return 0


def add_container(sub: argparse._SubParsersAction) -> None:
    """`mini container VERB`: docker's management command. Its verbs are the container commands
    under other names (cli.MANAGEMENT), and main() turns the line into that command before it is
    parsed, so this parser only ever sees a verb that is not one, or none."""
    from mini_runtime.cli import MANAGEMENT

    verbs = MANAGEMENT["container"]
    same = ", ".join(sorted(v for v in verbs if verbs[v] == v))
    other = ", ".join(f"{v} (mini {verbs[v]})" for v in sorted(verbs) if verbs[v] != v)
    container = sub.add_parser("container", help="Manage containers.", usage="mini container COMMAND",
                               description=f"Manage containers. Commands: {same}; {other}; prune "
                                           "(remove all stopped containers: -f, --filter label=, until=).")
    container.add_argument("verb", metavar="COMMAND", choices=sorted([*verbs, "prune"]))
    container.add_argument("-f", "--force", action="store_true", help="prune: do not prompt for confirmation")
    container.add_argument("--filter", action="append", default=[], metavar="FILTER",
                           help="prune: provide filter values (e.g. 'until=<timestamp>')")


def container(args: argparse.Namespace) -> int:
    if args.verb == "prune":
        return prune(args)
    raise UsageError(f"'mini container {args.verb}' is 'mini {args.verb}' (put no flag before it)")


def prune(args: argparse.Namespace) -> int:
    """docker container prune: asks first unless -f; then the ids it removed and the space."""
    from mini_runtime.cli.lifecycle import filter_flags
    from mini_runtime.cli.streams import confirmed
    from mini_runtime.units import human_size

    filters = filter_flags(args.filter, "--filter")     # (prune's -f is --force)
    report = {"ContainersDeleted": [], "SpaceReclaimed": 0}
    if args.force or confirmed("WARNING! This will remove all stopped containers.\n"):
        report = backend.connect().container_prune(filters)
    if report["ContainersDeleted"]:
        print(deleted_containers(report["ContainersDeleted"]))
    print(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}")
    return 0


def deleted_containers(ids: list[str]) -> str:
    return "Deleted Containers:\n" + "".join(f"{cid}\n" for cid in ids)


PARSERS = {"rm": add_rm, "diff": add_diff, "export": add_export, "commit": add_commit,
           "container": add_container}
HANDLERS = {"rm": rm, "diff": diff, "export": export, "commit": commit, "container": container}
