"""Instructors: grade a folder of submissions, `python -m exercises grade NN --submissions DIR
--csv OUT [-j N]`.

Every submission's file is read before any learner code runs (a submission cannot change
another's), all are graded with the same seed, and the reports go out once at the end:
the CSV (and a JSON of every check's message) with the seed and the grader's version, one
feedback file per learner, and a similarity report that never changes a score.
"""

from __future__ import annotations

import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from exercises import gate, grading, parts, reports
from exercises.grading import Chapter


def submissions(chapter: Chapter, directory: Path) -> list[tuple[str, bytes | str]]:
    """(name, the file's bytes or why there is none), for each folder or .py file in DIR."""
    found: list[tuple[str, bytes | str]] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or not (entry.is_dir() or entry.suffix == ".py"):
            continue
        try:
            found.append((entry.name, grading.resolve_learner_file(chapter, entry, False).read_bytes()))
        except OSError as e:
            found.append((entry.name, str(e)))
    return found


def run(chapter: Chapter, directory: Path, csv_path: Path, *, seed: int | None, only: list[str] | None,
        jobs: int, json_path: Path | None, feedback: Path | None) -> int:
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    version = gate.version(chapter)
    todo = submissions(chapter, directory)
    if jobs > 1 and not chapter.parallel:
        print(f"(chapter {chapter.number} grades one submission at a time: -j {jobs} ignored)")
        jobs = 1
    print(f"grading {len(todo)} submissions of chapter {chapter.number} with --seed {seed}, -j {jobs}; "
          f"grader {version}")
    lock = threading.Lock()

    def one(item: tuple[str, bytes | str]) -> reports.Row:
        name, source = item
        if isinstance(source, str):
            outcome: list[grading.Result] | str = source
            line = f"{name}: {source}"
        else:
            # (the folder is hidden from learner code: it grades a copy of this one file)
            outcome = grading.grade(chapter, directory / name, seed, only, source=source,
                                    hide=(str(directory.resolve()),))
            got, most = grading.total(outcome)
            retried = [r.check.number for r in outcome if "timing-sensitive" in r.message]
            line = f"{name}: {got:g} / {most:g}" + (f" (retried {', '.join(retried)})" if retried else "")
        with lock:
            print(line, flush=True)
        return name, outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(one, todo))

    reports.write_csv(chapter, rows, csv_path, seed, version)
    json_path = json_path or csv_path.with_suffix(".json")
    reports.write_json(json_path, reports.batch_json(chapter, rows, seed, version))
    feedback = feedback or csv_path.parent / f"{csv_path.stem}-feedback"
    feedback.mkdir(parents=True, exist_ok=True)
    for name, outcome in rows:
        (feedback / f"{name}.txt").write_text(
            reports.feedback_text(chapter, name, outcome, seed, version))
    print(f"wrote {csv_path} and {json_path} ({len(rows)} submissions), feedback files in {feedback}/")

    sources = {name: source.decode(errors="replace") for name, source in todo if isinstance(source, bytes)}
    # the model solution (reference and extension) where the chapter has one
    reference = (parts.model_source(chapter).decode() if parts.solution_file(chapter).is_file()
                 else grading.resolve_learner_file(chapter, None, True).read_text())
    text, matrix = reports.similarity_report(chapter, sources, reference)
    matrix_path = csv_path.parent / f"{csv_path.stem}-similarity.csv"
    reports.write_matrix(matrix_path, matrix)
    sys.stdout.write("\n" + text + f"(the whole matrix: {matrix_path})\n")
    return 0
