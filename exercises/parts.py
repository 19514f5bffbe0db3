"""Two parts per exercise (DESIGN §4, issue 13).

- **rebuild** (at most 40% of the points): the chapter's core functions and the order of the
  steps that connect them, from a skeleton of the reference module.
- **extend** (at least 60%): a feature the reference runtime deliberately lacks, specified like a
  docker feature and graded black-box on real containers. The reference has only the plumbing:
  the flag or command exists and calls a hook of the graded module, which raises
  `mini_runtime.errors.Exercise` (docker's exit code 125, one line naming the exercise). The
  learner's file defines the hook; a check plugs it in like any graded function.

The model solution of an extension is kept apart from what learners read, in
`tests/data/solutions/NN_slug/` beside the learner file's name: only the hooks, appended to the
reference module by `model_source` (so it never drifts from the reference). The honesty tests
and `python -m exercises grade NN --model` grade it: full marks.
"""

from __future__ import annotations

from pathlib import Path

from exercises.grading import REPO, Chapter, Check, resolve_learner_file

PARTS = ("rebuild", "extend")
EXTEND_SHARE = 0.6  # at least
SOLUTIONS = REPO / "tests" / "data" / "solutions"


def points(checks: list[Check]) -> dict[str, float]:
    """Points per part."""
    return {part: sum(c.points for c in checks if c.part == part) for part in PARTS}


def problems(chapter: Chapter) -> list[str]:
    """What breaks the two-part rule in a chapter's checks (nothing: it holds)."""
    found = [f"{c.number}: unknown part {c.part!r}" for c in chapter.checks if c.part not in PARTS]
    split = points(chapter.checks)
    whole = sum(split.values())
    if whole and split["extend"] < EXTEND_SHARE * whole:
        found.append(f"extend is {split['extend']:g} of {whole:g} points: at least {EXTEND_SHARE:.0%} expected")
    return found


def hooks(chapter: Chapter) -> list[str]:
    """The functions only extend checks plug in: the extension's hooks."""
    rebuild = {n for c in chapter.checks if c.part == "rebuild" for n in c.plug}
    return list(dict.fromkeys(n for c in chapter.checks if c.part == "extend" for n in c.plug
                              if n not in rebuild))


def solution_file(chapter: Chapter) -> Path:
    return SOLUTIONS / chapter.folder.name / chapter.learner_file


def model_source(chapter: Chapter) -> bytes:
    """The model solution: the reference module with the extension's hooks of
    `solution_file` appended (later definitions win)."""
    reference = resolve_learner_file(chapter, None, True).read_text()
    extension = solution_file(chapter).read_text()
    extension = "\n".join(line for line in extension.splitlines()
                          if line.strip() != "from __future__ import annotations")
    return (reference.rstrip("\n") + "\n\n\n# --- the extension: the model solution "
            f"({solution_file(chapter).relative_to(REPO)}) ---\n" + extension + "\n").encode()
