"""Chapter 06's terminals end to end, as root, through real ptys: `run -it`, ctrl-p ctrl-q and
`attach`, `start -ai`, `run -i` without a tty, attach before start, window sizes, and the
terminal restored however the session ends."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import MINI, mini

pytestmark = [pytest.mark.root, pytest.mark.integration]

PROMPT = b"# "


class Session:
    """`mini ARGS` on the slave side of a new pty (its controlling terminal), driven from the
    master side as a user at a terminal would."""

    def __init__(self, *args: str, rows: int = 24, columns: int = 80) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(MINI[0], MINI + list(args))
        self.resize(rows, columns)
        self.seen = b""

    def resize(self, rows: int, columns: int) -> None:
        """As a terminal emulator does: the kernel sends SIGWINCH to the foreground group."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def attrs(self) -> list:
        return termios.tcgetattr(self.fd)

    def type(self, text: bytes) -> None:
        os.write(self.fd, text)

    def expect(self, want: bytes, timeout: float = 15) -> bytes:
        """Everything up to and including `want` (consumed)."""
        deadline = time.monotonic() + timeout
        while want not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"timed out waiting for {want!r}; seen {self.seen!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {want!r}; seen {self.seen!r}")
            self.seen += chunk
        upto = self.seen.index(want) + len(want)
        found, self.seen = self.seen[:upto], self.seen[upto:]
        return found

    def wait(self, timeout: float = 15) -> int:
        """Its exit code, reading the rest of its output meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.drain()
                return os.waitstatus_to_exitcode(status)
            self.drain(0.05)
        raise AssertionError(f"mini did not end; seen {self.seen!r}")

    def drain(self, timeout: float = 0.0) -> None:
        """What is there (waiting up to `timeout` for more), for a second at most: a command
        that never stops writing must not hold the test."""
        until = time.monotonic() + timeout + 1
        while time.monotonic() < until and select.select([self.fd], [], [], timeout)[0]:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.seen += chunk

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def sessions():
    started: list[Session] = []

    def start(*args: str, **size) -> Session:
        started.append(Session(*args, **size))
        return started[-1]
    yield start
    for session in started:
        session.close()


def status_of(name: str) -> str:
    return mini("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_run_it_answers_typed_commands_and_returns_the_exit_code(sessions):
    s = sessions("run", "-it", "--name", "tty1", "busybox", "sh")
    before = s.attrs()
    s.expect(PROMPT)
    assert s.attrs() != before                              # raw while it runs
    s.type(b"echo $((6 * 7)); [ -t 0 ] && [ -t 2 ] && echo terminal\r")
    out = s.expect(PROMPT)
    assert b"42\r\nterminal\r\n" in out
    s.type(b"exit 5\r")
    assert s.wait() == 5
    assert s.attrs() == before                              # restored
    logs = mini("logs", "tty1").stdout
    assert "42" in logs and mini("inspect", "-f", "{{.Config.Tty}}", "tty1").stdout == "true\n"
    assert mini("rm", "tty1").returncode == 0


def test_ctrl_p_ctrl_q_detaches_and_attach_reconnects(sessions):
    """What the client says on detach is docker 20.10's, which differs by command: `run -it` and
    `start -ai` take the escape as success (silent, exit 0); `attach` returns it as its error
    (`read escape sequence`, exit 1), as `exec -it` does."""
    s = sessions("run", "-it", "--name", "det", "busybox", "sh")
    before = s.attrs()
    s.expect(PROMPT)
    s.type(b"x=kept\r")
    s.expect(PROMPT)
    s.type(b"\x10\x11")
    assert s.wait() == 0
    assert b"escape" not in s.seen, s.seen
    assert s.attrs() == before
    assert status_of("det") == "running"
    assert "det" in mini("ps").stdout

    twice = sessions("attach", "det")
    twice.type(b"echo $x\r")
    twice.expect(b"kept\r\n")
    twice.type(b"\x10\x11")
    assert twice.wait() == 1
    assert twice.seen.endswith(b"read escape sequence\r\n"), twice.seen
    assert status_of("det") == "running"

    started = sessions("start", "-ai", "det")              # running: start just attaches
    started.type(b"echo $x-$((2 + 3))\r")
    started.expect(b"kept-5\r\n")
    started.type(b"\x10\x11")
    assert started.wait() == 0
    assert b"escape" not in started.seen, started.seen
    assert status_of("det") == "running", (mini("logs", "det").stdout, mini("inspect", "det").stdout, started.seen)

    again = sessions("attach", "det")
    again.type(b"echo $x\r")
    again.expect(b"kept\r\n")
    again.type(b"exit 7\r")
    assert again.wait() == 7
    assert status_of("det") == "exited"
    assert mini("rm", "det").returncode == 0


def test_custom_detach_keys_and_a_partial_sequence_passes_through(sessions):
    s = sessions("run", "-it", "--detach-keys", "ctrl-a,a", "--name", "keys", "busybox",
                 "sh", "-c", "head -n1 | od -An -tx1; exec sleep 30")
    s.type(b"\x01b\r")                                      # ctrl-a, then not a: passed on
    s.expect(b"01 62 0a")
    s.type(b"\x01a")
    assert s.wait() == 0
    assert status_of("keys") == "running"
    assert mini("rm", "-f", "keys").returncode == 0


def counter(name: str) -> int:
    """The exec'd loop's count (0 if read between its truncation and its write)."""
    return int(mini("exec", name, "cat", "/dev/shm/n").stdout or 0)


def test_exec_it_detaches_with_its_keys_and_the_command_runs_on(sessions):
    """docker 20.10's exec -it: the detach keys (ctrl-p ctrl-q, or --detach-keys) end the client
    with `read escape sequence` and exit 1; the exec'd command runs on, its output still read
    (it neither blocks on a full pty nor gets SIGHUP); a bad sequence is the daemon's "escape"
    keys, after the container's own checks."""
    assert mini("run", "-d", "--name", "execdet", "busybox", "sleep", "300").returncode == 0
    s = sessions("exec", "-it", "execdet", "sh", "-c",
                 "echo ready; i=0; while true; do i=$((i+1)); echo $i > /dev/shm/n; echo line $i; done")
    s.expect(b"ready")
    s.type(b"\x10\x11")
    assert s.wait() == 1
    assert s.seen.endswith(b"read escape sequence\r\n")
    before = later = counter("execdet")
    deadline = time.monotonic() + 10
    while later <= before and time.monotonic() < deadline:
        time.sleep(0.2)
        later = counter("execdet")
    assert later > before                                   # it runs on, and is not blocked
    k = sessions("exec", "-it", "--detach-keys", "ctrl-a,a", "execdet", "sh", "-c",
                 "head -n1 | od -An -tx1; exec sleep 77")
    k.type(b"\x01b\r")                                      # a prefix, then not: passed on
    k.expect(b"01 62 0a")
    k.type(b"\x01a")
    assert k.wait() == 1 and b"read escape sequence" in k.seen
    deadline = time.monotonic() + 10                        # (sh execs sleep after od's line)
    while "sleep 77" not in mini("top", "execdet").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sleep 77" in mini("top", "execdet").stdout
    for args in (["-i"], ["-d"], []):
        bad = mini("exec", *args, "--detach-keys", "shift-a", "execdet", "true")
        assert (bad.returncode, bad.stdout, bad.stderr) == (
            1, "", "Error response from daemon: Invalid escape keys (shift-a) provided\n"), args
    missing = mini("exec", "--detach-keys", "shift-a", "nosuch", "true")
    assert (missing.returncode, missing.stderr) == (1, "Error: No such container: nosuch\n")
    assert mini("rm", "-f", "execdet").returncode == 0


