"""Reading the headers of a stranger's tar (a layer, an archive) with bounds.

A tar member can come with headers of its own before it: PAX records (`x`, `g`), a GNU long
name or link target (`L`, `K`), the map of a sparse file. Python's `tarfile` reads each of them
whole into memory, believes the sizes they declare, and raises IndexError or ValueError (not a
TarError) on some that are cut short or garbled. A gzip layer of a few MB can so declare a long
name of 16 GB, which tarfile reads into memory (three times over), and a PAX header can be
followed by another, and another, each one a level of recursion.

`Header` reads every header the way Go's archive/tar does (which docker and containerd use): at
most MAX_HEADER bytes of headers for one member, at most MAX_CHAINED headers chained before
it, and every malformed one is a `tarfile.ReadError`, which callers already turn into one line.
A member, once read, is not kept in memory (`_Once`), and a global header (`g`) is dropped, as
docker drops it.
"""

from __future__ import annotations

import tarfile

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: Bytes of headers (PAX records, a long name, a sparse map) read for one member: Go's
#: archive/tar allows 1 MiB of PAX records or of a GNU long name.
MAX_HEADER = 1 << 20
#: Extended headers chained before one member (real tars have at most a few: g, x, L, K).
MAX_CHAINED = 8
#: A path, as the kernel takes one (PATH_MAX with its NUL): no tar entry that was ever a file
#: on Linux has a longer name, and docker, unpacking by path, fails on one.
PATH_MAX = 4095


class _Budget:
    """The tar's file object while one member's headers are read: reads are counted."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.left, self.depth = raw, MAX_HEADER, 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            raise tarfile.SubsequentHeaderError(f"a member's headers (PAX records, long names, sparse "
                                                f"map) are larger than {MAX_HEADER} bytes")
        self.left -= size
        return self.raw.read(size)

    def __getattr__(self, name: str) -> Any:   # tell, seek: the real file's
        return getattr(self.raw, name)


class Header(tarfile.TarInfo):
    """A TarInfo whose headers are read with bounds (pass it as `tarinfo=` to tarfile.open)."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        outer = not isinstance(tar.fileobj, _Budget)
        if outer:
            tar.fileobj = _Budget(tar.fileobj)
        budget = tar.fileobj
        budget.depth += 1
        try:
            if budget.depth > MAX_CHAINED:
                raise tarfile.SubsequentHeaderError(f"more than {MAX_CHAINED} extended headers "
                                                    "chained before one member")
            return super()._proc_member(tar)
        except (ValueError, IndexError, OverflowError) as e:  # cut short, or not numbers
            raise tarfile.SubsequentHeaderError(f"a malformed extended header ({e})") from None
        finally:
            budget.depth -= 1
            if outer:
                tar.fileobj = budget.raw

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        """A global header ('g') is read and dropped, as docker drops it (Go's archive/tar hands
        it over as an entry, which docker's untar skips). tarfile would add its records to those
        of every later member, copied each time: 300 KB of gzip took minutes and gigabytes."""
        if self.type != tarfile.XGLTYPE:
            return super()._proc_pax(tar)
        tar.fileobj.read(self._block(self.size))
        try:
            return self.fromtarfile(tar)
        except tarfile.HeaderError as e:
            raise tarfile.SubsequentHeaderError(str(e)) from None


class _Once(tarfile.TarFile):
    """A tar read member by member, once. tarfile keeps every member it has read (for
    getmembers), each with its PAX records, up to MAX_HEADER bytes: 1 MB of gzip held 1 GB."""

    def next(self) -> tarfile.TarInfo | None:
        self.members.clear()
        return super().next()


def open_tar(fileobj: Any, mode: str) -> tarfile.TarFile:
    """tarfile.open for reading a stranger's tar: "r|" (a stream) or "r:" (a file)."""
    return _Once.open(fileobj=fileobj, mode=mode, tarinfo=Header)
