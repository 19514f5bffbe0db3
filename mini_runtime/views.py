"""docker's views of container records (chapter 06): `ps` (ContainerList's summaries, docker's
filters) and `inspect` (the record with docker's State fields, in docker's order). Read-only:
they never ask a monitor, so `ps` with many containers stays one directory scan. And (07)
`network ls`'s filters, the same kinds of match on network records."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mini_runtime import container, paths
from mini_runtime import filters as flt
from mini_runtime.errors import InvalidParameter
from mini_runtime.units import command_line, parse_rfc3339, status

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """ContainerList's ContainerSummary of a record."""
    state = record.get("State", {})
    return {"Id": record["Id"], "Names": [record["Name"]],
            "Image": (record.get("Config") or {}).get("Image") or record.get("Image", ""),
            "ImageID": record.get("Image", ""),
            "Command": command_line(record.get("Path", ""), record.get("Args", [])),
            "Created": int(parse_rfc3339(record.get("Created", "")) or 0),
            "Ports": port_list(record.get("NetworkSettings") or {}),
            "Labels": (record.get("Config") or {}).get("Labels") or {},
            "State": state.get("Status", "dead"),
            "Status": status(state),
            "NetworkSettings": {"Networks": (record.get("NetworkSettings") or {}).get("Networks") or {}},
            "Mounts": []}


def port_list(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """ContainerSummary.Ports from NetworkSettings.Ports: published (IP, PublicPort) or only exposed."""
    found = []
    for key, bindings in (settings.get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            found.append({"PrivatePort": int(port), "Type": proto or "tcp"})
        for b in bindings or []:
            found.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                          "Type": proto or "tcp"})
    return found


