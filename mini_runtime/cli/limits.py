"""Chapter 04's flags (`run`, `create`, `update`), read as docker's client reads them: sizes,
CPUs and ints in pflag's kinds, and pflag's one line for a value that is not of its kind."""

from __future__ import annotations

from mini_runtime.errors import InvalidParameter, UsageError
from mini_runtime.units import parse_bytes

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (argparse is imported only where a command needs it: cli/flags.py)
    import argparse
    from collections.abc import Callable
    from typing import Any


def parse_limits(args: argparse.Namespace) -> dict:
    """Chapter 04's flags, in docker's units, as docker's client parses them (`run`, `create`,
    `update`); None for a flag not given (docker: 0 for --memory, --memory-swap, --cpus,
    --cpu-shares and an empty --cpuset-cpus mean "not set" too: `update --cpus 0` keeps the
    limit, `run -m 0` has none). A value that does not parse is pflag's line:
    `invalid argument "lots" for "-m, --memory" flag: invalid size: 'lots'`. config.check_limits
    checks the values."""
    return {
        "memory": flag("-m, --memory", args.memory, parse_bytes) or None,
        "memory_swap": flag("--memory-swap", args.memory_swap,   # (docker: 0 means "not set")
                            lambda text: -1 if text == "-1" else parse_bytes(text) or None),
        "cpus": flag("--cpus", args.cpus, rational) or None,
        "cpu_shares": int_flag("-c, --cpu-shares", args.cpu_shares) or None,   # 0: the default (1024)
        "pids_limit": int_flag("--pids-limit", args.pids_limit),
        "cpuset_cpus": args.cpuset_cpus or None,
        # exercise 04's extension: parsed here, checked and written by the plugged-in hooks
        "cpu_period": int_flag("--cpu-period", args.cpu_period),
        "cpu_quota": int_flag("--cpu-quota", args.cpu_quota),
        "memory_reservation": flag("--memory-reservation", args.memory_reservation, parse_bytes),
    }


def flag(name: str, text: str | None, parse: Callable[[str], Any]) -> Any:
    """A flag's value parsed (None if not given), or pflag's one line for a value that is not
    of the flag's kind: `invalid argument "TEXT" for "NAME" flag: WHY`."""
    if text is None:
        return None
    try:
        return parse(text)
    except (UsageError, InvalidParameter) as e:
        raise UsageError(f'invalid argument "{text}" for "{name}" flag: {e}') from None


def int_flag(name: str, text: str | None) -> int | None:
    """An int64 flag, as pflag parses it (Go's integer literals: units.go_int, base 0)."""
    from mini_runtime.units import go_int

    return flag(name, text, lambda value: go_int(value, base=0))


def rational(text: str) -> float:
    """--cpus as docker's NanoCPUs reads it (Go's big.Rat): "0.5", "1/2" and "5e-1" are half a
    CPU; "nan", "inf" and " 1" are not numbers; a billionth is the finest step."""
    from fractions import Fraction

    try:
        value = Fraction(text) if text == text.strip() else None
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None:
        raise InvalidParameter(f"failed to parse {text} as a rational number")
    if (value * 10**9).denominator != 1:
        raise InvalidParameter("value is too precise")
    return float(value)
