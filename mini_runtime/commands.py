"""The commands beside `run`: images (chapter 05) and the containers that `run` keeps.

Each prints what docker prints, in docker's formats, so scripts and habits carry over.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import IO, BinaryIO

from mini_runtime import container
from mini_runtime.errors import MiniError, UsageError
from mini_runtime.formatting import table
from mini_runtime.image.store import NONE, Image, Store
from mini_runtime.units import ago as _ago, human_size, now_rfc3339


def _split(name: str) -> tuple[str, str]:
    if name == NONE:
        return "<none>", "<none>"
    repository, _, tag = name.rpartition(":")
    return repository, tag


def images(args: argparse.Namespace) -> int:
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    seen = []
    for image in Store().list():
        image_id = image.id if args.no_trunc else image.short_id
        if args.quiet:
            if image_id not in seen:
                seen.append(image_id)
            continue
        rows.append([*_split(image.name), image_id, _ago(image.config.get("created")), human_size(image.size)])
    sys.stdout.write("".join(f"{i}\n" for i in seen) if args.quiet else table(rows))
    return 0


def tag(args: argparse.Namespace) -> int:
    Store().tag(args.source, args.target)
    return 0


def _images_in_use() -> set[str]:
    return {record["Image"] for record in container.records()}


def rmi(args: argparse.Namespace) -> int:
    store, in_use, failed = Store(), _images_in_use(), False
    for name in args.images:
        try:
            for line in store.remove(name, in_use, force=args.force):
                print(line)
        except MiniError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def history(args: argparse.Namespace) -> int:
    image = Store().get(args.image)
    entries = image.config.get("history") or [{"created": image.config.get("created"), "created_by": ""}]
    sizes = iter(layer["size"] for layer in image.layers)
    rows, ids = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]], []
    for i, entry in enumerate(reversed(entries)):
        # the rows are newest first; sizes pair with the entries that made a layer, oldest first
        size = 0
        ids.append((image.id if args.no_trunc else image.short_id) if i == 0 else "<missing>")
        rows.append([ids[-1], _ago(entry.get("created")) if args.human else entry.get("created", ""),
                     entry.get("created_by", ""), "", entry.get("comment", "")])
    for row, entry in zip(reversed(rows[1:]), entries):
        size = 0 if entry.get("empty_layer") else next(sizes, 0)
        row[3] = human_size(size) if args.human else str(size)
        by = " ".join(row[2].split())
        row[2] = by if args.no_trunc or len(by) <= 45 else by[:44] + "…"
    sys.stdout.write("".join(f"{i}\n" for i in ids if i != "<missing>") if args.quiet else table(rows))
    return 0


def _input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise MiniError(f"open {path}: {e.strerror.lower()}") from None


def _output(path: str | None) -> tuple[IO[bytes], bool]:
    """-o FILE, or stdout, which docker refuses to be a terminal."""
    if path:
        return open(path, "wb"), True
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    return sys.stdout.buffer, False


def import_(args: argparse.Namespace) -> int:
    """A root filesystem tarball (plain or gzip) becomes a one-layer image with no command."""
    from mini_runtime.image import busybox
    from mini_runtime.image.layers import open_layer
    from mini_runtime.image.layout import LAYER_TAR_MEDIA_TYPE, sha256_digest

    with _input(args.file) as source:
        data = source.read()
    gzipped = data[:2] == b"\x1f\x8b"  # decompressed by open_layer: within its size limit
    layer = open_layer(io.BytesIO(data), LAYER_TAR_MEDIA_TYPE + ("+gzip" if gzipped else "")).read()
    stamp = now_rfc3339()
    config = {"architecture": busybox.go_arch(), "os": "linux", "created": stamp, "config": {},
              "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
              "history": [{"created": stamp, "created_by": "", "comment": args.message or
                           f"Imported from {args.file}"}]}
    image = Store().add_image(args.repository, [layer], config)
    print(image.id)
    return 0


def save(args: argparse.Namespace) -> int:
    from mini_runtime.image import archive

    out, close = _output(args.output)
    try:
        archive.save(Store(), args.images, out)
    finally:
        if close:
            out.close()
    return 0


def load(args: argparse.Namespace) -> int:
    from mini_runtime.image import archive

    with _input(args.input or "-") as source:
        if source is sys.stdin.buffer and sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty (give -i FILE or redirect)")
        lines = archive.load(Store(), source)
    if not args.quiet:
        print("\n".join(lines))
    return 0


# --- kept containers -------------------------------------------------------------------------

def _kept(text: str) -> tuple[Path, dict]:
    directory = container.find(text)
    record = container.load(directory)
    if container.status(record).has_process:
        raise MiniError(f"container {text} is running: this works on a container that has exited "
                        "(chapter 07 brings detached containers and pause)")
    if not (directory / "upper").is_dir():
        raise MiniError(f"container {text} has no files to read (it was created before chapter 05)")
    return directory, record


def _layout(directory: Path, record: dict) -> "overlay.Overlay":
    from mini_runtime import overlay

    return overlay.of(directory, Store().layers_root, record["GraphDriver"]["Data"]["LowerDir"])


def diff(args: argparse.Namespace) -> int:
    from mini_runtime.image.pack import changes

    directory, record = _kept(args.container)
    layout = _layout(directory, record)
    for kind, path in changes(layout.upper, layout.lower_dirs):
        print(f"{kind} {path}")
    return 0


def export(args: argparse.Namespace) -> int:
    """The container's whole filesystem, as it saw it: the union, mounted read-only for us alone."""
    from mini_runtime import overlay
    from mini_runtime.image.pack import write_tar

    directory, record = _kept(args.container)
    out, close = _output(args.output)
    try:
        with overlay.view(_layout(directory, record)) as merged:
            write_tar(out, merged)
    finally:
        if close:
            out.close()
    return 0


# >>> commit
def commit(args: argparse.Namespace) -> int:
    """The upper dir becomes one more layer on top of the image's: deletions as whiteouts."""
    from mini_runtime.image.pack import write_tar
    from mini_runtime.image.layout import sha256_digest

    directory, record = _kept(args.container)
    store = Store()
    base: Image = store.get(record["Image"])
    buffer = io.BytesIO()
    write_tar(buffer, directory / "upper", upper=True)
    layer = buffer.getvalue()
    config = dict(base.config, created=now_rfc3339(), author=args.author or base.config.get("author", ""))
    config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, sha256_digest(layer)]}
    command = " ".join([record.get("Path", ""), *record.get("Args", [])])
    config["history"] = [*(base.config.get("history") or []),
                         {"created": config["created"], "created_by": command, "author": args.author,
                          "comment": args.message}]
    config["container"] = record["Id"]
    image = store.add_image(args.repository, [layer], config, base=base)
    print(image.id)
    return 0
# <<< commit


def rm(args: argparse.Namespace) -> int:
    failed = False
    for text in args.containers:
        try:
            directory = container.find(text)
            if not container.status(container.load(directory)).can_remove:
                raise MiniError(f"cannot remove container {text}: it is running (stop it first)")
            container.remove(directory)
            print(text)
        except MiniError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            failed = True
    return 1 if failed else 0

