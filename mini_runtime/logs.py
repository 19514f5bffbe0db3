"""Container logs in docker's json-file format: one JSON object per line of output.

    {"log":"hello world\n","stream":"stdout","time":"2026-11-27T17:39:53.640547432Z"}

The writer runs in the long-lived monitor (chapter 06), so this module imports only os, time,
collections and tuples.py at the top: every page a monitor maps is paid once per running
container. The reader runs in the CLI or the daemon: `read` (`--tail`, `--since`, `--until`) and
`follow` (`-f`).

What docker does, and so we do (moby daemon/logger/copier.go and jsonfilelog/jsonlog):
- output is cut into lines; each line's entry keeps its "\n";
- a line longer than 16 KiB is cut into 16 KiB *partial* entries without "\n" (they share the
  time of the first piece); the last piece carries the "\n";
- when the stream ends, an unfinished line is written as it is, without "\n";
- `time` is Go's time.RFC3339Nano in UTC: trailing zeros of the fraction are dropped;
- the text is escaped as jsonlog's writer does (HTML-safe: <, >, & as \\u003c ...; tab as
  \\u0009), and each byte that starts no valid UTF-8 sequence (Go's utf8.DecodeRune) is written
  as the escape \\ufffd, while a real U+FFFD passes as it is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from mini_runtime.tuples import named_tuple

#: docker's copier buffer: a line that fills it without a newline is logged as a partial entry.
LINE_LIMIT = 16 * 1024
STREAMS = ("stdout", "stderr")
#: Go's encoding/json escapes, as jsonlog's writer applies them (note: no short form for \t).
ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\",
    ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
    0x2028: "\\u2028", 0x2029: "\\u2029"} | {
    # a byte that starts no valid UTF-8 sequence: "surrogateescape" made it U+DC80..U+DCFF
    0xDC80 + byte: "\\ufffd" for byte in range(128)}


def go_string(data: bytes) -> str:
    """`data` as a JSON string literal, byte for byte as docker's json-file writer makes it."""
    return '"' + data.decode("utf-8", "surrogateescape").translate(ESCAPES) + '"'


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano of a UTC time: "2026-11-27T17:39:53.64054Z" (zeros trimmed)."""
    seconds, fraction = divmod(ns, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return stamp + (f".{fraction:09d}".rstrip("0") if fraction else "") + "Z"


def open_log(path: str) -> int:
    """The json log, for appending; made (owner rw, group r) when it is not there yet."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


class LogWriter:
    """Appends a container's output to its json-file log, line by line, as docker's copier does.

    One writer per container; `write` takes whatever a read from the pty or pipe returned."""

    def __init__(self, path: str) -> None:
        self.fd = open_log(path)
        self.pending = {name: bytearray() for name in STREAMS}
        self.partial_time: dict[str, str] = {}  # stream -> time of the first piece of its line

    def write(self, stream: str, data: bytes) -> None:
        """Buffer `data` of `stream` ("stdout" or "stderr"); log every line it completes."""
        buf = self.pending[stream]
        buf += data
        entries, start = [], 0
        while True:
            end = buf.find(b"\n", start, start + LINE_LIMIT)
            if end >= 0:
                entries.append(self.entry(stream, bytes(buf[start:end + 1]), last=True))
                start = end + 1
            elif len(buf) - start >= LINE_LIMIT:
                entries.append(self.entry(stream, bytes(buf[start:start + LINE_LIMIT]), last=False))
                start += LINE_LIMIT
            else:
                break
        del buf[:start]
        self.append("".join(entries))

    def close(self) -> None:
        """The streams ended: log each unfinished line as it is (no "\\n"), then close the file."""
        if self.fd < 0:
            return
        self.append("".join(self.entry(name, bytes(self.pending[name]), last=False)
                            for name in STREAMS if self.pending[name]))
        for buf in self.pending.values():
            buf.clear()
        os.close(self.fd)
        self.fd = -1

    # >>> log-entry
    def entry(self, stream: str, line: bytes, last: bool) -> str:
        stamp = self.partial_time.pop(stream, None) if last else self.partial_time.get(stream)
        if stamp is None:
            stamp = rfc3339_nano(time.time_ns())
            if not last:
                self.partial_time[stream] = stamp
        log = f'"log":{go_string(line)},' if line else ""
        return f'{{{log}"stream":"{stream}","time":"{stamp}"}}\n'

    def append(self, text: str) -> None:
        """One write(2) per batch on an O_APPEND file: a reader never sees lines interleaved."""
        data = memoryview(text.encode())
        while data:
            data = data[os.write(self.fd, data):]
    # <<< log-entry


# --- reading --------------------------------------------------------------------------------

@named_tuple
class Entry:
    """One line of the log: its text (with "\\n" unless partial), stream, and time as written."""
    log: str
    stream: str
    time: str


def read(path: str, tail: int | None = None, since: int | None = None,
         until: int | None = None) -> Iterator[Entry]:
    """The entries of a log file: the last `tail` (all when None or negative), then those at or
    after `since` and not after `until` (nanoseconds since the epoch; see units.timestamp_ns).
    As docker does, `tail` counts entries before the time filters apply."""
    lines, _ = complete_lines(path, tail)
    yield from within(decode(lines), since, until)


