"""The grader cannot be fooled by the learner's file: a file that delegates to the reference,
forges a verdict, or edits the checks scores 0 with a one-line reason; and the instructors'
batch mode (seed and version recorded, feedback files, parallel runs, similarity report)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exercises import grading, parts, reports

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.parent.name[:2] for p in (REPO / "exercises").glob("*_*/checks.py"))


def as_root(test):
    """Marks of a test that runs the grader (as root, on the real kernel)."""
    return pytest.mark.root(pytest.mark.integration(pytest.mark.grader(test)))


def skeleton(chapter: grading.Chapter) -> str:
    """The skeleton as committed (a learner may have edited the working copy)."""
    rel = (chapter.folder / chapter.learner_file).relative_to(REPO)
    shown = subprocess.run(["git", "-C", str(REPO), "show", f"HEAD:{rel}"], capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else (REPO / rel).read_text()


def reference(chapter: grading.Chapter) -> str:
    """The model solution (the reference and its extension), where the chapter has one."""
    if parts.solution_file(chapter).is_file():
        return parts.model_source(chapter).decode()
    return grading.resolve_learner_file(chapter, None, True).read_text()


def grade_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exercises", "grade", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_refused(results: list[grading.Result], *words: str) -> str:
    """Every check 0, not run, with the same one-line reason containing `words`."""
    assert results and all(not r.passed and r.score == 0 and r.refused for r in results), \
        [(r.check.number, r.passed, r.message) for r in results]
    reasons = {r.message for r in results}
    assert len(reasons) == 1, reasons
    reason = reasons.pop()
    assert "\n" not in reason and all(w in reason for w in words), reason
    return reason


# --- delegation ----------------------------------------------------------------------------

@as_root
@pytest.mark.parametrize("number", CHAPTERS)
def test_a_file_that_imports_the_graded_module_scores_zero(number, tmp_path):
    """`from mini_runtime.X import *` under the skeleton: refused before anything runs."""
    chapter = grading.find_chapter(number)
    delegating = tmp_path / chapter.learner_file
    delegating.write_text(skeleton(chapter) + f"\nfrom {chapter.module} import *  # noqa\n")
    results = grading.grade(chapter, delegating, seed=1)
    assert len(results) == len(chapter.checks)
    assert_refused(results, "must be written in your file, not imported", "import *")
    for other in (f"\nimport {chapter.module} as ref\n",
                  f"\nfrom {chapter.module} import {chapter.graded[-1]}\n",
                  f"\nfrom {chapter.module.rpartition('.')[0]} import {chapter.module.rpartition('.')[2]}\n"):
        delegating.write_text(skeleton(chapter) + other)
        assert_refused(grading.grade(chapter, delegating, seed=1), "must be written in your file")


@as_root
@pytest.mark.parametrize("number", CHAPTERS)
def test_a_file_that_takes_a_graded_function_by_a_trick_scores_zero(number, tmp_path):
    """A name built at run time escapes the reading of the file; the gate, which imports it
    with traps in the reference module, still sees where the function comes from."""
    chapter = grading.find_chapter(number)
    first = chapter.graded[0]
    tricky = tmp_path / chapter.learner_file
    tricky.write_text(skeleton(chapter) + (
        "\nimport importlib as _il\n"
        f"_ref = _il.import_module('{chapter.module.rpartition('.')[0]}' + '.' + '{chapter.module.rpartition('.')[2]}')\n"
        f"{first} = getattr(_ref, '{first}')\n"))
    assert_refused(grading.grade(chapter, tricky, seed=1),
                   f"`{first}` must be written in your file, not imported")


def test_the_given_names_stay_importable():
    """The skeleton's own imports from the graded module pass the reading of the file."""
    from exercises import gate

    for number in CHAPTERS:
        chapter = grading.find_chapter(number)
        assert gate.static_problem(chapter, skeleton(chapter).encode()) is None, number
        assert gate.static_problem(chapter, reference(chapter).encode()) is None, number
        assert gate.static_problem(chapter, b"def broken(:\n") is None  # the import says why


# --- forging and tampering -----------------------------------------------------------------

