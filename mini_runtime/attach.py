"""Chapter 06: attach, the monitor's side (lean: it lives in the serve phase).

A client asks the monitor's socket for {"op": "attach", "stdin": true|false, "streams":
["stdout", "stderr"]} (the output it wants: `run -a stdout` only that one; both if unsaid); the answer
{"Tty": ...} is the last JSON line: from then on the connection is a byte stream, as docker's
hijacked attach connection is:

    with -t     raw bytes both ways: what the pty master gives, what is typed into it
    without     the container's output in frames, stdout and stderr apart (docker's header:
                the stream 1|2, three zeros, the length in 4 bytes big-endian); the client's
                bytes go to the container's stdin pipe, and its half-close is that pipe's EOF
                (for `run -i`, whose stdin is "once": later clients cannot reopen it)

The client recognises the detach keys itself and closes its end: the container carries on.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import termios

STREAMS = {"stdout": 1, "stderr": 2}


def frame(stream: str, data: bytes) -> bytes:
    return bytes([STREAMS[stream], 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def window_size(message: dict) -> tuple[int, int]:
    """A resize request's rows and columns (struct winsize holds each in 16 bits); ValueError
    for anything else, so that a bad request is refused rather than ending the monitor."""
    size = message.get("h", 0), message.get("w", 0)
    if not all(type(n) is int and 0 <= n <= 0xFFFF for n in size):
        raise ValueError(f"a window size is two integers from 0 to 65535, not {size}")
    return size


def resize(master: int, rows: int, columns: int) -> None:
    """The pty's window size (struct winsize: rows, columns, two unused); the kernel sends
    SIGWINCH to the foreground process group of the terminal when it changes."""
    size = b"".join(int(n).to_bytes(2, sys.byteorder) for n in (rows, columns, 0, 0))
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)


class Clients:
    """The connections attached to one container. `stdin` is the pty master (tty) or the write
    end of the container's stdin pipe, or -1 (no -i; or -t before the container has started and
    made its pty: what is typed meanwhile waits, as does the window `size` its init is given)."""

    def __init__(self, tty: bool, stdin: int = -1, once: bool = False) -> None:
        self.tty, self.stdin, self.once = tty, stdin, once
        self.size = (0, 0)
        self.outputs: list[socket.socket] = []
        self.wanted: dict[socket.socket, tuple[str, ...]] = {}  # each output's streams
        self.inputs: list[socket.socket] = []
        self.pending = b""

    def add(self, conn: socket.socket, wants_stdin: bool, streams=tuple(STREAMS)) -> None:
        conn.settimeout(10)                                 # a client that stops reading is dropped
        self.outputs.append(conn)
        self.wanted[conn] = tuple(streams)
        if wants_stdin and (self.stdin >= 0 or self.tty):
            self.inputs.append(conn)

    @staticmethod
    def asked_streams(message: dict) -> tuple[str, ...] | None:
        """The streams an attach request names (both if unsaid; none if an empty list), or
        None if it names something else: refused, rather than ending the monitor."""
        streams = message.get("streams", list(STREAMS))
        if not isinstance(streams, list) or not all(isinstance(s, str) and s in STREAMS for s in streams):
            return None
        return tuple(streams)

    def handed_over(self) -> list[list[int]]:
        """For the next phase (execve keeps the fds): [[fd, stdin?, [streams]], ...]."""
        found = []
        for conn in self.outputs:
            stdin, streams = conn in self.inputs, list(self.wanted.pop(conn, STREAMS))
            os.set_inheritable(conn.fileno(), True)
            found.append([conn.detach(), int(stdin), streams])
        self.outputs, self.inputs = [], []
        return found

    def take(self, handed: list[list[int]]) -> None:
        for fd, stdin, *streams in handed:
            self.add(socket.socket(fileno=fd), bool(stdin), *streams)

    def output(self, stream: str, data: bytes) -> None:
        message = data if self.tty else frame(stream, data)
        for conn in list(self.outputs):
            if stream not in self.wanted.get(conn, STREAMS):
                continue                                    # (not asked for: logged only)
            try:
                conn.sendall(message)
            except OSError:                                 # gone (detached, killed) or stuck
                self.drop(conn)

    def readers(self) -> list[socket.socket]:
        return [] if self.pending or self.stdin < 0 else list(self.inputs)

    def writers(self) -> list[int]:
        return [self.stdin] if self.pending and self.stdin >= 0 else []

    def read_from(self, conn: socket.socket) -> None:
        if conn not in self.inputs:
            return      # dropped since select() saw it ready: its output failed (it had gone)
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if data:
            self.pending += data
            self.flush()
            return
        self.inputs.remove(conn)
        if self.tty:                                        # a tty client never half-closes:
            self.drop(conn)                                 # it has gone (or detached)
        elif self.once:
            self.close_stdin()                              # EOF reaches the container

    def flush(self) -> None:
        """Write what was typed to the container's stdin, as much as it takes now."""
        try:
            written = os.write(self.stdin, self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.pending = b""                              # nobody reads it any more
            return
        self.pending = self.pending[written:]

    def close_stdin(self) -> None:
        if self.stdin >= 0 and not self.tty:
            os.close(self.stdin)
            self.stdin, self.pending, self.inputs = -1, b"", []

    def stdin_gone(self) -> None:
        """The pty master is closed (the container has ended): no more input."""
        self.stdin, self.pending, self.inputs = -1, b"", []

    def drop(self, conn: socket.socket) -> None:
        """A client has gone, or stopped reading. If it held a `run -i` stdin ("once"), that
        stdin ends with it, as docker closes it: a `cat` would otherwise wait for ever."""
        held_stdin = conn in self.inputs
        for group in (self.outputs, self.inputs):
            if conn in group:
                group.remove(conn)
        self.wanted.pop(conn, None)
        conn.close()
        if held_stdin and self.once:
            self.close_stdin()

    def close(self) -> None:
        """The container has ended: every client sees the end of its stream."""
        for conn in list(self.outputs):
            self.drop(conn)
        if self.stdin >= 0 and not self.tty:
            os.close(self.stdin)
        self.stdin = -1
