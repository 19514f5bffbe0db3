"""`mini update` (docker update): a container's limits changed after it was created, in its
cgroup at once while it has one (running, paused, created), in its record always, and used by
its next start; docker's refusals leave the cgroup and the record as they were.

These run on the host (cgroup v1 here) and in the cgroup-v2 guest (scripts/v2_guest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, mini
from mini_runtime import cgroups

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.cgroup]
V2 = cgroups.mode() == "v2"
LOOP = ["busybox", "sh", "-c", "echo ready; while :; do sleep 1; done"]  # (no exec: sh stays)


@pytest.fixture
def containers():
    """Names of containers a test makes: removed (unpaused first) whatever happens."""
    made: list[str] = []
    yield made
    for name in made:
        mini("unpause", name)
        mini("rm", "-f", name)


def started(made: list[str], name: str, *flags: str, command: list[str] = LOOP) -> str:
    """`mini run -d` a container; its id once its command has said "ready"."""
    made.append(name)
    done = mini("run", "-d", "--name", name, *flags, *command)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 20
    while "ready" not in mini("logs", name).stdout:
        assert time.monotonic() < deadline, "the container never said ready"
        time.sleep(0.05)
    return done.stdout.strip()


def cgroup_file(container_id: str, controller: str, v1: str, v2: str) -> Path:
    """One of its limit files: the v2 name in its one directory, or the v1 name in the
    controller's tree (under MINI_CGROUP_PARENT)."""
    if V2:
        return cgroups.ROOT / cgroups.PARENT / container_id / v2
    return cgroups.ROOT / controller / cgroups.PARENT / container_id / v1


def limits(container_id: str) -> dict[str, str]:
    """The live values of the files `update` writes, by docker's flag."""
    files = {"memory": ("memory", "memory.limit_in_bytes", "memory.max"),
             "cpus": ("cpu", "cpu.cfs_quota_us", "cpu.max"),
             "cpu-shares": ("cpu", "cpu.shares", "cpu.weight"),
             "pids-limit": ("pids", "pids.max", "pids.max")}
    return {flag: cgroup_file(container_id, *where).read_text().strip() for flag, where in files.items()}


def host_config(name: str) -> dict:
    return json.loads(mini("inspect", "-f", "{{json .HostConfig}}", name).stdout)


def test_a_running_container_s_cgroup_changes_at_once_and_its_record_too(containers):
    container_id = started(containers, "upd-run", "-m", "64m")
    done = mini("update", "-m", "200m", "--memory-swap", "500m", "--cpus", "0.5", "-c", "512",
                "--pids-limit", "50", "upd-run")    # (more memory than the old memory + swap: 128m)
    assert (done.returncode, done.stdout, done.stderr) == (0, "upd-run\n", "")
    assert limits(container_id) == {
        "memory": str(200 << 20), "cpus": "50000 100000" if V2 else "50000",
        "cpu-shares": str(cgroups.shares_to_weight(512)) if V2 else "512", "pids-limit": "50"}
    swap = cgroup_file(container_id, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
    if swap.exists():                               # (swap accounting on: v1 counts memory + swap)
        assert swap.read_text().strip() == str(300 << 20 if V2 else 500 << 20)
    host = host_config("upd-run")
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["CpuShares"], host["PidsLimit"]) \
        == (200 << 20, 500 << 20, 500_000_000, 512, 50)
    assert mini("logs", "upd-run").stdout == "ready\n"          # (nothing restarted it)


def test_a_paused_container_is_changed_while_frozen(containers):
    container_id = started(containers, "upd-paused")
    assert mini("pause", "upd-paused").returncode == 0
    try:
        done = mini("container", "update", "--pids-limit", "20", "upd-paused")
        assert (done.returncode, done.stdout) == (0, "upd-paused\n"), done.stderr
        assert limits(container_id)["pids-limit"] == "20"
    finally:
        mini("unpause", "upd-paused")
    assert host_config("upd-paused")["PidsLimit"] == 20


