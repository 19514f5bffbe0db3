"""Manifests, indexes and platforms: which JSON document describes which image.

An image is a *manifest* (a config blob plus a list of layer blobs). One name can stand for many
images, one per platform, through an *index* (Docker: a "manifest list"). Two families of media
types mean the same things: OCI's and Docker's older "schema 2"; both must be read.
Spec: github.com/opencontainers/image-spec (manifest.md, image-index.md).
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Callable

from mini_runtime.errors import MiniError
from mini_runtime.image.layout import CONFIG_MEDIA_TYPE as OCI_CONFIG
from mini_runtime.image.layout import INDEX_MEDIA_TYPE as OCI_INDEX
from mini_runtime.image.layout import MANIFEST_MEDIA_TYPE as OCI_MANIFEST

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)

# uname -m -> (Go's GOARCH, variant): the names images use
_ARCHES = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"),
           "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
           "i686": ("386", ""), "i386": ("386", ""), "ppc64le": ("ppc64le", ""),
           "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


class NoMatchingPlatform(MiniError):
    pass


def host_platform() -> dict[str, str]:
    machine = _platform.machine()
    architecture, variant = _ARCHES.get(machine, (machine, ""))
    return {"os": "linux", "architecture": architecture, "variant": variant}


def platform_text(p: dict[str, str]) -> str:
    return "/".join(x for x in (p.get("os", "?"), p.get("architecture", "?"), p.get("variant", "")) if x)


def kind(document: dict[str, Any], media_type: str | None = None) -> str:
    """'index' or 'manifest', from the media type (and, without one, from the shape)."""
    declared = document.get("mediaType") or media_type
    if declared in INDEX_TYPES or (declared is None and "manifests" in document):
        return "index"
    if declared in MANIFEST_TYPES or (declared is None and "layers" in document):
        return "manifest"
    raise MiniError(f"unsupported manifest type {declared!r} (schema 1 manifests are not supported)")


def _matches(candidate: dict[str, str], want: dict[str, str]) -> bool:
    if candidate.get("os") != want["os"] or candidate.get("architecture") != want["architecture"]:
        return False
    variant, wanted = candidate.get("variant", ""), want.get("variant", "")
    if want["architecture"] == "arm64":  # arm64 with no variant is v8
        variant, wanted = variant or "v8", wanted or "v8"
    return not variant or not wanted or variant <= wanted  # v6 runs on v7; v7 not on v6


# >>> select-platform
def select(index: dict[str, Any], fetch: Callable[[str], dict[str, Any]],
           want: dict[str, str] | None = None) -> dict[str, Any]:
    """The descriptor of the first manifest in `index` for this platform (following nested
    indexes), as docker picks it; attestations (platform unknown/unknown) never match."""
    want = want or host_platform()
    for descriptor in index.get("manifests", []):
        if descriptor.get("annotations", {}).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        if descriptor.get("mediaType") in INDEX_TYPES:
            try:
                return select(fetch(descriptor["digest"]), fetch, want)
            except NoMatchingPlatform:
                continue
        p = descriptor.get("platform")
        if p and _matches(p, want):
            return descriptor
    raise NoMatchingPlatform(f"no matching manifest for {platform_text(want)} in the manifest list entries")
# <<< select-platform
