"""The image commands (chapter 05): `images`, `tag`, `rmi`, `history`, `import`, `save`, `load`.

Each prints what docker prints, in docker's formats, from the backend's Engine-API-shaped answers.
"""

from __future__ import annotations

import sys
import time

from mini_runtime import backend
from mini_runtime.cli.formatting import (HISTORY_FORMAT, HISTORY_HEADERS, IMAGES_DIGESTS_FORMAT, IMAGES_FORMAT,
                                         IMAGES_HEADERS, ellipsis, go_rfc3339, go_time, short_id)
from mini_runtime.cli.streams import open_input, output_to
from mini_runtime.errors import MiniError, UsageError
from mini_runtime.units import human_duration, human_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse
    from typing import Any


def simple(sub: argparse._SubParsersAction, name: str, text: str, usage: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, usage=f"mini {name} {usage}")


def add_images(sub: argparse._SubParsersAction) -> None:
    images = sub.add_parser("images", help="List images.", description="List images.",
                            usage="mini images [OPTIONS] [REPOSITORY[:TAG]]")
    images.add_argument("-a", "--all", action="store_true",
                        help="show all images (mini keeps no intermediate images: the same list)")
    images.add_argument("--digests", action="store_true", help="show digests")
    images.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                        help="filter output based on conditions provided (dangling=, reference=, "
                             "before=, since=, label=)")
    images.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    images.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    images.add_argument("--format", help="format output using a Go template")
    images.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]",
                        help="only this name, or the names that match this pattern (busy*)")


def add_tag(sub: argparse._SubParsersAction) -> None:
    tag = simple(sub, "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.",
                 "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
    tag.add_argument("source")
    tag.add_argument("target")


def add_rmi(sub: argparse._SubParsersAction) -> None:
    rmi = simple(sub, "rmi", "Remove one or more images.", "[OPTIONS] IMAGE [IMAGE...]")
    rmi.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    rmi.add_argument("--no-prune", action="store_true",
                     help="do not delete untagged parents (a mini image has none: commit and "
                          "import make images that stand alone, so this changes nothing)")
    rmi.add_argument("images", nargs="+", metavar="IMAGE")


def add_history(sub: argparse._SubParsersAction) -> None:
    from argparse import BooleanOptionalAction  # (--x=false: argparse parses this command)

    history = simple(sub, "history", "Show the history of an image.", "[OPTIONS] IMAGE")
    history.add_argument("-H", "--human", action=BooleanOptionalAction, default=True,
                         help="print sizes and dates in human readable format (default true)")
    history.add_argument("--format", help="pretty-print history using a Go template")
    history.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    history.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    history.add_argument("image", metavar="IMAGE")


def add_import(sub: argparse._SubParsersAction) -> None:
    imp = simple(sub, "import", "Import the contents from a tarball to create a filesystem image.",
                 "[OPTIONS] file|- [REPOSITORY[:TAG]]")
    imp.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                     help="apply Dockerfile instruction to the created image")
    imp.add_argument("-m", "--message", default="", help="set commit message for imported image")
    imp.add_argument("file")
    imp.add_argument("repository", nargs="?")


def add_save(sub: argparse._SubParsersAction) -> None:
    save = simple(sub, "save", "Save one or more images to a tar archive (streamed to STDOUT by default).",
                  "[OPTIONS] IMAGE [IMAGE...]")
    save.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    save.add_argument("images", nargs="+", metavar="IMAGE")


def add_load(sub: argparse._SubParsersAction) -> None:
    load = simple(sub, "load", "Load an image from a tar archive or STDIN.", "[OPTIONS]")
    load.add_argument("-i", "--input", help="read from tar archive file, instead of STDIN")
    load.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")


