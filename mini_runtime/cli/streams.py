"""Where `-o FILE` / `-i FILE` (or stdin and stdout) lead, as docker's CLI decides it."""

from __future__ import annotations

import sys
from typing import IO, BinaryIO

from mini_runtime.errors import NotFound, UsageError


def open_input(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise NotFound(f"open {path}: {(e.strerror or str(e)).lower()}") from None


def open_output(path: str | None) -> tuple[IO[bytes], bool]:
    """-o FILE, or stdout, which docker refuses to be a terminal. (stream, close it after?)"""
    if path:
        return open(path, "wb"), True
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    return sys.stdout.buffer, False
