"""Chapter 06, as root, on real containers: `exec` (nsenter.py), `stats`, `port`, and diff, export
and commit of a running container."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import MINI, mini

pytestmark = [pytest.mark.root, pytest.mark.integration]

KINDS = ("mnt", "pid", "net", "ipc", "uts", "cgroup")
STATS_HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


def run_d(*args: str) -> str:
    result = mini("run", "-d", *args)
    assert result.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", result.stdout), result.stderr
    return result.stdout.strip()


def until(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def init_pid(cid: str) -> int:
    return int(mini("inspect", "-f", "{{.State.Pid}}", cid).stdout)


def cgroup_procs(cid: str) -> set[int]:
    """The container's cgroup.procs, read from the files (v2: unified; v1: the pids hierarchy)."""
    root, parent = Path("/sys/fs/cgroup"), os.environ["MINI_CGROUP_PARENT"]
    unified = root / parent / cid
    path = unified if (root / "cgroup.controllers").exists() else root / "pids" / parent / cid
    return {int(p) for p in (path / "cgroup.procs").read_text().split()}


def host_pids_of(cid: str, command: str) -> list[int]:
    """Host pids, in the container's cgroup, whose command line is `command`."""
    found = []
    for pid in cgroup_procs(cid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] == command.encode().split():
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.fixture
def box():
    """A running container (sh as PID 1, a loop), removed afterwards."""
    cid = run_d("--name", "box", "-e", "FROM_RUN=yes", "-w", "/srv", "busybox",
                "sh", "-c", "while true; do sleep 1; done")
    yield cid
    assert mini("rm", "-f", cid).returncode == 0


def test_exec_joins_the_containers_pid_1_namespaces_and_cgroup(box):
    ps = mini("exec", "box", "ps", "-o", "pid,args")
    assert ps.returncode == 0, ps.stderr
    assert ps.stdout.splitlines()[1].split(None, 1) == ["1", "sh -c while true; do sleep 1; done"]
    script = "for n in " + " ".join(KINDS) + "; do readlink /proc/self/ns/$n; done"
    inside = mini("exec", "box", "sh", "-c", script).stdout.split()
    pid = init_pid(box)
    assert inside == [os.readlink(f"/proc/{pid}/ns/{kind}") for kind in KINDS]
    assert inside != [os.readlink(f"/proc/self/ns/{kind}") for kind in KINDS]
    own, init = mini("exec", "box", "sh", "-c", "cat /proc/self/cgroup; echo; cat /proc/1/cgroup").stdout.split("\n\n")
    assert own.strip() == init.strip()
    # The exec'd process itself is in the container's cgroup.procs (by host pid).
    started = mini("exec", "-d", "box", "sleep", "300")
    assert (started.returncode, started.stdout) == (0, "")
    exec_pid = until(lambda: host_pids_of(box, "sleep 300"), what="the exec'd sleep")[0]
    assert exec_pid in cgroup_procs(box)
    assert os.readlink(f"/proc/{exec_pid}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")


def test_exec_environment_workdir_and_user(box):
    result = mini("exec", "box", "sh", "-c", "echo $FROM_RUN; pwd; id -u")
    assert result.stdout.split() == ["yes", "/srv", "0"]       # the container's env, -w and user
    result = mini("exec", "-e", "FOO=bar", "-e", "FROM_RUN=overridden", "-w", "/tmp", "-u", "nobody",
                  "box", "sh", "-c", "echo $FOO $FROM_RUN; pwd; id -u; id -g")
    assert result.stdout.split() == ["bar", "overridden", "/tmp", "65534", "65534"], result.stderr
    numeric = mini("exec", "-u", "1234:5678", "box", "sh", "-c", "id -u; id -g")
    assert numeric.stdout.split() == ["1234", "5678"], numeric.stderr
    # The supplementary groups too, as docker's exec sets them (mini left the host's, or none).
    assert mini("exec", "box", "id").stdout == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert mini("exec", "-u", "nobody", "box", "id").stdout.endswith(" groups=65534(nogroup)\n")


