"""`mini version` and `mini info`: docker's layouts, with what this machine and this engine are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI as MINI_COMMAND
from conftest import mini
from mini_runtime import __version__, sysinfo

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def own_state(tmp_path: Path) -> dict[str, str]:
    """An empty state root of the test's own, so the counts are this test's containers only."""
    return {**os.environ, "MINI_ROOT": str(tmp_path / "lib"), "MINI_RUN": str(tmp_path / "run")}


def test_mini_dash_v_is_one_line_and_version_is_dockers_two_blocks():
    assert mini("-v").stdout == mini("--version").stdout == f"mini version {__version__}\n"
    result = mini("version")
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "Client:" and lines[lines.index("") + 1:][:2] == ["Server: mini", " Engine:"]
    python = "python" + ".".join(map(str, sys.version_info[:3]))
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    kernel_api = "1.41 (minimum version 1.12)"
    for key, value in [(" Version:", __version__), (" API version:", "1.41"), (" Python version:", python),
                       (" OS/Arch:", f"linux/{arch}"), ("  API version:", kernel_api),
                       ("  Experimental:", "false")]:
        assert any(line == key.ljust(20) + value for line in lines), (key, lines)   # tabwriter(20, 1, 1)


def test_version_and_info_take_dockers_templates(own_state):
    assert mini("version", "-f", "{{.Server.Version}}").stdout == f"{__version__}\n"
    assert mini("version", "--format", "{{.Client.ApiVersion}}").stdout == "1.41\n"
    assert mini("info", "-f", "{{.NCPU}} {{.OSType}}", env=own_state).stdout == \
        f"{len(os.sched_getaffinity(0))} linux\n"
    for command in ("version", "info"):
        result = mini(command, "-f", "{{.Bogus", env=own_state)   # (docker's StatusError: EX_USAGE)
        assert (result.returncode, result.stdout) == (64, "") and "unclosed action" in result.stderr
        result = mini(command, "-f", "{{.Bogus}}", env=own_state)   # a Go struct's missing field
        assert result.returncode == 1 and "Bogus" in result.stderr and result.stderr.count("\n") == 1


def test_info_counts_containers_by_state_and_images_by_id(own_state):
    def counts() -> str:
        return mini("info", "-f", "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} "
                    "{{.ContainersStopped}} {{.Images}}", env=own_state).stdout.strip()

    assert counts() == "0 0 0 0 1"                      # the built-in busybox, as `mini images` lists
    assert mini("tag", "busybox", "again:1", env=own_state).returncode == 0
    assert counts() == "0 0 0 0 1"                      # one image under two names
    names = ["mini-info-a", "mini-info-b", "mini-info-c"]
    try:
        assert mini("create", "--name", names[0], "busybox", env=own_state).returncode == 0
        for name in names[1:]:
            assert mini("run", "-d", "--name", name, "busybox", "sleep", "60", env=own_state).returncode == 0
        assert counts() == "3 2 0 1 1"
        assert mini("pause", names[2], env=own_state).returncode == 0
        try:
            assert counts() == "3 1 1 1 1"
        finally:
            mini("unpause", names[2], env=own_state)
    finally:
        mini("rm", "-f", *names, env=own_state)
    assert counts() == "0 0 0 0 1"


def test_info_says_the_machine_as_other_tools_see_it(own_state):
    result = mini("info", env=own_state)
    assert result.returncode == 0
    text = result.stdout
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", own_state["MINI_ROOT"].rsplit("/", 1)[0]],
                            capture_output=True, text=True).stdout.strip()
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]*)', Path("/etc/os-release").read_text(), re.M).group(1)
    for line in (f" Kernel Version: {kernel}", f"  Backing Filesystem: {fstype}",
                 f" Operating System: {pretty}", f" Docker Root Dir: {own_state['MINI_ROOT']}",
                 f" CPUs: {len(os.sched_getaffinity(0))}", f" Name: {os.uname().nodename}",
                 " Storage Driver: overlayfs", " Cgroup Driver: cgroupfs"):
        assert line in text.splitlines(), (line, text)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert abs(int(mini("info", "-f", "{{.MemTotal}}", env=own_state).stdout) - memory) < 1 << 20
    version = "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"
    assert f" Cgroup Version: {version}" in text.splitlines()
    assert mini("system", "info", env=own_state).stdout.splitlines()[:8] == text.splitlines()[:8]


def test_info_warns_of_limits_this_kernels_cgroups_cannot_set(own_state, tmp_path):
    """A v2 tree whose root lists only `cpu`: no memory, swap, cpuset or pids limits, each said
    on stderr in docker's words (`run --memory` would have to refuse here)."""
    fake = tmp_path / "cgroup"
    fake.mkdir()
    (fake / "cgroup.controllers").write_text("cpu io\n")
    result = mini("info", env={**own_state, "MINI_CGROUP_ROOT": str(fake)})
    assert result.returncode == 0 and " Cgroup Version: 2" in result.stdout.splitlines()
    assert result.stderr.splitlines() == ["WARNING: No memory limit support", "WARNING: No swap limit support",
                                          "WARNING: No cpuset support", "WARNING: No pids limit support"]


