"""The cgroup-v2 guest's own machinery (scripts/v2_guest.py): the FPU-state shim that lets
user-mode-linux run on CPUs with AVX-512 or AMX, and the guest's failure modes.

The shim is tested on this host's CPU with a tracer that does to a child what UML does to its
guest processes (tests/data/xstate_tracer.c): the widening path where the host's XSAVE area is
larger than UML's 832 bytes, and the pass-through path where the sizes are equal.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import v2_guest  # noqa: E402

x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="XSAVE is x86's")
UML_SIZE = 832


@pytest.fixture(scope="module")
def tracer(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tracer") / "xstate_tracer"
    subprocess.run(["cc", "-O2", "-o", str(out), str(REPO / "tests/data/xstate_tracer.c")],
                   check=True)
    return out


@pytest.fixture(scope="module")
def shim() -> Path:
    library = v2_guest.shim_library()
    assert library is not None and library.exists()
    return library


def run_tracer(tracer: Path, *args: str, shim: Path | None = None, log: Path | None = None) -> str:
    env = dict(os.environ)
    if shim:
        env["LD_PRELOAD"] = str(shim)
    if log:
        env["MINI_UML_SHIM_LOG"] = str(log)
    done = subprocess.run([str(tracer), *args], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def full_size(shim: Path, tracer: Path, tmp_path: Path) -> int:
    """The host's full XSAVE size, as the shim learns it (its log's first line)."""
    log = tmp_path / "size.log"
    run_tracer(tracer, shim=shim, log=log)
    first = log.read_text().splitlines()[0].split()
    assert first[0] == "host-size"
    return int(first[2].removeprefix("len="))


@x86_only
def test_shim_widens_short_fpu_writes_and_keeps_each_threads_registers(shim, tracer, tmp_path):
    size = full_size(shim, tracer, tmp_path)
    without = run_tracer(tracer)
    if size > UML_SIZE:  # AVX-512 or AMX: the host refuses UML's short write
        assert without.startswith("set=EFAULT"), without
    log = tmp_path / "shim.log"
    with_shim = run_tracer(tracer, shim=shim, log=log)
    # child=0: the tracer's xmm0 arrived and zmm17 (beyond 832 bytes) survived another
    # thread's full-size write in between: the shim kept this thread's shadow copy.
    assert with_shim.startswith("set=ok child=0"), with_shim
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    if size > UML_SIZE:
        assert calls.count("get") == 1 and calls.count("set") == 1, calls


@x86_only
def test_shim_passes_calls_through_when_the_sizes_are_equal(shim, tracer, tmp_path):
    size = full_size(shim, tracer, tmp_path)
    log = tmp_path / "shim.log"
    assert run_tracer(tracer, str(size), shim=shim, log=log).startswith("set=ok child=0")
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert "pass-through" in calls and "get" not in calls and "set" not in calls, calls


def test_a_missing_guest_kernel_fails_loudly(monkeypatch, capsys):
    monkeypatch.setattr(v2_guest, "UML", None)
    monkeypatch.setattr(sys, "argv", ["v2_guest.py"])
    assert v2_guest.main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "linux.uml not found" in err[0]


def test_a_timeout_ends_the_guests_whole_process_group(monkeypatch, tmp_path, capsys):
    """UML forks helpers; a timed-out guest must take them all along (the leak check sees any
    that stay: they come back to pytest, the subreaper)."""
    fake = tmp_path / "linux.uml"
    fake.write_text("#!/bin/sh\nsleep 300 &\nsleep 301\n")
    fake.chmod(0o755)
    monkeypatch.setattr(v2_guest, "UML", str(fake))
    monkeypatch.setattr(v2_guest, "TIMEOUT", 1)
    monkeypatch.setattr(sys, "argv", ["v2_guest.py", "--run", "true"])
    assert v2_guest.main() == 1
    assert "did not finish" in capsys.readouterr().err


def test_the_guest_runs_the_notebooks_and_brings_loopback_up():
    assert any("test_notebook_runs_top_to_bottom" in arg for arg in v2_guest.DEFAULT_TESTS)
    assert "ip link set lo up" in v2_guest.init_script(["true"], Path("/nonexistent"))


def test_the_guest_changes_a_live_cgroup_v2_with_update():
    """`mini update` writes v2's files (memory.max, cpu.max, cpu.weight, pids.max) into a running
    container's cgroup, and puts them back when one is refused: tested on v2 in the guest."""
    assert "tests/test_update.py" in v2_guest.DEFAULT_TESTS


@pytest.mark.skipif(shutil.which("linux.uml") is None, reason="user-mode-linux is not installed")
@pytest.mark.slow
def test_the_guest_boots_and_reports_its_exit_status():
    done = subprocess.run([sys.executable, str(REPO / "scripts/v2_guest.py"), "--run", "sh", "-c", "exit 3"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cgroup controllers" in done.stdout
