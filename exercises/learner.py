"""The learner server: the one process of a check that imports the learner's file and calls
its functions directly. Started by the checker, in the check's jail:

    python -m exercises.learner CONFIG_JSON

It answers requests, one JSON line each, on a pipe of its own (not stdout: what the learner's
code prints goes to a log). An answer is *data*, a value or an exception, never a verdict: the
checker compares it with what it expects. Learner code can of course change what this process
answers; it cannot change what the checker concludes from it.

Values travel back as JSON, tagged where JSON has no type (the checker decodes them in
`exercises.remote`, and never unpickles anything of ours):
    {"$": "tuple"|"list"|"set", "v": [...]}   {"$": "dict", "v": [[key, value], ...]}
    {"$": "path", "v": "/x"}                  {"$": "bytes", "v": "hex"}
    {"$": "namedtuple", "type": "Overlay", "fields": [...], "v": [...]}
    {"$": "repr", "type": "Foo", "v": "repr(...)"}  (anything else)
Requests come from the checker, which we trust: their arguments are pickled.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import os
import pickle
import signal
import sys
import sysconfig
import time
import traceback
import types
from pathlib import Path, PurePath
from typing import Any, Callable

from exercises.grading import load_module

TRAP = "__mini_trap__"


def install_traps(module: types.ModuleType, names: list[str]) -> None:
    """Replace the graded functions of the reference module by traps, before the learner's
    file is imported: a file that takes them from the module (however it gets there) holds a
    trap, which says so when called, and which the gate recognises."""
    for name in names:
        def trap(*args: Any, _name: str = name, **kwargs: Any) -> Any:
            raise RuntimeError(f"`{_name}` must be written in your file, not imported from {module.__name__}")
        setattr(trap, TRAP, name)
        setattr(module, name, trap)


def problems(learner: types.ModuleType, path: str, module: types.ModuleType, graded: list[str],
             given: list[str]) -> list[str]:
    """Why the graded functions are not the learner's own (one line each), or nothing."""
    found = []
    stdlib = sysconfig.get_paths()["stdlib"]
    reference = getattr(module, "__file__", None)
    for name in graded:
        obj = getattr(learner, name, None)
        if obj is None:
            found.append(f"`{name}` is missing from your file (keep every function of the skeleton)")
            continue
        chain = [obj]
        while hasattr(chain[-1], "__wrapped__") and len(chain) < 20:
            chain.append(chain[-1].__wrapped__)
        for i, fn in enumerate(chain):
            if getattr(fn, TRAP, None) or getattr(fn, "__code__", None) is not None and fn.__code__.co_filename == reference:
                found.append(f"`{name}` must be written in your file, not imported from {module.__name__}")
                break
            if not isinstance(fn, types.FunctionType):
                found.append(f"`{name}` must be a function written in your file (def {name}(...)), "
                             f"not a {type(fn).__name__}")
                break
            origin = fn.__code__.co_filename
            innermost = i == len(chain) - 1
            if origin != path and (innermost or not origin.startswith(stdlib)):
                found.append(f"`{name}` must be written in your file, not imported (it comes from {origin})")
                break
    for name, value in vars(learner).items():
        if isinstance(value, types.ModuleType) and value.__name__ == module.__name__:
            found.append(f"your file holds the module {module.__name__} (as `{name}`): the graded "
                         f"functions must be written in your file, not imported")
        elif (isinstance(value, types.FunctionType) and value.__code__.co_filename == reference
              and name not in given and name not in graded):
            found.append(f"`{name}` comes from {module.__name__}: import only "
                         f"{', '.join(given) or 'nothing'} from it")
    return found


def encode(value: Any, depth: int = 0) -> Any:
    """A value as JSON (see the module docstring)."""
    if depth > 30:
        return {"$": "repr", "type": type(value).__name__, "v": "(nested too deep)"}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$": "repr", "type": "float", "v": repr(value)}
    if isinstance(value, PurePath):
        return {"$": "path", "v": str(value)}
    if isinstance(value, tuple) and isinstance(getattr(value, "_fields", None), tuple):
        return {"$": "namedtuple", "type": type(value).__name__, "fields": [str(f) for f in value._fields],
                "v": [encode(x, depth + 1) for x in value]}
    for kind in (tuple, list, set, frozenset):
        if isinstance(value, kind):
            items = sorted(value, key=repr) if kind in (set, frozenset) else value
            return {"$": "set" if kind in (set, frozenset) else kind.__name__,
                    "v": [encode(x, depth + 1) for x in items]}
    if isinstance(value, dict):
        return {"$": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray)):
        return {"$": "bytes", "v": bytes(value[:1 << 20]).hex()}
    return {"$": "repr", "type": type(value).__name__, "v": _safe_repr(value)}


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)[:300]
    except Exception:  # noqa: BLE001 - a learner's __repr__ may fail too
        return f"<a {type(value).__name__}>"


