"""Model solution of exercise 01's extension, `--ulimit` (instructors only: see
exercises/INSTRUCTORS.md). Appended to mini_runtime/process.py by exercises.parts.model_source."""

from __future__ import annotations

import resource

#: docker's names (go-units' ulimitNameMapping) and Linux's RLIMIT_* numbers.
ULIMIT_RESOURCES = {"core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8,
                    "msgqueue": 12, "nice": 13, "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14,
                    "rttime": 15, "sigpending": 11, "stack": 3}


def go_int64(text: str) -> int:
    """strconv.ParseInt(text, 10, 64), with its error."""
    digits = text[1:] if text[:1] in "+-" else text
    if not digits or not digits.isascii() or not digits.isdigit():
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(text)


def parse_ulimit(value: str) -> tuple[str, int, int]:
    """go-units' ParseUlimit: NAME=SOFT[:HARD], the hard limit defaults to the soft one."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {value}")
    if name not in ULIMIT_RESOURCES:
        raise ValueError(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise ValueError(f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`")
    hard = go_int64(parts[1]) if len(parts) == 2 else None
    soft = go_int64(parts[0])
    hard = soft if hard is None else hard
    if hard != -1 and soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return name, soft, hard


def set_ulimits(limits: list[tuple[str, int, int]]) -> None:
    """setrlimit(2) in the child: it keeps them across execve, and mini keeps its own."""
    for name, soft, hard in limits:
        def kernel_value(n: int) -> int:
            return resource.RLIM_INFINITY if n < 0 else n
        resource.setrlimit(ULIMIT_RESOURCES[name], (kernel_value(soft), kernel_value(hard)))
