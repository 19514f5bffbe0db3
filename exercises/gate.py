"""The gate: a graded function must be written in the learner's file.

Two looks, before any check runs:
- `static_problem` reads the file (it is never imported here): an import of the graded module
  (`from mini_runtime.process import *`, `import mini_runtime.process`, a graded name taken from
  it, `importlib.import_module("mini_runtime.process")`, its path in a string) fails with one
  line. The names the skeleton is given (`Chapter.given`) stay importable.
- `dynamic_gate` runs as a pseudo-check: the learner server imports the file with the graded
  functions of the reference module replaced by traps, then reports, for each graded name, where
  its code comes from (`exercises.learner.problems`). A function whose code object was compiled
  from another file, a trap, or the module itself held in a variable fails with one line.

And the grader's own files: `fingerprint` before a run, `changed` after each check. The checkout
is read-only to learner code, but a determined root user can remount it; a change is then seen
and the run is not graded. `version` names the grader in reports.
"""

from __future__ import annotations

import ast
import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from exercises.grading import EXERCISES, REPO, Chapter, CheckFailed

if TYPE_CHECKING:
    from exercises.grading import Context

IMPORTERS = {"import_module", "__import__", "find_spec", "spec_from_file_location", "run_module",
             "run_path", "SourceFileLoader", "reload"}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are statements (docstrings and the like)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def static_problem(chapter: Chapter, source: bytes) -> str | None:
    """The first reason (by line) the file does not write its graded functions itself, or None.
    A file that does not parse passes here: importing it says why, in the gate."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    module, tail = chapter.module, chapter.module.rpartition(".")[2]
    package = module.rpartition(".")[0]
    graded, given = chapter.graded, set(chapter.given)
    listed = ", ".join(graded[:3]) + (", ..." if len(graded) > 3 else "")
    allowed = f"import only {', '.join(chapter.given)} from {module}" if chapter.given else \
        f"import nothing from {module}"
    found: list[tuple[int, str]] = []
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module or alias.name.startswith(module + "."):
                    found.append((line, f"line {line} imports {module}: the graded functions ({listed}) "
                                        f"must be written in your file, not imported; {allowed}"))
        elif isinstance(node, ast.ImportFrom) and not node.level:
            source_module = node.module or ""
            for alias in node.names:
                if source_module == package and alias.name in (tail, "*"):
                    found.append((line, f"line {line} imports {module}: the graded functions ({listed}) "
                                        f"must be written in your file, not imported; {allowed}"))
                elif source_module == module and alias.name == "*":
                    found.append((line, f"`from {module} import *` (line {line}) takes the graded "
                                        f"functions ({listed}): they must be written in your file, not "
                                        f"imported; {allowed}"))
                elif source_module == module and alias.name in graded:
                    found.append((line, f"`{alias.name}` must be written in your file, not imported "
                                        f"(line {line}: from {module} import {alias.name})"))
                elif source_module == module and alias.name not in given:
                    found.append((line, f"line {line} imports `{alias.name}` from {module}: the graded "
                                        f"functions must be written in your file; {allowed}"))
        elif isinstance(node, ast.Attribute) and node.attr == tail and \
                isinstance(node.value, ast.Name) and node.value.id == package:
            found.append((line, f"line {line} uses {module}: the graded functions ({listed}) must be "
                                f"written in your file, not imported"))
        elif isinstance(node, ast.Call) and _called_name(node) in IMPORTERS and any(
                isinstance(a, ast.Constant) and a.value in (package, module) for a in node.args):
            found.append((line, f"line {line} imports {module}: the graded functions ({listed}) must be "
                                f"written in your file, not imported"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip and (
                module in node.value or module.replace(".", "/") in node.value):
            found.append((line, f"line {line} names {module}: the graded functions ({listed}) must be "
                                f"written in your file, not taken from the reference"))
    return min(found)[1] if found else None


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def dynamic_gate(ctx: "Context") -> None:
    """The gate's pseudo-check (in the checker): the learner server imports the file and says
    where each graded function comes from."""
    problems = ctx.server.inspect()
    if problems:
        raise CheckFailed(problems[0])


# --- the grader's own files ----------------------------------------------------------------

def _grader_files() -> list[Path]:
    """The grader, the checks and the runtime; not the learner's files in the exercise folders
    (everything there but checks*.py), which a learner may be editing while a run goes on."""
    files = [*EXERCISES.rglob("*.py"), *(REPO / "mini_runtime").rglob("*.py")]
    return sorted(p for p in files if "__pycache__" not in p.parts
                  and not (p.parent.parent == EXERCISES and p.parent.name[:2].isdigit()
                         and not p.name.startswith("checks")))


def fingerprint() -> dict[str, str]:
    """Every grader file's digest, by its path in the checkout."""
    return {str(p.relative_to(REPO)): hashlib.sha256(p.read_bytes()).hexdigest() for p in _grader_files()}


def changed(before: dict[str, str]) -> list[str]:
    """The grader files that differ from `before` (added, removed or edited)."""
    now = fingerprint()
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def version(chapter: Chapter) -> str:
    """The grader's version: the checkout's `git describe`, and a digest of the grader and the
    chapter's checks (the same digest means the same checks, whatever git says)."""
    try:
        git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        git = ""
    from mini_runtime import __version__

    digest = hashlib.sha256()
    for path in sorted([*EXERCISES.glob("*.py"), *chapter.folder.glob("checks*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"mini_runtime {__version__} (git {git or 'unknown'}), checks {digest.hexdigest()[:12]}"