def test_exec_exit_codes_as_docker(box):
    assert mini("exec", "box", "sh", "-c", "exit 7").returncode == 7
    assert mini("exec", "box", "sh", "-c", "kill -9 $$").returncode == 137
    # docker 20.10's exec exits 126 for any command that cannot start, a missing one too (run's
    # is 127): `docker exec c nosuch; echo $?` says 126. (mini said 127.)
    missing = mini("exec", "box", "nosuch")
    assert (missing.returncode, missing.stderr) == (126, 'mini: exec: "nosuch": executable file not found in $PATH\n')
    nowhere = mini("exec", "-t", "box", "/nosuch/cmd")
    assert (nowhere.returncode, nowhere.stderr) == (126, 'mini: exec: "/nosuch/cmd": no such file or directory\n')
    denied = mini("exec", "box", "/etc/passwd")
    assert (denied.returncode, denied.stderr) == (126, 'mini: exec: "/etc/passwd": permission denied\n')
    nowhere = mini("exec", "-w", "/nowhere", "box", "pwd")
    assert nowhere.returncode == 126 and 'chdir to cwd ("/nowhere")' in nowhere.stderr
    nobody = mini("exec", "-u", "nosuchuser", "box", "id")
    assert nobody.returncode == 126 and "unable to find user nosuchuser" in nobody.stderr
    for where in ("tmp", ".", "../tmp"):        # docker 20.10: runc's refusal at the start, 126
        relative = mini("exec", "-w", where, "box", "pwd")
        assert (relative.returncode, relative.stdout) == (126, "")
        assert relative.stderr.startswith("mini: exec failed: Cwd must be an absolute path"), relative.stderr
    nameless = mini("exec", "-e", "=x", "box", "true")
    assert (nameless.returncode, nameless.stderr) == (
        125, 'mini: invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x\n')


def test_exec_env_file_then_e_and_a_missing_file_is_1(box, tmp_path):
    env_file = tmp_path / "exec.env"
    env_file.write_text("FROM_FILE=one two\nFROM_RUN=file\n# FROM_COMMENT=x\n")
    result = mini("exec", "--env-file", str(env_file), "-e", "FROM_RUN=flag", "box", "env")
    assert result.returncode == 0, result.stderr
    assert {"FROM_FILE=one two", "FROM_RUN=flag"} <= set(result.stdout.splitlines())
    assert "FROM_COMMENT" not in result.stdout
    missing = mini("exec", "--env-file", str(tmp_path / "nosuch.env"), "box", "env")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1, "", f"mini: open {tmp_path / 'nosuch.env'}: no such file or directory\n")


#: What a plain `mini exec` never needs: run's flags, the pipeline that makes a container, the
#: image store, the network's netlink and nftables, and the standard library's heavy modules.
NOT_ON_THE_EXEC_PATH = {"argparse", "typing", "shutil", "subprocess", "threading", "hashlib", "tarfile",
                        "locale", "tempfile", "mini_runtime.cli.run", "mini_runtime.cli.netflags",
                        "mini_runtime.cli.limits", "mini_runtime.cli.formatting", "mini_runtime.runtime",
                        "mini_runtime.foreground", "mini_runtime.image.store", "mini_runtime.network.nat",
                        "mini_runtime.network.networks", "nftables", "mini_runtime.logs"}


@pytest.mark.parametrize("flags", [[], ["-e", "X=1", "-w", "/tmp", "-u", "nobody"]])
def test_a_plain_exec_imports_nothing_it_does_not_need(box, flags):
    """As run's (test_run.py): a module imported by the way costs every exec, and `make bench`
    compares exec with runc's. The flags that run shares with exec (-e, --env-file) are in
    cli/envfiles.py, not in run's module, which imports run's whole flag set."""
    import sys

    done = subprocess.run([sys.executable, "-S", "-X", "importtime", *MINI, "exec", *flags, "box", "true"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "imported package" not in line}
    assert "mini_runtime.nsenter" in imported           # (it did go through exec's path)
    assert imported & NOT_ON_THE_EXEC_PATH == set()


def test_exec_environment_is_dockers_path_hostname_then_home(box):
    lines = mini("exec", "-u", "nobody", "box", "env").stdout.splitlines()
    assert lines == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     f"HOSTNAME={box[:12]}", "FROM_RUN=yes", "HOME=/home"]


def test_exec_stdin_only_with_i_and_detached(box):
    assert mini("exec", "-i", "box", "cat", input="hi\n").stdout == "hi\n"
    assert mini("exec", "box", "cat", input="hi\n").stdout == ""          # stdin: /dev/null
    detached = mini("exec", "-d", "box", "sh", "-c", "sleep 0.2; echo done > /marker")
    assert (detached.returncode, detached.stdout, detached.stderr) == (0, "", "")
    until(lambda: mini("exec", "box", "cat", "/marker").stdout == "done\n", what="the detached exec")


