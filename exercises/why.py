"""The "why?" checks' verdict, one for every chapter: the check has made each mistake for real
(in a child of its own, so nothing it does reaches the grader) and holds the kernel's errnos; the
learner's predicted_errnos() must name the same ones."""

from __future__ import annotations

import errno

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
