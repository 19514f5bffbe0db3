"""`mini cp` (`mini container cp`): files between a container and the host, docker cp's way.

The container's side is the backend's archive verbs (stat, a tar out, a tar in); what the paths
mean on the host (`cp a b` makes b, `dir/.` copies what is in dir) is hostcopy.py's, docker's
client half, which runs here as docker's client runs it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys

from mini_runtime import backend, hostcopy
from mini_runtime.cli.streams import check_output_path
from mini_runtime.errors import InvalidParameter, MiniError, NotFound

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse

TEXT = ("Copy files/folders between a container and the local filesystem. Use '-' as the source to "
        "read a tar archive from stdin and extract it to a directory destination in a container. "
        "Use '-' as the destination to stream a tar archive of a container source to stdout.")


def add_cp(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("cp", help="Copy files/folders between a container and the local filesystem.",
                        description=TEXT, usage="mini cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                                                "\tmini cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")
    cp.add_argument("-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)")
    cp.add_argument("-L", "--follow-link", action="store_true", help="always follow symbol link in SRC_PATH")
    cp.add_argument("source", metavar="SRC_PATH")
    cp.add_argument("destination", metavar="DEST_PATH")


def split_argument(argument: str) -> tuple[str, str]:
    """docker's splitCpArg: `CONTAINER:PATH`, or a local path (an absolute one, or one that
    starts with "." may hold a ":": `./file:name.txt`)."""
    if argument.startswith("/"):
        return "", argument
    name, colon, path = argument.partition(":")
    return ("", argument) if not colon or name.startswith(".") else (name, path)


def local_path(path: str) -> str:
    """Absolute, with the `/` or `/.` it ended with (docker's resolveLocalPath): they decide what
    the copy means."""
    absolute = os.path.abspath(path)
    if posixpath.basename(path) == "." and posixpath.basename(absolute) != ".":
        absolute = absolute.rstrip("/") + "/."
    return absolute + "/" if path.endswith("/") and not absolute.endswith("/") else absolute


def cp(args: argparse.Namespace) -> int:
    if not args.source:
        raise InvalidParameter("source can not be empty")
    if not args.destination:
        raise InvalidParameter("destination can not be empty")
    (source_container, source), (target_container, target) = map(split_argument, (args.source, args.destination))
    if source_container and target_container:
        raise InvalidParameter("copying between containers is not supported")
    if source_container:
        copy_from(source_container, source, target, args)
    elif target_container:
        copy_to(target_container, source, target, args)
    else:
        raise InvalidParameter("must specify at least one container source")
    return 0


def copy_from(name: str, source: str, target: str, args: argparse.Namespace) -> None:
    if target != "-":
        target = local_path(target)
        check_output_path(target, directory_ok=True)
    engine, rebase = backend.connect(), ""
    if args.follow_link:   # (docker's client: any failure here is the archive's to say)
        try:
            found = engine.container_stat_path(name, source)
        except MiniError:
            found = None
        if found is not None and hostcopy.is_symlink(found):
            source, rebase = hostcopy.rebase_name(source, found["linkTarget"])
    try:
        found, stream = engine.container_archive(name, source)
    except NotFound:   # docker 20.10's client says so of any 404, the daemon's words aside
        raise NotFound(f"No such container:path: {name}:{source}") from None
    with stream:
        if target == "-":
            shutil.copyfileobj(stream, sys.stdout.buffer, 1 << 20)
        else:
            info = hostcopy.CopyInfo(source, True, hostcopy.is_dir(found), rebase)
            hostcopy.copy_to_host(stream, info, target, keep_owner=args.archive)


def copy_to(name: str, source: str, target: str, args: argparse.Namespace) -> None:
    if source != "-":
        source = local_path(source)
    engine, where = backend.connect(), hostcopy.CopyInfo(target)
    try:   # (docker's client: a destination it cannot stat may still be made by the copy)
        found = engine.container_stat_path(name, target)
        if hostcopy.is_symlink(found):
            where = hostcopy.CopyInfo(found["linkTarget"])
            found = engine.container_stat_path(name, found["linkTarget"])
    except MiniError:
        found = None
    if found is not None and hostcopy.is_device(found):
        raise InvalidParameter(f'destination "{name}:{target}" must be a directory or a regular file: got a device')
    if found is not None:
        where = where._replace(exists=True, is_dir=hostcopy.is_dir(found))
    if source == "-":
        if not where.is_dir:
            raise InvalidParameter(f'destination "{name}:{target}" must be a directory')
        into, content = where.path, sys.stdin.buffer
    else:
        info = hostcopy.host_source(source, args.follow_link)
        into, first = hostcopy.prepare(info, where)
        content = hostcopy.host_tar(info, first)
    try:
        engine.container_extract(name, into, content, copy_uid_gid=args.archive)
    except NotFound:
        raise NotFound(f"No such container:path: {name}:{into}") from None


PARSERS = {"cp": add_cp}
HANDLERS = {"cp": cp}