@pytest.mark.parametrize("state", ["created", "exited"])
def test_a_stopped_container_keeps_the_change_and_its_next_start_uses_it(containers, state):
    name = f"upd-{state}"
    containers.append(name)
    assert mini("create" if state == "created" else "run", *(["-d"] if state == "exited" else []),
                "--name", name, "-m", "64m", *LOOP).returncode == 0
    if state == "exited":
        assert mini("stop", "-t", "0", name).returncode == 0
    done = mini("update", "-m", "80m", "--cpus", "0.25", "--pids-limit", "7", name)
    assert (done.returncode, done.stdout) == (0, f"{name}\n"), done.stderr
    host = host_config(name)
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (80 << 20, 250_000_000, 7)
    assert mini("start", name).returncode == 0
    container_id = mini("inspect", "-f", "{{.Id}}", name).stdout.strip()
    live = limits(container_id)
    assert (live["memory"], live["cpus"], live["pids-limit"]) == (
        str(80 << 20), "25000 100000" if V2 else "25000", "7")


def unchanged(name: str, container_id: str, before: tuple) -> None:
    assert (host_config(name), limits(container_id)) == before


@pytest.mark.parametrize("flags, code, line", [
    (["-m", "1m"], 1, "Error response from daemon: Minimum memory limit allowed is 6MB"),
    (["-m", "200m", "--cpus", "1"], 1, "Error response from daemon: Cannot update container {id}: "
     "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"),
    (["--memory-swap", "32m"], 1, "Error response from daemon: Cannot update container {id}: "
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    (["--cpus", "1", "--cpuset-cpus", "4096"], 1, "Error response from daemon: Cannot update container {id}: "
     "--cpuset-cpus"),
    (["--cpus", "1", "--cpuset-cpus", "1-0"], 1, "Error response from daemon: Invalid value 1-0 for cpuset cpus"),
    (["--cpus", "1", "--restart", "always"], 125, "mini: --restart: exercise 06's extension, "),
    (["--cpus", "1", "--cpu-quota", "50000"], 125, "mini: --cpu-period and --cpu-quota: exercise 04's extension, "),
    (["-m", "abc"], 125, "mini: invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'"),
    ([], 1, "mini: you must provide one or more flags when using this command"),
])
def test_a_refusal_is_one_line_and_changes_nothing(containers, flags, code, line):
    """docker's words (its client's, its daemon's: "Error response from daemon: ..."); the
    cgroup written first (--cpus) is put back when a later value is refused (--cpuset-cpus)."""
    container_id = started(containers, "upd-refused", "-m", "64m")
    before = (host_config("upd-refused"), limits(container_id))
    done = mini("update", *flags, "upd-refused")
    assert done.returncode == code
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(line.format(id=container_id)), done.stderr
    unchanged("upd-refused", container_id, before)


def test_zero_is_not_set_as_dockers_update_reads_it(containers):
    """docker's client sends 0 for --cpus 0 and -m 0, and its daemon reads 0 as "not given": the
    limits stay, and the command succeeds (the oracle: dockerd 20.10, `update -m 0 --cpus 0`)."""
    container_id = started(containers, "upd-zero", "-m", "64m", "--cpus", "0.5")
    before = (host_config("upd-zero"), limits(container_id))
    done = mini("update", "-m", "0", "--cpus", "0", "upd-zero")
    assert (done.returncode, done.stdout, done.stderr) == (0, "upd-zero\n", "")
    unchanged("upd-zero", container_id, before)


@pytest.mark.skipif(V2, reason="cgroup v2 takes a memory limit below the usage: it reclaims, then OOM-kills")
def test_a_memory_limit_the_kernel_refuses_puts_back_what_was_written(containers):
    """v1 answers EBUSY to a memory limit below what the container uses and cannot reclaim (40 MB
    of a shell's variable); memory + swap, lifted before it, goes back, and so does all else."""
    hold = ["busybox", "sh", "-c", 'x=$(head -c 40000000 /dev/zero | tr "\\0" a); echo ready; '
            "while :; do sleep 1; done"]
    container_id = started(containers, "upd-busy", "-m", "100m", command=hold)
    swap = cgroup_file(container_id, "memory", "memory.memsw.limit_in_bytes", "")
    before = (host_config("upd-busy"), limits(container_id), swap.exists() and swap.read_text())
    done = mini("update", "-m", "20m", "--memory-swap", "20m", "--pids-limit", "9", "upd-busy")
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error response from daemon: Cannot update container {container_id}: "
                                  "memory.") and "Device or resource busy" in done.stderr, done.stderr
    assert (host_config("upd-busy"), limits(container_id), swap.exists() and swap.read_text()) == before
    assert mini("inspect", "-f", "{{.State.Status}}", "upd-busy").stdout == "running\n"