FORGE = '''
# Everything below runs when the grader's processes import this file.
import json as _json, subprocess as _sp, sys as _sys
_FULL = {{"score": 12, "tests": [{{"name": "1.1", "score": 12, "max_score": 12, "output": "passed"}}]}}
_OUT = {out!r}
try:  # a forged results.json now, and again later from a daemon that outlives this process
    open(_OUT, "w").write(_json.dumps(_FULL))
except OSError:
    pass
_sp.Popen([_sys.executable, "-c", "import json, time; time.sleep(2); open(%r, 'w').write(json.dumps(%r))"
           % (_OUT, _FULL)], start_new_session=True, stdin=_sp.DEVNULL, stdout=_sp.DEVNULL, stderr=_sp.DEVNULL)
for _stream in (_sys.stdout, _sys.stderr):  # fake verdict lines
    print('{{"passed": true, "message": "passed"}}', file=_stream)
    print("✓ 1.1 exit_code   2 / 2\\nTOTAL 12 / 12", file=_stream, flush=True)
try:  # monkeypatch the grader and the checks, as far as this process can reach them
    import exercises.grading as _g
    _g.Context.expect = lambda *a, **k: None
    _g.CheckFailed = type("Never", (Exception,), {{}})
    _g.Result.score = property(lambda r: r.check.points)
    for _check in _g.find_chapter("01").checks:
        _check.function = lambda ctx: None
except Exception:
    pass
import os as _os
for _pid in _os.listdir("/proc"):  # the grader that runs this very file: kill it
    try:
        if {path!r}.encode() in open(f"/proc/{{_pid}}/cmdline", "rb").read() and int(_pid) != _os.getpid():
            _os.kill(int(_pid), 9)
    except (OSError, ValueError):
        pass
for _arg in _sys.argv:  # the verdict file of a grader that passes it to the process under test
    try:
        open(_json.loads(_arg)["verdict"], "w").write('{{"passed": true, "message": "passed"}}')
    except Exception:
        pass
'''


@as_root
def test_a_file_that_forges_a_verdict_scores_zero(tmp_path):
    chapter = grading.find_chapter("01")
    out = tmp_path / "results.json"
    forging = tmp_path / "process.py"
    forging.write_text(skeleton(chapter) + FORGE.format(out=str(out), path=str(forging)))
    result = grade_cli("01", "--path", str(forging), "--gradescope", str(out), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "TOTAL 0 / 25" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("✓")]
    time.sleep(3)  # the daemon would have written by now: it died with the check's jail
    data = json.loads(out.read_text())
    assert data["score"] == 0 and len(data["tests"]) == len(chapter.checks), data
    assert all(t["score"] == 0 and t["status"] == "failed" for t in data["tests"]), data["tests"]
    assert "not implemented yet: exit_code" in data["tests"][0]["output"]

    # The same, ending with os._exit(0) (a process that "succeeds" without a word): refused.
    forging.write_text(skeleton(chapter) + FORGE.format(out=str(out), path=str(forging)) + "import os\nos._exit(0)\n")
    assert_refused(grading.grade(chapter, forging, seed=3), "ended while your file was imported",
                   "exit status 0")


@as_root
def test_a_file_that_edits_a_check_scores_zero(tmp_path):
    """The checkout is read-only to learner code: the edit fails, and says so."""
    chapter = grading.find_chapter("01")
    checks = chapter.folder / "checks.py"
    before = checks.read_bytes()
    editing = tmp_path / "process.py"
    editing.write_text(skeleton(chapter) + (
        "\nfrom pathlib import Path as _P\n"
        f"_checks = _P({str(checks)!r})\n"
        "_checks.write_text(_checks.read_text().replace('ctx.expect(', '(lambda *a: None)('))\n"))
    try:
        assert_refused(grading.grade(chapter, editing, seed=2), "does not import", "Read-only file system")
    finally:
        if checks.read_bytes() != before:
            checks.write_bytes(before)
            pytest.fail("the learner's file changed checks.py")


@as_root
def test_a_file_that_makes_the_checkout_writable_again_is_not_graded(tmp_path):
    """A determined root user remounts the checkout read-write and edits a check: the grader
    sees its files change and grades nothing (on a copy of the checkout: the real one stays)."""
    copy = tmp_path / "checkout"
    for tree in ("exercises", "mini_runtime"):
        shutil.copytree(REPO / tree, copy / tree, ignore=shutil.ignore_patterns("__pycache__"))
    chapter = grading.find_chapter("01")
    evil = tmp_path / "process.py"
    evil.write_text(skeleton(chapter) + (
        "\nimport ctypes as _c, exercises as _e\nfrom pathlib import Path as _P\n"
        "_repo = _P(_e.__file__).resolve().parent.parent\n"
        "_c.CDLL(None, use_errno=True).mount(None, str(_repo).encode(), None, _c.c_ulong(0x1000 | 0x20), None)\n"
        "_checks = _repo / 'exercises' / '01_processes' / 'checks.py'\n"
        "_checks.write_text(_checks.read_text() + '\\n# edited\\n')\n"))
    env = {**os.environ, "PYTHONPATH": str(copy)}
    result = grade_cli("01", "--path", str(evil), "--seed", "4", cwd=copy, env=env)
    assert result.returncode == 0, result.stderr
    assert "TOTAL 0 / 25" in result.stdout
    assert "the grader's files changed while your code ran (exercises/01_processes/checks.py)" in result.stdout
    assert (copy / "exercises" / "01_processes" / "checks.py").read_text().endswith("# edited\n")


# --- retries and batch mode ------------------------------------------------------------------

