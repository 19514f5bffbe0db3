"""`mini` with a learner's functions plugged into the reference runtime, in a check's jail.

    python -m exercises.plugged CONFIG_JSON -- mini-args...
    python -m exercises.plugged CONFIG_JSON --monitor -- monitor-args...

CONFIG names the reference module (e.g. `mini_runtime.process`), the learner's file, the
functions to plug in, and every graded function of the chapter. Each plugged NAME of the module
is replaced by the learner's function of the same name; the runtime calls functions through
their module (`process.spawn(...)`), so the learner's versions are the ones that run. While
the learner's file is imported, every graded function of the module is a trap
(`exercises.learner.install_traps`): a file that takes one from the module gets the trap.
Its output and exit status are data for the check that started it.

A module that starts container monitors (chapter 06's `mini_runtime.monitor`, whose
`monitor_argv` says how each monitor and each of its phases is started) has its monitors
plugged too: they run as `--monitor`, this same plugging, then the monitor's own `main`. So a
detached container's monitor runs the learner's functions in every phase.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from exercises.grading import load_module
from exercises.learner import install_traps


def main() -> int:
    config, *rest = sys.argv[1:]
    monitor_mode = rest[:1] == ["--monitor"]
    sep, *args = rest[1:] if monitor_mode else rest
    assert sep == "--", "usage: python -m exercises.plugged CONFIG_JSON [--monitor] -- ARGS"
    settings = json.loads(config)
    os.environ["MINI_DEBUG"] = "1"     # a learner's exception is their traceback, not mini's one line
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
    if hasattr(target, "monitor_argv"):
        plug_monitors(target, config)
    if monitor_mode:
        return target.main(args) or 0
    from mini_runtime.cli import main as mini_main

    try:
        return mini_main(args)
    except Exception as e:  # noqa: BLE001 - a learner's bug: one line, docker's 125
        print(f"mini (with your functions): {type(e).__name__}: {e}", file=sys.stderr)
        return 125


def plug_monitors(target, config: str) -> None:  # noqa: ANN001 - the monitor module
    """Every monitor (and each of its phases) started from now on is plugged like this process."""
    def monitor_argv(container_id: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "exercises.plugged", config, "--monitor", "--", container_id, *args]

    target.monitor_argv = monitor_argv


if __name__ == "__main__":
    raise SystemExit(main())
