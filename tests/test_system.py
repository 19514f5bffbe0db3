"""`mini version` and `mini info`: docker's layouts, with what this machine and this engine are."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
