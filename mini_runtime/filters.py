"""docker's list filters (`ps --filter`, `images --filter`): what both lists share.

A filter is `KEY=VALUE`, given as often as wanted. Values of one key are alternatives (any may
match), different keys must all match, as moby's `filters.Args` has it. Two exceptions come
from moby too: every `label` value must match (it is a list of requirements), and an image
reference is matched as a shell-like pattern by Go's `path.Match`, not by a regular expression.
"""

from __future__ import annotations

import re

from mini_runtime.errors import InvalidParameter

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def check(filters: dict[str, list[str]], accepted: Iterable[str]) -> None:
    """Refuse a key the list does not know, in the daemon's words (HTTP 400)."""
    unknown = sorted(set(filters) - set(accepted))
    if unknown:
        raise InvalidParameter(f"invalid filter '{unknown[0]}'")


def any_of(filters: dict[str, list[str]], key: str, match: Callable[[str], bool]) -> bool:
    """moby's rule for one key: absent, or any of its values matches."""
    return key not in filters or any(match(value) for value in filters[key])


def labels_match(filters: dict[str, list[str]], labels: dict[str, str] | None) -> bool:
    """moby's MatchKVList: each `label=KEY` needs the label, each `label=KEY=VALUE` its value."""
    for wanted in filters.get("label", []):
        key, eq, value = wanted.partition("=")
        if key not in (labels or {}) or eq and (labels or {})[key] != value:
            return False
    return True


def prune_filter(filters: dict[str, list[str]]) -> Callable[[dict[str, str] | None, int], bool]:
    """The prunes' filters, as moby's: what may go has every `label=`, none of the `label!=`,
    and was created (in ns) before each `until=` (a time, or a duration back from now)."""
    from mini_runtime.units import api_timestamp, timestamp_ns

    limits = [timestamp_ns(api_timestamp(value, "until")) for value in filters.get("until", [])]

    def may_go(labels: dict[str, str] | None, created_ns: int) -> bool:
        return (labels_match(filters, labels) and all(created_ns <= limit for limit in limits)
                and not any(labels_match({"label": [text]}, labels) for text in filters.get("label!", [])))
    return may_go


def matches(pattern: str, text: str) -> bool:
    """moby's filters.Match (`name=`, `id=`): the value itself, or a regular expression found
    anywhere in the text; a pattern that is no regular expression matches nothing."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def boolean(filters: dict[str, list[str]], key: str) -> bool | None:
    """A true/false filter (`dangling=true`): None when absent; moby's message when neither."""
    values = {v.lower() for v in filters.get(key, [])}
    if not values:
        return None
    if values <= {"true", "1"}:
        return True
    if values <= {"false", "0"}:
        return False
    raise InvalidParameter(f"Invalid filter '{key}=[{' '.join(filters[key])}]'")


def path_match(pattern: str, name: str) -> bool:
    """Go's path.Match, which docker uses for `reference=`: `*` and `?` stop at `/`, `[a-z]` and
    `[^a-z]` are classes, `\\` escapes. Python's fnmatch differs (its `*` crosses `/`)."""
    try:
        return re.fullmatch(_pattern_regex(pattern), name) is not None
    except re.error:  # a reversed range, `[z-a]`
        raise _bad_pattern() from None


def _pattern_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 == len(pattern):
                raise _bad_pattern()
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = _class_end(pattern, i)
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            out.append("[" + "^" * negate + _class_body(body[negate:]) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` that closes the class opened at `start`; a pattern error if none."""
    i = start + 1 + (pattern[start + 1:start + 2] == "^")
    first = i
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]" and i > first:
            return i
        i += 1
    raise _bad_pattern()


def _class_body(body: str) -> str:
    """A class's ranges and characters, each escaped for `re` (`a-z` stays a range)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 1
            c = body[i]
        out.append(re.escape(c) if c != "-" or i in (0, len(body) - 1) else "-")
        i += 1
    return "".join(out)


def _bad_pattern() -> InvalidParameter:
    return InvalidParameter("syntax error in pattern")  # path.ErrBadPattern's text
