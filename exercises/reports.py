"""What the grader writes: the score table, Gradescope's results.json, the instructors' CSV,
JSON and feedback files, and the similarity report."""

from __future__ import annotations

import ast
import csv
import difflib
import io
import json
import tokenize
from pathlib import Path
from typing import Any

from exercises.grading import Chapter, Result, total


def _fmt(points: float) -> str:
    return f"{points:g}"


def score_table(chapter: Chapter, results: list[Result], title: str, *, every_message: bool = False) -> str:
    """The table a learner reads: ✓/✗ and points per check, one line of why for each failure
    (and for every check with `every_message`, as in the feedback files)."""
    out = io.StringIO()
    out.write(f"Chapter {chapter.number} ({chapter.slug}): {title}\n")
    width = max([len(f"{r.check.number} {r.check.title}") for r in results] + [40])
    refused = bool(results) and all(r.refused for r in results)
    if refused:
        out.write(f"Not graded, every check scores 0: {results[0].message}\n")
    for r in results:
        mark = "✓" if r.passed else "✗"
        name = f"{r.check.number} {r.check.title}"
        out.write(f"{mark} {name:<{width}}  {_fmt(r.score):>4} / {_fmt(r.check.points)}\n")
        if refused:
            continue
        if not r.passed:
            out.write(f"    {r.message}\n    reread: {chapter.chapter_text} {r.check.section}\n")
        elif every_message or r.message != "passed":
            out.write(f"    {r.message}\n")
    got, most = total(results)
    out.write(f"{'-' * (width + 12)}\nTOTAL {_fmt(got)} / {_fmt(most)}\n")
    if any(r.check.part != "rebuild" for r in results):
        parts = [f"{part} {_fmt(sum(r.score for r in results if r.check.part == part))} / "
                 f"{_fmt(sum(r.check.points for r in results if r.check.part == part))}"
                 for part in ("rebuild", "extend")]
        out.write(f"({', '.join(parts)})\n")
    if results and results[0].seed is not None:
        out.write(f"(random inputs from --seed {results[0].seed}: pass it to repeat this run)\n")
    return out.getvalue()


def gradescope_json(chapter: Chapter, results: list[Result], version: str) -> dict[str, Any]:
    """Gradescope's results.json (autograder specification), with the seed and the grader's
    version in `output` and in `extra_data`."""
    got, _ = total(results)
    seed = results[0].seed if results else None
    return {
        "score": got,
        "execution_time": round(sum(r.seconds for r in results), 2),
        "output": f"Chapter {chapter.number} ({chapter.slug}), seed {seed}, grader {version}",
        "stdout_visibility": "visible",
        "extra_data": {"seed": seed, "grader": version},
        "tests": [{
            "name": f"{r.check.number} {r.check.title}",
            "number": r.check.number,
            "score": r.score,
            "max_score": r.check.points,
            "status": "passed" if r.passed else "failed",
            "tags": [r.check.part],
            "output": r.message if r.passed else
                      f"{r.message}\nreread: {chapter.chapter_text} {r.check.section}",
            "visibility": "visible",
        } for r in results],
    }


Row = tuple[str, "list[Result] | str"]  # a submission's name, and its results or why it has none


def not_graded(results: list[Result] | str) -> str:
    """Why a submission was not graded, in one line (a missing file, or the first step's refusal:
    it imports the reference, does not import, hangs at import), or "" when it was."""
    if isinstance(results, str):
        return results
    return results[0].message if results and all(r.refused for r in results) else ""


def write_csv(chapter: Chapter, rows: list[Row], path: Path, seed: int, version: str) -> None:
    """One row per submission: name, score, max, error, seed, grader, then each check's score."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "max_score", "error", "seed", "grader"] +
                        [f"{c.number} {c.title}" for c in chapter.checks])
        most = sum(c.points for c in chapter.checks)
        for name, results in rows:
            if isinstance(results, str):
                writer.writerow([name, 0, _fmt(most), results, seed, version] + [0] * len(chapter.checks))
                continue
            by_number = {r.check.number: r.score for r in results}
            writer.writerow([name, _fmt(total(results)[0]), _fmt(most), not_graded(results), seed, version] +
                            [_fmt(by_number.get(c.number, 0)) for c in chapter.checks])


def batch_json(chapter: Chapter, rows: list[Row], seed: int, version: str) -> dict[str, Any]:
    """Every submission's Gradescope results, with the run's seed and grader version."""
    return {"chapter": chapter.number, "seed": seed, "grader": version, "submissions": {
        name: {"error": results, "score": 0, "tests": []} if isinstance(results, str)
        else {**gradescope_json(chapter, results, version), "error": not_graded(results)} for name, results in rows}}


def feedback_text(chapter: Chapter, name: str, results: list[Result] | str, seed: int, version: str) -> str:
    """A learner's feedback file: every check's message."""
    header = f"Submission {name}\nGrader {version}, seed {seed}\n\n"
    if isinstance(results, str):
        return header + f"Not graded: {results}\n"
    return header + score_table(chapter, results, name, every_message=True)


# --- similarity --------------------------------------------------------------------------------

def tokens(source: str, names: list[str]) -> list[str]:
    """The code of the graded functions as a token sequence: no comments, docstrings, layout;
    the whole file when it does not parse."""
    try:
        tree = ast.parse(source)
        parts = [ast.get_source_segment(source, node) or "" for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names]
    except (SyntaxError, ValueError):
        parts = [source]
    found: list[str] = []
    for part in parts:
        lines = part.splitlines(keepends=True)
        if lines:  # a method's segment starts at `def`, its body keeps its indent: dedent it
            part = "".join([lines[0].lstrip()] + lines[1:])
        try:
            previous = tokenize.INDENT
            for token in tokenize.generate_tokens(io.StringIO(part).readline):
                kind = token.type
                if kind in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER):
                    previous = kind if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) else previous
                    continue
                if kind == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                    previous = kind  # a statement that is only a string: a docstring
                    continue
                previous = kind
                found.append(token.string)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            found.extend(part.split())
    return found


def similarity(a: list[str], b: list[str]) -> float:
    """0..1: how much of two token sequences matches (difflib's ratio)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def similarity_report(chapter: Chapter, sources: dict[str, str], reference: str) -> tuple[str, list[list[str]]]:
    """A text report (each submission: its closeness to the reference and its nearest other
    submissions) and the full matrix as CSV rows. It never changes a score."""
    names = sorted(sources)
    seqs = {n: tokens(sources[n], chapter.graded) for n in names}
    ref = tokens(reference, chapter.graded)
    pair: dict[tuple[str, str], float] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pair[a, b] = pair[b, a] = similarity(seqs[a], seqs[b])
    out = io.StringIO()
    out.write("Similarity of the graded functions (tokens, without comments, docstrings and layout; "
              "1.00 = the same code). For instructors to read: it never changes a score.\n")
    width = max([len(n) for n in names] + [10])
    out.write(f"{'submission':<{width}}  reference  nearest submissions\n")
    matrix = [["submission", "reference", *names]]
    for a in names:
        to_ref = similarity(seqs[a], ref)
        others = sorted(((pair[a, b], b) for b in names if b != a), reverse=True)[:3]
        near = ", ".join(f"{b} {r:.2f}" for r, b in others) or "-"
        out.write(f"{a:<{width}}  {to_ref:9.2f}  {near}\n")
        matrix.append([a, f"{to_ref:.3f}", *(("1.000" if b == a else f"{pair[a, b]:.3f}") for b in names)])
    return out.getvalue(), matrix


def write_matrix(path: Path, matrix: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(matrix)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
