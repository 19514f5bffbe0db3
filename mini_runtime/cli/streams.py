"""Where `-o FILE` / `-i FILE` (or stdin and stdout) lead, as docker's CLI decides it."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator

from mini_runtime.errors import InvalidParameter, NotFound, UsageError

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
    check_output_path(path)
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


def check_output_path(path: str, directory_ok: bool = False) -> None:
    """docker's ValidateOutputPath, before any work: FILE is renamed over at the end, so a
    device there (`-o /dev/null`) would be replaced by a regular file, and so would a named pipe
    (`-o /dev/stdout` when it is one: the symlink in /dev itself); a directory cannot be (but
    may be `cp`'s destination: `directory_ok`); a missing directory is named at once."""
    parent = os.path.dirname(os.path.normpath(path))   # (Go's filepath.Dir: "a/b/" is in "a")
    if parent and not os.path.isdir(parent):
        raise InvalidParameter(f'invalid output path: directory "{parent}" does not exist')
    try:
        mode = os.stat(path).st_mode                # (through a symlink, as docker's os.Stat)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InvalidParameter(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    if stat.S_ISDIR(mode) and not directory_ok:
        raise InvalidParameter(f"open {path}: is a directory")
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):                      # (docker lets a pipe or socket be replaced)
        kind = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a named pipe" if stat.S_ISFIFO(mode) else "an irregular file"
        raise InvalidParameter(f'invalid output path: "{path}" must be a directory or a regular file: got {kind}')


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def confirmed(warning: str) -> bool:
    """docker's PromptForConfirmation, for the prunes: the warning, "[y/N]", and yes only for a
    line that is y (or Y); anything else, or no terminal answering (EOF), is no."""
    sys.stdout.write(warning + "Are you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() == "y"