def test_exec_into_a_stopped_or_paused_container_is_refused():
    cid = run_d("--name", "halted", "busybox", "sh", "-c", "while true; do sleep 1; done")
    assert mini("pause", "halted").returncode == 0
    paused = mini("exec", "halted", "true")
    assert (paused.returncode, paused.stderr) == (
        1, "Error response from daemon: Container halted is paused, unpause the container before exec\n")
    assert mini("unpause", "halted").returncode == 0
    assert mini("stop", "-t", "0", "halted").returncode == 0
    stopped = mini("exec", "halted", "true")
    assert (stopped.returncode, stopped.stderr) == (1, f"Error response from daemon: Container {cid} is not running\n")
    nothing = mini("exec", "nosuchcontainer", "true")
    assert (nothing.returncode, nothing.stderr) == (1, "Error: No such container: nosuchcontainer\n")
    assert mini("rm", cid).returncode == 0


def test_a_recycled_init_pid_is_never_entered(box):
    """The state.json of a running container says when its init started: a process with the same
    pid and another start time (a recycled pid, faked here) is refused before anything runs."""
    state = Path(os.environ["MINI_RUN"]) / "containers" / box / "state.json"
    recorded = json.loads(state.read_text())
    assert recorded["pid"] == init_pid(box) and recorded["started"].isdigit()
    state.write_text(json.dumps(dict(recorded, started=str(int(recorded["started"]) + 1))))
    try:
        refused = mini("exec", "box", "touch", "/entered")
    finally:
        state.write_text(json.dumps(recorded))
    assert refused.returncode == 1 and refused.stdout == ""
    assert re.fullmatch(rf"mini: exec: pid {recorded['pid']} is not the init of container {box} any more "
                        r"\(it started at tick \d+, the init at \d+\): not entering it\n", refused.stderr)
    assert mini("exec", "box", "test", "-e", "/entered").returncode == 1   # nothing ran
    assert mini("exec", "box", "true").returncode == 0                      # the real one is fine


