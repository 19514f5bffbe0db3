"""Every document an image brings from elsewhere, checked before anything of it is stored.

An archive (`load`), a tarball (`import`) or, in chapter 10, a registry (`pull`) hands mini JSON
documents (index, manifest, config, docker's manifest.json) and compressed tars, all written by
a stranger. Code that reads `manifest["layers"][0]["digest"]` from unchecked JSON fails with a
KeyError or a TypeError on the first odd input, after half the image is stored. So each
document is parsed here, once, into checked values: the right JSON types, digests of the form
`sha256:<64 hex>`, sizes that are non-negative integers, bounded sizes, counts and nesting.
The code after this module may trust the shape of what it reads.

`reading()` is the one place where the failures of reading untrusted bytes (tarfile, gzip,
zstd, truncated streams, bad UTF-8, bad JSON, deep nesting) become one line naming what was
wrong: an `Invalid` error, which the CLI prints as `mini: invalid archive: ...`, exit 1.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import lzma
import re
import tarfile
import time
import zlib
from collections.abc import Iterator

from mini_runtime.errors import InvalidParameter, InvalidReference, MiniError
from mini_runtime.image import reference
from mini_runtime.image.manifest import DOCKER_CONFIG, INDEX_TYPES, MANIFEST_TYPES, OCI_CONFIG
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)

MAX_DOCUMENT = 8 << 20   # bytes of one JSON document (containerd reads manifests up to 4 MiB)
MAX_JSON_DEPTH = 64      # arrays and objects inside each other
MAX_LAYERS = 500         # overlayfs stacks at most 500 lower layers (OVL_MAX_STACK)
MAX_ENTRIES = 1000       # images in an index or manifest.json, names per image
MAX_SIZE = 1 << 53       # a blob size larger than this is no size at all

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}\Z")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


class Invalid(InvalidParameter):
    """Input that is not a valid image, archive or document: the message says which part, and why."""


# --- the one place where reading failures become one line -------------------------------------

@functools.cache
def decode_errors() -> tuple[type[BaseException], ...]:
    """What decompressors raise on bad data (zstandard's error only if it is installed)."""
    errors: list[type[BaseException]] = [EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError]
    with contextlib.suppress(ImportError):
        import zstandard
        errors.append(zstandard.ZstdError)
    return tuple(errors)


def describe(e: BaseException) -> str | None:
    """What a low-level failure says about the bytes being read, in one line; None if it is
    not about them (a full disk, a bug)."""
    if isinstance(e, tarfile.ReadError) and "could not be opened successfully" in str(e):
        return "not a tar file (nor a gzip, bzip2 or xz compressed one)"
    if isinstance(e, tarfile.TarError):
        return f"not a valid tar: {e}"
    if isinstance(e, EOFError):
        return "the compressed data ends early (the file is truncated)"
    if isinstance(e, gzip.BadGzipFile):
        return f"not valid gzip data: {e}"
    if isinstance(e, decode_errors()):
        return f"not valid compressed data: {e}"
    if isinstance(e, UnicodeError):
        return "not UTF-8 text"
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON: {e}"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, OSError) and e.errno is None:  # bz2 and others: bad data, not a system error
        return f"not valid data: {e}"
    return None


def one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn every failure of reading untrusted input into one `Invalid("<what>: ...")` line.

    Invalid errors get the prefix too, and so do refused layers (UnsafeLayer); other MiniErrors
    (an unknown platform) pass as they are, and so do system errors (a full disk)."""
    from mini_runtime.image.layers import UnsafeLayer

    try:
        yield
    except (Invalid, UnsafeLayer) as e:
        message = one_line(str(e))
        raise Invalid(message if message.startswith(what) else f"{what}: {message}") from None
    except MiniError:
        raise
    except Exception as e:
        problem = describe(e)
        if problem is None:
            raise
        raise Invalid(one_line(f"{what}: {problem}")) from None


# --- JSON, and its checked types -----------------------------------------------------------------

def parse_json(data: bytes, what: str) -> Any:
    """A JSON document: UTF-8, at most MAX_DOCUMENT bytes and MAX_JSON_DEPTH levels, no NaN."""
    if len(data) > MAX_DOCUMENT:
        raise Invalid(f"{what}: larger than {MAX_DOCUMENT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{what}: not UTF-8 text") from None

    def no_constant(name: str) -> Any:
        raise Invalid(f"{what}: not valid JSON: {name} is not a JSON number")
    try:
        value = json.loads(text, parse_constant=no_constant)
    except ValueError as e:  # JSONDecodeError, and an integer of more than 4300 digits
        raise Invalid(one_line(f"{what}: not valid JSON: {e}")) from None
    except RecursionError:
        raise Invalid(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Invalid(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return value


_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean",
          float: "a number"}


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return _NAMES.get(type(value), type(value).__name__)


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be an object, not {_type(value)}")
    return value


def array(value: Any, what: str, *, most: int = MAX_ENTRIES, null: bool = False) -> list[Any]:
    if value is None and null:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{what} must be a list, not {_type(value)}")
    if len(value) > most:
        raise Invalid(f"{what} has {len(value)} entries (at most {most})")
    return value


def string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{what} must be a string, not {_type(value)}")
    return value


def strings(value: Any, what: str, *, null: bool = True) -> list[str]:
    items = array(value, what, most=1 << 16, null=null)
    return [string(item, f"{what}[{i}]") for i, item in enumerate(items)]


def digest(value: Any, what: str) -> str:
    if not (isinstance(value, str) and _DIGEST.match(value)):
        raise Invalid(f"{what} must be a sha256 digest (sha256: and 64 lowercase hex digits), "
                      f"not {value!r:.80}")
    return value


def size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise Invalid(f"{what} must be a size in bytes, not {value!r:.80}")
    return value


def timestamp(value: Any, what: str) -> str:
    """An RFC 3339 time, as docker requires of `created` (mini shows it as "2 days ago")."""
    text = string(value, what)
    try:
        if not _RFC3339.match(text):
            raise ValueError
        time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise Invalid(f"{what} must be an RFC 3339 time, not {text!r:.80}") from None
    return text


def string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    for key, item in obj(value, what).items():
        string(item, f"{what}[{key!r:.80}]")
    return value


def name(text: str, what: str) -> str:
    """An image name ("name:tag") from an archive, normalised, refused where `mini tag` would
    refuse it: never a digest reference, 64 hex digits or `sha256:...` (an image ID's looks)."""
    try:
        return reference.tag_name(text)
    except InvalidReference as e:
        raise Invalid(f"{what}: {e}") from None


# --- the documents -------------------------------------------------------------------------------

@named_tuple
class Descriptor:
    """A checked descriptor; `raw` is the object as written (what platform selection reads)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]
    raw: dict[str, Any]


def descriptor(value: Any, what: str) -> Descriptor:
    d = obj(value, what)
    platform = d.get("platform")
    if platform is not None:
        for key in ("os", "architecture"):
            string(obj(platform, f"{what}.platform").get(key), f"{what}.platform.{key}")
        if "variant" in platform:
            string(platform["variant"], f"{what}.platform.variant")
    return Descriptor(string(d.get("mediaType"), f"{what}.mediaType"),
                      digest(d.get("digest"), f"{what}.digest"), size(d.get("size"), f"{what}.size"),
                      string_map(d.get("annotations"), f"{what}.annotations"), d)


def _schema(document: dict[str, Any], what: str) -> None:
    version = document.get("schemaVersion")
    if version == 1:
        raise Invalid(f"{what}: schema 1 manifests are not supported")
    if version != 2 or isinstance(version, bool):
        raise Invalid(f"{what}.schemaVersion must be 2, not {version!r:.80}")


@named_tuple
class Index:
    manifests: list[Descriptor]
    raw: dict[str, Any]


def index(data: bytes, what: str) -> Index:
    document = obj(parse_json(data, what), what)
    _schema(document, what)
    media_type = document.get("mediaType")
    if media_type is not None and media_type not in INDEX_TYPES:
        raise Invalid(f"{what}: expected an index, found {media_type!r:.80}")
    entries = array(document.get("manifests"), f"{what}.manifests")
    return Index([descriptor(d, f"{what}.manifests[{i}]") for i, d in enumerate(entries)], document)


@named_tuple
class Manifest:
    media_type: str | None
    config: Descriptor
    layers: list[Descriptor]
    raw: dict[str, Any]


def manifest(data: bytes, media_type: str | None, what: str) -> Manifest:
    """An image manifest (OCI or Docker schema 2), with layers mini can unpack."""
    from mini_runtime.image.layers import MEDIA_TYPES

    document = obj(parse_json(data, what), what)
    declared = document.get("mediaType")
    if declared is not None:
        string(declared, f"{what}.mediaType")
    kind = declared or media_type
    if kind in INDEX_TYPES or (kind is None and "manifests" in document):
        raise Invalid(f"{what}: expected an image manifest, found an index")
    if kind is not None and kind not in MANIFEST_TYPES:
        raise Invalid(f"{what}: unsupported manifest type {kind!r:.80}")
    _schema(document, what)
    config = descriptor(document.get("config"), f"{what}.config")
    if config.media_type not in CONFIG_TYPES:
        raise Invalid(f"{what}.config: media type {config.media_type!r:.80} is not an image config")
    entries = array(document.get("layers"), f"{what}.layers", most=MAX_LAYERS)
    if not entries:
        raise Invalid(f"{what}.layers is empty: an image has at least one layer")
    layers = [descriptor(d, f"{what}.layers[{i}]") for i, d in enumerate(entries)]
    for i, layer in enumerate(layers):
        if layer.media_type not in MEDIA_TYPES:
            raise Invalid(f"{what}.layers[{i}]: unknown layer media type {layer.media_type!r:.80}")
    return Manifest(declared, config, layers, document)


_CONFIG_LISTS = ("Cmd", "Entrypoint", "Env", "Shell", "OnBuild")
_CONFIG_STRINGS = ("WorkingDir", "User", "StopSignal", "Hostname", "Domainname", "Image")
_CONFIG_OBJECTS = ("ExposedPorts", "Volumes")


def config(data: bytes, layers: int, what: str) -> dict[str, Any]:
    """An image config: what `run`, `images` and `history` read has the types they expect, and
    rootfs.diff_ids lists one DiffID per layer."""
    document = obj(parse_json(data, what), what)
    for key in ("architecture", "os", "variant", "author"):
        if key in document:
            string(document[key], f"{what}.{key}")
    if document.get("created") is not None:
        timestamp(document["created"], f"{what}.created")
    defaults = document.get("config")
    if defaults is not None:
        obj(defaults, f"{what}.config")
        for key in _CONFIG_LISTS:
            strings(defaults.get(key), f"{what}.config.{key}")
        for key in _CONFIG_STRINGS:
            if defaults.get(key) is not None:
                string(defaults[key], f"{what}.config.{key}")
        for key in _CONFIG_OBJECTS:
            if defaults.get(key) is not None:
                obj(defaults[key], f"{what}.config.{key}")
        string_map(defaults.get("Labels"), f"{what}.config.Labels")
    rootfs = obj(document.get("rootfs"), f"{what}.rootfs")
    if rootfs.get("type") != "layers":
        raise Invalid(f"{what}.rootfs.type must be \"layers\", not {rootfs.get('type')!r:.80}")
    diff_ids = array(rootfs.get("diff_ids"), f"{what}.rootfs.diff_ids", most=MAX_LAYERS)
    for i, diff_id in enumerate(diff_ids):
        digest(diff_id, f"{what}.rootfs.diff_ids[{i}]")
    if len(diff_ids) != layers:
        raise Invalid(f"{what}: rootfs.diff_ids lists {len(diff_ids)} DiffIDs for {layers} layers "
                      "(one per layer)")
    for i, entry in enumerate(array(document.get("history"), f"{what}.history", most=1 << 16, null=True)):
        entry = obj(entry, f"{what}.history[{i}]")
        for key in ("created_by", "comment", "author"):
            if entry.get(key) is not None:
                string(entry[key], f"{what}.history[{i}].{key}")
        if entry.get("created") is not None:
            timestamp(entry["created"], f"{what}.history[{i}].created")
        if "empty_layer" in entry and not isinstance(entry["empty_layer"], bool):
            raise Invalid(f"{what}.history[{i}].empty_layer must be a boolean")
    return document


@named_tuple
class DockerEntry:
    """One image of a docker-archive's manifest.json: paths inside the archive, and names."""

    config: str
    names: list[str]
    layers: list[str]


def docker_manifest(data: bytes, what: str = "manifest.json") -> list[DockerEntry]:
    entries = array(parse_json(data, what), what)
    result = []
    for i, value in enumerate(entries):
        entry, at = obj(value, f"{what}[{i}]"), f"{what}[{i}]"
        layers = strings(entry.get("Layers"), f"{at}.Layers", null=False)
        if not 1 <= len(layers) <= MAX_LAYERS:
            raise Invalid(f"{at}.Layers lists {len(layers)} layers (1 to {MAX_LAYERS})")
        tags = array(entry.get("RepoTags"), f"{at}.RepoTags", null=True)
        result.append(DockerEntry(string(entry.get("Config"), f"{at}.Config"),
                                  [name(string(tag, f"{at}.RepoTags[{j}]"), f"{at}.RepoTags[{j}]")
                                   for j, tag in enumerate(tags)], layers))
    return result