def test_several_containers_at_once_each_as_given_and_exit_1_if_one_failed(containers):
    first = started(containers, "upd-one")
    second = started(containers, "upd-two")
    done = mini("update", "--pids-limit", "33", "upd-one", "upd-nosuch", second[:12])
    assert done.returncode == 1
    assert done.stdout == f"upd-one\n{second[:12]}\n"
    assert done.stderr == "Error response from daemon: No such container: upd-nosuch\n"
    assert limits(first)["pids-limit"] == limits(second)["pids-limit"] == "33"


@pytest.fixture
def plugged(tmp_path):
    """`mini` with an exercise's model solution plugged in (exercises/plugged.py): the hooks the
    reference leaves to the learner, so that update's use of them is tested too."""
    from exercises import grading, parts

    def run(number: str, *args: str):
        chapter = grading.find_chapter(number)
        model = tmp_path / f"model_{number}.py"
        model.write_bytes(parts.model_source(chapter))
        config = json.dumps({"module": chapter.module, "file": str(model), "plug": parts.hooks(chapter),
                             "graded": chapter.graded})
        env = dict(os.environ, PYTHONPATH=str(REPO))    # (its monitors import exercises/ too)
        return mini_python("-m", "exercises.plugged", config, "--", *args, env=env)
    return run


def mini_python(*args: str, env: dict) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=env)


def test_the_extension_flags_go_through_the_exercises_hooks(containers, plugged):
    """--cpu-period, --cpu-quota and --memory-reservation (exercise 04) and --restart (exercise
    06): the reference refuses them as exercises; the model solutions make them work, with
    docker's checks of a mix with what is recorded."""
    container_id = started(containers, "upd-hooks", "-m", "64m")
    done = plugged("04", "update", "--cpus", "0.5", "--cpu-period", "20000", "upd-hooks")
    assert (done.returncode, done.stderr) == (1, "Error response from daemon: Conflicting options: "
                                                 "Nano CPUs and CPU Period cannot both be set\n")
    done = plugged("04", "update", "--cpu-period", "20000", "--cpu-quota", "10000",
                   "--memory-reservation", "32m", "upd-hooks")
    assert (done.returncode, done.stdout) == (0, "upd-hooks\n"), done.stderr
    if V2:
        assert cgroup_file(container_id, "cpu", "", "cpu.max").read_text().split() == ["10000", "20000"]
    else:
        assert cgroup_file(container_id, "cpu", "cpu.cfs_period_us", "").read_text().strip() == "20000"
        assert cgroup_file(container_id, "cpu", "cpu.cfs_quota_us", "").read_text().strip() == "10000"
    host = host_config("upd-hooks")
    assert (host["CpuPeriod"], host["CpuQuota"], host["MemoryReservation"]) == (20000, 10000, 32 << 20)
    done = plugged("04", "update", "--cpus", "1", "upd-hooks")
    assert (done.returncode, done.stderr) == (1, f"Error response from daemon: Cannot update container {container_id}: "
                                                 "Conflicting options: Nano CPUs cannot be updated as CPU Period "
                                                 "has already been set\n")
    done = plugged("06", "update", "--restart", "on-failure:3", "upd-hooks")
    assert (done.returncode, done.stdout) == (0, "upd-hooks\n"), done.stderr
    assert host_config("upd-hooks")["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    started(containers, "upd-rm", "--rm")
    done = plugged("06", "update", "--restart", "always", "upd-rm")
    assert done.returncode == 1 and done.stderr.endswith(
        ": Restart policy cannot be updated because AutoRemove is enabled for the container\n"), done.stderr