def test_start_ai_reattaches_an_exited_interactive_container(sessions):
    s = sessions("run", "-it", "--name", "again", "busybox", "sh")
    s.expect(PROMPT)
    s.type(b"echo one > /f; exit 3\r")
    assert s.wait() == 3
    t = sessions("start", "-ai", "again")
    t.expect(PROMPT)
    t.type(b"cat /f\r")
    t.expect(b"one\r\n")
    t.type(b"exit 4\r")
    assert t.wait() == 4
    assert mini("inspect", "-f", "{{.State.ExitCode}}", "again").stdout == "4\n"
    assert mini("rm", "again").returncode == 0


def test_without_a_tty_streams_stay_apart_and_stdin_eof_reaches_the_process():
    result = subprocess.run(MINI + ["run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo err >&2; exit 3"],
                            input=b"hi\n\x10\x11\n", capture_output=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"hi\n\x10\x11\n", b"err\n")
    piped = subprocess.run(["sh", "-c", f"echo hi | {MINI[0]} run -i --rm busybox cat"],
                           capture_output=True, timeout=30)
    assert (piped.returncode, piped.stdout) == (0, b"hi\n")


def test_much_input_and_output_at_once_neither_waits_for_the_other():
    """`run -i cat` of 5 MB: the container's output comes back while we still send it input.
    (A CLI that blocked in sending, not reading, and a monitor that blocked sending it output
    waited for each other: 64 KiB came through, then the monitor dropped the client.)"""
    data = os.urandom(5_000_000)
    result = subprocess.run(MINI + ["run", "-i", "--rm", "busybox", "sh", "-c", "tee /dev/stderr"],
                            input=data, capture_output=True, timeout=120)
    assert (result.returncode, len(result.stdout), len(result.stderr)) == (0, len(data), len(data))
    assert result.stdout == data and result.stderr == data


