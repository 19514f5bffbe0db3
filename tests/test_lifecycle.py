"""Chapter 06 end to end, as root: detached containers and their monitor, `ps`, `logs`, `inspect`,
`stop`, `kill`, `wait`, `rm`, names; a killed CLI and a killed monitor."""

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

LOOP = "while true; do echo hello world; sleep 1; done"
HEADER = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]


def run_d(*args: str) -> str:
    result = mini("run", "-d", *args)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", result.stdout), result.stdout
    return result.stdout.strip()


def until(check, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def state(name: str) -> dict:
    result = mini("inspect", "-f", "{{json .State}}", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def ps_rows(*flags: str) -> list[list[str]]:
    result = mini("ps", *flags)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == HEADER
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def alive(pid: int) -> bool:
    """Running (a zombie is dead: it waits for pytest, the subreaper, to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def monitor_of(container_id: str) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mini_runtime.monitor" in argv and container_id.encode() in argv:
                return int(entry)
    raise LookupError(container_id)


def test_detached_loop_ps_logs_stop_rm():
    cid = run_d("--name", "looper", "busybox", "sh", "-c", LOOP)
    rows = ps_rows()
    mine = [row for row in rows if row[0] == cid[:12]]
    assert len(mine) == 1, rows
    row = mine[0]
    assert row[1:3] == ["busybox", '"sh -c \'while true; …"'] and row[-1] == "looper"
    assert row[4].startswith("Up ")
    assert cid[:12] in mini("ps", "-q").stdout.split()
    assert cid in mini("ps", "-q", "--no-trunc").stdout.split()

    until(lambda: mini("logs", "looper").stdout.count("hello world\n") >= 2, what="two lines of log")
    assert set(mini("logs", "looper").stdout.splitlines()) == {"hello world"}
    last = mini("logs", "-t", "--tail", "1", cid[:5])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello world\n", last.stdout), last.stdout

    running = state("looper")
    assert running["Status"] == "running" and running["Running"] and running["Pid"] > 0
    assert list(running) == ["Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                             "ExitCode", "Error", "StartedAt", "FinishedAt"]

    # sh as PID 1 has no handler for SIGTERM: the kernel ignores it, SIGKILL ends it after 1 s.
    stopped = mini("stop", "-t", "1", "looper")
    assert (stopped.returncode, stopped.stdout) == (0, "looper\n")
    ended = state("looper")
    assert (ended["Status"], ended["ExitCode"], ended["Running"], ended["Pid"]) == ("exited", 137, False, 0)
    assert all(row[0] != cid[:12] for row in ps_rows())
    row = ps_rows("-a")[0]
    assert row[0] == cid[:12] and re.fullmatch(r"Exited \(137\) .* ago", row[4]), row

    assert mini("rm", "looper").returncode == 0
    assert all(r[0] != cid[:12] for r in ps_rows("-a"))
    assert mini("inspect", cid).returncode == 1


def test_generated_names_and_duplicate_name_conflict():
    first = run_d("--name", "web", "busybox", "sleep", "30")
    before = state("web")
    second = mini("run", "-d", "--name", "web", "busybox", "sleep", "30")
    assert second.returncode == 125 and second.stdout == ""
    assert second.stderr == (f'mini: Conflict. The container name "/web" is already in use by container '
                             f'"{first}". You have to remove (or rename) that container to be able '
                             "to reuse that name.\n")
    assert state("web") == before                       # the first one is untouched
    other = run_d("busybox", "sleep", "30")
    name = mini("inspect", "-f", "{{.Name}}", other).stdout.strip()
    assert re.fullmatch(r"/[a-z]+_[a-z]+\d?", name), name
    for container in ("web", other):
        assert mini("rm", "-f", container).returncode == 0


def test_a_monitor_never_runs_code_from_the_current_directory(tmp_path: Path):
    """`python -m` puts the current directory first on sys.path: a `mini_runtime/` there (another
    checkout, anyone's files in /tmp) would be what the root monitor runs. Monitors start with -P."""
    rogue = tmp_path / "mini_runtime"
    rogue.mkdir()
    marker = tmp_path / "ran"
    (rogue / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    cid = mini("run", "-d", "busybox", "sh", "-c", "echo from the real monitor", cwd=tmp_path).stdout.strip()
    assert until(lambda: mini("wait", cid).stdout == "0\n", what="the container's end")
    assert mini("logs", cid).stdout == "from the real monitor\n"
    assert not marker.exists()
    assert mini("rm", cid).returncode == 0

def test_the_name_index_follows_create_rename_and_rm():
    """Names are checked with one readlink in $MINI_ROOT/names, not by reading every record: the
    index follows create, rename and rm; a state made before it existed is indexed on first use
    (its names still conflict); a link whose container is gone holds nothing."""
    index = Path(os.environ["MINI_ROOT"]) / "names"
    cid = mini("create", "--name", "indexed", "busybox", "true").stdout.strip()
    assert os.readlink(index / "indexed") == cid
    assert mini("rename", "indexed", "renamed").returncode == 0
    assert not (index / "indexed").is_symlink() and os.readlink(index / "renamed") == cid
    for link in index.iterdir():                         # as a state from before the index
        link.unlink()
    index.rmdir()
    clash = mini("create", "--name", "renamed", "busybox", "true")
    assert clash.returncode == 1 and f'in use by container "{cid}"' in clash.stderr   # (create: 1)
    assert os.readlink(index / "renamed") == cid
    assert mini("inspect", "-f", "{{.Id}}", "renamed").stdout.strip() == cid   # found by its link
    assert mini("rm", "renamed").returncode == 0
    assert not (index / "renamed").is_symlink()
    os.symlink("0" * 64, index / "stale")               # its container is gone: the name is free
    again = mini("create", "--name", "stale", "busybox", "true").stdout.strip()
    assert os.readlink(index / "stale") == again
    assert mini("rm", "stale").returncode == 0


def test_rm_of_a_running_container_needs_force():
    """docker 20.10's words (delete.go), which say what to do: stop first, or unpause and then
    stop a paused one; or -f. (Later dockers reworded them; mini had the later wording.)"""
    cid = run_d("busybox", "sleep", "30")
    refused = mini("rm", cid)
    assert (refused.returncode, refused.stdout, refused.stderr) == (
        1, "", f"Error response from daemon: You cannot remove a running container {cid}. "
               "Stop the container before attempting removal or force remove\n")
    assert state(cid)["Running"]
    assert mini("pause", cid).returncode == 0
    try:
        paused = mini("rm", cid)
        assert (paused.returncode, paused.stderr) == (
            1, f"Error response from daemon: You cannot remove a paused container {cid}. "
               "Unpause and then stop the container before attempting removal or force remove\n")
    finally:
        mini("unpause", cid)
    removed = mini("rm", "-f", cid)
    assert (removed.returncode, removed.stdout) == (0, f"{cid}\n")
    assert mini("ps", "-aq", "--no-trunc").stdout.split().count(cid) == 0


def test_a_second_rm_while_one_removes_is_refused(state_root):
    """docker's 'removal ... already in progress': two `rm -f` of one container at once both
    killed, waited and removed, and both said so. Here the test holds the claim a first `rm`
    holds (its lock on the container's directory), and lets go as a dying `rm` would."""
    from mini_runtime import paths

    cid = run_d("busybox", "sleep", "30")
    claim = paths.try_lock(state_root / "containers" / cid / ".removing")
    assert claim is not None
    try:
        second = mini("rm", "-f", cid)
        assert (second.returncode, second.stdout) == (1, "")
        assert second.stderr == f"Error response from daemon: removal of container {cid} is already in progress\n"
        assert state(cid)["Running"]
    finally:
        os.close(claim)
    assert mini("rm", "-f", cid).stdout == f"{cid}\n"
    gone = mini("rm", "-f", cid)                         # (-f: a missing one is no failure)
    assert (gone.returncode, gone.stderr) == (0, f"Error: No such container: {cid}\n")
    assert mini("rm", cid).returncode == 1


def test_a_tree_deeper_than_pythons_recursion_limit(state_root):
    """A container can make its upper directory 1200 levels deep. `diff`, `export`, `commit`,
    `rm` (with a flag after the name, as docker takes it) and `run --rm` still work: they walk
    the tree without recursing (shutil.rmtree and a recursive walk once died of it with a
    traceback, and left the container behind)."""
    deep = 'i=0; while [ $i -lt 1200 ]; do mkdir a; cd a; i=$((i+1)); done; echo x > f'
    cid = mini("create", "busybox", "sh", "-c", deep).stdout.strip()
    assert mini("start", "-a", cid).returncode == 0
    bottom = "/a" * 1200 + "/f"
    diff = mini("diff", cid)
    assert (diff.returncode, diff.stderr) == (0, "") and f"A {bottom}" in diff.stdout.splitlines()
    exported = subprocess.run(MINI + ["export", cid], capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        assert bottom[1:] in tar.getnames()
    committed = mini("commit", cid, "deep:1")
    assert committed.returncode == 0 and committed.stdout.startswith("sha256:")
    assert mini("rmi", "deep:1").returncode == 0
    removed = mini("rm", cid, "-f")
    assert (removed.returncode, removed.stdout, removed.stderr) == (0, f"{cid}\n", "")
    assert not (state_root / "containers" / cid).exists()
    result = mini("run", "--rm", "--name", "deep-rm", "busybox", "sh", "-c", deep)
    assert (result.returncode, result.stderr) == (0, "")
    assert "deep-rm" not in mini("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_kill_with_a_signal_and_wait_for_the_code():
    cid = run_d("busybox", "sh", "-c", 'trap "exit 3" TERM; echo ready; while true; do sleep 0.1; done')
    until(lambda: "ready" in mini("logs", cid).stdout, what="the trap to be set")
    assert mini("kill", "-s", "TERM", cid).returncode == 0
    waited = mini("wait", cid)
    assert (waited.returncode, waited.stdout) == (0, "3\n")
    again = mini("kill", cid)
    assert (again.returncode, again.stderr) == (1, f"Error response from daemon: Cannot kill container: "
                                                f"{cid}: Container {cid} is not running\n")
    for number in ("65", "255", "32"):                      # (docker's daemon: read, not sendable)
        refused = mini("kill", "-s", number, cid)
        assert (refused.returncode, refused.stderr) == (1, f"Error response from daemon: Cannot kill "
                                                        f"container: {cid}: The linux daemon does not "
                                                        f"support signal {number}\n")
    refused = mini("kill", "-s", "0", cid)
    assert (refused.returncode, refused.stderr) == (1, "Error response from daemon: Invalid signal: 0\n")
    assert mini("rm", cid).returncode == 0
    missing = mini("kill", "nosuch", "-s", "NOPE")          # (a bad signal first, as docker's API)
    assert (missing.returncode, missing.stderr) == (1, "Error response from daemon: Invalid signal: NOPE\n")
    missing = mini("kill", "nosuch")
    assert (missing.returncode, missing.stderr) == (1, "Error response from daemon: Cannot kill container: "
                                                    "nosuch: No such container: nosuch\n")
    for flags in ([], [], ["-s", ""]):                      # SIGKILL returns once it has ended,
        cid = run_d("busybox", "sleep", "30")               # so that `kill c; rm c` always works
        assert mini("kill", *flags, cid).returncode == 0    # (-s "": no signal, docker's SIGKILL)
        assert mini("rm", cid).returncode == 0
    started = mini("start", "nosuch", "nosuch2")
    assert (started.returncode, started.stderr.splitlines()[-1]) == (1, "Error: failed to start containers: "
                                                                     "nosuch, nosuch2")


def test_the_log_exists_when_run_d_returns():
    """`logs -f` right after `run -d` must find the log: the monitor's serve phase, which
    writes it, may start after `run -d` has returned, so the file is made before."""
    cid = run_d("busybox", "sleep", "30")
    try:
        assert Path(os.environ["MINI_ROOT"], "containers", cid, f"{cid}-json.log").is_file()
    finally:
        assert mini("rm", "-f", cid).returncode == 0


def test_logs_keep_streams_apart_and_follow_ends_with_the_container():
    cid = run_d("busybox", "sh", "-c", "echo out; echo err >&2; for i in 1 2 3; do echo $i; sleep 0.2; done")
    followed = mini("logs", "-f", cid, timeout=20)
    assert (followed.stdout, followed.stderr) == ("out\n1\n2\n3\n", "err\n")
    record = json.loads(mini("inspect", cid).stdout)[0]
    lines = Path(record["LogPath"]).read_text().splitlines()
    entries = [json.loads(line) | {"time": 0} for line in lines]
    assert {"log": "err\n", "stream": "stderr", "time": 0} in entries    # (pipes: order not kept)
    assert [e["log"] for e in entries if e["stream"] == "stdout"] == ["out\n", "1\n", "2\n", "3\n"]
    assert mini("logs", "--since", "1h", cid).stdout == "out\n1\n2\n3\n"
    assert mini("logs", "--since", "2099-01-01T00:00:00Z", cid).stdout == ""
    assert mini("logs", "--until", "1h", cid).stdout == ""                 # written after that
    assert mini("logs", "--until", "2099-01-01T00:00:00Z", cid).stdout == "out\n1\n2\n3\n"
    assert mini("logs", "--details", "--tail", "2", cid).stdout == " 2\n 3\n"   # (no attributes)
    assert mini("logs", "--tail", "bogus", cid).stdout == "out\n1\n2\n3\n"    # docker's: no number, all
    bad = mini("logs", "--until", "2099-13-01", cid)
    assert bad.returncode == 1 and bad.stderr.startswith('mini: invalid value for "until"'), bad.stderr
    assert mini("rm", cid).returncode == 0


def test_foreground_run_is_seen_from_another_terminal():
    proc = subprocess.Popen(MINI + ["run", "--name", "fg", "busybox", "sh", "-c", "echo started; exec sleep 30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "started\n"
        assert "fg" in [row[-1] for row in ps_rows()]
        assert mini("logs", "fg").stdout == "started\n"
        assert mini("stop", "-t", "0", "fg").returncode == 0
        assert proc.wait(timeout=10) == 137
    finally:
        proc.kill()
        proc.wait()
    assert mini("rm", "fg").returncode == 0


def test_a_killed_cli_leaves_a_consistent_record_and_nothing_leaked():
    for n, delay in enumerate((0.0, 0.05, 0.1, 0.2, 0.4)):
        proc = subprocess.Popen(MINI + ["run", "-d", "--name", f"killed-cli-{n}", "busybox", "sleep", "30"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
    time.sleep(1)
    for cid in mini("ps", "-aq", "--no-trunc", "-f", "name=killed-cli-").stdout.split():
        seen = state(cid)
        assert seen["Status"] in ("created", "running", "exited"), seen   # (created: as docker's)
        if seen["Running"]:
            assert monitor_of(cid) and alive(seen["Pid"])
        assert mini("rm", "-f", cid).returncode == 0


def test_a_killed_monitor_is_seen_and_swept():
    cid = run_d("busybox", "sh", "-c", LOOP)
    pid = state(cid)["Pid"]
    os.kill(monitor_of(cid), signal.SIGKILL)
    until(lambda: not alive(pid), what="the init to die with its monitor")
    ended = until(lambda: (s := state(cid))["Status"] == "exited" and s, what="the record to say exited")
    assert ended["ExitCode"] == 137
    assert re.fullmatch(r"Exited \(137\) .* ago", ps_rows("-a")[0][4])
    assert not (Path(os.environ["MINI_RUN"]) / "containers" / cid).exists()
    assert mini("rm", cid).returncode == 0


def test_start_runs_an_exited_container_again_with_its_files():
    cid = run_d("--name", "again", "busybox", "sh", "-c", "echo run >> /runs; wc -l < /runs")
    assert mini("wait", "again").stdout == "0\n"
    started = mini("start", "again")
    assert (started.returncode, started.stdout) == (0, "again\n")
    assert mini("wait", "again").stdout == "0\n"
    assert mini("logs", "again").stdout.split() == ["1", "2"]   # the same upper dir, one log
    assert state(cid)["Status"] == "exited"
    assert mini("rm", "again").returncode == 0


def test_start_a_right_after_a_start_that_ended_at_once():
    """`start` then `start -a` of a container that ends at once: the second may look while the
    first run is ending. Still running, it is attached to (its output so far is gone, as with
    docker) and its code returned; gone, or its monitor finishing, it is started again and
    attached to. Never "is not running" (it was, 6 times out of 6)."""
    run_d("--name", "quick", "busybox", "sh", "-c", "echo run >> /runs; wc -l < /runs")
    assert mini("wait", "quick").stdout == "0\n"
    for _ in range(3):
        assert mini("start", "quick").returncode == 0
        attached = mini("start", "-a", "quick")
        assert attached.returncode == 0 and attached.stderr == "", attached.stderr
        assert attached.stdout == "" or attached.stdout.strip().isdigit(), attached.stdout
    assert mini("wait", "quick").stdout == "0\n"
    assert mini("rm", "quick").returncode == 0


@pytest.mark.cgroup
def test_a_detached_oom_kill_is_recorded():
    cid = run_d("--memory", "64m", "--memory-swap", "64m", "busybox",
                "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
    assert mini("wait", cid, timeout=120).stdout == "137\n"
    ended = state(cid)
    assert (ended["Status"], ended["ExitCode"], ended["OOMKilled"]) == ("exited", 137, True)
    assert mini("rm", cid).returncode == 0


def test_stop_ends_a_logs_follow_of_another_cli():
    cid = run_d("busybox", "sh", "-c", "echo one; exec sleep 30")
    follower = subprocess.Popen(MINI + ["logs", "-f", cid], stdout=subprocess.PIPE, text=True)
    try:
        assert follower.stdout.readline() == "one\n"
        assert mini("stop", "-t", "1", cid).returncode == 0
        assert follower.wait(timeout=10) == 0 and follower.stdout.read() == ""
    finally:
        follower.kill()
        follower.wait()
    assert state(cid)["ExitCode"] == 137
    assert mini("rm", cid).returncode == 0


def test_stop_sends_the_images_stop_signal():
    from mini_runtime.image import busybox
    from mini_runtime.image.layout import sha256_digest
    from mini_runtime.image.store import Store

    layer = busybox.build_layer()
    config = busybox.image_config(sha256_digest(layer), 0)
    config["config"] = dict(config.get("config") or {}, StopSignal="SIGUSR1")
    Store().add_image("stopsig", [layer], config)
    config["config"]["StopSignal"] = "SIGFOO"              # no signal: docker's SIGTERM instead
    Store().add_image("badsig", [layer], config)           # (mini's stop failed, it ran on)
    try:
        for image, code in (("stopsig", 5), ("badsig", 6)):
            cid = run_d(image, "sh", "-c", 'trap "exit 5" USR1; trap "exit 6" TERM; echo ready; '
                                           'while true; do sleep 0.1; done')
            until(lambda: "ready" in mini("logs", cid).stdout, what="the trap to be set")
            assert mini("stop", "-t", "10", cid).returncode == 0
            assert state(cid)["ExitCode"] == code           # its signal came, not SIGKILL
            assert mini("rm", cid).returncode == 0
    finally:
        mini("rmi", "stopsig", "badsig")


def test_stop_with_a_negative_timeout_waits_for_good():
    """docker's containerStop: a negative timeout has no deadline, so no SIGKILL: the container's
    own TERM handler (2 s here) decides how it ends."""
    cid = run_d("busybox", "sh", "-c", 'trap "sleep 2; exit 7" TERM; echo ready; while true; do sleep 0.1; done')
    until(lambda: "ready" in mini("logs", cid).stdout, what="the trap to be set")
    began = time.monotonic()
    assert mini("stop", "-t", "-1", cid).returncode == 0
    assert time.monotonic() - began >= 1.5
    assert state(cid)["ExitCode"] == 7                      # its handler's code, not SIGKILL's 137
    assert mini("rm", cid).returncode == 0


def test_an_interrupted_stop_still_ends_the_container_on_time():
    """The monitor keeps a stop's grace period, as docker's daemon does: ctrl-C to `mini stop`
    (or its death) after the SIGTERM must not leave a container that ignores SIGTERM running."""
    cid = run_d("busybox", "sh", "-c", 'trap "echo term" TERM; echo ready; while true; do sleep 0.1; done')
    try:
        until(lambda: "ready" in mini("logs", cid).stdout, what="the trap to be set")
        stopping = subprocess.Popen(MINI + ["stop", "-t", "8", cid], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        until(lambda: "term" in mini("logs", cid).stdout, what="the stop's SIGTERM")
        stopping.send_signal(signal.SIGINT)
        stopping.communicate(timeout=10)
        assert stopping.returncode == 130
        assert state(cid)["Running"]                            # the grace period is not over
        assert mini("wait", cid, timeout=20).stdout == "137\n"     # the monitor's SIGKILL
    finally:
        mini("rm", "-f", cid)


def test_ps_filters_latest_and_last():
    done = run_d("--name", "done1", "busybox", "true")
    mini("wait", done)
    up = run_d("--name", "up1", "busybox", "sleep", "30")
    def ids(*flags: str) -> list[str]:  # (other tests' containers may be kept: ours only)
        return [i for i in mini("ps", "-q", "--no-trunc", *flags).stdout.split() if i in (up, done)]
    assert ids() == [up]
    assert ids("-a") == [up, done]                          # newest first
    assert mini("ps", "-lq", "--no-trunc").stdout.split() == [up]
    assert mini("ps", "-lq", "--format", "{{.Names}}").stdout == "up1\n"   # docker's: a format wins
    assert mini("ps", "-lq", "--format", "table", "--no-trunc").stdout == f"{up}\n"  # (not "table")
    assert mini("ps", "-l", "--format", "table").stdout.startswith("CONTAINER ID   IMAGE")
    # {{json .}}: docker's ContainerContext as a Go map (its keys sorted), every field read, .Size
    # too (so sizes are asked for), .LocalVolumes among them. (mini's: its own order, Size "0B",
    # and {{.LocalVolumes}} an error.)
    row = json.loads(mini("ps", "-l", "--format", "{{json .}}").stdout)
    assert list(row) == ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
                         "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status"]
    assert re.fullmatch(r"0B \(virtual [\d.]+[kM]B\)", row["Size"]) and row["LocalVolumes"] == "0", row
    assert mini("ps", "-l", "--format", "{{.LocalVolumes}} {{.Names}}").stdout == "0 up1\n"
    typo = mini("inspect", "-f", "{{.State.status}}", up)     # (docker's: Go's fields are Status)
    assert typo.returncode == 1 and typo.stderr.endswith('map has no entry for key "status"\n'), typo.stderr
    assert mini("inspect", "-f", "{{.Os}}", up).returncode == 1       # an image's field, not a container's
    # A template with a typo, in docker 20.10's words and codes: inspect's one that does not parse
    # exits 64 (before any lookup); ps words its own (mini said "template parsing error" and 1).
    for name in (up, "nosuch"):
        unclosed = mini("inspect", "-f", "{{.Name", name)
        assert (unclosed.returncode, unclosed.stderr) == (64, "mini: template parsing error: template: :1: "
                                                              "unclosed action\n"), name
    unparsed = mini("ps", "--format", "{{.Names")
    assert (unparsed.returncode, unparsed.stderr) == (1, "mini: failed to parse template: template: :1: "
                                                         "unclosed action\n")
    wrong = mini("ps", "--format", "{{.Nope}}")
    assert (wrong.returncode, wrong.stderr) == (1, 'mini: failed to execute template: template: :1:2: executing "" '
                                                   "at <.Nope>: can't evaluate field Nope in type "
                                                   "*formatter.ContainerContext\n")
    assert mini("inspect", "-f", "{{.Os}}", "busybox").stdout == "linux\n"
    assert mini("ps", "-q", "--no-trunc", "-n", "2").stdout.split() == [up, done]
    assert ids("-f", "status=exited") == [done]
    assert ids("-a", "-f", "name=done") == [done] and ids("-a", "-f", "name=^up") == [up]
    assert ids("-a", "-f", "name=^/up1$") == [up]                 # with docker's "/" too
    assert mini("ps", "-a", "-f", "name=[").stdout.count("\n") == 1   # no pattern: no match, as moby
    assert ids("-a", "-f", "ancestor=busybox:latest", "-f", "status=running") == [up]
    assert ids("-a", "-f", "ancestor=nosuch") == []
    bad = mini("ps", "-f", "colour=red")
    assert (bad.returncode, bad.stderr) == (1, "mini: invalid filter 'colour'\n")
    for container in (up, done):
        assert mini("rm", "-f", container).returncode == 0


@pytest.mark.parametrize("words, flag, why", [
    (["stop", "-t", "99999999999999999999", "x"], "-t, --time", "value out of range"),
    (["restart", "-t", "1__0", "x"], "-t, --time", "invalid syntax"),   # (1_0 is Go's 10: base 0)
    (["ps", "-n", "\u0663"], "-n, --last", "invalid syntax"), (["stop", "-t", " 7", "x"], "-t, --time", "invalid syntax"),
    (["stop", "-t", "x", "x"], "-t, --time", "invalid syntax"), (["ps", "--last", "2x"], "-n, --last", "invalid syntax")])
def test_int_flags_are_go_ints(words, flag, why):
    """docker's int flags are 64-bit Go integer literals: beyond, one line and 125 (a stop
    timeout of 10**20 s once reached socket.settimeout: an OverflowError's traceback), in
    pflag's words (mini said argparse's "invalid int64 value: 'x'")."""
    result = mini(*words)
    text = words[2]
    assert (result.returncode, result.stderr) == (125, f'mini: invalid argument "{text}" for "{flag}" flag: '
                                                       f'strconv.ParseInt: parsing "{text}": {why} '
                                                       f"(see 'mini {words[0]} --help')\n")


def test_cobra_s_words_for_missing_arguments_and_an_empty_hostname():
    """`mini run` alone: docker's "requires at least 1 argument" (COMMAND is optional); an
    empty -h is no -h, as in docker; -w over a file is docker's "Cannot mkdir"."""
    for words, message in ((["run"], '"mini run" requires at least 1 argument'),
                           (["run", "-it"], '"mini run" requires at least 1 argument'),
                           (["exec", "-it"], '"mini exec" requires at least 2 arguments'),   # (mini: 1)
                           (["exec", "c1"], '"mini exec" requires at least 2 arguments'),
                           (["tag", "busybox"], '"mini tag" requires exactly 2 arguments')):
        result = mini(*words)
        assert (result.returncode, result.stderr) == (1, f"mini: {message} (see 'mini {words[0]} --help')\n")
    cid = mini("create", "-h", "", "busybox", "hostname").stdout.strip()
    assert mini("start", "-a", cid).stdout == cid[:12] + "\n" and mini("rm", cid).returncode == 0
    result = mini("run", "--rm", "-w", "/etc/passwd", "busybox", "pwd")
    assert (result.returncode, result.stderr) == (125, "mini: container setup failed: Cannot mkdir: /etc/passwd is not a directory\n")


def test_labels_and_the_other_ps_filters(tmp_path):
    """`run -l K=V` and `--label-file` (over the image's Labels), ps's LABELS column, and the
    filters label (every one), exited (a code of a container that ran), before, since, network."""
    (tmp_path / "labels").write_text("# ours\ntier=front\n\nteam\n")   # docker 20.10's client sends)
    web = run_d("--name", "lweb", "-l", "app=web", "-l", "a=1", "--label-file", str(tmp_path / "labels"),
                "busybox", "true")
    db = run_d("--name", "ldb", "-l", "app=db", "busybox", "sh", "-c", "exit 3")
    up = run_d("--name", "lup", "--network", "none", "busybox", "sleep", "30")
    new = mini("create", "--name", "lnew", "busybox", "true").stdout.strip()
    mini("wait", web, db)
    try:
        def names(*flags: str) -> list[str]:
            out = mini("ps", "-a", "--format", "{{.Names}}", *flags)
            assert out.returncode == 0, out.stderr
            return [n for n in out.stdout.split() if n in ("lweb", "ldb", "lup", "lnew")]
        labels = mini("inspect", "-f", "{{json .Config.Labels}}", "lweb").stdout
        assert labels == '{"a":"1","app":"web","tier":"front"}\n'   # (a map: Go writes its keys sorted;
        # a bare key in the file is dropped, as docker 20.10's client drops it)
        assert mini("ps", "-a", "-f", "name=lweb", "--format", "{{.Labels}}").stdout == "a=1,app=web,tier=front\n"
        assert names("-f", "label=app") == ["ldb", "lweb"]
        assert names("-f", "label=app=web") == ["lweb"]
        assert names("-f", "label=app", "-f", "label=tier=front") == ["lweb"]   # all of them
        assert names("-f", "exited=3") == ["ldb"] and names("-f", "exited=0") == ["lweb"]
        assert names("-f", "before=lup") == ["ldb", "lweb"]
        assert names("-f", "since=ldb") == ["lnew", "lup"]
        assert "lup" in names("-f", "network=none") and names("-f", "network=nosuch") == []
        assert mini("ps", "-q", "-f", "since=ldb").stdout.split() == [up[:12]]   # running only, without -a
        for flags, code, message in ((["-f", "exited=x"], 1, 'strconv.Atoi: parsing "x": invalid syntax'),
                                     (["-f", "since=nosuch"], 1, "No such container: nosuch")):
            bad = mini("ps", *flags)
            assert (bad.returncode, bad.stderr) == (code, f"mini: {message}\n")
        before = mini("ps", "-aq").stdout
        for flags, message in ((["-l", "app"], 'invalid argument "app" for "-l, --label" flag: bad attribute format: app'),
                               (["--label-file", str(tmp_path / "none")], f"open {tmp_path / 'none'}: no such file or directory")):
            bad = mini("run", *flags, "busybox", "true")
            assert (bad.returncode, bad.stderr) == (125, f"mini: {message}\n")
        assert mini("ps", "-aq").stdout == before                 # nothing was created
    finally:
        assert mini("rm", "-f", web, db, up, new).returncode == 0


def test_rename_and_restart():
    cid = run_d("--name", "before", "busybox", "sh", "-c", "echo run; exec sleep 30")
    taken = run_d("--name", "taken", "busybox", "true")
    assert mini("rename", "before", "after").returncode == 0
    assert mini("inspect", "-f", "{{.Name}}", cid).stdout == "/after\n"
    clash = mini("rename", "after", "taken")                # (docker's daemon: "Error when allocating")
    assert clash.returncode == 1 and clash.stderr.startswith("Error response from daemon: Error when "
                                                             'allocating new name: Conflict. The container name "/taken"')
    bad = mini("rename", "after", "bad name")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (1, "Error response from daemon: Error when allocating new "
                                                           "name: Invalid container name (/bad name), only "
                                                           "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    same = mini("rename", "after", "after")                 # (the daemon's line, the client's)
    assert (same.returncode, same.stderr) == (1, "Error response from daemon: Renaming a container with "
                                              "the same name as its current name\nError: failed to "
                                              "rename container named after\n")
    for old, new in (("after", ""), (" ", "x")):
        refused = mini("rename", old, new)
        assert (refused.returncode, refused.stderr) == (1, "Error: Neither old nor new names may be empty\n")
    missing = mini("rename", "nosuch", "x2")
    assert (missing.returncode, missing.stderr) == (1, "Error response from daemon: No such container: "
                                                    "nosuch\nError: failed to rename container named nosuch\n")
    pid = state("after")["Pid"]
    assert mini("restart", "-t", "0", "after").stdout == "after\n"
    again = state("after")
    assert again["Running"] and again["Pid"] != pid
    until(lambda: mini("logs", "after").stdout == "run\nrun\n", what="the second run's line")
    for container in (cid, taken):
        assert mini("rm", "-f", container).returncode == 0


def test_create_then_start_or_rm():
    cid = mini("create", "--name", "later", "busybox", "sh", "-c", "echo started later").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert ps_rows("-a")[0][4] == "Created" and ps_rows("-a")[0][-1] == "later"
    assert cid not in mini("ps", "-q", "--no-trunc").stdout.split()
    assert state("later")["Status"] == "created" and mini("logs", "later").stdout == ""
    assert mini("start", "later").stdout == "later\n"
    assert mini("wait", "later").stdout == "0\n"
    assert mini("logs", "later").stdout == "started later\n"
    assert mini("rm", "later").returncode == 0
    # docker's start -a / -i inspects first, so a missing one is the client's own line; plain
    # start's is the daemon's, then its summary (mini said "mini: No such container" to -a, -i).
    for flags in (["-a"], ["-i"], ["-ai"]):
        assert mini("start", *flags, "later").stderr == "Error: No such container: later\n", flags
    assert mini("start", "later").stderr == ("Error response from daemon: No such container: later\n"
                                             "Error: failed to start containers: later\n")
    other = mini("create", "busybox", "true").stdout.strip()
    assert mini("rm", other).returncode == 0           # its monitor and process go with it
    assert other not in mini("ps", "-aq", "--no-trunc").stdout.split()


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def leftovers(cid: str, state_root: Path) -> list[str]:
    """What a removed container may have left: its record, run dir, cgroup in any hierarchy."""
    found = [str(p) for p in (state_root / "containers" / cid, Path(os.environ["MINI_RUN"]) / "containers" / cid)
             if p.exists()]
    return found + [str(p) for p in Path("/sys/fs/cgroup").glob(f"**/{cid}")]


def test_rm_f_of_a_container_stuck_in_its_setup_ends_what_its_monitor_started(state_root):
    """A monitor that does not answer while it sets a container up (here: stopped, or waiting
    for a child stopped before its execve) cannot remove it: `rm` says so and leaves it as it
    is; `rm -f` kills by pid what it started and leaves nothing (it left both running)."""
    cid = mini("create", "--name", "stuck", "busybox", "true").stdout.strip()
    owner = monitor_of(cid)
    child = children_of(owner)[0]
    os.kill(owner, signal.SIGSTOP)                          # stuck while it waits for "start"
    try:
        removed = mini("rm", "-f", "stuck")
        assert (removed.returncode, removed.stdout, removed.stderr) == (0, "stuck\n", "")
        until(lambda: not alive(owner) and not alive(child), what="the monitor and its child to end")
        assert leftovers(cid, state_root) == []
    finally:
        if alive(owner):                                    # (woken, it would clean up itself)
            os.kill(owner, signal.SIGCONT)

    cid = mini("create", "--name", "stuck", "busybox", "true").stdout.strip()
    owner = monitor_of(cid)
    child = children_of(owner)[0]
    os.kill(child, signal.SIGSTOP)                          # released, it never gets to execve
    starting = subprocess.Popen(MINI + ["start", "stuck"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: Path(f"/proc/{child}/cgroup").read_text().count(cid), what="the start to begin")
        refused = mini("rm", "stuck")
        assert refused.returncode == 1 and "force remove to end it" in refused.stderr, refused
        assert state("stuck")["Status"] == "created" and alive(owner) and alive(child)
        removed = mini("rm", "-f", "stuck")
        assert (removed.returncode, removed.stdout, removed.stderr) == (0, "stuck\n", "")
        assert starting.wait(timeout=30) == 1 and "monitor ended" in starting.stderr.read()
        until(lambda: not alive(owner) and not alive(child), what="the monitor and its child to end")
        assert leftovers(cid, state_root) == []
    finally:
        starting.kill()
        starting.wait()
        starting.stdout.close()
        starting.stderr.close()
        if alive(child):
            os.kill(child, signal.SIGCONT)


def test_a_start_that_fails_leaves_the_container_created_with_the_error():
    """docker's rule (specs §4.11): a command not found fails the start, not the container."""
    for args, code, words in (([], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
                              (["-d"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
                              (["-u", "ghost"], 125, "unable to find user ghost")):
        result = mini("run", "--name", "unstarted", *args, "busybox", "nosuchcmd")
        assert result.returncode == code and words in result.stderr, result
        assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
        record = state("unstarted")
        assert (record["Status"], record["ExitCode"], record["Pid"]) == ("created", code, 0), record
        assert words in record["Error"] and not record["Running"]
        assert [row[4] for row in ps_rows("-a", "--filter", "name=unstarted")] == ["Created"]
        again = mini("start", "unstarted")                 # fails again, the same way
        assert again.returncode != 0 and words in again.stderr and state("unstarted")["Status"] == "created"
        assert mini("rm", "unstarted").returncode == 0     # (not running: no -f needed)
    gone = mini("run", "--rm", "--name", "unstarted", "busybox", "nosuchcmd")
    assert gone.returncode == 127 and mini("inspect", "unstarted").returncode == 1


def test_pause_freezes_the_counter_and_unpause_thaws_it_top_lists_it():
    cid = run_d("busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done")
    until(lambda: len(mini("logs", cid).stdout.split()) >= 3, what="the counter to count")
    lines = mini("top", cid).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert str(state(cid)["Pid"]) in [line.split()[1] for line in lines[1:]]
    assert mini("pause", cid).stdout == f"{cid}\n"
    assert state(cid)["Paused"] and state(cid)["Status"] == "paused"
    assert [r[4] for r in ps_rows() if r[0] == cid[:12]][0].endswith("(Paused)")
    frozen = mini("logs", cid).stdout
    time.sleep(0.5)
    assert mini("logs", cid).stdout == frozen                  # not one more line while frozen
    assert mini("pause", cid).returncode == 1 and mini("rm", cid).returncode == 1
    started = mini("start", cid)                               # (it printed the id, still paused)
    assert (started.returncode, started.stdout, started.stderr) == (
        1, "", "Error response from daemon: cannot start a paused container, try unpause instead\n"
               f"Error: failed to start containers: {cid}\n")
    assert mini("unpause", cid).returncode == 0
    until(lambda: len(mini("logs", cid).stdout) > len(frozen), what="the counter to resume")
    assert mini("pause", cid).returncode == 0
    assert mini("rm", "-f", cid).returncode == 0              # a frozen container is thawed to die
    assert mini("unpause", cid).returncode == 1


def test_start_attached_to_a_paused_container_is_refused_and_leaves_it_paused():
    # It used to attach to the frozen container and wait, silent, for output that could not
    # come; a ctrl-C then was passed on as its `kill -s INT`, which thaws it first: the
    # container ended (130) instead of the CLI. docker's daemon refuses the attach.
    cid = run_d("--name", "frozen-start", "busybox", "sh", "-c", LOOP)
    try:
        assert mini("pause", "frozen-start").returncode == 0
        for flags in (["-i"], ["-a"], ["-ai"]):
            started = mini("start", *flags, "frozen-start", timeout=10, stdin=subprocess.DEVNULL)
            assert (started.returncode, started.stdout, started.stderr) == (
                1, "", "Error response from daemon: container frozen-start is paused, unpause the "
                       "container before attach\n"), flags
        assert state(cid)["Status"] == "paused"
    finally:
        mini("unpause", cid)
        mini("rm", "-f", cid)


def test_foreground_relay_passes_a_broken_pipe_on():
    # The foreground mini relays the container's output; when its reader goes away, the
    # container's own pipe breaks too: `yes` dies of SIGPIPE (141) as without a relay.
    script = f"{' '.join(MINI)} run --rm --init busybox yes | head -2; echo mini exited ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=20)
    assert result.stdout.splitlines() == ["y", "y", "mini exited 141"]


def test_wait_from_two_clis_and_a_removed_container():
    cid = run_d("--rm", "busybox", "sh", "-c", "exec sleep 30")
    waiters = [subprocess.Popen(MINI + ["wait", cid], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.3)                                         # (both are waiting on the socket)
    assert mini("kill", "-s", "TERM", cid).returncode == 0  # sleep as PID 1 ignores it ...
    assert mini("kill", cid).returncode == 0                # ... not SIGKILL
    for waiter in waiters:
        out, _ = waiter.communicate(timeout=10)
        assert (waiter.returncode, out) == (0, "137\n")
    assert cid not in mini("ps", "-aq", "--no-trunc").stdout.split()   # --rm: gone
    gone = mini("wait", cid)
    assert gone.returncode == 1 and "No such container" in gone.stderr


def test_ps_shows_the_image_id_once_its_name_names_another_image():
    """docker's ps: the name a container ran by while that name still names its image; its
    image's id (12 digits, or whole with --no-trunc) once the tag is gone or moved on: the name
    would tell of an image the container does not run. Checked with a private dockerd 20.10."""
    from conftest import image_variant

    image_id = json.loads(mini("image", "inspect", "busybox").stdout)[0]["Id"]
    assert mini("tag", "busybox", "minips:1").returncode == 0
    cid = mini("create", "minips:1", "true").stdout.strip()

    def column(*flags: str) -> str:
        return mini("ps", "-a", *flags, "--filter", f"id={cid}", "--format", "{{.Image}}").stdout

    try:
        assert column() == "minips:1\n"
        assert mini("rmi", "minips:1").returncode == 0             # (busybox still names it)
        assert (column(), column("--no-trunc")) == (image_id[7:19] + "\n", image_id + "\n")
        image_variant("minips:1", drop=("bin/ls",))                # the name, on another image
        other = json.loads(mini("image", "inspect", "minips:1").stdout)[0]["Id"]
        assert column() == image_id[7:19] + "\n"
        assert mini("tag", "busybox", "minips:1").returncode == 0  # ... and back
        assert column() == "minips:1\n"
        assert mini("rmi", other).returncode == 0
    finally:
        mini("rm", cid)
        mini("rmi", "minips:1")


def test_an_id_prefix_of_two_containers_is_docker_s_error():
    """17 ids: two share their first digit. docker's daemon: "Multiple IDs found with provided
    prefix", for inspect too (mini's inspect said "No such object", its rm other words)."""
    ids = [mini("create", "busybox", "true").stdout.strip() for _ in range(17)]
    try:
        firsts = [i[0] for i in ids]
        prefix = next(c for c in firsts if firsts.count(c) > 1)
        for words in (["inspect", prefix], ["rm", prefix]):
            refused = mini(*words)
            assert refused.returncode == 1, words
            assert f"Error response from daemon: Multiple IDs found with provided prefix: {prefix}\n" in refused.stderr
    finally:
        mini("rm", *ids)


def test_stop_of_several_containers_stops_them_at_once_and_says_them_in_order():
    # Three PID-1 shells that ignore SIGTERM, each ended by SIGKILL after its 2 s: docker's client
    # stops them in parallel (one timeout, not three) and prints them in the order asked.
    names = [f"atonce{i}" for i in range(3)]
    for name in names:
        run_d("--name", name, "busybox", "sh", "-c", "while true; do sleep 1; done")
    stopped = mini("stop", "-t", "2", names[0], "nosuch-atonce", *names[1:])
    assert stopped.returncode == 1
    assert stopped.stdout.splitlines() == names
    assert stopped.stderr == "Error response from daemon: No such container: nosuch-atonce\n"
    ends = [state(name) for name in names]
    assert all(end["ExitCode"] == 137 for end in ends), ends
    finished = sorted(time.mktime(time.strptime(end["FinishedAt"][:19], "%Y-%m-%dT%H:%M:%S")) for end in ends)
    assert finished[-1] - finished[0] < 2, ends             # one after another: 2 s apart each
    assert mini("rm", *names).stdout.splitlines() == names


def test_container_prune_removes_what_has_no_process_and_says_what_it_freed():
    """docker container prune: created and exited containers go, running ones stay; asked first
    (anything but y is no, and the total is still said); label=, label!= and until= keep some."""
    exited = run_d("--name", "prunegone", "-l", "prunetest=1", "busybox", "sh", "-c",
                   "head -c 50000 /dev/zero > /big")
    mini("wait", exited)
    created = mini("create", "--name", "prunemade", "-l", "prunetest=1", "-l", "keep=yes",
                   "busybox", "true").stdout.strip()
    running = run_d("--name", "prunekeep", "-l", "prunetest=1", "busybox", "sleep", "60")
    try:
        ours = ["--filter", "label=prunetest"]
        declined = mini("container", "prune", *ours, input="yes\n")   # (docker's: only y is yes)
        assert (declined.returncode, declined.stdout) == (0, "WARNING! This will remove all stopped containers.\n"
                                                          "Are you sure you want to continue? [y/N] "
                                                          "Total reclaimed space: 0B\n")
        recent = mini("container", "prune", "-f", *ours, "--filter", "until=1h")   # all newer than that
        assert recent.stdout == "Total reclaimed space: 0B\n"
        assert len(mini("ps", "-aq", "-f", "label=prunetest").stdout.split()) == 3
        first = mini("container", "prune", *ours, "--filter", "label!=keep", input="y\n")
        head, _, total = first.stdout.partition("\n\nTotal reclaimed space: ")
        assert head.endswith(f"[y/N] Deleted Containers:\n{exited}") and total.endswith("kB\n"), first.stdout
        assert float(total.removesuffix("kB\n")) >= 50          # its upper dir: the 50 kB it wrote
        second = mini("container", "prune", "-f", *ours)
        assert second.stdout.startswith(f"Deleted Containers:\n{created}\n\nTotal reclaimed space: ")
        assert mini("ps", "-aq", "--no-trunc", "-f", "label=prunetest").stdout.split() == [running]
        bad = mini("container", "prune", "-f", "--filter", "name=x")
        assert (bad.returncode, bad.stderr) == (1, "mini: invalid filter 'name'\n")
    finally:
        mini("rm", "-f", exited, created, running)
