"""The seed's walkthrough (issue 11), end to end, typed as a user types it at a terminal: one
interactive container detached and attached again, `ps` in its four forms, `inspect`, a name
taken twice, `start -ai`, then the looping container of docker's docs with `logs -tf --tail 0`,
`top`, `exec -it`, `pause`/`unpause`, `stop`, `rm` and `rm -f`."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from conftest import MINI, mini
from test_terminal import PROMPT, Session

pytestmark = [pytest.mark.root, pytest.mark.integration]

LOOP = "while true; do echo hello world; sleep 1; done"
STAMPED = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9})Z hello world")


def ps(*flags: str) -> list[str]:
    return mini("ps", *flags).stdout.splitlines()


def until(done, what: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not (result := done()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def test_the_seed_walkthrough_as_a_user_types_it():
    # run -it: a shell that answers; ctrl-p ctrl-q leaves it running
    shell = Session("run", "-it", "--name", "walk", "busybox", "sh")
    try:
        shell.expect(PROMPT)
        shell.type(b"echo $((6 * 7))\r")
        shell.expect(b"42")
        shell.expect(PROMPT)
        shell.type(b"\x10\x11")
        assert shell.wait() == 0                        # detached: docker's exit 0
        walk = json.loads(mini("inspect", "walk").stdout)[0]
        assert walk["State"]["Status"] == "running" and walk["Config"]["Tty"] is True
        short = walk["Id"][:12]
        assert short in mini("ps", "-q").stdout.split()
        assert ps()[0].split()[:1] == ["CONTAINER"] and any(line.startswith(short) for line in ps())
        assert ps("-l")[1].startswith(short) and ps("-a")[0].split() == ps()[0].split()

        # the same name again: docker's conflict, the first untouched
        again = mini("run", "--name", "walk", "busybox", "true")
        assert again.returncode == 125
        assert again.stderr == (f'mini: Conflict. The container name "/walk" is already in use by container '
                                f'"{walk["Id"]}". You have to remove (or rename) that container to be able to '
                                "reuse that name.\n")
        assert json.loads(mini("inspect", "walk").stdout)[0]["State"]["Pid"] == walk["State"]["Pid"]

        # attach: the same shell; `exit 3` ends the container with 3
        back = Session("attach", "walk")
        back.type(b"\r")
        back.expect(PROMPT)
        back.type(b"echo again\r")
        back.expect(b"again")
        back.type(b"exit 3\r")
        assert back.wait() == 3
        assert json.loads(mini("inspect", "walk").stdout)[0]["State"]["ExitCode"] == 3

        # start -ai: the exited interactive container, reattached
        restarted = Session("start", "-ai", "walk")
        restarted.type(b"\r")
        restarted.expect(PROMPT)
        restarted.type(b"exit 0\r")
        assert restarted.wait() == 0
    finally:
        mini("rm", "-f", "walk")

    # run -d: the id at once; logs -tf --tail 0 shows only what comes after
    started = mini("run", "-d", "--name", "looper", "busybox", "sh", "-c", LOOP)
    try:
        assert started.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", started.stdout)
        until(lambda: mini("logs", "looper").stdout.count("hello world") >= 2, "two lines of log")
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        follow = subprocess.Popen(MINI + ["logs", "-tf", "--tail", "0", "looper"], stdout=subprocess.PIPE)
        try:
            lines = [follow.stdout.readline() for _ in range(2)]
        finally:
            follow.kill()
            follow.wait()
        stamps = [STAMPED.match(line) for line in lines]
        assert all(stamps), lines
        assert all(m.group(1).decode()[:19] >= since for m in stamps), (since, lines)  # only new lines
        following = Session("logs", "-tf", "--tail", "0", "looper")   # as a user ends it: ctrl-C
        following.expect(b"hello world")
        following.type(b"\x03")                         # (the pty's line discipline: SIGINT)
        assert following.wait() == 130 and b"Traceback" not in following.seen, following.seen
        assert json.loads(mini("inspect", "looper").stdout)[0]["State"]["Running"]   # it runs on

        top = mini("top", "looper").stdout.splitlines()
        assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert any("while true" in line for line in top[1:]), top

        inside = Session("exec", "-it", "looper", "sh")
        inside.expect(PROMPT)
        inside.type(b"ps -o pid,args | grep -v grep | grep 'while true'; echo END$((1 + 1))\r")
        assert re.search(rb"\n\s*1 sh -c while true", inside.expect(b"END2")), inside.seen
        inside.type(b"exit 5\r")
        assert inside.wait() == 5

        # pause: the counter of log lines stops, and goes on after unpause
        assert mini("pause", "looper").returncode == 0
        frozen = mini("logs", "looper").stdout.count("\n")
        time.sleep(2.5)
        assert mini("logs", "looper").stdout.count("\n") == frozen
        assert "(Paused)" in next(line for line in ps() if "looper" in line)
        assert mini("unpause", "looper").returncode == 0
        until(lambda: mini("logs", "looper").stdout.count("\n") > frozen, "the counter to go on")

        # stop: sh as PID 1 ignores SIGTERM, SIGKILL after -t; then rm
        assert mini("stop", "-t", "1", "looper").stdout == "looper\n"
        assert re.search(r"Exited \(137\) .* ago", next(line for line in ps("-a") if "looper" in line))
        assert mini("rm", "looper").stdout == "looper\n"
    finally:
        mini("rm", "-f", "looper")

    # rm -f of a running container
    assert mini("run", "-d", "--name", "gone", "busybox", "sleep", "60").returncode == 0
    assert mini("rm", "gone").returncode == 1
    assert mini("rm", "-f", "gone").stdout == "gone\n"
    assert mini("inspect", "gone").returncode == 1
