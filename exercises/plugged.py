"""`mini` with a learner's functions plugged into the reference runtime, in a check's jail.

    python -m exercises.plugged CONFIG_JSON -- mini-args...

CONFIG names the reference module (e.g. `mini_runtime.process`), the learner's file, the
functions to plug in, and every graded function of the chapter. Each plugged NAME of the module
is replaced by the learner's function of the same name; the runtime calls functions through
their module (`process.spawn(...)`), so the learner's versions are the ones that run. While
the learner's file is imported, every graded function of the module is a trap
(`exercises.learner.install_traps`): a file that takes one from the module gets the trap.
Its output and exit status are data for the check that started it.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from exercises.grading import load_module
from exercises.learner import install_traps


def main() -> int:
    config, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: python -m exercises.plugged CONFIG_JSON -- ARGS"
    settings = json.loads(config)
    target = importlib.import_module(settings["module"])
    if settings["plug"]:
        graded = settings["graded"]
        originals = {name: getattr(target, name) for name in graded if hasattr(target, name)}
        install_traps(target, graded)
        try:
            learner = load_module(Path(settings["file"]), "learner_module")
        except BaseException as e:  # noqa: BLE001 - one line, docker's 125
            print(f"mini (with your functions): your file does not import: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return 125
        finally:
            for name in graded:
                if name in originals:
                    setattr(target, name, originals[name])
                else:
                    delattr(target, name)
        for name in settings["plug"]:
            setattr(target, name, getattr(learner, name))
    from mini_runtime.cli import main as mini_main

    try:
        return mini_main(args)
    except Exception as e:  # noqa: BLE001 - a learner's bug: one line, docker's 125
        print(f"mini (with your functions): {type(e).__name__}: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    raise SystemExit(main())