def describe_error(e: BaseException, path: str) -> dict[str, Any]:
    """An exception as data: its type, module, message, and where in the learner's file."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if f.filename == path] or frames[-1:]
    where = f"{Path(mine[-1].filename).name}:{mine[-1].lineno}" if mine else ""
    error = {"type": type(e).__name__, "module": type(e).__module__, "message": _safe_str(e), "where": where}
    if isinstance(e, OSError) and e.errno is not None:
        error.update(errno=e.errno, strerror=e.strerror, filename=_safe_str(e.filename) if e.filename else None)
    return error


def _safe_str(value: Any) -> str:
    try:
        return str(value)[:500]
    except Exception:  # noqa: BLE001
        return f"<a {type(value).__name__}>"


def _handler_name(handler: Any) -> str:
    if handler in (signal.SIG_DFL, signal.SIG_IGN, None):
        return {signal.SIG_DFL: "SIG_DFL", signal.SIG_IGN: "SIG_IGN"}.get(handler, "None")
    return f"{getattr(handler, '__qualname__', type(handler).__name__)}@{id(handler):x}"


class Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.path = config["file"]
        self.replies = config["replies"]
        self.handles: dict[int, Any] = {}

    def reply(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self.replies, view):]

    def start(self) -> types.ModuleType | None:
        module = importlib.import_module(self.config["module"])
        install_traps(module, self.config["graded"])
        self.module = module
        try:
            learner = load_module(Path(self.path), "learner_module")
        except BaseException as e:  # noqa: BLE001 - a syntax error is feedback, not a crash
            error = describe_error(e, self.path)
            if isinstance(e, SyntaxError):
                error["where"] = f"{Path(self.path).name}:{e.lineno}"
            self.reply({"import_error": error})
            return None
        self.reply({"hello": os.getpid()})
        return learner

    def serve(self, learner: types.ModuleType) -> None:
        with os.fdopen(self.config["requests"], "rb") as requests:
            for line in requests:
                request = json.loads(line)
                try:
                    self.reply({"ok": self.handle(learner, request)})
                except BaseException as e:  # noqa: BLE001 - SystemExit from learner code too
                    self.reply({"error": describe_error(e, self.path)})

    def handle(self, learner: types.ModuleType, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "inspect":
            return problems(learner, self.path, self.module, self.config["graded"], self.config["given"])
        if op == "call":
            args, kwargs = pickle.loads(base64.b64decode(request["args"]))
            function: Callable[..., Any] = getattr(learner, request["name"])
            result = function(*args, **kwargs)
            if hasattr(result, "__enter__") and hasattr(result, "__exit__") and not isinstance(result, (str, bytes)):
                handle = len(self.handles) + 1
                self.handles[handle] = result
                return {"$": "context", "v": handle}
            return encode(result)
        if op == "enter":
            return encode(self.handles[request["handle"]].__enter__())
        if op == "exit":
            return encode(self.handles.pop(request["handle"]).__exit__(None, None, None))
        if op == "fork":  # children of this process, for wait_for(): each sleeps, then exits
            pids = []
            for delay, code in request["children"]:
                pid = os.fork()
                if pid == 0:
                    time.sleep(delay)
                    os._exit(code)
                pids.append(pid)
            return pids
        if op == "getsignal":
            return _handler_name(signal.getsignal(request["signal"]))
        raise ValueError(f"unknown request {op!r}")


def main() -> None:
    config = json.loads(sys.argv[1])
    os.set_inheritable(config["replies"], False)
    os.set_inheritable(config["requests"], False)
    server = Server(config)
    learner = server.start()
    if learner is not None:
        server.serve(learner)


if __name__ == "__main__":
    main()
