"""Checks on the course itself: notebooks run and are stored clean, listings match the source,
the demo tour runs, the setup script is sound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(REPO / "scripts"))
import listings  # noqa: E402


def test_every_chapter_with_code_has_a_notebook_and_a_chapter_text():
    from mini_runtime import CHAPTERS_DONE

    for chapter in CHAPTERS_DONE:
        assert (REPO / "chapters" / f"{chapter}.md").is_file(), chapter
        assert (REPO / "notebooks" / f"{chapter}.ipynb").is_file(), chapter
        number, slug = chapter.split("-", 1)
        assert (REPO / "exercises" / f"{number}_{slug}" / "checks.py").is_file(), chapter


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.name}: clear the outputs before committing (Kernel > Restart & Clear)"


@pytest.mark.root
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_listings_match_the_source():
    found = [p for chapter in sorted((REPO / "chapters").glob("*.md")) for p in listings.problems(chapter)]
    assert not found, found


def test_chapters_use_listings():
    for chapter in sorted((REPO / "chapters").glob("[0-9][0-9]-*.md")):
        assert listings.listings(chapter.read_text()), f"{chapter.name} shows no code from mini_runtime"


def test_listings_check_catches_drift(tmp_path, monkeypatch):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "src.py").write_text("x = 1\n# >>> part\ny = 2\n# <<< part\n")
    chapter = tmp_path / "chapters" / "99-x.md"
    chapter.write_text("<!-- listing: src.py part -->\n```python\ny = 3\n```\n")
    monkeypatch.setattr(listings, "REPO", tmp_path)
    assert listings.problems(chapter) and "differs" in listings.problems(chapter)[0]
    listings.update(chapter)
    assert "y = 2" in chapter.read_text() and not listings.problems(chapter)


@pytest.mark.root
@pytest.mark.integration
def test_demo_tour_runs():
    """The tour, as `make demo` runs it off the course VM: chapter 07's web server then lives in
    a network namespace the tour makes (MINI_DEMO_NETWORK is never passed on from a VM's
    shell: the test suite must not publish ports on the machine's network)."""
    env = {k: v for k, v in os.environ.items() if k != "MINI_DEMO_NETWORK"}
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], capture_output=True,
                            text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "mini run busybox echo hi" in result.stdout
    assert "a network namespace the tour makes" in result.stdout
    assert "  <h1>hello from a mini container</h1>\n" in result.stdout


def test_provision_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "provision.sh")], check=True)
    result = subprocess.run(["bash", str(REPO / "scripts" / "provision.sh"), "--bogus"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option" in result.stderr


def test_ci_runs_make_test():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "make test" in (REPO / "README.md").read_text()


def test_v2_guest_runs_pytest_by_default_or_any_command_with_run():
    import v2_guest

    default = v2_guest.guest_command([])
    assert default[:3] == [sys.executable, "-m", "pytest"] and "tests/test_cgroups.py" in default
    assert v2_guest.guest_command(["tests/test_cgroups.py", "-k", "oom"])[-3:] == ["tests/test_cgroups.py", "-k", "oom"]
    assert v2_guest.guest_command(["--run", "python", "-m", "exercises", "grade", "04"]) == \
        [sys.executable, "-m", "exercises", "grade", "04"]
    assert v2_guest.guest_command(["--run", "true"]) == ["true"]


def test_each_chapter_shows_the_pipeline_as_of_that_chapter():
    source = ('def create(config):\n'
              '    image = find(config)              # 01\n'
              '    group = make_cgroup()             # 04\n'
              '    try:\n'
              '        with new_pid_namespace():     # 03: the next child is PID 1\n'
              '            child = spawn(image,      # 01\n'
              '                          setup=None)\n'
              '    except BaseException:\n'
              '        group.remove()                # 04\n'
              '        raise\n'
              '    if config.init:\n'
              '        use_init()                    # 03 04: grows later\n'
              '    return child\n')
    one = listings.as_of(source, 1)
    assert one == ('def create(config):\n'
                   '    image = find(config)              # 01\n'
                   '    child = spawn(image,      # 01\n'
                   '                  setup=None)\n'
                   '    return child\n')
    three = listings.as_of(source, 3)
    assert "with new_pid_namespace()" in three and "group" not in three and "use_init()" in three
    assert listings.as_of(source, 4) == source
    # a block that the filter would leave empty is an error, not a silent `except:` with nothing
    with pytest.raises(ValueError, match="left empty"):
        listings.as_of("def f():\n    try:\n        a()\n    finally:\n        b()   # 05\n", 1)


def test_chapter_listings_leave_out_later_chapters():
    text = (REPO / "chapters" / "01-processes.md").read_text()
    pipeline = next(m["body"] for m in listings.listings(text) if m["name"] == "run")
    assert "# 01" in pipeline and not any(f"# 0{n}" in pipeline for n in range(2, 10))


def test_instructor_guide_lists_every_planted_mistake():
    """exercises/INSTRUCTORS.md's table of common mistakes is MUTANTS of tests/test_grader.py,
    row for row (chapter and the check that catches it): a mutant added there shows up here."""
    import ast
    import collections
    import re

    tree = ast.parse((REPO / "tests" / "test_grader.py").read_text())
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "MUTANTS" for t in n.targets))
    mutants = ast.literal_eval(node)
    planted = collections.Counter((chapter, value[2]) for (chapter, _), value in mutants.items())
    guide = (REPO / "exercises" / "INSTRUCTORS.md").read_text()
    table = guide[guide.index("## Common mistakes"):]
    rows = collections.Counter(re.findall(r"^\| (\d\d) \|.*\| (\d\.\d+) \|$", table, re.M))
    assert rows == planted
