"""The local terminal, for `run -it`, `attach`, `start -ai` and `exec -it` (chapter 06).

Three small pieces, each usable alone:

    raw(fd)            the terminal in raw mode for the `with`, restored on every way out
    window_size(fd)    its (rows, columns), for the container's pty
    relay(conn, ...)   our stdin to an attach stream, the stream to our stdout and stderr, until
                       it ends or the user types the detach keys (docker's ctrl-p ctrl-q)

In raw mode the terminal hands every byte to us as it is typed (no echo, no line editing, no
ctrl-C turned into SIGINT): all of that is done once, by the line discipline of the container's
own pty. A SIGKILL of `mini` leaves the terminal raw (nothing can run then; `reset` repairs it):
any other way out restores it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import sys
import termios
from collections.abc import Callable, Iterator

from mini_runtime.errors import InvalidParameter

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

#: docker's CheckTty message (docker 28's cli/streams/in.go; newer ones say "cannot attach stdin
#: to a TTY-enabled container because stdin is not a terminal").
NOT_A_TTY = "the input device is not a TTY"

#: docker's names of the control characters, by their code (moby/term's ASCII table).
CONTROL_NAMES = ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
                 "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]

#: Signals that would end `mini` without running its `finally` blocks: while the terminal is
#: raw they raise instead, so that it is restored.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT)

#: An attach stream without a pty keeps stdout and stderr apart in frames, as docker's does: a
#: header of 8 bytes (the stream: 1 stdout, 2 stderr; three zeros; the length, big-endian).
STDOUT, STDERR = 1, 2


def detach_sequence(keys: str | None, what: str = "detach") -> bytes:
    """docker's --detach-keys ("ctrl-p,ctrl-q", "a", "ctrl-@,x") as the bytes to watch for.
    (`what`: docker's daemon calls them "escape" keys when it refuses an exec's.)"""
    text = DEFAULT_DETACH_KEYS if keys is None or keys == "" else keys
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            codes.append(ord(key) & 0xFF)
        elif key in CONTROL_NAMES:
            codes.append(CONTROL_NAMES.index(key))
        else:
            raise InvalidParameter(f"Invalid {what} keys ({keys}) provided")
    return bytes(codes)


class SignalExit(SystemExit):
    """A signal that ends `mini` while the terminal is raw: exit code 128 + its number (a
    SystemExit, so that every `finally` runs and Python exits quietly with that code)."""

    def __init__(self, number: int) -> None:
        super().__init__(128 + number)


def make_raw(attrs: list) -> list:
    """cfmakeraw(3), as docker's MakeRaw: bytes in and out unchanged, no echo, no signals."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
               | termios.IGNCR | termios.ICRNL | termios.IXON)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


# >>> raw
@contextlib.contextmanager
def raw(fd: int) -> Iterator[None]:
    """The terminal `fd` in raw mode inside the `with`; as it was after, however the `with` ends
    (an exception, the stream broken, SIGTERM/SIGHUP/SIGQUIT/SIGINT to `mini`: these raise
    SignalExit). Not a terminal: nothing changes."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return

    def ending(number: int, _frame: object) -> None:
        raise SignalExit(number)

    previous = {sig: signal.signal(sig, ending) for sig in ENDING_SIGNALS}
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, make_raw(saved))
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
# <<< raw


def stdin_refused(attach_stdin: bool, tty: bool) -> bool:
    """docker's CheckTty, for `run` and `exec` (not -d) and `attach`: our stdin may drive a
    container's pty only if it is a terminal itself (piped or redirected, it would be typed
    into the pty, echoed, and its ctrl-C bytes turned into signals). True, with docker's line
    said, when refused: the command then exits with 1."""
    if tty and attach_stdin and not os.isatty(0):
        print(f"mini: {NOT_A_TTY}", file=sys.stderr)
        return True
    return False


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal `fd`; None if it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class DetachWatch:
    """docker's escape proxy: bytes pass through, except the detach sequence. The bytes of a
    prefix of it are held back until the sequence completes (detach) or not (they pass)."""

    def __init__(self, keys: bytes) -> None:
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What to pass on, and whether the sequence is complete."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            self.held += bytes([byte])
            if not self.keys.startswith(self.held):
                out += self.held                        # not the sequence after all: pass it
                self.held = b""
            elif self.held == self.keys:
                self.held = b""
                return bytes(out), True
        return bytes(out), False


def relay(conn: socket.socket, *, tty: bool, stdin: int | None = 0, stdout: int = 1, stderr: int = 2,
          detach_keys: bytes = b"\x10\x11", on_resize: Callable[[], None] | None = None) -> bool:
    """Relay between our stdin/stdout/stderr and an attach stream until it ends (False) or the
    user types `detach_keys` (True; with a tty only, as docker). With `tty` the stream is raw
    bytes both ways; without, its output comes in frames (stdout and stderr apart) and the end
    of our stdin is passed on as a half-close. `on_resize` is called on SIGWINCH."""
    watch = DetachWatch(detach_keys if tty else b"")
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous = None
    if on_resize is not None:
        previous = signal.signal(signal.SIGWINCH, lambda *_: _poke(wake_w))
    frames = outgoing = b""     # (outgoing: read from our stdin, not yet taken by the stream)
    reading = stdin is not None
    try:
        while True:
            # Never block on a send: while the stream does not take our input, its output must
            # still be read, or a container that echoes (`cat`) and we would wait for each other.
            # Our stdin is read again once the stream has taken what we had.
            readers = [conn, wake_r] + ([stdin] if reading and not outgoing else [])
            readable, writable, _ = select.select(readers, [conn] if outgoing else [], [])
            if writable:
                try:
                    outgoing = outgoing[conn.send(outgoing, socket.MSG_DONTWAIT):]
                except BlockingIOError:
                    pass
                except OSError:
                    return False
                if not outgoing and not reading:
                    _end_input(conn, tty)
            for ready in readable:
                if ready == wake_r:
                    os.read(wake_r, 64)
                    if on_resize is not None:
                        on_resize()
                elif ready is conn:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return False
                    if tty:
                        write_all(stdout, data)
                    else:
                        frames = demultiplex(frames + data, stdout, stderr)
                else:
                    data = read_input(stdin)
                    if not data:
                        reading = False
                        if not outgoing:
                            _end_input(conn, tty)
                        continue
                    data, detached = watch.feed(data)
                    if detached:                        # (typed at a terminal: a few bytes)
                        with contextlib.suppress(OSError):
                            conn.sendall(outgoing + data)
                        return True
                    outgoing += data
    finally:
        if on_resize is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def _end_input(conn: socket.socket, tty: bool) -> None:
    """Our stdin has ended: without a tty, the container's stdin ends too (a half-close)."""
    if not tty:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)


def _poke(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, b"w")


def read_input(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError as e:                                # (EIO: our terminal has gone)
        if e.errno in (errno.EIO, errno.EBADF):
            return b""
        raise


def demultiplex(buffer: bytes, stdout: int, stderr: int) -> bytes:
    """Write each complete frame to its stream; returns what is left (a frame's beginning)."""
    while len(buffer) >= 8:
        size = int.from_bytes(buffer[4:8], "big")
        if len(buffer) < 8 + size:
            break
        write_all(stderr if buffer[0] == STDERR else stdout, buffer[8:8 + size])
        buffer = buffer[8 + size:]
    return buffer


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
