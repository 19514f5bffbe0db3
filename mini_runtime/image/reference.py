"""Image references (`busybox`, `name:tag`, `host:port/a/b:tag`, `name@sha256:...`), as docker
parses them (github.com/distribution/reference)."""

from __future__ import annotations

import re

from mini_runtime.errors import InvalidReference
from mini_runtime.tuples import named_tuple

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?\Z")  # \Z: "$" would allow a trailing newline

NAME_TOTAL_LENGTH_MAX = 255  # the repository name as written, without tag or digest (docker's limit)
DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"


@named_tuple
class Reference:
    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def familiar_name(self) -> str:
        """The short repository name docker shows: `busybox`, `me/app`, `host:5000/app`."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/")
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        """The familiar form with its tag (or digest): `busybox:latest`."""
        if self.digest:
            return f"{self.familiar_name}@{self.digest}"
        return f"{self.familiar_name}:{self.tag or DEFAULT_TAG}"

    @property
    def full(self) -> str:
        """The fully qualified form: `docker.io/library/busybox:latest`."""
        suffix = f"@{self.digest}" if self.digest else f":{self.tag or DEFAULT_TAG}"
        return f"{self.domain}/{self.path}{suffix}"


def parse(text: str) -> Reference:
    """Parse and normalise an image reference; `latest` is the default tag."""
    if len(text) > 1024:  # name, tag and digest together are far shorter: spare the regex
        raise InvalidReference("invalid reference format: repository name must not be longer than "
                               f"{NAME_TOTAL_LENGTH_MAX} characters")
    m = _REFERENCE.match(text)
    if not m:
        if text != text.lower() and _REFERENCE.match(text.lower()):
            raise InvalidReference(f"invalid reference format: repository name ({text}) must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r} is not a valid image name "
                               "(lowercase letters, digits and . _ - separators, optional :tag)")
    domain, path = m["domain"], m["path"]
    if len(path) + (len(domain) + 1 if domain else 0) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference("invalid reference format: repository name must not be longer than "
                               f"{NAME_TOTAL_LENGTH_MAX} characters")
    # The first component is a registry host only if it looks like one (docker's rule).
    if domain is not None and not ("." in domain or ":" in domain or domain == "localhost"):
        path, domain = f"{domain}/{path}", None
    if domain is None:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"library/{path}"
    tag = m["tag"] or (None if m["digest"] else DEFAULT_TAG)
    return Reference(domain, path, tag, m["digest"])


def tag_name(text: str) -> str:
    """The name `tag`, `commit`, `load` and `import` give an image ("name:tag"), refused in
    docker's words where it cannot be one: a digest (it names content, not an image), 64 hex
    digits or the name `sha256` (what an image ID looks like)."""
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    ref = parse(text)
    if ref.digest:
        raise InvalidReference("refusing to create a tag with a digest reference")
    if ref.familiar_name == "sha256":   # `sha256:<hex>` would read as an image ID
        raise InvalidReference("refusing to create an ambiguous tag using digest algorithm as name")
    return str(ref)