def test_system_alone_prints_its_usage_and_a_bad_verb_is_1():
    result = mini("system")
    assert result.returncode == 0 and "info" in result.stdout
    result = mini("system", "bogus")
    assert result.returncode == 1 and "invalid choice: 'bogus'" in result.stderr


def test_filesystem_of_a_path_not_made_yet_is_its_parents(tmp_path):
    fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", str(tmp_path)],
                            capture_output=True, text=True).stdout.strip()
    assert sysinfo.filesystem_of(tmp_path / "not" / "yet") == fstype
    assert sysinfo.filesystem_of(Path("/proc/self")) == "proc"


def prune_line(*args: str, env: dict[str, str], answer: str | None = None) -> subprocess.CompletedProcess[str]:
    """A prune in a network namespace of its own (`unshare -n`): a network prune looks for the
    default bridge, and must never find this machine's."""
    return subprocess.run(["unshare", "-n", *MINI_COMMAND, *args], capture_output=True, text=True, env=env,
                          input=answer, timeout=60)


def du(path: str) -> int:
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])


def image_names(env: dict[str, str]) -> list[str]:
    return mini("images", "--format", "{{.Repository}}:{{.Tag}}", env=env).stdout.split()


def image_ids(env: dict[str, str]) -> list[str]:
    return mini("images", "-q", "--no-trunc", env=env).stdout.split()


def test_image_prune_takes_dangling_images_that_no_container_uses(own_state):
    for letter in "abc":        # three commits onto one name: the first two lose it
        assert mini("run", "--name", f"mini-prune-{letter}", "busybox", "sh", "-c",
                    f"head -c 300000 /dev/urandom > /{letter}", env=own_state).returncode == 0
        assert mini("commit", f"mini-prune-{letter}", "pruned:1", env=own_state).returncode == 0
    dangling = mini("images", "-q", "--no-trunc", "--filter", "dangling=true", env=own_state).stdout.split()
    assert len(dangling) == 2
    used = mini("create", "--name", "mini-prune-user", dangling[0], env=own_state)   # keeps that one
    assert used.returncode == 0
    try:
        before = image_ids(own_state)
        declined = prune_line("image", "prune", env=own_state, answer="n\n")
        assert declined.stdout == ("WARNING! This will remove all dangling images.\n"
                                   "Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n")
        assert image_ids(own_state) == before
        store = own_state["MINI_ROOT"]
        du_before = du(store)
        result = prune_line("image", "prune", "-f", env=own_state)
        assert result.returncode == 0 and result.stderr == ""
        lines = result.stdout.splitlines()
        assert lines[:2] == ["Deleted Images:", f"deleted: {dangling[1]}"] and lines[2] == ""
        reclaimed = lines[3].removeprefix("Total reclaimed space: ")
        assert reclaimed.endswith("kB") and 0 < float(reclaimed[:-2]) * 1000 <= du_before - du(store) + 1000
        assert image_ids(own_state) == [i for i in before if i != dangling[1]]
    finally:
        mini("rm", "-f", "mini-prune-user", "mini-prune-a", "mini-prune-b", "mini-prune-c", env=own_state)


def test_image_prune_all_takes_every_unused_image_but_what_filters_keep(own_state):
    assert mini("tag", "busybox", "kept:1", env=own_state).returncode == 0
    labelled = mini("run", "--name", "mini-prune-l", "busybox", "true", env=own_state)
    assert labelled.returncode == 0
    assert mini("commit", "-c", "LABEL keep=yes", "mini-prune-l", "labelled:1", env=own_state).returncode == 0
    user = mini("create", "--name", "mini-prune-u", "kept:1", env=own_state)
    assert user.returncode == 0
    try:
        result = prune_line("image", "prune", "-a", "-f", "--filter", "label!=keep", env=own_state)
        assert result.returncode == 0 and "untagged: labelled:1" not in result.stdout
        assert "kept:1" in image_names(own_state)                     # busybox's: a container's
        mini("rm", "-f", "mini-prune-u", "mini-prune-l", env=own_state)
        result = prune_line("image", "prune", "-a", "-f", "--filter", "label=keep=yes", env=own_state)
        assert "untagged: labelled:1" in result.stdout.splitlines() and "kept:1" not in result.stdout
        result = prune_line("image", "prune", "-a", "-f", "--filter", "until=24h", env=own_state)
        assert "untagged: kept:1" in result.stdout.splitlines()         # made seven months ago
    finally:
        mini("rm", "-f", "mini-prune-u", "mini-prune-l", env=own_state)


