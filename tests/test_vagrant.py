"""The learner's way in: the Vagrantfile validates, scripts/lab.sh parses, the README's links work.

`vagrant validate` runs offline from a copy of the Vagrantfile in a temporary directory (so no
`.vagrant/` appears in the checkout), with HOME and VAGRANT_HOME there too. Validation needs a
*usable* provider, and this machine has no hypervisor: a stub `VBoxManage` that only answers
`--version` makes the VirtualBox provider usable, so its block (cpus, memory, name) is checked as
well. Blocks for providers whose plugin is missing (parallels, vmware_desktop, libvirt without
vagrant-libvirt) are accepted silently by Vagrant.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Every Vagrant release since 2.2.7 knows VirtualBox 7.0 (2.3.4 is the oldest the course meets).
STUB_VBOXMANAGE = """#!/bin/sh
case "$1" in
  --version) echo 7.0.20r163906 ;;
esac
exit 0
"""


def _vagrant() -> str:
    vagrant = shutil.which("vagrant")
    if vagrant is None:
        if os.environ.get("CI"):
            pytest.fail("vagrant is not installed; in CI `make test` installs it "
                        "(scripts/provision.sh --test), so this is a setup bug")
        pytest.skip("vagrant is not installed (`make test` installs it: scripts/provision.sh --test)")
    return vagrant


def _offline_prefix() -> list[str]:
    """`unshare --net`: no network at all, so validation cannot depend on a download."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    if os.geteuid() == 0:
        return [unshare, "--net"]
    probe = subprocess.run([unshare, "--map-root-user", "--net", "true"], capture_output=True)
    return [unshare, "--map-root-user", "--net"] if probe.returncode == 0 else []


def _validate(tmp_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    stubs = tmp_path / "bin"
    work.mkdir()
    stubs.mkdir()
    shutil.copy(REPO / "Vagrantfile", work / "Vagrantfile")
    stub = stubs / "VBoxManage"
    stub.write_text(STUB_VBOXMANAGE)
    stub.chmod(0o755)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "MINI_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        VAGRANT_HOME=str(tmp_path / "vagrant.d"),
        PATH=f"{stubs}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        VAGRANT_DEFAULT_PROVIDER="virtualbox",
        VAGRANT_CHECKPOINT_DISABLE="1",
        VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
        VAGRANT_NO_COLOR="1",
    )
    env.update(extra_env)
    (tmp_path / "home").mkdir()
    return subprocess.run([*_offline_prefix(), _vagrant(), "validate"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)


def test_vagrantfile_validates(tmp_path):
    result = _validate(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "validated successfully" in output, output


def test_vagrantfile_rejects_a_bad_size_in_one_line(tmp_path):
    result = _validate(tmp_path, MINI_CPUS="two")
    assert result.returncode != 0
    assert 'MINI_CPUS="two" is not a whole number' in result.stderr, result.stderr


def test_lab_sh_parses():
    result = subprocess.run(["bash", "-n", str(REPO / "scripts" / "lab.sh")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_lab_sh_help_and_bad_option():
    lab = str(REPO / "scripts" / "lab.sh")
    help_ = subprocess.run(["bash", lab, "--help"], capture_output=True, text=True, timeout=10)
    assert help_.returncode == 0 and "--install-service" in help_.stdout, help_.stderr
    bad = subprocess.run(["bash", lab, "--bogus"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr, bad.stderr


# --- README ------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CHAPTER_ROW = re.compile(r"^\|\s*(\d\d)\s*\|.*\|\s*([^|]*?)\s*\|\s*$", re.MULTILINE)
CHAPTER_FILE = re.compile(r"^(?:chapters/(\d\d)-|notebooks/(\d\d)-|exercises/(\d\d)_)")


def _done_chapters(text: str) -> set[str]:
    """Chapters whose row in the README's chapter table is not marked "coming"."""
    return {num for num, last in CHAPTER_ROW.findall(text) if last.lower() != "coming"}


def _anchors(text: str) -> set[str]:
    anchors = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make test" in text
    assert "make demo" in text


def test_readme_links_to_finished_chapters_exist():
    text = README.read_text()
    done = _done_chapters(text)
    assert "01" in done, "the chapter table should list chapter 01 as done"
    links = LINK.findall(text)
    for needed in ("chapters/01-processes.md", "notebooks/01-processes.ipynb",
                   "exercises/01_processes/README.md"):
        assert needed in links, f"README.md should link {needed}"

    anchors = _anchors(text)
    broken = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue                                    # http:, https:, mailto:
        if target.startswith("#"):
            if target[1:] not in anchors:
                broken.append(target)
            continue
        path = target.split("#", 1)[0]
        chapter = CHAPTER_FILE.match(path)
        if chapter and next(n for n in chapter.groups() if n) not in done:
            continue                                    # a chapter still to come
        if not (REPO / path).is_file():                 # a folder fails in JupyterLab
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_the_vm_lets_the_demo_publish_its_web_server_and_forwards_it():
    """`make demo`'s web server (-p 8080:80) uses the VM's network only where the Vagrantfile says
    so (MINI_DEMO_NETWORK=1, for login shells), and the host reaches it on its own loopback."""
    text = (REPO / "Vagrantfile").read_text()
    assert re.search(r"^\s*export MINI_DEMO_NETWORK=1$", text, re.M)
    forward = re.search(r'forwarded_port", id: "web", guest: (\d+), host: (\d+),\s*host_ip: "([^"]+)"', text)
    assert forward and forward.groups() == ("8080", "8080", "127.0.0.1")
    assert "WEB_PORT = 8080" in (REPO / "scripts" / "demo.py").read_text()