def test_a_client_that_holds_a_once_stdin_takes_it_along_when_dropped():
    """docker closes a StdinOnce container's stdin when its attached client goes, however it
    goes: here dropped by the monitor (as when it stops reading), not by a half-close."""
    import socket

    from mini_runtime.attach import Clients

    read_end, write_end = os.pipe()
    ours, theirs = socket.socketpair()
    clients = Clients(tty=False, stdin=write_end, once=True)
    clients.add(theirs, wants_stdin=True)
    clients.drop(theirs)
    assert os.read(read_end, 10) == b"" and clients.stdin == -1      # EOF: the write end is closed
    os.close(read_end)
    ours.close()


def test_a_client_dropped_while_its_input_is_ready_does_not_end_the_monitor():
    """One pass of the monitor's select() can find a client's socket readable and the container's
    output ready: the output, sent first, drops a client that has gone, and the read that follows
    must not fail on it (an exception ends the monitor, and the container with it: 137)."""
    import socket

    from mini_runtime.attach import Clients

    read_end, write_end = os.pipe()
    ours, theirs = socket.socketpair()
    clients = Clients(tty=False, stdin=write_end, once=True)
    clients.add(theirs, wants_stdin=True)
    ours.sendall(b"hi\n")
    ours.close()                                        # the client has gone
    ready = clients.readers()
    assert ready == [theirs]
    clients.output("stdout", b"out\n")                 # EPIPE: dropped, its stdin closed
    for conn in ready:
        clients.read_from(conn)
    assert clients.inputs == [] and clients.stdin == -1
    assert os.read(read_end, 10) == b""
    os.close(read_end)


MALFORMED = [b"[1]\n", b"1\n", b'"attach"\n', b"\xff\n", b"{bad\n", b"", b'{"op": "attach"',
             b'{"op": "attach", "streams": 5}\n', b'{"op": "attach", "streams": [["stdout"]]}\n',
             b'{"op": "attach", "streams": ["stdin"]}\n', b'{"op": "kill", "signal": [1]}\n',
             b'{"op": "kill", "signal": "x"}\n', b'{"op": "resize", "h": "x", "w": 1}\n',
             b'{"op": "resize", "h": 100000, "w": -1}\n', b'{"op": 7}\n']


