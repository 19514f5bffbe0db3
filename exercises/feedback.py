"""Lines a learner reads: a quote cut at a word, a `mini` that did not return, and which of a
check's functions are still the skeleton's TODO (a failure no second try can change)."""

from __future__ import annotations

import ast
import re
from typing import Sequence


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word boundary with "…" if it is longer."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = len(cut) if text[len(cut)] == " " else cut.rfind(" ")  # (a whole last word stays)
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def command_line(args: Sequence[str], limit: int = 80) -> str:
    """`mini ARGS` as a learner typed it: container ids short (12 digits, as `mini ps` shows them)."""
    words = [a[:12] if re.fullmatch(r"[0-9a-f]{64}", a) else a for a in args]
    return clip(" ".join(["mini", *words]), limit)


def did_not_return(args: Sequence[str], seconds: float) -> str:
    """A `mini` the check gave up waiting for, as one line that says where to look."""
    return (f"`{command_line(args)}` did not return within {seconds:g} s (does a function of yours "
            "loop or block, or never answer, so that mini waits for ever?)")


# What the skeleton has before its `raise NotImplementedError`: nothing that could end the
# function another way (a learner who wrote it has a call, a branch, a loop or a return).
_SETUP = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Pass,
          ast.Global, ast.Nonlocal)


def todos(source: bytes, names: Sequence[str]) -> list[str]:
    """The functions among `names` that still end in the skeleton's `raise NotImplementedError`
    (a generator's: then `yield`), with only imports and assignments before it: they always
    raise it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    left = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name not in names:
            continue
        body = node.body[1:] if isinstance(node.body[0], ast.Expr) and \
            isinstance(node.body[0].value, ast.Constant) else node.body
        while body and isinstance(body[-1], ast.Expr) and isinstance(body[-1].value, ast.Yield):
            body = body[:-1]  # (a generator's skeleton: `raise ...` then `yield`)
        raised = body[-1].exc if body and isinstance(body[-1], ast.Raise) else None
        called = raised.func if isinstance(raised, ast.Call) else raised
        if isinstance(called, ast.Name) and called.id == "NotImplementedError" and \
                all(isinstance(statement, _SETUP) for statement in body[:-1]):
            left.append(node.name)
    return left


def still_todo(names: Sequence[str]) -> str:
    """Why a check failed when its functions are the skeleton's."""
    listed = ", ".join(f"`{n}`" for n in names)
    if len(names) == 1:
        return f"{listed} is still a TODO: it raises NotImplementedError"
    return f"{listed} are still TODOs: they raise NotImplementedError"
