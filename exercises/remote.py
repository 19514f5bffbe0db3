"""The checker's side of the learner server (`exercises.learner`): direct calls of the
learner's functions, made in another process, whose answers come back as data.

`ctx.learner.exit_code(status)` sends the call to the server and returns the decoded answer,
or raises the decoded exception (a builtin type or one of `mini_runtime.errors` as itself, any
other as `LearnerError`). Nothing the server sends is unpickled or executed here.
"""

from __future__ import annotations

import base64
import builtins
import collections
import json
import keyword
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exercises.grading import CheckFailed

if TYPE_CHECKING:
    from exercises.grading import Context

MAX_REPLY = 8 << 20  # bytes in one answer


class LearnerError(Exception):
    """An exception of the learner's code whose type the checker does not have."""


class Opaque:
    """A value the checker cannot rebuild (an object of the learner's class): equal to nothing."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, text

    def __repr__(self) -> str:
        return self.text


def _known_type(name: str) -> Any:
    """Named tuples the checks compare with (rebuilt as themselves)."""
    if name == "Overlay":
        from mini_runtime.overlay import Overlay

        return Overlay
    return None


def decode(value: Any) -> Any:
    """The inverse of `exercises.learner.encode`."""
    if not isinstance(value, dict):
        if isinstance(value, list):  # not produced by encode, but harmless
            return [decode(x) for x in value]
        return value
    tag, inner = value.get("$"), value.get("v")
    if tag in ("tuple", "list", "set"):
        items = [decode(x) for x in inner]
        return {"tuple": tuple, "list": list, "set": set}[tag](items) if tag != "set" else _set(items)
    if tag == "dict":
        result = {}
        for key, item in inner:
            key = decode(key)
            try:
                result[key] = decode(item)
            except TypeError:  # an unhashable key
                return Opaque("dict", repr(inner)[:300])
        return result
    if tag == "path":
        return Path(inner)
    if tag == "bytes":
        return bytes.fromhex(inner)
    if tag == "namedtuple":
        fields, items = [str(f) for f in value["fields"]], [decode(x) for x in inner]
        known = _known_type(str(value.get("type")))
        if known is not None and list(known._fields) == fields and len(items) == len(fields):
            return known(*items)
        name = re.sub(r"\W", "_", str(value.get("type")))
        if not name.isidentifier() or keyword.iskeyword(name) or name[0] == "_":
            name = "Remote"
        try:
            return collections.namedtuple(name, fields, rename=True)(*items)
        except (TypeError, ValueError):
            return Opaque(name, repr(items)[:300])
    return Opaque(str(value.get("type")), str(value.get("v")))


def _set(items: list[Any]) -> Any:
    try:
        return set(items)
    except TypeError:
        return Opaque("set", repr(items)[:300])


def rebuild_error(error: dict[str, Any]) -> BaseException:
    """The learner's exception, as an exception of the same type where the checker has it."""
    kind, module, message = str(error.get("type")), str(error.get("module")), str(error.get("message"))
    cls: Any = None
    if module == "builtins":
        cls = getattr(builtins, kind, None)
    elif module.startswith("mini_runtime.errors"):
        from mini_runtime import errors

        cls = getattr(errors, kind, None)
    exc: BaseException
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        exc = LearnerError(f"{kind}: {message}")
    elif issubclass(cls, OSError) and isinstance(error.get("errno"), int):
        args = [error["errno"], str(error.get("strerror"))] + ([error["filename"]] if error.get("filename") else [])
        exc = OSError(*args)  # the right subclass: FileNotFoundError for ENOENT ...
    else:
        try:
            exc = cls.__new__(cls)
            Exception.__init__(exc, message)
        except Exception:  # noqa: BLE001 - a builtin that wants other arguments
            exc = LearnerError(f"{kind}: {message}")
    exc.learner_where = str(error.get("where") or "")  # type: ignore[attr-defined]
    return exc