@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
def test_a_monitor_outlives_malformed_requests(tty):
    """Its init dies with it (PR_SET_PDEATHSIG), so a monitor must outlive whatever a client
    sends: each request here once ended it, created (setup phase) or running (serve phase)."""
    import socket

    from mini_runtime import container, monitor

    cid = mini("create", *(["-t"] if tty else []), "busybox", "sleep", "1000").stdout.strip()
    try:
        for phase in ("created", "running"):
            for request in MALFORMED:
                fd, path = monitor.socket_path(str(container.run_dir(cid)))
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(path)
                    sock.sendall(request)
                    sock.shutdown(socket.SHUT_WR)
                    sock.settimeout(10)
                    while sock.recv(4096):
                        pass                            # its answer, if any, then its close
                os.close(fd)
                assert status_of(cid) == phase, (phase, request)
            if phase == "created":
                assert mini("start", cid).returncode == 0
        assert mini("exec", cid, "true").returncode == 0
    finally:
        mini("rm", "-f", cid)


def test_create_i_then_start_ai_ends_at_the_end_of_its_input():
    """docker's CLI gives `create -i` a StdinOnce stdin, as `run -i` (only -d does not attach):
    the attached client's EOF closes the container's stdin, so `cat` ends. (mini made it
    StdinOnce for run only; `start -ai` of piped input waited for ever.) AttachStdout and
    AttachStderr are docker's too: true unless -d (mini's were always false)."""
    cid = mini("create", "-i", "busybox", "cat").stdout.strip()
    config = json.loads(mini("inspect", "-f", "{{json .Config}}", cid).stdout)
    assert (config["OpenStdin"], config["StdinOnce"], config["AttachStdin"]) == (True, True, True)
    assert (config["AttachStdout"], config["AttachStderr"]) == (True, True)  # (docker's, not -d)
    started = mini("start", "-ai", cid, input="hi\n", timeout=20)
    assert (started.returncode, started.stdout, started.stderr) == (0, "hi\n", "")
    assert mini("rm", cid).returncode == 0
    detached = mini("run", "-di", "busybox", "cat").stdout.strip()
    config = json.loads(mini("inspect", "-f", "{{json .Config}}", detached).stdout)
    assert (config["OpenStdin"], config["StdinOnce"], config["AttachStdin"]) == (True, False, False)
    assert (config["AttachStdout"], config["AttachStderr"]) == (False, False)
    assert mini("rm", "-f", detached).returncode == 0


def test_attach_before_start_loses_no_output():
    for n in range(3):
        cid = mini("create", "busybox", "echo", f"x{n}").stdout.strip()
        started = mini("start", "-a", cid)
        assert (started.returncode, started.stdout, started.stderr) == (0, f"x{n}\n", "")
        assert mini("rm", cid).returncode == 0
    cid = mini("create", "busybox", "sh", "-c", "echo out; echo err >&2; exit 9").stdout.strip()
    started = mini("start", "-a", cid)
    assert (started.returncode, started.stdout, started.stderr) == (9, "out\n", "err\n")
    again = mini("start", "-a", cid)                        # exited: attached to its next run
    assert (again.returncode, again.stdout, again.stderr) == (9, "out\n", "err\n")
    assert mini("rm", cid).returncode == 0


def test_window_size_and_a_resize_reach_the_container(sessions):
    s = sessions("run", "-it", "--rm", "busybox", "sh", rows=31, columns=97)
    s.expect(PROMPT)
    s.type(b"stty size\r")
    s.expect(b"31 97\r\n")
    s.resize(40, 120)
    time.sleep(0.3)                                         # (SIGWINCH, then a request)
    s.type(b"stty size\r")
    s.expect(b"40 120\r\n")
    s.type(b"exit\r")
    assert s.wait() == 0


