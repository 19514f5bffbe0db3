"""`mini` with a learner's functions plugged into the reference runtime.

    python -m exercises.plugged MODULE LEARNER_FILE NAME,NAME -- mini-args...

Each NAME in MODULE (e.g. `mini_runtime.process`) is replaced by the learner's function of the
same name; the runtime calls functions through their module (`process.spawn(...)`), so the
learner's versions are the ones that run.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from exercises.grading import load_module


def main() -> int:
    module_name, learner_file, names, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: python -m exercises.plugged MODULE FILE NAMES -- ARGS"
    target = importlib.import_module(module_name)
    if names:
        learner = load_module(Path(learner_file), "learner_module")
        for name in names.split(","):
            setattr(target, name, getattr(learner, name))
    from mini_runtime.cli import main as mini_main

    try:
        return mini_main(args)
    except Exception as e:  # noqa: BLE001 - a learner's bug: one line, docker's 125
        print(f"mini (with your functions): {type(e).__name__}: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    raise SystemExit(main())
