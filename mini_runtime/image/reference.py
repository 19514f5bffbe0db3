"""Image references (`busybox`, `name:tag`, `host:port/a/b:tag`, `name@sha256:...`), as docker
parses them (github.com/distribution/reference)."""

from __future__ import annotations

import re

from mini_runtime.errors import InvalidReference
from mini_runtime.tuples import named_tuple
from mini_runtime.units import go_quote

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

_IMAGE_ID = re.compile(r"[0-9a-f]{64}")
NAME_TOTAL_LENGTH_MAX = 255  # the normalised name (docker.io/library/...), without tag or digest
DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
# docker's words (distribution/reference's errors, as ParseNormalizedNamed returns them)
UPPERCASE = "invalid reference format: repository name must be lowercase"
TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"


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
    """Parse and normalise an image reference; `latest` is the default tag. Checked as docker's
    ParseNormalizedNamed checks it, in its words: the host is split off first (by the rule
    below), then the repository part must be lowercase, then the whole must match the grammar,
    and the normalised name (`docker.io/library/busybox`) may have at most 255 characters."""
    if len(text) > 1024:  # name, tag and digest together are far shorter: spare the regex
        raise InvalidReference(TOO_LONG)
    # The first component is a registry host only if it looks like one (docker's rule).
    first, slash, rest = text.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == "index.docker.io":             # (docker's legacy name for Docker Hub)
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"library/{remainder}"
    if remainder.split(":", 1)[0] != remainder.split(":", 1)[0].lower():
        raise InvalidReference(UPPERCASE)       # (`Busybox`, `Me/app`: Docker Hub has no such names)
    m = _REFERENCE.match(f"{domain}/{remainder}")
    if not m:
        if _REFERENCE.match(f"{domain}/{remainder}".lower()):
            raise InvalidReference(UPPERCASE.removeprefix("invalid reference format: "))
        raise InvalidReference("invalid reference format (a name is lowercase letters, digits and "
                               ". _ - separators, optional :tag)")
    if m.end("path") > NAME_TOTAL_LENGTH_MAX:   # (the name: what comes before a tag or digest)
        raise InvalidReference(TOO_LONG)
    tag = m["tag"] or (None if m["digest"] else DEFAULT_TAG)
    return Reference(m["domain"] or DEFAULT_DOMAIN, m["path"], tag, m["digest"])


def named(text: str) -> Reference:
    """A name for an image to have (docker's ParseNormalizedNamed): 64 hex digits are refused,
    as they read as an image ID."""
    if _IMAGE_ID.fullmatch(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    return parse(text)


def tag_name(text: str) -> str:
    """The name `tag`, `commit`, `load` and `import` give an image ("name:tag"), refused in
    docker's words where it cannot be one: a digest (it names content, not an image), 64 hex
    digits or the name `sha256` (what an image ID looks like)."""
    ref = named(text)
    if ref.digest:
        raise InvalidReference("refusing to create a tag with a digest reference")
    if ref.familiar_name == "sha256":   # `sha256:<hex>` would read as an image ID
        raise InvalidReference("refusing to create an ambiguous tag using digest algorithm as name")
    return str(ref)


def tag_names(source: str, target: str) -> str:
    """`tag SOURCE TARGET`: both names checked before the image is looked up, as docker's client
    does, and a name that does not parse is said with docker's prefix (`Error parsing
    reference: "X" is not a valid repository/tag: ...`); SOURCE may also be an image ID. The
    name TARGET gives, "name:tag"."""
    for text, check in ((source, parse), (target, named)):
        if text is source and _IMAGE_ID.fullmatch(text.removeprefix("sha256:")):
            continue
        try:
            check(text)
        except InvalidReference as e:
            raise InvalidReference(f"Error parsing reference: {go_quote(text)} is not a valid "
                                   f"repository/tag: {e}") from None
    return tag_name(target)
