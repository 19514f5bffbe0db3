"""Chapter 06's flags of `run` and `create`, end to end as root: --stop-signal and
--stop-timeout (what `stop` and `restart` do without -t), --cidfile."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from conftest import mini

pytestmark = [pytest.mark.root, pytest.mark.integration]

#: A PID 1 shell that says how it was asked to stop: exit 3 on SIGUSR1, 6 on SIGTERM.
TRAPS = ('trap "echo got USR1; exit 3" USR1; trap "exit 6" TERM; echo ready; '
         'while true; do sleep 0.1; done')


def run_d(*args: str) -> str:
    result = mini("run", "-d", *args)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.strip()


def inspect(name: str, field: str):
    result = mini("inspect", "-f", "{{json " + field + "}}", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ready(name: str, times: int = 1) -> None:
    deadline = time.monotonic() + 10
    while mini("logs", name).stdout.count("ready") < times:
        assert time.monotonic() < deadline, "the shell never set its traps"
        time.sleep(0.1)


def container_count() -> int:
    return len(mini("ps", "-aq").stdout.split())


def test_stop_signal_is_recorded_and_stop_and_restart_send_it():
    cid = run_d("--stop-signal", "SIGUSR1", "busybox", "sh", "-c", TRAPS)
    try:
        assert inspect(cid, ".Config.StopSignal") == "SIGUSR1"
        ready(cid)
        assert mini("stop", cid).returncode == 0
        assert inspect(cid, ".State.ExitCode") == 3        # its handler of USR1: not TERM's 6
        assert mini("start", cid).returncode == 0
        ready(cid, 2)
        assert mini("restart", cid).returncode == 0        # restart stops it the same way
        assert mini("logs", cid).stdout.count("got USR1") == 2
        assert mini("stop", "-t", "5", cid).returncode == 0
        assert inspect(cid, ".State.ExitCode") == 3
    finally:
        mini("rm", "-f", cid)


def test_a_numbered_stop_signal_and_create_take_it_too():
    created = mini("create", "--stop-signal", "10", "busybox", "sh", "-c", TRAPS)
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        assert inspect(cid, ".Config.StopSignal") == "10"  # as given, as docker's record keeps it
        assert mini("start", cid).returncode == 0
        ready(cid)
        assert mini("stop", cid).returncode == 0
        assert inspect(cid, ".State.ExitCode") == 3
    finally:
        mini("rm", "-f", cid)


def test_stop_timeout_is_recorded_and_used_without_t():
    """A PID 1 without a TERM handler ignores SIGTERM: only the SIGKILL ends it, after the
    container's --stop-timeout (1 s), not docker's default 10."""
    cid = run_d("--stop-timeout", "1", "busybox", "sleep", "300")
    try:
        assert inspect(cid, ".Config.StopTimeout") == 1
        began = time.monotonic()
        assert mini("restart", cid).returncode == 0
        assert inspect(cid, ".State.Running") is True
        assert mini("stop", cid).returncode == 0
        assert time.monotonic() - began < 8                # two waits of 1 s, not of 10
        assert inspect(cid, ".State.ExitCode") == 137      # ended by the SIGKILL
    finally:
        mini("rm", "-f", cid)


def test_without_the_flags_the_record_has_neither():
    cid = run_d("busybox", "true")
    try:
        config = inspect(cid, ".Config")
        assert "StopSignal" not in config and "StopTimeout" not in config
        assert inspect(cid, ".HostConfig.ContainerIDFile") == ""
    finally:
        mini("rm", "-f", cid)


def test_a_stop_signal_past_linuxs_is_kept_as_docker_keeps_it_and_stop_kills():
    """docker's create checks --stop-signal with ParseSignal only (any number but 0): 65 is kept
    as given; its stop cannot send it, and kills (137), as it does for a program that ignores
    the signal. (The oracle: dockerd 20.10, `create --stop-signal 65`, then `stop`: 137.)"""
    for signal in ("65", "255", "-1"):
        created = mini("create", "--stop-signal", signal, "busybox", "true")
        assert created.returncode == 0, created.stderr
        try:
            assert inspect(created.stdout.strip(), ".Config.StopSignal") == signal
        finally:
            mini("rm", "-f", created.stdout.strip())
    cid = run_d("--stop-signal", "65", "busybox", "sh", "-c", TRAPS)
    try:
        ready(cid)
        started = time.monotonic()
        assert mini("stop", "-t", "30", cid).returncode == 0
        assert inspect(cid, ".State.ExitCode") == 137 and time.monotonic() - started < 10
    finally:
        mini("rm", "-f", cid)


@pytest.mark.parametrize("signal", ["BOGUS", "0", "SIGRTMIN+16", "+0", "9x"])
def test_a_bad_stop_signal_is_refused_at_create(signal):
    before = container_count()
    for command, code in (("run", 125), ("create", 1)):     # (the daemon's refusal: create's is 1)
        result = mini(command, "--stop-signal", signal, "busybox", "true")
        assert (result.returncode, result.stdout) == (code, "")
        assert result.stderr == f"mini: Invalid signal: {signal}\n"
    assert container_count() == before


@pytest.mark.parametrize("value, why", [("x", "invalid syntax"), ("1.5", "invalid syntax"),
                                        ("9223372036854775808", "value out of range")])
def test_a_bad_stop_timeout_is_refused_in_pflags_words(value, why):
    result = mini("run", "--stop-timeout", value, "busybox", "true")
    assert result.returncode == 125
    assert result.stderr.startswith(f'mini: invalid argument "{value}" for "--stop-timeout" flag: '
                                    f'strconv.ParseInt: parsing "{value}": {why}')


def test_cidfile_holds_the_id_and_is_recorded(tmp_path: Path):
    detached, foreground = tmp_path / "detached.cid", tmp_path / "foreground.cid"
    cid = run_d("--cidfile", str(detached), "busybox", "true")
    ran = mini("run", "--cidfile", str(foreground), "busybox", "echo", "hi")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "hi\n", "")
    other = foreground.read_text()
    try:
        assert detached.read_text() == cid                 # the whole id, no newline (docker's)
        assert re.fullmatch(r"[0-9a-f]{64}", other) and other != cid
        assert inspect(cid, ".HostConfig.ContainerIDFile") == str(detached)
        assert inspect(other, ".Config.Cmd") == ["echo", "hi"]
    finally:
        mini("rm", "-f", cid, other)
    assert detached.exists()                               # rm leaves it, as docker's does


def test_an_existing_cidfile_is_refused_and_nothing_is_created(tmp_path: Path):
    path = tmp_path / "web.cid"
    path.write_text("the other one")
    before = container_count()
    for command, code in (("run", 125), ("create", 1)):
        result = mini(command, "-d" if command == "run" else "-i", "--cidfile", str(path), "busybox", "true")
        assert (result.returncode, result.stdout) == (code, "")
        assert result.stderr == ("mini: container ID file found, make sure the other container isn't "
                                 f"running or delete {path}\n")
    assert path.read_text() == "the other one"
    assert container_count() == before


def test_a_cidfile_that_cannot_be_made_or_a_failed_create_leaves_nothing(tmp_path: Path):
    missing = tmp_path / "no" / "such.cid"
    before = container_count()
    result = mini("run", "--cidfile", str(missing), "busybox", "true")
    assert result.returncode == 127                        # docker's: its text says "no such file"
    assert result.stderr == (f"mini: failed to create the container ID file: open {missing}: "
                             "no such file or directory\n")
    path = tmp_path / "bad.cid"
    for args in (["busybox", "/no/such/command"], ["no-such-image:1"], ["-w", "relative", "busybox", "true"]):
        result = mini("create", "--cidfile", str(path), *args)
        if result.returncode == 0:                         # (a command not found: start's failure)
            assert path.read_text() == result.stdout.strip()
            mini("rm", result.stdout.strip())
            path.unlink()
            continue
        assert not path.exists(), args                     # the create failed: no file either
    assert container_count() == before


# --- -a/--attach: only the named streams are the client's --------------------------------------

OUT_AND_ERR = "echo out; echo err >&2"


@pytest.mark.parametrize("flags, out, err", [(["-a", "stdout"], "out\n", ""), (["-a", "STDERR"], "", "err\n"),
                                             (["-a", "stdout", "-a", "stderr"], "out\n", "err\n")])
def test_attach_shows_only_the_named_streams_and_logs_all(flags, out, err):
    for interactive in ([], ["-i"]):                       # (a monitor of its own with -i)
        ran = mini("run", "--name", "streams", *interactive, *flags, "busybox", "sh", "-c", OUT_AND_ERR,
                   input="")
        try:
            assert (ran.returncode, ran.stdout, ran.stderr) == (0, out, err)
            assert sorted(mini("logs", "streams").stdout.split() + mini("logs", "streams").stderr.split()) \
                == ["err", "out"]                          # the log has both
            shown = inspect("streams", ".Config")
            assert (shown["AttachStdout"], shown["AttachStderr"]) == (bool(out), bool(err))
        finally:
            mini("rm", "-f", "streams")


def test_attach_stdin_alone_prints_the_id_feeds_stdin_and_does_not_wait():
    ran = mini("run", "-a", "stdin", "-i", "busybox", "sh", "-c", "cat; echo err >&2; exit 3", input="hi\n")
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr    # not the container's 3: docker's
    cid = ran.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), ran.stdout
    try:
        assert mini("wait", cid).stdout == "3\n"
        logged = mini("logs", cid)
        assert (logged.stdout, logged.stderr) == ("hi\n", "err\n")
        config = inspect(cid, ".Config")
        assert [config[k] for k in ("AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce")] == \
            [True, False, False, True]
    finally:
        mini("rm", "-f", cid)


def test_attach_is_recorded_by_create_and_refused_with_d_or_a_bad_stream():
    created = mini("create", "-a", "stdout", "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        config = inspect(cid, ".Config")
        assert [config[k] for k in ("AttachStdin", "AttachStdout", "AttachStderr")] == [False, True, False]
    finally:
        mini("rm", cid)
    before = container_count()
    conflict = mini("run", "-d", "-a", "stdout", "busybox", "true")
    assert (conflict.returncode, conflict.stdout, conflict.stderr) == \
        (1, "", "mini: Conflicting options: -a and -d\n")
    for command in ("run", "create"):
        bad = mini(command, "-a", "bogus", "busybox", "true")
        assert bad.returncode == 125
        assert bad.stderr.startswith('mini: invalid argument "bogus" for "-a, --attach" flag: '
                                     "valid streams are STDIN, STDOUT and STDERR")
    assert container_count() == before