def test_a_killed_container_restores_the_terminal(sessions):
    s = sessions("run", "-it", "--name", "victim", "busybox", "sh")
    before = s.attrs()
    s.expect(PROMPT)
    assert mini("kill", "victim").returncode == 0
    assert s.wait() == 137
    assert s.attrs() == before
    assert mini("rm", "victim").returncode == 0


def test_a_signal_to_the_cli_restores_the_terminal_and_the_container_runs_on(sessions):
    s = sessions("run", "-it", "--name", "orphan", "busybox", "sh")
    before = s.attrs()
    s.expect(PROMPT)
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait() == 128 + signal.SIGTERM
    assert s.attrs() == before
    assert status_of("orphan") == "running"
    assert mini("rm", "-f", "orphan").returncode == 0


def test_a_sigkilled_attached_cli_leaves_the_container_running_and_consistent(sessions):
    s = sessions("run", "-it", "--name", "cut", "busybox", "sh")
    s.expect(PROMPT)
    os.kill(s.pid, signal.SIGKILL)
    os.waitpid(s.pid, 0)
    assert status_of("cut") == "running"
    back = sessions("attach", "cut")                       # still served, still typing
    back.type(b"echo alive\r")
    back.expect(b"alive\r\n")
    back.type(b"exit 2\r")
    assert back.wait() == 2
    assert status_of("cut") == "exited"
    assert mini("rm", "cut").returncode == 0


def test_bad_detach_keys_say_docker_s_message_and_create_nothing():
    before = mini("ps", "-aq", "--no-trunc").stdout
    bad = mini("run", "-i", "--detach-keys", "shift-a", "busybox", "true")  # (-it: not a TTY first)
    assert (bad.returncode, bad.stdout, bad.stderr) == (125, "", "mini: Invalid detach keys (shift-a) provided\n")
    assert mini("ps", "-aq", "--no-trunc").stdout == before
    cid = mini("create", "busybox", "true").stdout.strip()
    refused = mini("start", "-a", "--detach-keys", "ctrl-", cid)
    assert (refused.returncode, refused.stderr) == (1, "mini: Invalid detach keys (ctrl-) provided\n")
    assert status_of(cid) == "created"
    assert mini("rm", cid).returncode == 0


def catches(pid: int, sig: int) -> bool:
    """Has process `pid` a handler for `sig` (SigCgt of /proc/PID/status)?"""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(mask >> (sig - 1) & 1)


