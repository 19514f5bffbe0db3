"""ImageList (`mini images`): one summary per image, newest first, and docker's filters.

An image with several names is one summary with several RepoTags; the CLI prints a row per name.
"""

from __future__ import annotations

from mini_runtime import filters as flt
from mini_runtime.image.store import NONE, Image, Store
from mini_runtime.units import parse_rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: The keys `docker images --filter` accepts.
ACCEPTED = ("dangling", "label", "before", "since", "reference")


def summaries(store: Store, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """ImageSummary dicts (the Engine API's), filtered as moby's daemon does:

    - `reference=PATTERN`: only the names that match (Go's path.Match on `name:tag`, or on the
      name alone), and no image without a matching name;
    - `dangling=true|false`: only the images without a name, or only those with one;
    - `before=IMAGE`, `since=IMAGE`: created strictly before, or after, that image;
    - `label=KEY` or `label=KEY=VALUE`: every one given, among the config's Labels.
    """
    filters = filters or {}
    flt.check(filters, ACCEPTED)
    dangling = flt.boolean(filters, "dangling")
    before = min((created(store.get(v)) for v in filters.get("before", [])), default=None)
    since = max((created(store.get(v)) for v in filters.get("since", [])), default=None)
    patterns = filters.get("reference", [])
    found: dict[str, dict[str, Any]] = {}
    for image in store.list():
        summary = found.get(image.id) or found.setdefault(image.id, summary_of(image))
        if image.name != NONE and (not patterns or any(matches(p, image.name) for p in patterns)):
            summary["RepoTags"].append(image.name)
    listed = []
    for summary in found.values():
        if (before is not None and summary["Created"] >= before
                or since is not None and summary["Created"] <= since
                or not flt.labels_match(filters, summary["Labels"])):
            continue
        named = bool(summary["RepoTags"])
        if not named and patterns or dangling is not None and dangling == named:
            continue
        listed.append(summary)
    return sorted(listed, key=lambda s: s["Created"], reverse=True)


def usage(store: Store, users: dict[str, int]) -> tuple[int, list[dict[str, Any]]]:
    """SystemDataUsage's images: the bytes of every layer once (LayersSize), and each image's
    summary with SharedSize (its layers that another image has too: on disk once, for both)
    and Containers (`users`: kept containers by image id)."""
    images = [summary for summary in summaries(store)]
    by_id = {image.id: image for image in store.list()}
    holders: dict[str, set[str]] = {}               # a layer's chain id: the images that have it
    sizes: dict[str, int] = {}
    for image in by_id.values():
        for chain, layer in zip(image.chain_ids, image.layers):
            holders.setdefault(chain, set()).add(image.id)
            sizes[chain] = layer["size"]
    for summary in images:
        image = by_id[summary["Id"]]
        summary["SharedSize"] = sum(sizes[c] for c in set(image.chain_ids) if len(holders[c]) > 1)
        summary["Containers"] = users.get(summary["Id"], 0)
    return sum(sizes.values()), images


def history(store: Store, name: str) -> list[dict[str, Any]]:
    """ImageHistory: newest first, each entry of the config's history with its layer's size."""
    image = store.get(name)
    entries = image.config.get("history") or [{"created": image.config.get("created"), "created_by": ""}]
    sizes = iter(layer["size"] for layer in image.layers)
    items = []
    for entry in entries:  # oldest first: the sizes pair with the entries that made a layer
        items.append({"Id": "<missing>", "Created": int(parse_rfc3339(entry.get("created") or "") or 0),
                      "CreatedBy": entry.get("created_by", ""), "Tags": None,
                      "Size": 0 if entry.get("empty_layer") else next(sizes, 0),
                      "Comment": entry.get("comment", "")})
    items.reverse()
    items[0].update(Id=image.id, Tags=store.names(image) or None)
    return items


def summary_of(image: Image) -> dict[str, Any]:
    return {"Id": image.id, "ParentId": "", "RepoTags": [], "RepoDigests": [],
            "Created": created(image), "Size": image.size, "SharedSize": -1,
            "Labels": (image.config.get("config") or {}).get("Labels") or {}, "Containers": -1}


def created(image: Image) -> int:
    return int(parse_rfc3339(image.config.get("created") or "") or 0)


def matches(pattern: str, name: str) -> bool:
    """moby's FamiliarMatch: the pattern against `name:tag`, else against the name alone."""
    return flt.path_match(pattern, name) or flt.path_match(pattern, name.rpartition(":")[0])
