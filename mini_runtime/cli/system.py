"""`mini doctor`, `mini version` and `mini info` (`mini system info`)."""

from __future__ import annotations

import sys

from mini_runtime import __version__
from mini_runtime.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse


def add_doctor(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("doctor", help="Check this machine for what containers need.",
                   description="Check this machine for everything the course needs.",
                   usage="mini doctor")


def add_version(sub: argparse._SubParsersAction) -> None:
    version = sub.add_parser("version", help="Show the mini version information.",
                             usage="mini version [OPTIONS]")
    version.add_argument("-f", "--format", help="format the output using the given Go template")


def add_info(sub: argparse._SubParsersAction) -> None:
    info = sub.add_parser("info", help="Display system-wide information.", usage="mini info [OPTIONS]")
    info.add_argument("-f", "--format", help="format the output using the given Go template")


def add_system(sub: argparse._SubParsersAction) -> None:
    """`mini system VERB`: docker's management command (main() turns `system info` into `info`)."""
    system = sub.add_parser("system", help="Manage mini.", usage="mini system COMMAND",
                            description="Manage mini. Commands: df (disk usage: -v, --format); info "
                                        "(mini info); prune (remove stopped containers, unused networks "
                                        "and dangling images: -a all unused images, -f, --filter label= "
                                        "label!= until=).")
    system.add_argument("verb", metavar="COMMAND", choices=["df", "info", "prune"])
    system.add_argument("-v", "--verbose", action="store_true", help="df: show detailed information on space usage")
    system.add_argument("--format", help="df: pretty-print the summary using a Go template")
    system.add_argument("-a", "--all", action="store_true", help="prune: remove all unused images, not just dangling ones")
    system.add_argument("-f", "--force", action="store_true", help="prune: do not prompt for confirmation")
    system.add_argument("--filter", action="append", default=[], metavar="FILTER",
                        help="prune: provide filter values (e.g. 'label=<key>=<value>')")


def doctor(_args: argparse.Namespace) -> int:
    from mini_runtime import backend

    return backend.connect().system_check()


def version(args: argparse.Namespace) -> int:
    """`mini -v` is one line (docker's `--version`); `mini version` is docker's two blocks: this
    client, and the engine it talks to (here the same program; chapter 09's daemon, later)."""
    if args.version:                                    # (`mini -v` after other flags)
        print(f"mini version {__version__}")
        return 0
    from mini_runtime import backend
    from mini_runtime.cli.template import check

    check(args.format or "")
    server = backend.connect().system_version()
    client = {"Platform": {"Name": ""}, "Version": __version__, "ApiVersion": server["ApiVersion"],
              "DefaultAPIVersion": server["ApiVersion"], "PythonVersion": server["PythonVersion"],
              "Os": "linux", "Arch": server["Arch"]}
    if args.format:
        return formatted(args.format, {"Client": client, "Server": server})
    engine = server["Components"][0]["Details"]
    lines = ["Client:", *cells(1, [("Version", client["Version"]), ("API version", client["ApiVersion"]),
                                   ("Python version", client["PythonVersion"]),
                                   ("OS/Arch", f"linux/{client['Arch']}")]),
             "", f"Server: {server['Platform']['Name']}".rstrip(), " Engine:",
             *cells(2, [("Version", server["Version"]),
                        ("API version", f"{engine['ApiVersion']} (minimum version {engine['MinAPIVersion']})"),
                        ("Python version", engine["PythonVersion"]),
                        ("OS/Arch", f"{engine['Os']}/{engine['Arch']}"),
                        ("Experimental", engine["Experimental"])])]
    from mini_runtime.cli.formatting import tabwriter

    print(tabwriter("\n".join(lines), minwidth=20, padding=1))
    return 0


def cells(indent: int, pairs: list[tuple[str, str]]) -> list[str]:
    """`KEY:<tab>VALUE` lines for docker's tabwriter(20, 1, 1)."""
    return [f"{' ' * indent}{key}:\t{value}" for key, value in pairs]


def info(args: argparse.Namespace) -> int:
    """docker info: the client's lines, then the engine's (GET /info); its warnings on stderr."""
    from mini_runtime import backend
    from mini_runtime.cli.template import check
    from mini_runtime.units import bytes_size

    check(args.format or "")
    found = backend.connect().system_info()
    if args.format:
        return formatted(args.format, found)
    lines = ["Client:", " Debug Mode: false", "", "Server:",
             f" Containers: {found['Containers']}", f"  Running: {found['ContainersRunning']}",
             f"  Paused: {found['ContainersPaused']}", f"  Stopped: {found['ContainersStopped']}",
             f" Images: {found['Images']}", f" Server Version: {found['ServerVersion']}",
             f" Storage Driver: {found['Driver']}",
             *(f"  {key}: {value}" for key, value in found["DriverStatus"]),
             f" Logging Driver: {found['LoggingDriver']}", f" Cgroup Driver: {found['CgroupDriver']}",
             f" Cgroup Version: {found['CgroupVersion']}", " Plugins:",
             *(f"  {kind}: {' '.join(names)}" for kind, names in found["Plugins"].items() if names),
             f" Runtimes: {' '.join(sorted(found['Runtimes']))}",
             f" Default Runtime: {found['DefaultRuntime']}", f" Init Binary: {found['InitBinary']}",
             *([" Security Options:", *(f"  {o}" for o in found["SecurityOptions"])]
               if found["SecurityOptions"] else []),
             f" Kernel Version: {found['KernelVersion']}", f" Operating System: {found['OperatingSystem']}",
             f" OSType: {found['OSType']}", f" Architecture: {found['Architecture']}",
             f" CPUs: {found['NCPU']}", f" Total Memory: {bytes_size(found['MemTotal'])}",
             f" Name: {found['Name']}", f" Docker Root Dir: {found['DockerRootDir']}",
             " Debug Mode: false", " Labels:", *(f"  {label}" for label in found["Labels"]),
             " Experimental: false", " Live Restore Enabled: false", ""]
    print("\n".join(lines))
    for warning in found["Warnings"] or []:
        print(warning, file=sys.stderr)
    return 0


def formatted(format: str, data: dict) -> int:
    """-f: docker's template on the engine's answer (`{{.ServerVersion}}`, `{{json .}}`). A Go
    struct in docker: a name it does not have is an error, not "<no value>"."""
    from mini_runtime.cli.template import render

    print(render(format, data, fields=frozenset(data)))
    return 0


def system(args: argparse.Namespace) -> int:
    if args.verb == "prune":
        return prune(args)
    if args.verb == "df":
        return df(args)
    raise UsageError(f"'mini system {args.verb}' is 'mini {args.verb}' (put no flag before it)")


def prune(args: argparse.Namespace) -> int:
    """docker system prune: the three prunes in docker's order (containers first: what they
    held is then unused), each one's lines, and the space of them all. Asks first unless -f."""
    from mini_runtime import backend
    from mini_runtime.cli.containers import deleted_containers
    from mini_runtime.cli.images import deleted_images
    from mini_runtime.cli.lifecycle import filter_flags
    from mini_runtime.cli.streams import confirmed
    from mini_runtime.units import human_size

    filters = filter_flags(args.filter, "--filter")
    what = ["all stopped containers", "all networks not used by at least one container",
            "all images without at least one container associated to them" if args.all else "all dangling images"]
    shown = sorted(f"{key}={value}" for key in ("label", "label!", "until") for value in filters.get(key, []))
    warning = "WARNING! This will remove:\n" + "".join(f"  - {line}\n" for line in what) + (
        "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in shown) if shown else "")
    if not args.force and not confirmed(warning + "\n"):
        return 0
    engine = backend.connect()
    containers = engine.container_prune(filters)
    if containers["ContainersDeleted"]:
        print(deleted_containers(containers["ContainersDeleted"]))
    networks = engine.network_prune(filters)
    if networks["NetworksDeleted"]:
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in networks["NetworksDeleted"]))
    images = engine.image_prune({**filters, "dangling": [str(not args.all).lower()]})
    if images["ImagesDeleted"]:
        print(deleted_images(images["ImagesDeleted"]))
    print(f"Total reclaimed space: {human_size(containers['SpaceReclaimed'] + images['SpaceReclaimed'])}")
    return 0