def add_image(sub: argparse._SubParsersAction) -> None:
    """`mini image squash` (exercise 05's extension). Its shape is docker's `tag`, SOURCE TARGET:
    the source stays, the target is a new image of one layer with the source's config (Cmd, Env,
    ...), unlike `export | import`, which loses the config."""
    from mini_runtime.cli import MANAGEMENT

    aliases = ", ".join(f"{verb} (mini {command})" for verb, command in MANAGEMENT["image"].items())
    image = sub.add_parser("image", help="Manage images.", usage="mini image COMMAND",
                           description=f"Manage images. Commands: squash; and as docker's, prune, {aliases}.")
    verbs = image.add_subparsers(dest="verb", metavar="COMMAND", required=True, parser_class=type(image),
                               prog="mini image")
    squash = verbs.add_parser("squash", help="squash an image's layers into one (exercise 05's extension)",
                              description="Create TARGET_IMAGE: SOURCE_IMAGE's files in one layer.",
                              usage="mini image squash SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
    squash.add_argument("source")
    squash.add_argument("target")
    prune = verbs.add_parser("prune", help="remove unused images", usage="mini image prune [OPTIONS]",
                             description="Remove unused images.")
    prune.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    prune.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    prune.add_argument("--filter", action="append", default=[], metavar="FILTER",
                       help="provide filter values (e.g. 'until=<timestamp>', 'label=KEY')")
    for verb, command in MANAGEMENT["image"].items():   # (main() turns these into their command
        verbs.add_parser(verb, help=f"mini {command}")    # first: listed for `invalid choice`)


def image(args: argparse.Namespace) -> int:
    if args.verb == "prune":
        return prune(args)
    if args.verb != "squash":
        from mini_runtime.cli import MANAGEMENT
        raise UsageError(f"'mini image {args.verb}' is 'mini {MANAGEMENT['image'][args.verb]}' "
                         "(put no flag before it)")
    print(backend.connect().image_squash(args.source, args.target)["Id"])
    return 0


#: docker's warnings before `image prune`, without and with -a.
PRUNE_WARNINGS = ("WARNING! This will remove all dangling images.\n",
                  "WARNING! This will remove all images without at least one container associated to them.\n")


def prune(args: argparse.Namespace) -> int:
    """docker image prune: asks first unless -f; then what it untagged and deleted, and the space."""
    from mini_runtime.cli.lifecycle import filter_flags
    from mini_runtime.cli.streams import confirmed
    from mini_runtime.units import human_size

    filters = {**filter_flags(args.filter, "--filter"), "dangling": [str(not args.all).lower()]}
    report = {"ImagesDeleted": None, "SpaceReclaimed": 0}
    if args.force or confirmed(PRUNE_WARNINGS[args.all]):
        report = backend.connect().image_prune(filters)
    if report["ImagesDeleted"]:
        print(deleted_images(report["ImagesDeleted"]))
    print(f"Total reclaimed space: {human_size(report['SpaceReclaimed'])}")
    return 0


def deleted_images(items: list[dict[str, str]]) -> str:
    """A prune's "Deleted Images:" lines (docker's lower-case untagged: and deleted:)."""
    return "Deleted Images:\n" + "".join(f"untagged: {item['Untagged']}\n" if "Untagged" in item
                                          else f"deleted: {item['Deleted']}\n" for item in items)


def ago(created: int) -> str:
    return human_duration(time.time() - created) + " ago" if created else "N/A"


def images(args: argparse.Namespace) -> int:
    """docker images: one row per name (an image without one shows <none>:<none>), as a
    table, or with --format as the template says (docker's fields: .Repository, .Tag, .ID,
    .CreatedSince, .CreatedAt, .Size, ...). REPOSITORY[:TAG] is a `reference=` filter."""
    from mini_runtime.cli.lifecycle import filter_flags

    wanted = filter_flags(args.filter + ([f"reference={args.repository}"] if args.repository else []))
    rows = [row for summary in backend.connect().image_list(wanted) for row in image_rows(summary, args.no_trunc)]
    from mini_runtime.cli.template import render_table

    format = args.format or (IMAGES_DIGESTS_FORMAT if args.digests else IMAGES_FORMAT)
    sys.stdout.write(render_table("{{.ID}}" if args.quiet else format, rows, IMAGES_HEADERS,
                                  "*formatter.ImageContext"))
    return 0


def image_rows(summary: dict[str, Any], no_trunc: bool = False) -> list[dict[str, Any]]:
    """An image's rows, one per name (<none>:<none> without one), as docker's ImageContext has
    them; SharedSize, UniqueSize and Containers are known only to system df (else "N/A")."""
    image_id = summary["Id"] if no_trunc else short_id(summary["Id"])
    size = human_size(summary["Size"])
    shared = summary.get("SharedSize", -1)
    usage = {"Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A"} if shared == -1 else {
        "Containers": str(summary["Containers"]), "SharedSize": human_size(shared),
        "UniqueSize": human_size(summary["Size"] - shared)}
    rows = []
    for name in summary["RepoTags"] or ["<none>:<none>"]:
        repository, _, tag = name.rpartition(":")
        rows.append({"Repository": repository, "Tag": tag, "ID": image_id, "Digest": "<none>",
                     "CreatedSince": ago(summary["Created"]), "CreatedAt": go_time(summary["Created"]),
                     "Size": size, **usage, "VirtualSize": size})
    return rows


def tag(args: argparse.Namespace) -> int:
    backend.connect().image_tag(args.source, args.target)
    return 0


def rmi(args: argparse.Namespace) -> int:
    engine, failed = backend.connect(), False
    for name in args.images:
        try:
            for item in engine.image_delete(name, force=args.force):
                print("".join(f"{kind}: {value}" for kind, value in item.items()))
        except MiniError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def history(args: argparse.Namespace) -> int:
    """docker history: the image's steps, newest first, as a table or as --format says (docker's
    fields: .ID, .CreatedSince, .CreatedAt, .CreatedBy, .Size, .Comment). Without -H the
    times are RFC 3339 and the sizes bytes."""
    from mini_runtime.cli.template import render_table

    rows = []
    for item in backend.connect().image_history(args.image):
        created_at = go_rfc3339(item["Created"])
        by = item["CreatedBy"].replace("\t", " ")
        rows.append({"ID": item["Id"] if args.no_trunc else short_id(item["Id"]),
                     "CreatedSince": ago(item["Created"]) if args.human else created_at,
                     "CreatedAt": created_at, "CreatedBy": by if args.no_trunc else ellipsis(by, 45),
                     "Size": human_size(item["Size"]) if args.human else str(item["Size"]),
                     "Comment": item["Comment"]})
    format = args.format or ("{{.ID}}" if args.quiet else HISTORY_FORMAT if args.human else
                             HISTORY_FORMAT.replace(".CreatedSince", ".CreatedAt"))
    sys.stdout.write(render_table(format, rows, HISTORY_HEADERS, "*image.historyContext"))
    return 0


def import_(args: argparse.Namespace) -> int:
    with open_input(args.file) as source:
        made = backend.connect().image_import(source, args.repository, message=args.message,
                                              origin=args.file, changes=args.change)
    print(made["Id"])
    return 0


def save(args: argparse.Namespace) -> int:
    engine = backend.connect()
    with output_to(args.output) as out:
        engine.image_save(args.images, out)
    return 0


def load(args: argparse.Namespace) -> int:
    with open_input(args.input or "-") as source:
        if source is sys.stdin.buffer and sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty (give -i FILE or redirect)")
        progress = backend.connect().image_load(source)
    if not args.quiet:
        print("".join(item["stream"] for item in progress), end="")
    return 0


PARSERS = {"images": add_images, "tag": add_tag, "rmi": add_rmi, "history": add_history,
           "import": add_import, "save": add_save, "load": add_load, "image": add_image}
HANDLERS = {"images": images, "tag": tag, "rmi": rmi, "history": history, "import": import_,
            "save": save, "load": load, "image": image}