def test_a_killed_exec_cli_leaves_the_container_as_it_was(box):
    cli = subprocess.Popen(MINI + ["exec", "box", "sleep", "301"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        exec_pid = until(lambda: host_pids_of(box, "sleep 301"), what="the exec'd sleep")[0]
    finally:
        cli.kill()
        cli.wait()
    until(lambda: not host_pids_of(box, "sleep 301"), what="the exec'd command to die with its CLI")
    assert not Path(f"/proc/{exec_pid}/cmdline").exists() or not host_pids_of(box, "sleep 301")
    state = json.loads(mini("inspect", "-f", "{{json .State}}", "box").stdout)
    assert (state["Status"], state["Running"]) == ("running", True)
    assert mini("exec", "box", "echo", "still").stdout == "still\n"


def stats_rows(*args: str) -> list[list[str]]:
    result = mini("stats", "--no-stream", *args)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == STATS_HEADER
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


@pytest.mark.cgroup
def test_stats_no_stream_columns():
    busy = run_d("--name", "busy", "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done")
    idle = run_d("--name", "idle", "-m", "64m", "busybox", "sh", "-c", "sleep 300 & sleep 300 & wait")
    done = run_d("--name", "done", "busybox", "true")
    mini("wait", done)
    try:
        until(lambda: len(host_pids_of(idle, "sleep 300")) == 2, what="idle's two sleeps")
        rows = {row[1]: row for row in stats_rows("busy", "idle")}
        assert set(rows) == {"busy", "idle"}
        assert rows["busy"][0] == busy[:12] and rows["idle"][0] == idle[:12]
        assert float(rows["busy"][2].rstrip("%")) > 5.0, rows["busy"]       # a busy loop ...
        assert float(rows["idle"][2].rstrip("%")) < 5.0, rows["idle"]       # ... and sleeps
        used, limit = rows["idle"][3].split(" / ")
        assert limit == "64MiB" and re.fullmatch(r"[\d.]+(B|KiB|MiB)", used)
        assert re.fullmatch(r"\d+\.\d\d%", rows["idle"][4])
        assert rows["idle"][5] == "0B / 0B"                                  # only lo: not counted
        assert rows["idle"][7] == "3"                                        # sh and two sleeps
        listed = {row[1] for row in stats_rows()}
        assert {"busy", "idle"} <= listed and "done" not in listed
        stopped = {row[1]: row for row in stats_rows("-a")}["done"]
        assert stopped[2:] == ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
        missing = mini("stats", "--no-stream", "nosuch")
        assert (missing.returncode, missing.stderr) == (1, "Error response from daemon: No such container: nosuch\n")
        formatted = mini("stats", "--no-stream", "--format", "{{.Container}} {{.Name}} {{.PIDs}}", idle[:6])
        assert formatted.stdout == f"{idle[:6]} idle 3\n"                  # docker's StatsContext
        table = mini("stats", "--no-stream", "--format", "table {{.Name}}\t{{.MemUsage}}", "idle").stdout
        assert table.splitlines()[0].split() == ["NAME", "MEM", "USAGE", "/", "LIMIT"]
    finally:
        for cid in (busy, idle, done):
            mini("rm", "-f", cid)


def test_stats_streams_until_ctrl_c(box):
    proc = subprocess.Popen(MINI + ["stats", "box"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert re.split(r"\s{2,}", first.strip()) == STATS_HEADER
        assert proc.stdout.readline().split()[1] == "box"
        assert re.split(r"\s{2,}", proc.stdout.readline().strip()) == STATS_HEADER   # a second table
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stderr.read() == ""
    finally:
        proc.kill()
        proc.wait()


def test_port_reads_the_published_ports(box):
    assert (mini("port", "box").returncode, mini("port", "box").stdout) == (0, "")
    absent = mini("port", "box", "80")
    assert (absent.returncode, absent.stdout, absent.stderr) == (1, "", "Error: No public port '80/tcp' published for box\n")
    assert mini("port", "box", "53/udp").stderr == "Error: No public port '53/udp' published for box\n"
    # Chapter 07 fills NetworkSettings.Ports in; `port` shows what the record says.
    record_path = Path(os.environ["MINI_ROOT"]) / "containers" / box / "container.json"
    record = json.loads(record_path.read_text())
    record["NetworkSettings"] = {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"},
                                                      {"HostIp": "::", "HostPort": "32768"}],
                                           "443/tcp": None, "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}
    record_path.write_text(json.dumps(record))
    assert mini("port", "box").stdout == ("80/tcp -> 0.0.0.0:32768\n80/tcp -> [::]:32768\n"
                                          "8080/tcp -> 127.0.0.1:8080\n")
    assert mini("port", "box", "80/tcp").stdout == "0.0.0.0:32768\n[::]:32768\n"
    assert mini("port", "box", "443").returncode == 1


def test_diff_export_commit_of_a_running_container(box):
    assert mini("exec", "box", "sh", "-c", "echo kept > /new").returncode == 0
    assert "A /new" in mini("diff", "box").stdout.splitlines()
    exported = subprocess.run(MINI + ["export", "box"], capture_output=True, timeout=30)
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        assert tar.extractfile("new").read() == b"kept\n"
    made = mini("commit", "box", "snapshot")
    assert made.returncode == 0, made.stderr
    state = json.loads(mini("inspect", "-f", "{{json .State}}", "box").stdout)
    assert (state["Status"], state["Paused"]) == ("running", False)   # paused meanwhile, not after
    assert mini("pause", "box").returncode == 0
    assert mini("commit", "--pause=false", "box", "snapshot2").returncode == 0
    assert json.loads(mini("inspect", "-f", "{{json .State}}", "box").stdout)["Paused"] is True
    assert mini("unpause", "box").returncode == 0
    try:
        assert mini("run", "--rm", "snapshot", "cat", "/new").stdout == "kept\n"
    finally:
        mini("rmi", "snapshot", "snapshot2")


def test_exec_it_under_a_pty(box):
    """`exec -it` from a real terminal: a pty of the container's own /dev/pts, its window size is
    ours and follows ours, typed lines reach the shell, the exit code comes back and our
    terminal is as it was."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(MINI + ["exec", "-it", "box", "sh"], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    seen = b""

    def read_until(marker: bytes, timeout: float = 10) -> bytes:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)
        assert marker in seen, seen
        return seen

    try:
        read_until(b"# ")
        os.write(master, b"tty; stty size; echo $TERM; ps -o pid,args | sed -n 2p; echo DONE$((0+1))\n")
        out = read_until(b"DONE1\r\n").decode(errors="replace")
        assert "/dev/pts/0\r\n33 101\r\nxterm\r\n" in out
        assert re.search(r"\n\s*1 sh -c while true; do sleep 1; done\r\n", out), out
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        time.sleep(0.3)                                       # (SIGWINCH reaches mini)
        os.write(master, b"stty size; echo DONE$((1+1))\n")
        assert "40 120\r\nDONE2" in read_until(b"DONE2\r\n").decode(errors="replace")
        os.write(master, b"exit 5\n")
        assert proc.wait(timeout=10) == 5
        assert termios.tcgetattr(slave) == before             # raw mode undone
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