class LearnerServer:
    """The learner server of one check, started in the check's jail."""

    def __init__(self, ctx: "Context") -> None:
        jail = ctx.jail()
        assert ctx.scratch is not None
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        self.log_path = ctx.scratch / "learner-output.txt"
        config = {"file": str(ctx.learner_path), "module": ctx.chapter.module, "graded": ctx.chapter.graded,
                  "given": list(ctx.chapter.given), "requests": requests_r, "replies": replies_w}
        argv = [sys.executable, "-m", "exercises.learner", json.dumps(config)]
        with open(self.log_path, "wb") as log:
            kwargs: dict[str, Any] = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          pass_fds=(requests_r, replies_w))
            self.proc = jail.popen(argv, **kwargs) if jail else subprocess.Popen(argv, **kwargs)
        os.close(requests_r)
        os.close(replies_w)
        self.requests = os.fdopen(requests_w, "wb")
        self.replies = os.fdopen(replies_r, "rb")
        self.pid = self.proc.pid  # in the checker's numbering
        try:
            first = self._receive("your file was imported")
            if "import_error" in first:
                error = first["import_error"]
                where = f" (at {error['where']})" if error.get("where") else ""
                raise CheckFailed(f"your file does not import: {error.get('type')}: {error.get('message')}"
                                  f"{where}"[:400])
        except BaseException:
            self.close()
            raise

    def _receive(self, during: str) -> dict[str, Any]:
        line = self.replies.readline(MAX_REPLY)
        if not line.endswith(b"\n"):
            if line:
                raise CheckFailed(f"expected an answer of at most {MAX_REPLY >> 20} MB, got more while {during}")
            raise CheckFailed(self._ended(during))
        try:
            message = json.loads(line)
        except ValueError:
            raise CheckFailed(f"the process running your code sent garbage while {during}") from None
        if not isinstance(message, dict):
            raise CheckFailed(f"the process running your code sent garbage while {during}")
        return message

    def _ended(self, during: str) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        tail = self.output().strip().splitlines()[-1:]
        how = f"exit status {code}" if code is not None and code >= 0 else \
              f"killed by signal {-code}" if code is not None else "it closed the grader's pipe"
        hint = ": an os._exit() or sys.exit() in your code?" if code is not None and code >= 0 else ""
        said = f"; its last output: {tail[0][:120]!r}" if tail else ""
        return f"the process running your code ended while {during} ({how}){hint}{said}"

    def output(self) -> str:
        """What the learner's code printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def request(self, during: str, **request: Any) -> Any:
        try:
            self.requests.write((json.dumps(request) + "\n").encode())
            self.requests.flush()
        except (BrokenPipeError, ValueError):
            raise CheckFailed(self._ended(during)) from None
        answer = self._receive(during)
        if "error" in answer and isinstance(answer["error"], dict):
            raise rebuild_error(answer["error"])
        return answer.get("ok")

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        data = base64.b64encode(pickle.dumps((args, kwargs))).decode()
        result = self.request(f"{name}() ran", op="call", name=name, args=data)
        if isinstance(result, dict) and result.get("$") == "context":
            return RemoteContext(self, name, int(result["v"]))
        return decode(result)

    # --- what the checker observes of the server process, from the kernel ---------------

    def path(self, path: str | Path) -> Path:
        """`path` as the server sees it (in its mount namespace), read through /proc."""
        return Path(f"/proc/{self.pid}/root") / str(path).lstrip("/")

    def cwd(self) -> str:
        return os.readlink(f"/proc/{self.pid}/cwd")

    def mountinfo(self) -> str:
        return Path(f"/proc/{self.pid}/mountinfo").read_text()

    def namespace(self, kind: str) -> str:
        return os.readlink(f"/proc/{self.pid}/ns/{kind}")

    def fork_children(self, children: list[tuple[float, int]]) -> list[tuple[int, int]]:
        """Children of the server (each sleeps, then exits with its code): (pid as the
        server sees it, pid as the checker sees it)."""
        inner = self.request("the server forked", op="fork", children=[list(c) for c in children])
        outer = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                status = Path(f"/proc/{pid}/status").read_text()
                nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
                outer[int(nspid[-1])] = int(pid)
        if not all(pid in outer for pid in inner):
            raise CheckFailed(f"expected the children {inner} of the process that runs your code, got "
                              f"{sorted(outer)} (did your code reap or kill them?)")
        return [(pid, outer[pid]) for pid in inner]

    def getsignal(self, signum: int) -> str:
        """The server's handler for a signal, as a name (SIG_DFL, or the function and its id)."""
        return str(self.request("signal.getsignal() ran", op="getsignal", signal=int(signum)))

    def inspect(self) -> list[str]:
        return [str(p) for p in self.request("your file was inspected", op="inspect") or []]

    def close(self) -> None:
        for f in (self.requests, self.replies):
            try:
                f.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class RemoteContext:
    """A context manager the learner's function returned, entered and left in the server."""

    def __init__(self, server: LearnerServer, name: str, handle: int) -> None:
        self.server, self.name, self.handle = server, name, handle

    def __enter__(self) -> Any:
        return decode(self.server.request(f"the `with {self.name}(...)` block was entered", op="enter",
                                          handle=self.handle))

    def __exit__(self, *exc: object) -> None:
        self.server.request(f"the `with {self.name}(...)` block was left", op="exit", handle=self.handle)


class LearnerFunctions:
    """`ctx.learner`: attribute access gives a function that calls the learner's in the server."""

    def __init__(self, ctx: "Context") -> None:
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._ctx.server.call(name, *args, **kwargs)
        call.__name__ = name
        return call


def wait_gone(pid: int, seconds: float) -> bool:
    """Whether the process `pid` (checker's numbering) is gone, reaped, within `seconds`."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
