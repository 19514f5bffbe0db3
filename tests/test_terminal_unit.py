"""cli/terminal.py without containers: docker's detach-key syntax, its escape proxy, raw mode
restored on every way out, window sizes and the relay's framing (through real ptys and sockets)."""

from __future__ import annotations

import os
import signal
import socket
import termios

import pytest

from mini_runtime.cli import terminal
from mini_runtime.errors import InvalidParameter


@pytest.mark.parametrize("keys, want", [
    (None, b"\x10\x11"), ("", b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("a", b"a"),
    ("ctrl-@", b"\x00"), ("ctrl-a,x,ctrl-_", b"\x01x\x1f"), ("ctrl-[,ctrl-\\", b"\x1b\x1c"),
    ("ctrl-^,ctrl-]", b"\x1e\x1d"), (",", None),
])
def test_detach_sequence(keys, want):
    if want is None:
        with pytest.raises(InvalidParameter):
            terminal.detach_sequence(keys)
        return
    assert terminal.detach_sequence(keys) == want


@pytest.mark.parametrize("keys", ["shift-a", "ctrl-zz", "ctrl-P", "ab", "a,,b", "ctrl-"])
def test_bad_detach_keys_say_docker_s_message(keys):
    with pytest.raises(InvalidParameter) as caught:
        terminal.detach_sequence(keys)
    assert str(caught.value) == f"Invalid detach keys ({keys}) provided"


def test_the_escape_proxy_holds_a_prefix_and_passes_it_when_it_does_not_complete():
    watch = terminal.DetachWatch(b"\x10\x11")
    assert watch.feed(b"ls\x10") == (b"ls", False)          # held: it may be the sequence
    assert watch.feed(b"x") == (b"\x10x", False)            # it was not: passed on
    assert watch.feed(b"a\x10") == (b"a", False)
    assert watch.feed(b"\x11rest") == (b"", True)           # detach: nothing after it is sent
    assert terminal.DetachWatch(b"").feed(b"\x10\x11") == (b"\x10\x11", False)


def _attrs(fd: int) -> list:
    return termios.tcgetattr(fd)


def test_raw_mode_and_its_restoration_on_an_exception_and_a_signal():
    master, slave = os.openpty()
    try:
        before = _attrs(slave)
        with terminal.raw(slave):
            inside = _attrs(slave)
            assert not inside[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
            assert not inside[1] & termios.OPOST
        assert _attrs(slave) == before
        with pytest.raises(RuntimeError):
            with terminal.raw(slave):
                raise RuntimeError("the stream broke")
        assert _attrs(slave) == before
        with pytest.raises(SystemExit) as ended:
            with terminal.raw(slave):
                os.kill(os.getpid(), signal.SIGTERM)    # (its handler runs at once, here)
        assert ended.value.code == 128 + signal.SIGTERM
        assert _attrs(slave) == before
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        os.close(master)
        os.close(slave)


def test_raw_on_something_not_a_terminal_changes_nothing():
    r, w = os.pipe()
    try:
        with terminal.raw(r):
            pass
        assert terminal.window_size(r) is None
    finally:
        os.close(r)
        os.close(w)


def test_window_size_of_a_pty():
    import fcntl
    import struct

    master, slave = os.openpty()
    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        assert terminal.window_size(slave) == (33, 101)
    finally:
        os.close(master)
        os.close(slave)


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_relay_without_a_tty_keeps_streams_apart_and_half_closes_at_stdin_eof():
    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.write(in_w, b"typed\x10\x11")                        # no tty: the keys are plain bytes
    os.close(in_w)
    message = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"more\n")
    theirs.sendall(message[:5])                               # a frame cut anywhere
    pid = os.fork()
    if pid == 0:
        theirs.sendall(message[5:])
        got = b""
        while chunk := theirs.recv(100):                      # until the half-close
            got += chunk
        theirs.sendall(frame(1, got))
        os._exit(0)
    theirs.close()
    try:
        detached = terminal.relay(ours, tty=False, stdin=in_r, stdout=out_w, stderr=err_w)
    finally:
        os.waitpid(pid, 0)
        ours.close()
    os.close(out_w)
    os.close(err_w)
    assert detached is False
    assert os.read(out_r, 100) == b"out\nmore\ntyped\x10\x11"
    assert os.read(err_r, 100) == b"err\n"
    for fd in (in_r, out_r, err_r):
        os.close(fd)


def test_relay_with_a_tty_detaches_on_the_keys():
    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, b"echo\x01\x02after")
    theirs.sendall(b"raw \x01 bytes")
    try:
        assert terminal.relay(ours, tty=True, stdin=in_r, stdout=out_w, detach_keys=b"\x01\x02") is True
        assert theirs.recv(100) == b"echo"
        assert os.read(out_r, 100) == b"raw \x01 bytes"
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            os.close(fd)
        ours.close()
        theirs.close()