def follow(path: str, stopped: Callable[[], bool], tail: int | None = None,
           since: int | None = None, until: int | None = None,
           interval: float = 0.05) -> Iterator[Entry]:
    """`logs -f`: the entries `read` gives, then new ones as they are appended, until stopped()
    is true and everything written before that has been read (the writer must have finished
    writing when stopped() turns true), or an entry after `until` appears."""
    lines, offset = complete_lines(path, tail)
    done = False
    while True:
        for entry in decode(lines):
            nanos = 0 if since is None and until is None else entry_ns(entry)
            if until is not None and nanos > until:
                return
            if since is None or nanos >= since:
                yield entry
        if done:
            return
        done = stopped()  # asked first: what was written before "stopped" is read just below
        lines, offset = new_lines(path, offset)
        if not lines and not done:
            time.sleep(interval)


def complete_lines(path: str, tail: int | None) -> tuple[list[bytes], int]:
    """The last `tail` complete lines of the file (all if tail is None or negative) and the
    offset just after the last complete one. Reads backwards in blocks when tailing, so
    `--tail 10` of a huge log reads a few kilobytes."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return [], 0
    with f:
        size = f.seek(0, os.SEEK_END)
        if tail is None or tail < 0:
            f.seek(0)
            data, start = f.read(), 0
        else:
            blocks, newlines, start = [], 0, size
            while start > 0 and newlines <= tail:  # tail+1 newlines: the tail lines are whole
                step = min(64 * 1024, start)
                start -= step
                f.seek(start)
                blocks.append(f.read(step))
                newlines += blocks[-1].count(b"\n")
            data = b"".join(reversed(blocks))
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    if tail is not None and tail >= 0:
        lines = lines[len(lines) - tail:] if tail else []
    return lines, start + end


def new_lines(path: str, offset: int) -> tuple[list[bytes], int]:
    """Complete lines written after `offset`, and the offset after them."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    return data[:end].split(b"\n")[:-1], offset + end


def decode(lines: list[bytes]) -> list[Entry]:
    """Parse JSON lines; one json.loads call for the whole batch is several times faster."""
    if not lines:
        return []
    import json  # the reader's only extra import: the monitor never loads it for writing
    try:
        objects = json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:  # a damaged line: keep the others, as docker skips what it cannot decode
        objects = []
        for line in lines:
            try:
                objects.append(json.loads(line))
            except ValueError:
                continue
    return [Entry(o.get("log", ""), o.get("stream", ""), o.get("time", "")) for o in objects
            if isinstance(o, dict)]


def within(entries: list[Entry], since: int | None, until: int | None) -> Iterator[Entry]:
    """docker's time filters: skip entries before `since`; stop at the first after `until`."""
    for entry in entries:
        nanos = 0 if since is None and until is None else entry_ns(entry)
        if until is not None and nanos > until:
            return
        if since is None or nanos >= since:
            yield entry


# --- times of entries ---------------------------------------------------------------------------

SECONDS_CACHE: dict[str, int] = {}


def entry_ns(entry: Entry) -> int:
    """The entry's time in nanoseconds since the epoch (0 if unreadable); many lines share a
    second, so the calendar part is computed once per second."""
    stamp = entry.time
    head = stamp[:19]
    seconds = SECONDS_CACHE.get(head)
    if seconds is None:
        try:
            seconds = epoch_seconds(head)
        except ValueError:
            return 0
        if len(SECONDS_CACHE) > 4096:
            SECONDS_CACHE.clear()
        SECONDS_CACHE[head] = seconds
    _, digits, zone = split_stamp(stamp)
    fraction = int(digits[:9].ljust(9, "0"))
    if zone[:1] in ("+", "-") and zone[1:3].isdigit() and zone[4:6].isdigit():
        sign = 1 if zone[0] == "+" else -1  # an offset (the writer always writes Z)
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 10**9 + fraction


def epoch_seconds(stamp: str) -> int:
    """Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS" in UTC."""
    from mini_runtime.units import civil_seconds  # the reader's side only: the monitor never asks
    if len(stamp) != 19 or stamp[4] != "-" or stamp[7] != "-" or stamp[10] not in "Tt":
        raise ValueError(stamp)
    return civil_seconds(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]),
                         int(stamp[14:16]), int(stamp[17:19]))


def split_stamp(stamp: str) -> tuple[str, str, str]:
    """"2026-11-27T17:39:53.6405Z" -> ("2026-11-27T17:39:53", "6405", "Z")."""
    rest, n = stamp[19:], 1
    if not rest.startswith("."):
        return stamp[:19], "", rest
    while n < len(rest) and rest[n].isdigit():
        n += 1
    return stamp[:19], rest[1:n], rest[n:]


def fixed_time(stamp: str) -> str:
    """docker logs -t prints times as RFC3339NanoFixed: nine fraction digits, zeros kept
    ("2026-11-27T17:39:53.640547000Z"); the file holds them with zeros trimmed."""
    head, digits, zone = split_stamp(stamp)
    return f"{head}.{digits[:9].ljust(9, '0')}{zone}"


def render(entry: Entry, timestamps: bool = False) -> bytes:
    """The bytes `docker logs` writes for an entry (to stdout or stderr, per entry.stream)."""
    text = f"{fixed_time(entry.time)} {entry.log}" if timestamps else entry.log
    return text.encode()
