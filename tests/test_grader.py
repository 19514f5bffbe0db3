"""The grader is honest: the reference gets full marks, the untouched skeleton zero on every
check, and its reports (table, Gradescope results.json, instructors' CSV) are well-formed."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from exercises import grading, parts

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.grader]

# Gradescope's results.json, as its autograder specification describes it.
GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["tests"],
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["name", "score", "max_score", "output"],
            "properties": {
                "name": {"type": "string"}, "number": {"type": "string"},
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "output": {"type": "string"}, "status": {"enum": ["passed", "failed"]},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
            }}},
    },
}

CHAPTERS = sorted(p.parent.name[:2] for p in (REPO / "exercises").glob("*_*/checks.py"))
# Chapters graded on a machine this one may not be (04: cgroup v2); `make test` runs their
# tests again inside the cgroup-v2 guest kernel (scripts/v2_guest.py), where they do run.
IN_GUEST = ["04"]


def params(numbers: list) -> list:
    """Parameters, the IN_GUEST chapters' marked for the guest's `-m v2guest`."""
    return [pytest.param(*n, marks=pytest.mark.v2guest) if n[0] in IN_GUEST
            else pytest.param(*n) for n in (x if isinstance(x, tuple) else (x,) for x in numbers)]


def chapter_here(number: str) -> grading.Chapter:
    """The chapter, or a skip when this machine cannot grade it."""
    chapter = grading.find_chapter(number)
    if chapter.unmet():
        pytest.skip(chapter.unmet())
    return chapter


def pristine_skeleton(chapter: grading.Chapter, tmp_path: Path) -> Path:
    """The skeleton as committed (a learner may have edited the working copy)."""
    rel = (chapter.folder / chapter.learner_file).relative_to(REPO)
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{rel}"], capture_output=True)
    target = tmp_path / chapter.learner_file
    if shown.returncode == 0:
        target.write_bytes(shown.stdout)
    else:
        target.write_bytes((REPO / rel).read_bytes())
    return target


def grade_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exercises", "grade", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def model(chapter: grading.Chapter) -> bytes:
    """The model solution (the reference and its extension's hooks), or the reference itself
    for a chapter without an extend part yet."""
    if parts.solution_file(chapter).is_file():
        return parts.model_source(chapter)
    return grading.resolve_learner_file(chapter, None, True).read_bytes()


@pytest.mark.parametrize("number", params(CHAPTERS))
def test_reference_gets_full_marks_on_the_rebuild_part_and_none_on_the_extension(number, tmp_path):
    """The extension is absent from the reference: its flag or command says whose it is."""
    chapter = chapter_here(number)
    path = grading.resolve_learner_file(chapter, None, True)
    for seed in (1,):  # (the model solution's test grades the rebuild part again, with seed 2)
        results = grading.grade(chapter, path, seed)
        failed = [f"{r.check.number}: {r.message}" for r in results if not r.passed and r.check.part == "rebuild"]
        assert not failed, failed
        assert grading.total(results)[0] == parts.points(chapter.checks)["rebuild"] > 0
        extension = [r for r in results if r.check.part == "extend"]
        assert all(f"exercise {number}'s extension" in r.message for r in extension), \
            [(r.check.number, r.message) for r in extension]


@pytest.mark.parametrize("number", params(CHAPTERS))
def test_model_solution_gets_full_marks(number):
    """The reference with the extension's model solution (tests/data/solutions/)."""
    chapter = chapter_here(number)
    results = grading.grade(chapter, parts.solution_file(chapter), seed=2, source=parts.model_source(chapter))
    failed = [f"{r.check.number}: {r.message}" for r in results if not r.passed]
    assert not failed, failed
    assert grading.total(results)[0] == sum(c.points for c in chapter.checks) > 0


@pytest.mark.parametrize("number", CHAPTERS)
def test_two_parts_extend_is_at_least_60_percent_and_absent_from_the_reference(number):
    """The two-part rule holds, and no line of the model extension is in what learners read
    (the runtime, the chapters, the notebooks, the exercise folders)."""
    chapter = grading.find_chapter(number)
    assert any(c.part == "extend" for c in chapter.checks), f"chapter {number} has no extend part"
    assert parts.problems(chapter) == []
    solution = parts.solution_file(chapter)
    assert solution.is_file() and not solution.is_relative_to(REPO / "exercises")
    reference = __import__(chapter.module, fromlist=["x"])
    for hook in parts.hooks(chapter):
        assert hasattr(reference, hook), f"{hook}: the reference's plumbing calls it"

    def code(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith(("#", '"', "from ", "import "))]

    # Four lines in a row give an answer away; a generic line or three (a mount call) do not.
    body = code(solution.read_text())
    windows = {tuple(body[i:i + 4]) for i in range(len(body) - 3)}
    assert windows, "the model solution has lines of its own"
    visible = [*(REPO / "mini_runtime").rglob("*.py"), *(REPO / "chapters").glob("*.md"),
               *(REPO / "notebooks").glob("*.ipynb"), *chapter.folder.rglob("*")]
    for path in visible:
        if path.is_file():
            text = path.read_text(errors="replace")
            if path.suffix == ".ipynb":
                text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
            lines = code(text)
            shown = {tuple(lines[i:i + 4]) for i in range(len(lines) - 3)} & windows
            assert not shown, f"{path.relative_to(REPO)} shows the model solution: {sorted(shown)[0]!r}"


@pytest.mark.parametrize("number", params(CHAPTERS))
def test_untouched_skeleton_scores_zero_on_every_check(number, tmp_path):
    chapter = chapter_here(number)
    results = grading.grade(chapter, pristine_skeleton(chapter, tmp_path), seed=3)
    passed = [r.check.number for r in results if r.passed]
    assert not passed, f"the skeleton passes {passed}: those checks test nothing of the learner's"
    assert all(r.message for r in results)


@pytest.mark.parametrize("number", CHAPTERS)
def test_skeleton_matches_the_reference_signatures(number, tmp_path):
    """The skeleton cannot drift: same functions, same signatures as the reference module."""
    chapter = grading.find_chapter(number)
    skeleton = grading.load_module(pristine_skeleton(chapter, tmp_path), f"skeleton_{number}")
    reference = __import__(chapter.module, fromlist=["x"])
    plugged = {name for check in chapter.checks for name in check.plug}
    for name in plugged:
        want = inspect.signature(getattr(reference, name))
        got = inspect.signature(getattr(skeleton, name))
        assert str(got) == str(want), f"{name}: skeleton {got} vs reference {want}"
    assert "TODO" in inspect.getsource(skeleton)


@pytest.mark.parametrize("number", CHAPTERS)
def test_every_check_points_to_a_section_of_its_chapter(number):
    chapter = grading.find_chapter(number)
    text = (REPO / chapter.chapter_text).read_text()
    headings = {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("## ")}
    for check in chapter.checks:            # (one form in every chapter: "reread: FILE § Heading")
        assert check.section.startswith("§ "), (check.number, check.section)
        assert check.section.removeprefix("§ ") in headings, (check.number, check.section)


def test_a_wrong_answer_gets_a_one_line_expected_actual(tmp_path):
    chapter = grading.find_chapter("01")
    source = (REPO / "mini_runtime" / "process.py").read_text()
    broken = source.replace("return 128 + os.WTERMSIG(status)", "return -os.WTERMSIG(status)")
    assert broken != source
    (tmp_path / "process.py").write_text(broken)
    # (only the two checks looked at: check i's seed is seed + i whatever else is graded)
    results = {r.check.number: r for r in grading.grade(chapter, tmp_path / "process.py", seed=4,
                                                        only=["1.1", "1.3"])}
    assert not results["1.1"].passed and results["1.1"].message.startswith("expected 1")
    assert "\n" not in results["1.1"].message
    assert results["1.3"].passed  # the other functions are still right: partial credit


def test_a_runaway_learner_function_times_out(tmp_path, monkeypatch):
    chapter = grading.find_chapter("01")
    source = (REPO / "mini_runtime" / "process.py").read_text()
    (tmp_path / "process.py").write_text(source.replace(
        '    _, status = os.waitpid(pid, 0)\n    return status', '    while True:\n        pass'))
    check = next(c for c in chapter.checks if c.number == "1.5")
    monkeypatch.setattr(check, "timeout", 3)
    result = grading.run_check(chapter, check, tmp_path / "process.py", seed=5)
    assert not result.passed and "timed out" in result.message


def test_cli_reference_table_and_gradescope_json(tmp_path):
    out = tmp_path / "results.json"
    result = grade_cli("01", "--model", "--gradescope", str(out), "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "TOTAL 25 / 25" in result.stdout and "(rebuild 10 / 10, extend 15 / 15)" in result.stdout
    data = json.loads(out.read_text())
    jsonschema.validate(data, GRADESCOPE_SCHEMA)
    assert data["score"] == sum(t["max_score"] for t in data["tests"]) == 25
    assert all(t["status"] == "passed" for t in data["tests"])
    assert data["extra_data"]["seed"] == 5 and "checks " in data["extra_data"]["grader"]
    assert "seed 5" in data["output"]


MUTANTS = {
    # (chapter, name): (the text to replace, its replacement, the check that must catch it[, a
    # fragment its message must have])
    # the orchestration (the order of the steps) and the "why?" predictions of 01-03 and 05
    ("01", "child-does-not-wait-for-go"): ("        if os.read(go_read, len(GO)) != GO:\n"
                                           "            os._exit(125)                     # the parent went away without releasing us\n",
                                           "", "1.7"),
    ("01", "parent-keeps-the-childs-pipe-ends"): ("    os.close(go_read)\n    os.close(err_write)\n", "", "1.7"),
    ("01", "release-ignores-the-report"): ("        raise ExecError(message, int(code))   # the caller reaps the child\n",
                                           "        pass\n", "1.7"),
    ("01", "sigpipe-left-ignored"): ("        default_signals()\n", "", "1.8"),
    ("01", "why-wait-twice-is-esrch"): ('"wait_twice": errno.ECHILD}', '"wait_twice": errno.ESRCH}', "1.9"),
    ("02", "mounts-before-the-new-root"): ("    if pivot:\n        pivot_into(rootfs)\n    else:\n        chroot_into(rootfs)\n"
                                           "    mount_proc()\n    mount_dev()\n    mount_sys()\n",
                                           "    mount_proc()\n    mount_dev()\n    mount_sys()\n    if pivot:\n"
                                           "        pivot_into(rootfs)\n    else:\n        chroot_into(rootfs)\n", "2.7"),
    ("02", "enter-ignores-no-pivot"): ("    if pivot:\n        pivot_into(rootfs)\n    else:\n        chroot_into(rootfs)\n",
                                       "    pivot_into(rootfs)\n", "2.7"),
    ("02", "why-root-mount-is-einval"): ('"pivot_root_on_the_root_mount": errno.EBUSY',
                                         '"pivot_root_on_the_root_mount": errno.EINVAL', "2.8"),
    ("03", "new-pid-namespace-after-the-fork"): ("        new_pid_namespace()\n        yield\n",
                                                 "        yield\n        new_pid_namespace()\n", "3.6"),
    ("03", "no-way-back-to-mini-s-namespace"): ("        syscalls.setns(home, syscalls.CLONE_NEWPID)\n", "", "3.6"),
    ("03", "why-dead-namespace-is-eagain"): ('"fork_after_pid1_died": errno.ENOMEM', '"fork_after_pid1_died": errno.EAGAIN',
                                             "3.7"),
    ("02", "chroot-not-pivot"): ('    os.chdir(rootfs)\n    syscalls.pivot_root(".", ".")\n'
                                 '    syscalls.umount2(".", syscalls.MNT_DETACH)\n',
                                 '    os.chroot(rootfs)\n', "2.2"),
    ("02", "propagation-left-shared"): ('    syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)\n', "",
                                        "2.1"),
    ("02", "remount-the-superblock"): ("MS_REMOUNT | MS_BIND | MS_RDONLY", "MS_REMOUNT | MS_RDONLY", "2.6"),
    ("03", "init-waits-only-for-the-command"): ("os.waitpid(-1, 0)", "os.waitpid(child, 0)", "3.5"),
    ("03", "init-forwards-nothing"): ("forward = syscalls.signal_forwarder(child)\n",
                                      "forward = signal.SIG_IGN\n", "3.5"),
    ("03", "loopback-left-down"): ("flags | IFF_UP", "flags", "3.4"),
    ("03", "hostname-without-uts-namespace"): ("syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC",
                                               "syscalls.CLONE_NEWIPC", "3.2"),
    ("04", "controllers-enabled-at-the-root-only"): ("    for directory in (root, parent):\n",
                                                     "    for directory in (root,):\n", "4.2"),
    ("04", "the-parent-joined-instead"): ('(directory / "cgroup.procs").write_text(str(pid))',
                                          '(directory.parent / "cgroup.procs").write_text(str(pid))', "4.3"),
    ("04", "linear-shares-conversion"): ("return math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0))",
                                         "return 1 + (shares - 2) * 9999 // 262142", "4.1"),
    ("04", "swap-limit-counts-memory-too"): ("str(max(memory_swap - memory, 0))", "str(memory_swap)", "4.4"),
    ("04", "pids-limit-0-taken-literally"): ('"max" if pids <= 0 else str(pids)', "str(pids)", "4.5"),
    ("04", "limits-before-the-controllers"): (
        "    enable_controllers(root, parent)\n"
        "    directory.mkdir()  # no exist_ok: a new id's cgroup that is already there is a bug\n"
        "    try:\n        for name, value in files.items():\n"
        '            if name != "memory.swap.max" or (directory / name).exists():  # swap accounting on?\n'
        "                (directory / name).write_text(value)\n",
        "    directory.mkdir()  # no exist_ok: a new id's cgroup that is already there is a bug\n"
        "    try:\n        for name, value in files.items():\n"
        '            if name != "memory.swap.max" or (directory / name).exists():  # swap accounting on?\n'
        "                (directory / name).write_text(value)\n"
        "        enable_controllers(root, parent)\n", "4.9"),
    ("04", "cgroup-left-after-a-bad-value"): (
        "    except BaseException:\n        directory.rmdir()\n        try:\n            parent.rmdir()\n"
        "        except OSError:\n            pass  # another container's cgroup is in there\n        raise\n",
        "    except BaseException:\n        raise\n", "4.9"),
    ("05", "lowerdir-bottom-first"): ("f\"lowerdir={':'.join(layout.lower)},upperdir=",
                                      "f\"lowerdir={':'.join(reversed(layout.lower))},upperdir=", "5.2"),
    ("05", "upper-and-work-swapped"): ("upperdir={layout.upper},\"\n            f\"workdir={layout.work},",
                                       "upperdir={layout.work},\"\n            f\"workdir={layout.upper},", "5.4"),
    ("05", "chdir-back-only-when-the-mount-works"): (
        '    try:\n        syscalls.mount("overlay", str(layout.merged), "overlay", 0, options)\n'
        '    finally:\n        os.chdir(here)\n',
        '    syscalls.mount("overlay", str(layout.merged), "overlay", 0, options)\n    os.chdir(here)\n', "5.3"),
    ("05", "whiteout-as-an-empty-file"): ("os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)",
                                          "os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, "
                                          "dir_fd=dir_fd))", "5.5"),
    ("05", "view-in-the-callers-mount-namespace"): (
        '    syscalls.unshare(syscalls.CLONE_NEWNS)\n'
        '    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)\n', "", "5.7"),
    ("05", "why-work-on-another-mount-is-exdev"): ('"work_on_another_mount": errno.EINVAL',
                                                   '"work_on_another_mount": errno.EXDEV', "5.9"),
    ("06", "stops-reading-at-the-exit"): ("if status is not None and (not streams or time.monotonic() > drain_until):",
                                          "if status is not None:", "6.2"),
    ("06", "kill-always-sigkill"): ('os.kill(pid, int(message.get("signal", signal.SIGKILL)))',
                                    "os.kill(pid, signal.SIGKILL)", "6.3"),
    ("06", "wait-answered-at-once"): ('        waiters.append(conn.detach())\n        return\n',
                                      '        send(conn, {"StatusCode": 0})\n        conn.close()\n        return\n',
                                      "6.3", "a waiter must get its answer only when the container has ended"),
    ("06", "monitor-dies-of-sigterm"): ("    if monitor:\n        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
                                        "            signal.signal(sig, signal.SIG_IGN)\n", "", "6.4",
                                        "monitor to live through SIGTERM, SIGINT and SIGHUP"),
    ("06", "retry-count-read-with-int"): (
        '        if not re.fullmatch(r"[+-]?[0-9]+", count_text):\n'
        '            raise ValueError("invalid restart policy format: maximum retry count must be an integer")\n'
        '        count = int(count_text)\n',
        '        try:\n            count = int(count_text)\n        except ValueError:\n'
        '            raise ValueError("invalid restart policy format: maximum retry count must be an integer")\n',
        "6.5", "Go's strconv.Atoi"),
    ("06", "on-failure-restarts-a-success"): ('return name == "on-failure" and exit_code != 0 and',
                                              'return name == "on-failure" and', "6.6"),
    ("06", "restarted-after-a-stop"): ('if (here / "stopped").exists() or not policy_applies(',
                                       "if not policy_applies(", "6.7"),
    ("06", "backoff-never-reset"): ("    if ran_for >= STEADY_RUN:\n        last = 0.0\n", "", "6.8"),
    ("07", "route-before-address"): (
        '                ns.add_address(eth, address)\n'
        '                ns.set_link(eth, up=True)\n'
        '                ns.set_link("lo", up=True)\n'
        '                if inside == "eth0":\n'
        '                    ns.add_default_route(gateway)\n',
        '                if inside == "eth0":\n'
        '                    ns.add_default_route(gateway)\n'
        '                ns.add_address(eth, address)\n'
        '                ns.set_link(eth, up=True)\n'
        '                ns.set_link("lo", up=True)\n', "7.1"),
    ("07", "host-end-not-on-the-bridge"): ('nl.set_link(outside, master=nl.index(bridge), up=True)',
                                           'nl.set_link(outside, up=True)', "7.1"),
    ("07", "host-gateway-is-docker0"): ("value = str(next(ipam.default_subnet().hosts()))",
                                        'value = "172.17.0.1"', "7.5"),
    ("07", "add-host-split-at-the-last-colon"): ('name, sep, value = spec.partition(":")',
                                                 'name, sep, value = spec.rpartition(":")', "7.4"),
}


@pytest.mark.parametrize("chapter_number, name", params(sorted(MUTANTS)))
def test_checks_catch_classic_mistakes(chapter_number, name, tmp_path):
    """A plausible mistake fails the check that targets it. Only that check is graded: every
    other check plugs only the functions it names (grading.py) and runs the reference's code
    for the rest, so a check that leaves the broken function out cannot see the mistake: its
    verdict is test_reference_gets_full_marks's (and test_model_solution_gets_full_marks's)."""
    old, new, failing, *said = MUTANTS[chapter_number, name]
    chapter = chapter_here(chapter_number)
    source = model(chapter).decode()
    assert source.count(old) == 1
    (tmp_path / chapter.learner_file).write_text(source.replace(old, new))
    [result] = grading.grade(chapter, tmp_path / chapter.learner_file, 11, [failing])
    assert result.check.number == failing and not result.passed, f"{name} was not caught by {failing}"
    assert result.message and not result.refused, result
    assert all(fragment in result.message for fragment in said), result.message


def test_one_broken_function_costs_only_the_checks_that_plug_it(tmp_path):
    """Partial credit stays fair: with one classic mistake in, every rebuild check that leaves
    the broken function out still passes (why the mutant tests grade one check each)."""
    old, new, failing = MUTANTS["05", "view-in-the-callers-mount-namespace"]
    chapter = chapter_here("05")
    (tmp_path / chapter.learner_file).write_text(model(chapter).decode().replace(old, new))
    rebuild = [c.number for c in chapter.checks if c.part == "rebuild"]
    results = {r.check.number: r for r in grading.grade(chapter, tmp_path / chapter.learner_file, 11, rebuild)}
    broken = set(next(c for c in chapter.checks if c.number == failing).plug)
    assert not results[failing].passed
    spared = [c.number for c in chapter.checks if c.number in results and not set(c.plug) & broken]
    assert spared and all(results[n].passed for n in spared), [(n, results[n].message) for n in spared]


EXTENSION_MUTANTS = {
    # mistakes in the model solution of an extension (tests/data/solutions/), each caught by its check
    ("04", "quota-minimum-not-checked"): ("    if 0 < quota < 1000:\n", "    if False:\n", "4.13"),
    ("04", "reservation-as-memory-min"): ('{"memory.low": str(memory_reservation)}',
                                          '{"memory.min": str(memory_reservation)}', "4.14"),
    ("04", "reservation-above-memory-accepted"): ("    if memory and memory < memory_reservation:\n",
                                                  "    if False:\n", "4.15"),
    ("05", "squash-keeps-only-the-top-layer"): ('"lowerdir=" + ":".join(lower)', '"lowerdir=" + lower[0] + ":" + lower[0]',
                                                "5.10"),
}


@pytest.mark.parametrize("chapter_number, name", params(sorted(EXTENSION_MUTANTS)))
def test_extension_checks_catch_classic_mistakes(chapter_number, name, tmp_path):
    old, new, failing = EXTENSION_MUTANTS[chapter_number, name]
    chapter = chapter_here(chapter_number)
    source = parts.model_source(chapter).decode()
    assert source.count(old) == 1
    path = tmp_path / chapter.learner_file
    path.write_text(source.replace(old, new))
    [result] = grading.grade(chapter, path, 13, [failing])
    assert not result.passed, f"{name} was not caught by {failing}"


def test_a_chapter_this_machine_cannot_grade_says_why_in_one_line():
    chapter = grading.find_chapter("04")
    if not chapter.unmet():
        pytest.skip("this machine has cgroup v2: chapter 04 grades here")
    result = grade_cli("04", "--reference")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cgroup v2" in result.stderr and "v2_guest.py --run" in result.stderr