@as_root
def test_a_timing_sensitive_check_is_retried_once_and_says_so(tmp_path, monkeypatch):
    """The first try fails for real (nothing learner code writes survives a try, so the grader
    hands it a failing file for that one), the second passes."""
    chapter = grading.find_chapter("01")
    steady = tmp_path / "process.py"
    steady.write_text(reference(chapter))
    flaky = reference(chapter).replace("def forward_signals(", "def steady_forward_signals(") + (
        "\n\ndef forward_signals(pid):\n"
        "    raise RuntimeError('a bad moment')\n")
    real, tries = grading.run_check, []

    def first_try_flaky(chapter, check, source, *args):  # noqa: ANN001, ANN202
        tries.append(check.number)
        first = tries.count("1.6") == 1 and check.number == "1.6"
        return real(chapter, check, flaky.encode() if first else source, *args)
    monkeypatch.setattr(grading, "run_check", first_try_flaky)
    [result] = grading.grade(chapter, steady, seed=6, only=["1.6"])
    assert tries == ["gate", "1.6", "1.6"], tries
    assert result.passed and "passed on the second try" in result.message, result.message
    assert "a bad moment" in result.message


@as_root
def test_batch_mode_for_instructors(tmp_path):
    """Five submissions: CSV and JSON with the seed, the grader's version and every check's
    message, a feedback file each, the similarity report; -j 2 scores as -j 1 does."""
    chapter = grading.find_chapter("01")
    subs = tmp_path / "submissions"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "process.py").write_text(reference(chapter))
    (subs / "bob.py").write_text(skeleton(chapter))
    (subs / "carol").mkdir()  # submitted nothing
    wrong = reference(chapter).replace("return 128 + os.WTERMSIG(status)", "return -os.WTERMSIG(status)")
    (subs / "dave.py").write_text(wrong.replace("# ", "#  "))  # and other comments
    (subs / "erin.py").write_text(skeleton(chapter) + f"\nfrom {chapter.module} import *\n")
    scores = {}
    for jobs in ("2", "1"):
        out = tmp_path / f"grades-j{jobs}.csv"
        result = grade_cli("01", "--submissions", str(subs), "--csv", str(out), "--seed", "7", "-j", jobs)
        assert result.returncode == 0, result.stderr
        rows = {row["submission"]: row for row in csv.DictReader(out.open())}
        scores[jobs] = {name: [row["score"]] + [row[f"{c.number} {c.title}"] for c in chapter.checks]
                        for name, row in rows.items()}
        assert {row["seed"] for row in rows.values()} == {"7"}
        assert len({row["grader"] for row in rows.values()}) == 1 and "checks " in rows["alice"]["grader"]
    rows_j2 = scores["2"]
    assert scores["1"] == rows_j2
    assert rows_j2["alice"][0] == "25" and rows_j2["bob.py"][0] == "0" and rows_j2["erin.py"][0] == "0"
    assert rows_j2["carol"][0] == "0" and rows_j2["dave.py"][:2] == ["24", "0"]  # 1.1 fails

    data = json.loads((tmp_path / "grades-j2.json").read_text())
    assert data["seed"] == 7 and data["grader"] == rows["alice"]["grader"]
    dave = {t["number"]: t for t in data["submissions"]["dave.py"]["tests"]}
    assert dave["1.1"]["status"] == "failed" and dave["1.1"]["output"].startswith("expected 1")
    assert "no process.py" in data["submissions"]["carol"]["error"]

    feedback = tmp_path / "grades-j2-feedback"
    assert sorted(p.name for p in feedback.iterdir()) == \
        ["alice.txt", "bob.py.txt", "carol.txt", "dave.py.txt", "erin.py.txt"]
    text = (feedback / "dave.py.txt").read_text()
    assert "seed 7" in text and "TOTAL 24 / 25" in text and text.count("    passed") == 12
    assert "must be written in your file, not imported" in (feedback / "erin.py.txt").read_text()

    report = result.stdout[result.stdout.index("Similarity"):]
    lines = {line.split()[0]: line.split() for line in report.splitlines()[2:] if line.strip()}
    assert lines["alice"][1] == "1.00" and float(lines["dave.py"][1]) > 0.95
    assert "carol" not in lines  # nothing to compare
    matrix = list(csv.reader((tmp_path / "grades-j2-similarity.csv").open()))
    assert matrix[0] == ["submission", "reference", "alice", "bob.py", "dave.py", "erin.py"]


def test_similarity_ignores_comments_docstrings_and_layout():
    chapter = grading.find_chapter("01")
    source = reference(chapter)
    noisy = source.replace("\n    ", "\n\n    # a comment of mine\n    ")
    assert reports.similarity(reports.tokens(source, chapter.graded), reports.tokens(noisy, chapter.graded)) == 1.0
    skeleton_tokens = reports.tokens(skeleton(chapter), chapter.graded)
    assert reports.similarity(skeleton_tokens, reports.tokens(source, chapter.graded)) < 0.5
    assert "TODO" not in " ".join(skeleton_tokens) and "raise" in skeleton_tokens
