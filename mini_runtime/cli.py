"""The `mini` command: docker's shape, thin on purpose.

It parses docker-style flags into a `ContainerConfig` and calls the runtime; it knows nothing
about kernels. Errors the user can cause print one line `mini: ...` and exit with docker's code.
Imports of the heavier modules happen inside the commands, so `mini run` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from mini_runtime import __version__
from mini_runtime.errors import ExecError, MiniError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is docker's exit 125 with one line, not argparse's exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _build_parser() -> _Parser:
    parser = _Parser(prog="mini", description="A small container runtime, built chapter by chapter.")
    parser.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run a command in a new container", add_help=False,
                         usage="mini run [OPTIONS] IMAGE [COMMAND] [ARG...]",
                         description="Run a command in a new container.")
    run.add_argument("--help", action="help", help="show this help message and exit")
    run.add_argument("-h", "--hostname", metavar="NAME",
                     help="container host name (default: the short container id)")
    run.add_argument("--init", action="store_true",
                     help="run an init inside the container that forwards signals and reaps processes")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                     help="set an environment variable (K alone: take it from this shell)")
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    run.add_argument("-m", "--memory", metavar="BYTES", help="memory limit (e.g. 64m, 1g)")
    run.add_argument("--memory-swap", metavar="BYTES",
                     help="memory plus swap limit; -1 for unlimited swap (default: twice --memory)")
    run.add_argument("--cpus", metavar="N", help="number of CPUs (e.g. 0.5)")
    run.add_argument("-c", "--cpu-shares", metavar="N", help="CPU shares, relative weight (default 1024)")
    run.add_argument("--pids-limit", metavar="N", help="most processes at once (-1: unlimited)")
    run.add_argument("--cpuset-cpus", metavar="LIST", help="CPUs the container may use (0-1, 0,2)")
    run.add_argument("--cgroupns", choices=("host", "private"), metavar="MODE",
                     help="cgroup namespace: 'private' (the default on cgroup v2) or 'host' (on v1)")
    run.add_argument("--read-only", action="store_true",
                     help="mount the container's root filesystem read-only")
    run.add_argument("--name", help="assign a name to the container")
    run.add_argument("--entrypoint", metavar="CMD", help="overwrite the image's ENTRYPOINT (and drop its CMD)")
    run.add_argument("-u", "--user", metavar="USER", help="user name or uid, and optionally group: NAME|UID[:GROUP|GID]")
    run.add_argument("--no-pivot", action="store_true",
                     help="use chroot(2) instead of pivot_root(2): a teaching mode, escapable!")
    run.add_argument("-i", "--interactive", action="store_true",
                     help="keep stdin attached (always so until chapter 07)")
    run.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY (chapter 07)")
    run.add_argument("image", metavar="IMAGE")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")

    images = sub.add_parser("images", help="list images", description="List images.",
                            usage="mini images [OPTIONS]")
    images.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    images.add_argument("--no-trunc", action="store_true", help="don't truncate output")

    def simple(name: str, text: str, usage: str) -> _Parser:
        return sub.add_parser(name, help=text, description=text, usage=f"mini {name} {usage}")

    tag = simple("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
    tag.add_argument("source")
    tag.add_argument("target")
    rmi = simple("rmi", "Remove one or more images.", "[OPTIONS] IMAGE [IMAGE...]")
    rmi.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    rmi.add_argument("images", nargs="+", metavar="IMAGE")
    history = simple("history", "Show the history of an image.", "[OPTIONS] IMAGE")
    history.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
                         help="print sizes and dates in human readable format (default true)")
    history.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    history.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    history.add_argument("image", metavar="IMAGE")
    imp = simple("import", "Import the contents from a tarball to create a filesystem image.",
                 "[OPTIONS] file|- [REPOSITORY[:TAG]]")
    imp.add_argument("-m", "--message", default="", help="set commit message for imported image")
    imp.add_argument("file")
    imp.add_argument("repository", nargs="?")
    save = simple("save", "Save one or more images to a tar archive (streamed to STDOUT by default).",
                  "[OPTIONS] IMAGE [IMAGE...]")
    save.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    save.add_argument("images", nargs="+", metavar="IMAGE")
    load = simple("load", "Load an image from a tar archive or STDIN.", "[OPTIONS]")
    load.add_argument("-i", "--input", help="read from tar archive file, instead of STDIN")
    load.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    export = simple("export", "Export a container's filesystem as a tar archive.", "[OPTIONS] CONTAINER")
    export.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    export.add_argument("container", metavar="CONTAINER")
    diff = simple("diff", "Inspect changes to files or directories on a container's filesystem.", "CONTAINER")
    diff.add_argument("container", metavar="CONTAINER")
    commit = simple("commit", "Create a new image from a container's changes.",
                    "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    commit.add_argument("-a", "--author", default="", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    commit.add_argument("-m", "--message", default="", help="commit message")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("repository", nargs="?")
    rm = simple("rm", "Remove one or more containers.", "[OPTIONS] CONTAINER [CONTAINER...]")
    rm.add_argument("-f", "--force", action="store_true", help="(accepted; a running container cannot be removed until chapter 07)")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")
    sub.add_parser("doctor", help="check this machine for what containers need",
                   description="Check this machine for everything the course needs.",
                   usage="mini doctor")
    sub.add_parser("version", help="show the version", usage="mini version")
    return parser


def _env_flags(values: list[str]) -> list[str]:
    """-e K=V as given; -e K takes K from our own environment (and is dropped if unset)."""
    result = []
    for item in values:
        if "=" in item:
            result.append(item)
        elif item in os.environ:
            result.append(f"{item}={os.environ[item]}")
    return result


def cmd_run(args: argparse.Namespace) -> int:
    from mini_runtime import runtime
    from mini_runtime.config import ContainerConfig

    if args.tty:
        raise UsageError("-t (a pseudo-terminal for the container) arrives in chapter 07 (lifecycle); "
                         "until then stdin, stdout and stderr are passed straight through")
    if args.hostname is not None and not 0 < len(args.hostname.encode()) <= 64:
        raise UsageError(f"invalid hostname {args.hostname!r}: 1 to 64 bytes (sethostname(2))")
    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    limits = _limits(args)
    config = ContainerConfig(**limits, image=args.image, command=command, env=_env_flags(args.env),
                             workdir=args.workdir, remove=args.rm, read_only=args.read_only,
                             pivot=not args.no_pivot, hostname=args.hostname, init=args.init,
                             name=args.name, entrypoint=args.entrypoint, user=args.user,
                             cgroupns=args.cgroupns)
    exited = runtime.run(config)
    if exited.oom:
        print(oom_message(config.memory or 0, exited.code), file=sys.stderr)
    return exited.code


# >>> report-oom
def oom_message(memory: int, exit_code: int) -> str:
    """An OOM kill looks like any SIGKILL (137); the cgroup's counter told the pipeline it was one
    (`State.OOMKilled`, as docker inspect shows). Its one line on stderr:"""
    from mini_runtime.units import human_size

    limit_text = human_size(memory) if memory % (1 << 20) else f"{memory >> 20} MiB"
    who = "the container was" if exit_code == 137 else "a process in the container was"
    return f"mini: {who} killed: out of memory (its --memory limit is {limit_text})"
# <<< report-oom


def _limits(args: argparse.Namespace) -> dict:
    """Chapter 04's flags, in docker's units, checked before anything is created."""
    from mini_runtime.units import parse_bytes

    def number(flag: str, text: str | None, kind: type) -> float | int | None:
        if text is None:
            return None
        try:
            value = kind(text)
        except ValueError:
            raise UsageError(f"invalid value {text!r} for {flag}") from None
        return value

    limits = {
        "memory": parse_bytes(args.memory) if args.memory is not None else None,
        "memory_swap": (-1 if args.memory_swap == "-1" else parse_bytes(args.memory_swap) or None)
        if args.memory_swap is not None else None,  # docker: 0 means "not set"
        "cpus": number("--cpus", args.cpus, float),
        "cpu_shares": number("--cpu-shares", args.cpu_shares, int),
        "pids_limit": number("--pids-limit", args.pids_limit, int),
        "cpuset_cpus": args.cpuset_cpus,
    }
    if limits["memory"] is not None and limits["memory"] < 6 * 1024 * 1024:
        raise UsageError("Minimum memory limit allowed is 6MB")  # docker's own floor and words
    if limits["memory_swap"] not in (None, -1) and limits["memory"] is None:
        raise UsageError("You should always set the Memory limit when using Memoryswap limit")
    if limits["memory_swap"] not in (None, -1) and limits["memory_swap"] < limits["memory"]:
        raise UsageError("Minimum memoryswap limit should be larger than memory limit")
    cpus, available = limits["cpus"], os.cpu_count() or 1
    if cpus is not None and not 0.01 <= cpus <= available:  # also catches nan
        raise UsageError(f"range of CPUs is from 0.01 to {available}.00, as there are only "
                         f"{available} CPUs available")  # docker's words
    if limits["cpu_shares"] == 0:
        limits["cpu_shares"] = None  # docker: 0 means "the default" (1024)
    return limits


def cmd_doctor(_args: argparse.Namespace) -> int:
    from mini_runtime import doctor

    return doctor.main()


def _go_booleans(argv: list[str]) -> list[str]:
    """docker's boolean flags also take `--human=false` (Go's flag syntax): argparse's form is
    `--no-human`."""
    if args_command(argv) != "history":
        return argv  # (never touch a container's command line)
    out = []
    for word in argv:
        name, eq, value = word.partition("=")
        if eq and name in ("-H", "--human") and value.lower() in ("0", "f", "false", "1", "t", "true"):
            word = "--human" if value.lower() in ("1", "t", "true") else "--no-human"
        out.append(word)
    return out


def args_command(argv: Sequence[str] | None) -> str | None:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w for w in words if not w.startswith("-")), None)


def exit_code(command: str | None, error: MiniError) -> int:
    """docker's numbers for a failure: 126/127 when the container's command cannot be executed
    or found, 125 for its own failures in `run`/`create` and for bad flags anywhere, 1 otherwise."""
    if isinstance(error, ExecError):
        return error.exit_code
    return 125 if command in ("run", "create") or isinstance(error, UsageError) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(_go_booleans(list(sys.argv[1:] if argv is None else argv)))
        if args.version or args.command == "version":
            print(f"mini version {__version__}")
            return 0
        if args.command is None:
            parser.print_help()
            return 0
        if args.command in ("run", "doctor"):
            return {"run": cmd_run, "doctor": cmd_doctor}[args.command](args)
        from mini_runtime import commands

        return getattr(commands, args.command.replace("import", "import_"))(args)
    except MiniError as e:
        print(f"mini: {e}", file=sys.stderr)
        return exit_code(args_command(argv), e)
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # e.g. no permission on the state root: still one line, docker's 125
        print(f"mini: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    raise SystemExit(main())
