"""The "why?" checks' verdict, one for every chapter: the check has made each mistake for real
(in a child of its own, so nothing it does reaches the grader) and holds the kernel's errnos; the
learner's predicted_errnos() must name the same ones."""

from __future__ import annotations

import errno
import json
import os
from typing import Callable

from exercises.grading import Context


def expect_predictions(ctx: Context, predicted: object, kernel: dict[str, object]) -> None:
    """Fail (one line: what the kernel said, what was predicted wrong) unless every prediction
    matches; first make sure the kernel really refused each mistake (the check's own sanity)."""
    ctx.expect(bool(kernel) and all(isinstance(v, int) and 0 < v < 4096 for v in kernel.values()),
               "the kernel to refuse every mistake (the check's own sanity test)", repr(kernel))
    names = {k: errno.errorcode.get(v, v) for k, v in kernel.items()}  # type: ignore[call-overload]
    got = predicted if isinstance(predicted, dict) else {}
    wrong = {k: errno.errorcode.get(got.get(k), got.get(k)) for k in kernel if got.get(k) != kernel[k]}
    ctx.expect(not wrong, f"predicted_errnos() to match the kernel: {names}", f"{wrong or predicted!r}")


def errno_of(action: Callable[[], object]) -> int:
    """The errno `action` failed with (0: the kernel let it through)."""
    try:
        action()
    except OSError as e:
        return e.errno or 0
    return 0


def errnos_in_child(make_mistakes: Callable[[], dict[str, int]]) -> dict[str, object]:
    """Run `make_mistakes` in a child of ours, so the namespaces and mounts it makes go with it:
    its errnos, sent back as JSON ({"error": ...} if the check's own code failed there)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, json.dumps(make_mistakes()).encode())
        except BaseException as e:  # noqa: BLE001 - the check's own failure, said in its verdict
            os.write(write, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answers:
        data = answers.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {}
