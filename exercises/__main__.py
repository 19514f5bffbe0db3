"""python -m exercises grade NN [options]

    grade 01                      grade your copy in exercises/01_processes/
    grade 01 --path FILE|DIR      grade another copy (a file, or a folder that contains it)
    grade 01 --reference          grade the reference implementation (full marks on the rebuild
                                  part; the extend part is not in it)
    grade 01 --model              instructors: the model solution, the reference with the
                                  extension of tests/data/solutions/ (full marks)
    grade 01 --gradescope PATH    also write Gradescope's results.json to PATH
    grade 01 --submissions DIR --csv OUT [-j N] [--json OUT] [--feedback DIR]
                                  instructors: grade every learner copy in DIR (one folder or
                                  one .py file per learner), N at a time: a CSV row each, a JSON
                                  of every check's message, a feedback file each, and a
                                  similarity report (see exercises/README.md)
    --seed N                      repeat a run exactly (inputs are random otherwise)
    --only 1.1,1.3                run some checks only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exercises import grading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grade", help="grade a chapter's exercise")
    g.add_argument("chapter", help="chapter number, e.g. 01")
    g.add_argument("--path", type=Path, help="the learner's file or folder to grade")
    g.add_argument("--reference", action="store_true", help="grade the reference implementation")
    g.add_argument("--model", action="store_true",
                   help="grade the model solution (the reference and its extension)")
    g.add_argument("--gradescope", type=Path, metavar="PATH", help="write Gradescope results.json")
    g.add_argument("--submissions", type=Path, metavar="DIR", help="grade every submission in DIR")
    g.add_argument("--csv", type=Path, metavar="OUT", help="with --submissions: the CSV to write")
    g.add_argument("--json", type=Path, metavar="OUT",
                   help="with --submissions: every check's message (default: the CSV's name, .json)")
    g.add_argument("--feedback", type=Path, metavar="DIR",
                   help="with --submissions: one feedback file per learner (default: OUT-feedback/)")
    g.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="with --submissions: grade N submissions at a time")
    g.add_argument("--seed", type=int, help="random seed, to repeat a run exactly")
    g.add_argument("--only", help="comma-separated check numbers")
    args = parser.parse_args(argv)

    chapter = grading.find_chapter(args.chapter)
    problem = chapter.unmet()
    if problem:
        print(f"grade: {problem}", file=sys.stderr)
        return 2
    only = [n.strip() for n in args.only.split(",")] if args.only else None
    numbers = [c.number for c in chapter.checks]
    unknown = [n for n in only or () if n not in numbers]
    if unknown:
        parser.error(f"--only {','.join(unknown)}: chapter {chapter.number} has no such check "
                     f"(its checks: {', '.join(numbers)})")

    if args.submissions:
        if not args.csv:
            parser.error("--submissions needs --csv OUT")
        from exercises import batch

        return batch.run(chapter, args.submissions, args.csv, seed=args.seed, only=only, jobs=args.jobs,
                         json_path=args.json, feedback=args.feedback)

    from exercises import gate, reports

    try:
        path = grading.resolve_learner_file(chapter, args.path, args.reference)
    except FileNotFoundError as e:
        print(f"grade: {e}", file=sys.stderr)
        return 2
    source = None
    if args.model:
        from exercises import parts

        source, path = parts.model_source(chapter), parts.solution_file(chapter)
    results = grading.grade(chapter, path, args.seed, only, source=source)
    title = "model solution" if args.model else "reference implementation" if args.reference else str(path)
    sys.stdout.write(reports.score_table(chapter, results, title))
    if args.gradescope:
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        data = reports.gradescope_json(chapter, results, gate.version(chapter))
        args.gradescope.write_text(json.dumps(data, indent=2))
        print(f"wrote {args.gradescope}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