def test_system_prune_asks_then_takes_stopped_containers_and_dangling_images(own_state):
    assert mini("create", "--name", "mini-sys-created", "busybox", env=own_state).returncode == 0
    assert mini("run", "--name", "mini-sys-exited", "busybox", "sh", "-c", "echo x > /x", env=own_state).returncode == 0
    assert mini("commit", "mini-sys-exited", "sys:1", env=own_state).returncode == 0
    assert mini("commit", "mini-sys-exited", "sys:1", env=own_state).returncode == 0    # one dangling
    running = mini("run", "-d", "--name", "mini-sys-running", "busybox", "sleep", "60", env=own_state)
    assert running.returncode == 0
    try:
        ids = {name: mini("inspect", "-f", "{{.Id}}", name, env=own_state).stdout.strip()
               for name in ("mini-sys-created", "mini-sys-exited")}
        declined = prune_line("system", "prune", "--filter", "until=1h", env=own_state, answer="\n")
        assert declined.stdout == ("WARNING! This will remove:\n  - all stopped containers\n"
                                   "  - all networks not used by at least one container\n  - all dangling images\n\n"
                                   "  Items to be pruned will be filtered with:\n  - until=1h\n\n"
                                   "Are you sure you want to continue? [y/N] ")
        assert len(mini("ps", "-aq", env=own_state).stdout.split()) == 3
        result = prune_line("system", "prune", env=own_state, answer="y\n")
        sections = result.stdout.split("Are you sure you want to continue? [y/N] ")[1].split("\n\n")
        assert sections[0].splitlines()[0] == "Deleted Containers:"
        assert set(sections[0].splitlines()[1:]) == set(ids.values())
        assert sections[1].splitlines()[0] == "Deleted Images:" and len(sections[1].splitlines()) == 2
        assert sections[2].startswith("Total reclaimed space: ")
        assert mini("ps", "-a", "--format", "{{.Names}}", env=own_state).stdout == "mini-sys-running\n"
        assert "sys:1" in image_names(own_state)
    finally:
        mini("rm", "-f", "mini-sys-running", "mini-sys-created", "mini-sys-exited", env=own_state)


def test_system_df_counts_shared_layers_once_and_what_a_prune_would_free(own_state):
    assert mini("run", "--name", "mini-df-done", "busybox", "sh", "-c", "head -c 100000 /dev/urandom > /x",
                env=own_state).returncode == 0
    assert mini("commit", "mini-df-done", "df:1", env=own_state).returncode == 0
    assert mini("run", "-d", "--name", "mini-df-up", "df:1", "sleep", "60", env=own_state).returncode == 0
    try:
        summary = mini("system", "df", env=own_state)
        assert summary.returncode == 0 and summary.stderr == ""
        rows = [line.split() for line in summary.stdout.splitlines()]
        assert rows[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert rows[1][:3] == ["Images", "2", "2"]                    # each is a container's image
        assert rows[2] == ["Containers", "2", "1", "100kB", "100kB", "(100%)"]   # the exited one's /x
        assert rows[3:] == [["Local", "Volumes", "0", "0", "0B", "0B"], ["Build", "Cache", "0", "0", "0B", "0B"]]
        sizes = dict(line.split("=") for line in mini("images", "--format", "{{.Repository}}={{.Size}}",
                                                     env=own_state).stdout.split())
        verbose = mini("system", "df", "-v", env=own_state).stdout
        images = [line.split() for line in verbose.split("\n\n")[1].splitlines()[1:]]
        by_name = {row[0]: row for row in images}
        assert by_name["df"][-4:] == [sizes["df"], sizes["busybox"], by_name["df"][-2], "1"]   # shares busybox's
        assert by_name["busybox"][-3:] == [sizes["busybox"], "0B", "1"]                      # all of it shared
        assert rows[1][3] == sizes["df"]          # the layers once: busybox's are df's first ones
        assert "Containers space usage:" in verbose and "mini-df-up" in verbose and "Build cache usage: 0B" in verbose
        assert mini("system", "df", "--format", "{{.Type}}={{.TotalCount}}", env=own_state).stdout.splitlines() == \
            ["Images=2", "Containers=2", "Local Volumes=0", "Build Cache=0"]
        bad = mini("system", "df", "--format", "{{.Type", env=own_state)
        assert bad.returncode == 64 and bad.stdout == ""
    finally:
        mini("rm", "-f", "mini-df-up", "mini-df-done", env=own_state)