#: docker's `system df` tables (formatter/disk_usage.go).
DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_IMAGES = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}" \
            "\t{{.UniqueSize}}\t{{.Containers}}"
DF_CONTAINERS = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}" \
                "\t{{.Status}}\t{{.Names}}"


def df(args: argparse.Namespace) -> int:
    """docker system df: what images and containers take on disk, and what a prune would give
    back. An image's layers shared with another image are on disk once: SIZE counts them once,
    and only what no container's image holds is RECLAIMABLE."""
    from mini_runtime import backend
    from mini_runtime.cli.formatting import IMAGES_HEADERS, PS_HEADERS
    from mini_runtime.cli.images import image_rows
    from mini_runtime.cli.lifecycle import ps_row
    from mini_runtime.cli.template import check, render_table
    from mini_runtime.units import human_size

    check(args.format or "")
    usage = backend.connect().system_df()
    if args.verbose:
        sys.stdout.write("Images space usage:\n\n" + render_table(
            DF_IMAGES, [row for image in usage["Images"] for row in image_rows(image)], IMAGES_HEADERS,
            "*formatter.ImageContext"))
        sys.stdout.write("\nContainers space usage:\n\n" + render_table(
            DF_CONTAINERS, [ps_row(c) for c in usage["Containers"]], PS_HEADERS, "*formatter.ContainerContext"))
        sys.stdout.write("\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n"
                         "\nBuild cache usage: 0B\n\n"
                         "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n")
        return 0

    def share(part: int, whole: int) -> str:
        return f"{human_size(part)} ({part * 100 // whole}%)" if whole > 0 else human_size(part)

    images, containers = usage["Images"], usage["Containers"]
    used = sum(i["Size"] - i["SharedSize"] for i in images if i["Containers"])
    active = [c for c in containers if c["State"] in ("running", "paused", "restarting")]
    written = sum(c.get("SizeRw", 0) for c in containers)
    rows = [{"Type": "Images", "TotalCount": str(len(images)), "Active": str(sum(1 for i in images if i["Containers"])),
             "Size": human_size(usage["LayersSize"]), "Reclaimable": share(usage["LayersSize"] - used, usage["LayersSize"])},
            {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(active)),
             "Size": human_size(written),
             "Reclaimable": share(written - sum(c.get("SizeRw", 0) for c in active), written)},
            {"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
            {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}]
    sys.stdout.write(render_table(args.format or DF_FORMAT, rows, DF_HEADERS, "*formatter.diskUsageContext"))
    return 0


PARSERS = {"doctor": add_doctor, "version": add_version, "info": add_info, "system": add_system}
HANDLERS = {"doctor": doctor, "version": version, "info": info, "system": system}