def test_attach_passes_signals_on_unless_sig_proxy_is_false():
    """docker's attach without a tty: a signal to the client is the container's (its trap
    decides, and attach exits with its code); `--sig-proxy=false` lets the client die alone.
    (mini's attach died of SIGTERM and left the container running.)"""
    trap = 'trap "echo got; exit 3" TERM; echo ready; while :; do sleep 0.1; done'
    for flags, code, left in (([], 3, "exited 3"), (["--sig-proxy=false"], -signal.SIGTERM, "running 0")):
        cid = mini("run", "-d", "busybox", "sh", "-c", trap).stdout.strip()
        try:
            deadline = time.monotonic() + 10
            while "ready" not in mini("logs", cid).stdout and time.monotonic() < deadline:
                time.sleep(0.05)
            client = subprocess.Popen(MINI + ["attach", *flags, cid], stdout=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 10                # (attached: its handler is set, or
            while time.monotonic() < deadline and not (     # a while for the one it will not set)
                    catches(client.pid, signal.SIGTERM) or flags and time.monotonic() > deadline - 9):
                time.sleep(0.02)
            client.send_signal(signal.SIGTERM)
            out, _ = client.communicate(timeout=10)
            assert client.returncode == code and ("got" in out) == (not flags), (client.returncode, out)
            if not flags:
                mini("wait", cid)
            assert mini("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid).stdout == left + "\n"
        finally:
            mini("rm", "-f", cid)


def test_attach_to_a_stopped_container_is_refused():
    cid = mini("create", "busybox", "true").stdout.strip()
    refused = mini("attach", cid)
    assert (refused.returncode, refused.stderr) == (
        1, "mini: You cannot attach to a stopped container, start it first\n")
    assert mini("rm", cid).returncode == 0


def test_the_pty_is_the_container_s_own(sessions):
    """As runc's: the init opens the container's /dev/ptmx, so `tty` names /dev/pts/0 of the
    container's devpts, which holds no pty of the host; an exec -it gets the next one."""
    s = sessions("run", "-it", "--name", "ownpty", "busybox", "sh")
    s.expect(PROMPT)
    s.type(b"tty; echo $(ls /dev/pts) end\r")
    assert b"/dev/pts/0\r\n0 ptmx end\r\n" in s.expect(PROMPT)
    e = sessions("exec", "-it", "ownpty", "sh")
    e.expect(PROMPT)
    e.type(b"tty; echo $(ls /dev/pts) end; exit 3\r")
    assert e.wait() == 3
    assert b"/dev/pts/1\r\n0 1 ptmx end\r\n" in e.seen
    s.type(b"exit\r")
    assert s.wait() == 0
    assert mini("rm", "ownpty").returncode == 0


def test_a_tty_gives_term_xterm_as_docker_s_unless_given():
    """docker gives a -t container TERM=xterm (run's, as exec's), kept out of Config.Env; an
    -e TERM or the image's wins. (mini's run -t had no TERM: `clear`, `top`, `vi` complained.)"""
    ran = mini("run", "--rm", "-t", "busybox", "sh", "-c", "echo $TERM")
    assert ran.stdout.rstrip() == "xterm"
    assert mini("run", "--rm", "-t", "-e", "TERM=vt100", "busybox", "sh", "-c", "echo $TERM").stdout.rstrip() == "vt100"
    assert mini("run", "--rm", "busybox", "sh", "-c", "echo ${TERM-none}").stdout == "none\n"
    cid = mini("create", "-t", "busybox").stdout.strip()
    env = json.loads(mini("inspect", "-f", "{{json .Config.Env}}", cid).stdout)
    assert [item for item in env if item.startswith("TERM=")] == []
    assert mini("rm", cid).returncode == 0


def test_stdin_that_is_not_a_terminal_cannot_drive_a_pty():
    """docker's CheckTty: `run -it`, `exec -it` and `attach` (to a -t container) refuse a piped
    stdin with exit 1 and create nothing; -t alone, -d, and `attach --no-stdin` are fine."""
    def piped(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(MINI + list(args), input="echo hi\n", capture_output=True, text=True,
                              timeout=30)

    refused = (1, "", "mini: the input device is not a TTY\n")
    before = mini("ps", "-aq", "--no-trunc").stdout
    ran = piped("run", "-it", "--rm", "busybox", "sh")
    assert (ran.returncode, ran.stdout, ran.stderr) == refused
    assert mini("ps", "-aq", "--no-trunc").stdout == before
    cid = mini("run", "-dit", "busybox", "sh", "-c", "sleep 2; echo bye").stdout.strip()
    try:
        ex = piped("exec", "-it", cid, "sh")
        assert (ex.returncode, ex.stdout, ex.stderr) == refused
        missing = piped("exec", "-it", "no-such-box", "sh")  # (a missing container says so first)
        assert (missing.returncode, missing.stderr) == (1, "Error: No such container: no-such-box\n")
        assert piped("exec", "-t", cid, "true").returncode == 0
        at = piped("attach", cid)
        assert (at.returncode, at.stdout, at.stderr) == refused
        quiet = piped("attach", "--no-stdin", cid)
        assert (quiet.returncode, quiet.stdout) == (0, "bye\n")     # (text mode: \r\n read as \n)
    finally:
        assert mini("rm", "-f", cid).returncode == 0
