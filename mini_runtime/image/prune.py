"""ImagesPrune (`mini image prune`, and `mini system prune`'s images): what no one needs, in one sweep.

Without -a, the dangling images: those that lost their last name to a newer image of the same
name (a `commit`, `load` or `import` onto a name in use). With -a (the filter dangling=false),
every image that no kept container was made from. An image a container uses is never pruned:
its layers are that container's lower directories.
"""

from __future__ import annotations

from mini_runtime import filters as flt
from mini_runtime import paths
from mini_runtime.errors import Conflict, NotFound
from mini_runtime.image import listing

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

    from mini_runtime.image.store import Store

ACCEPTED = ("dangling", "label", "label!", "until")


def prune(store: Store, in_use: set[str], filters: dict[str, list[str]]) -> dict[str, Any]:
    """Delete the images `filters` choose that are not `in_use` (image ids of kept containers).
    SpaceReclaimed is what the store's directories shrank by, measured: a layer that another
    image still shares is not freed, so it is not counted."""
    flt.check(filters, ACCEPTED)
    may_go = flt.prune_filter(filters)
    chosen = {"dangling": ["true"]} if flt.boolean(filters, "dangling") in (None, True) else {}
    before = usage(store)
    deleted: list[dict[str, str]] = []
    for summary in listing.summaries(store, chosen):
        if summary["Id"] in in_use or not may_go(summary["Labels"], summary["Created"] * 10**9):
            continue
        try:
            lines = store.remove(summary["Id"], in_use, force=True)   # (-a: untag every name)
        except (Conflict, NotFound):    # (gone, or taken by a container, meanwhile: a sweep skips it)
            continue
        for line in lines:
            kind, _, value = line.partition(": ")
            deleted.append({kind: value})
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": max(0, before - usage(store))}


def usage(store: Store) -> int:
    """Bytes on disk of the store's blobs and unpacked layers."""
    return sum(paths.disk_usage(d) for d in (store.layout.root, store.layers_root) if d.is_dir())