def summaries(all: bool, limit: int | None, filters: dict[str, list[str]] | None,
              image_id: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """ContainerList: newest first; running ones only unless `all` (or a `limit`, or a `status`
    filter, as docker); `filters` as the Engine API's, {"status": [...], "name": [...], ...}:
    a key matches if any of its values does, and every key given must match. A container's
    Image is its image's id once the name it ran by names another image or none (`image_id`:
    what a name names now), as docker shows it: the name would tell of an image it did not run."""
    records = sorted(container.records(), key=lambda r: r.get("Created", ""), reverse=True)
    filters = filters or {}
    flt.check(filters, ACCEPTED)
    for value in filters.get("status", []):
        if value not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
            raise InvalidParameter(f"invalid filter 'status={value}'")
    for value in filters.get("exited", []):
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise InvalidParameter(f'strconv.Atoi: parsing "{value}": invalid syntax')
    records = between(records, filters)
    found = [summary(r) for r in records if wanted(r, filters)]
    named: dict[str, str | None] = {}
    for s in found:
        if s["Image"] != s["ImageID"]:
            if s["Image"] not in named:
                named[s["Image"]] = image_id(s["Image"])
            if named[s["Image"]] != s["ImageID"]:
                s["Image"] = s["ImageID"]
    if limit is not None and limit > 0:
        return found[:limit]
    return [s for s in found if all or "status" in filters or s["State"] in ("running", "paused", "restarting")]


#: The keys `docker ps --filter` accepts that mini knows (docker's volume, publish, expose,
#: health, isolation and is-task have nothing to match here).
ACCEPTED = ("status", "name", "ancestor", "id", "label", "exited", "before", "since", "network")


def between(records: list[dict[str, Any]], filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """`before=C`: the containers created before C; `since=C`: after it (newest first)."""
    for key in ("before", "since"):
        for value in filters.get(key, []):
            mark = container.find(value)
            ids = [r["Id"] for r in records]
            if mark.name not in ids:
                continue
            at = ids.index(mark.name)
            records = records[at + 1:] if key == "before" else records[:at]
    return records


def wanted(record: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """docker's filters: status exactly, name a regular expression (on the name with its "/" or
    without), id a
    prefix, ancestor the image as it was named (":latest" implied) or its id, label every
    KEY or KEY=VALUE given, exited the exit code of a container that ran, network a name."""
    def any_of(key: str, match: Callable[[str], bool]) -> bool:
        return flt.any_of(filters, key, match)

    def tagged(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"

    name = record["Name"].lstrip("/")
    config, state = record.get("Config") or {}, record.get("State") or {}
    image = config.get("Image", "")
    ran = not state.get("Running") and (parse_rfc3339(state.get("StartedAt") or "") or 0) > 0
    networks = ((record.get("NetworkSettings") or {}).get("Networks") or {})
    return (any_of("status", lambda v: v == state.get("Status"))
            and any_of("name", lambda v: flt.matches(v, name) or flt.matches(v, "/" + name))
            and any_of("id", lambda v: record["Id"].startswith(v))
            and any_of("ancestor", lambda v: tagged(v) == tagged(image)
                       or record.get("Image", "").startswith(v.removeprefix("sha256:") or "-"))
            and flt.labels_match(filters, config.get("Labels"))
            and any_of("exited", lambda v: ran and int(v) == state.get("ExitCode"))
            and any_of("network", lambda v: v in networks
                       or (record.get("HostConfig") or {}).get("NetworkMode") == v))


def sizes(directory: Path, image_size: int) -> dict[str, int]:
    """`ps -s`, `inspect -s`: SizeRw, the container's own changes (its upper dir, chapter 05),
    and SizeRootFs, every file it sees (the image's layers and those changes)."""
    changed = paths.disk_usage(directory / "upper")
    return {"SizeRw": changed, "SizeRootFs": changed + image_size}


def inspect(directory: Path, sized: dict[str, int] | None = None) -> dict[str, Any]:
    """ContainerInspect: the record, with docker's State fields in docker's order (and the
    sizes when asked)."""
    record = container.load(directory)
    state = record.get("State", {})
    keys = ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
            "Error", "StartedAt", "FinishedAt")
    defaults = {"Restarting": False, "Dead": False, "Error": "", "Paused": False}
    ordered = {key: state.get(key, defaults.get(key)) for key in keys}
    return {"Id": record["Id"], "Created": record.get("Created"), "Path": record.get("Path"),
            "Args": record.get("Args", []), "State": ordered, "Image": record.get("Image"),
            "LogPath": record.get("LogPath", ""), "Name": record["Name"],
            **{k: v for k, v in record.items() if k not in ("Id", "Created", "Path", "Args",
                                                             "State", "Image", "LogPath", "Name")},
            **(sized or {}), "Mounts": record.get("Mounts", []),
            "NetworkSettings": record.get("NetworkSettings", {})}


# --- networks (chapter 07) ----------------------------------------------------------------------

#: The keys `docker network ls --filter` accepts (moby's acceptedNetworkFilters).
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def networks(filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """NetworkList filtered as moby's daemon does: driver and scope exactly, name and id as
    filters.matches (`name=web` also lists `myweb`), label as every container list, dangling
    (no container on it, not pre-defined), type=builtin|custom (any of them)."""
    from mini_runtime.network import networks as nets      # (netlink and nftables: not for ps)
    filters = filters or {}
    flt.check(filters, NETWORK_FILTERS)
    for value in filters.get("type", []):
        if value not in ("builtin", "custom"):
            raise InvalidParameter(f"invalid filter: 'type'='{value}'")     # (moby's words)
    dangling = flt.boolean(filters, "dangling")
    def any_of(key: str, match: Callable[[str], bool]) -> bool:
        return flt.any_of(filters, key, match)

    return [nets.shown(r) for r in nets.ls()
            if any_of("driver", lambda v: v == r["Driver"]) and any_of("scope", lambda v: v == r["Scope"])
            and any_of("name", lambda v: flt.matches(v, r["Name"]))
            and any_of("id", lambda v: flt.matches(v, r["Id"]))
            and flt.labels_match(filters, r.get("Labels"))
            and (dangling is None or dangling == (r["Name"] not in nets.BUILTIN and not r["Containers"]))
            and any_of("type", lambda v: (v == "builtin") == (r["Name"] in nets.BUILTIN))]
