"""Where `-o FILE` / `-i FILE` (or stdin and stdout) lead, as docker's CLI decides it."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from mini_runtime.errors import NotFound, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import BinaryIO, IO


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise NotFound(f"open {path}: {(e.strerror or str(e)).lower()}") from None


@contextlib.contextmanager
def output_to(path: str | None) -> Iterator[IO[bytes]]:
    """-o FILE, or stdout, which docker refuses to be a terminal. FILE appears only complete: the
    archive goes to a temporary file beside it, renamed over FILE once written, removed if not."""
    if not path:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        yield sys.stdout.buffer
        return
    try:
        fd, temporary = tempfile.mkstemp(prefix=".mini-", dir=os.path.dirname(path) or ".")
    except OSError as e:
        raise NotFound(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
