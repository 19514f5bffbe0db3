"""Unit tests: no root, no kernel features; pure logic of the runtime."""

from __future__ import annotations

import errno
import os
import signal

import pytest

from mini_runtime import process, units
from mini_runtime.cli import formatting
from mini_runtime.config import ContainerConfig, process_spec
from mini_runtime.errors import InvalidReference
from mini_runtime.image import reference


@pytest.mark.parametrize("rows, want", [
    ([["REPOSITORY", "TAG", "IMAGE ID"], ["busybox", "latest", "055aabe24769"]],
     "REPOSITORY   TAG       IMAGE ID\nbusybox      latest    055aabe24769\n"),
])
def test_table_is_aligned_like_docker(rows, want):
    assert formatting.table(rows) == want


@pytest.mark.parametrize("seconds, want", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds, want):
    assert units.human_duration(seconds) == want


@pytest.mark.parametrize("size, want", [(0, "0B"), (999, "999B"), (2140000, "2.14MB"),
                                        (4261234, "4.26MB"), (1e9, "1GB")])
def test_human_size_matches_go_units(size, want):
    assert units.human_size(size) == want


@pytest.mark.parametrize("text, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("me/app", "docker.io/me/app:latest"),
    ("localhost:5000/a/b:v1", "localhost:5000/a/b:v1"),
    ("registry.example/x", "registry.example/x:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
])
def test_reference_parse_normalises_like_docker(text, full):
    assert reference.parse(text).full == full


def test_reference_repository_name_may_have_255_characters_as_in_docker():
    assert reference.parse("a" * 255 + ":" + "t" * 128).tag == "t" * 128
    assert reference.parse("example.com/" + "a" * 243).domain == "example.com"


def test_reference_familiar_name():
    assert str(reference.parse("docker.io/library/busybox")) == "busybox:latest"
    assert str(reference.parse("localhost:5000/app")) == "localhost:5000/app:latest"


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "-lead", "name:", "name:-bad", "a b", "busybox\n",
                                 "a" * 256, "example.com/" + "a" * 244 + ":tag", "a" * 2000])
def test_reference_rejects_invalid(bad):
    with pytest.raises(InvalidReference, match="invalid reference format"):
        reference.parse(bad)


def test_process_spec_merges_image_defaults_and_flags():
    image = {"config": {"Entrypoint": ["/bin/tini"], "Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"],
                        "WorkingDir": "/srv"}}
    spec = process_spec(ContainerConfig("x", command=["echo", "hi"], env=["A=2", "B=3"]), image)
    assert spec.args == ["/bin/tini", "echo", "hi"]
    assert spec.env == {"PATH": "/bin", "A": "2", "B": "3"}
    assert spec.cwd == "/srv"
    spec = process_spec(ContainerConfig("x", workdir="/tmp"), {"config": {"Cmd": ["sh"]}})
    assert spec.args == ["sh"] and spec.cwd == "/tmp" and "PATH" in spec.env
    with pytest.raises(ValueError, match="no command"):
        process_spec(ContainerConfig("x"), {"config": {}})


def _status(action: str, value: int) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            if action == "kill":
                if value != signal.SIGKILL:
                    signal.signal(value, signal.SIG_DFL)
                os.kill(os.getpid(), value)
        finally:
            os._exit(value)
    return os.waitpid(pid, 0)[1]


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_of_an_exit(code):
    assert process.exit_code(_status("exit", code)) == code


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_exit_code_of_a_signal_is_128_plus_n(sig):
    assert process.exit_code(_status("kill", sig)) == 128 + sig


def test_exec_error_codes():
    assert process.exec_error_code(errno.ENOENT) == 127
    assert process.exec_error_code(errno.EACCES) == 126


def test_find_executable_searches_path_inside_root(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "tool").write_text("not executable")
    (tmp_path / "b" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "b" / "tool").chmod(0o755)
    assert process.find_executable("tool", "/a:/b", str(tmp_path)) == str(tmp_path / "b" / "tool")
    assert process.find_executable("/b/tool", "", str(tmp_path)) == str(tmp_path / "b" / "tool")
    with pytest.raises(FileNotFoundError):
        process.find_executable("nope", "/a:/b", str(tmp_path))


def test_forward_signals_restores_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with process.forward_signals(os.getpid() + 10**6):
        assert signal.getsignal(signal.SIGTERM) != before
    assert signal.getsignal(signal.SIGTERM) == before


# --- mini doctor: what chapters 01-05 need is required now, not "later" (issue 10) ----------

def test_doctor_requires_now_what_chapters_01_to_05_use():
    from mini_runtime import doctor

    later = {check.name: check.later for check in doctor.checks() if check.later}
    assert later == {"user namespaces": "chapter 08", "nftables": "chapter 07"}


def test_doctor_fails_a_machine_without_overlayfs(tmp_path, capsys):
    from mini_runtime import doctor

    (tmp_path / "filesystems").write_text("nodev\tsysfs\nnodev\tproc\n\text4\n")
    check = doctor.check_overlayfs(tmp_path / "filesystems", tmp_path / "modules")
    assert not check.ok and not check.later
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ overlayfs")
    (tmp_path / "filesystems").write_text("nodev\tproc\nnodev\toverlay\n")
    assert doctor.check_overlayfs(tmp_path / "filesystems", tmp_path / "modules").ok


def test_doctor_fails_a_machine_without_the_cgroup_controllers(tmp_path, capsys):
    from mini_runtime import doctor

    proc_cgroups = tmp_path / "cgroups"
    proc_cgroups.write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                            "cpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t4\t1\t1\n")
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "memory").mkdir()   # pids: enabled in the kernel, but mounted nowhere
    check = doctor.check_cgroups(tmp_path / "v1", proc_cgroups)
    assert not check.ok and not check.later and "pids" in check.fix
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ cgroups")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert doctor.check_cgroups(tmp_path / "v2", proc_cgroups).ok
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpu io\n")
    assert not doctor.check_cgroups(tmp_path / "v2", proc_cgroups).ok


def test_doctor_fails_a_machine_without_a_namespace(tmp_path, capsys):
    from mini_runtime import doctor

    for kind in ("mnt", "uts", "ipc", "pid"):
        (tmp_path / kind).touch()
    check = doctor.check_namespaces(tmp_path)
    assert not check.ok and not check.later and check.detail == "missing: net cgroup"
    assert doctor.main([check]) == 1
    assert capsys.readouterr().out.startswith("✗ namespaces")
    assert doctor.check_namespaces().ok
