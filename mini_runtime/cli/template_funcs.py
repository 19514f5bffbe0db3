"""Values and functions of Go templates as docker runs them: how values print (fmt.Sprint),
`json` (encoding/json), docker's functions (cli/templates: json, split, join, title, lower,
upper, pad, truncate) and Go's builtins (and, or, not, len, index, slice, print, printf,
println, eq, ne, lt, le, gt, ge).

A function raises TypeError for an argument of the wrong type (Go checks those before calling:
"wrong type for value; expected string; got int") and ValueError or IndexError for a failure
of its own ("error calling index: index out of range: 5").
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from mini_runtime.cli.formatting import go_quote

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


class Missing:
    """A map key that is not there: Go's invalid reflect.Value, printed "<no value>"."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = Missing()
VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def go_print(value: Any) -> str:
    """fmt.Sprint of a value decoded from JSON: map[a:1 b:2], [x y], <nil>, true."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_print(k)}:{go_print(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def float_digits(value: float) -> tuple[str, str, int]:
    """(sign, shortest digits, point): value = 0.DIGITS x 10**point, as Go's strconv finds."""
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits, point = whole + fraction, len(whole) + int(exponent or 0)
    point -= len(digits) - len(digits.lstrip("0"))
    return ("-" if value < 0 else ""), (digits.strip("0") or "0"), point


def go_float(value: float, json_rule: bool = False) -> str:
    """Go's shortest float: fmt's %v (exponent form below 1e-4 or from 1e+06) or, with
    `json_rule`, encoding/json's (below 1e-6 or from 1e21, and "1e-7" not "1e-07")."""
    if value != value or value in (float("inf"), float("-inf")):
        if json_rule:
            raise ValueError(f"json: unsupported value: {go_float(value)}")
        return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    sign, digits, point = float_digits(value)
    if value == 0:
        return sign + "0"
    exponent = point - 1
    if (value and (abs(value) < 1e-6 or abs(value) >= 1e21)) if json_rule else \
            (exponent < -4 or exponent >= 6):
        text = (f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}"
                f"e{'-' if exponent < 0 else '+'}{abs(exponent):02d}")
        return text.replace("e-0", "e-") if json_rule else text
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_json(value: Any) -> str:
    """encoding/json with SetEscapeHTML(false), as docker's `json`: compact, keys in the data's
    order (a Go struct's field order), U+2028 and U+2029 escaped."""
    if isinstance(value, float):
        return go_float(value, json_rule=True)
    if isinstance(value, dict):
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(v)}" for k, v in value.items()
                              if not callable(v)) + "}"  # (a row's method, as .Label, is no field)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    text = json.dumps(None if value is MISSING else value, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def go_type(value: Any) -> str:
    kinds = [(bool, "bool"), (int, "int"), (float, "float64"), (str, "string"),
             ((list, tuple), "[]interface {}"), (dict, "map[string]interface {}")]
    return next((name for kind, name in kinds if isinstance(value, kind)), "interface {}")


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, "" and empty lists or maps are false."""
    return value is not MISSING and value is not None and bool(value)


def want(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if value is None:
        raise TypeError(f"invalid value; expected {name}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"wrong type for value; expected {name}; got {go_type(value)}")
    return value


# --- docker's functions -----------------------------------------------------------------------

def title(text: str) -> str:
    """strings.Title: the first letter of each word in upper case."""
    out, previous = [], " "
    for ch in want(text, str, "string"):
        separator = not (previous.isalnum() or previous == "_")
        out.append(ch.upper() if separator else ch)
        previous = ch
    return "".join(out)


def split(text: str, sep: str) -> list[str]:
    want(text, str, "string"), want(sep, str, "string")
    return list(text) if sep == "" else text.split(sep)


def join(items: list, sep: str) -> str:
    return want(sep, str, "string").join(
        item if isinstance(item, str) else go_print(item)
        for item in want(items, (list, tuple), "[]string"))


def pad(text: str, before: int, after: int) -> str:
    want(text, str, "string"), want(before, int, "int"), want(after, int, "int")
    return " " * before + text + " " * after if text else text


def truncate(text: str, length: int) -> str:
    return want(text, str, "string")[:want(length, int, "int")]


# --- Go's builtins --------------------------------------------------------------------------------

def go_len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, tuple, dict)):
        return len(item)
    raise ValueError("len of untyped nil" if item is None else f"len of type {go_type(item)}")


def index(item: Any, *keys: Any) -> Any:
    if item is None:
        raise ValueError("index of untyped nil")
    for key in keys:
        if item is None:
            raise ValueError("index of nil pointer")
        if isinstance(item, (list, tuple, str)):
            if key is None or not isinstance(key, int) or isinstance(key, bool):
                raise ValueError("cannot index slice/array with " +
                                 ("nil" if key is None else f"type {go_type(key)}"))
            if not 0 <= key < len(item):
                raise IndexError(f"index out of range: {key}" if key < 0 or key > len(item)
                                 else "reflect: slice index out of range")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise ValueError(f"value has type {go_type(key)}; should be string")
            item = item.get(key)
        else:
            raise ValueError(f"can't index item of type {go_type(item)}")
    return item


def go_slice(item: Any, *bounds: int) -> Any:
    if not isinstance(item, (list, tuple, str)) or len(bounds) > 2:
        raise ValueError(f"can't slice item of type {go_type(item)}")
    start, end = (list(bounds) + [0, len(item)][len(bounds):])[:2]
    if not 0 <= start <= end <= len(item):
        raise IndexError(f"index out of range: {end if end > len(item) else start}")
    return item[start:end]


def comparable(a: Any, b: Any, ordered: bool = False) -> None:
    number = (int, float)
    kinds = [k for k in (bool, number, str) if isinstance(a, k) and isinstance(b, k)]
    if isinstance(a, bool) != isinstance(b, bool) or not kinds:
        raise ValueError("incompatible types for comparison")
    if ordered and kinds[0] is bool:
        raise ValueError("invalid type for comparison")


def eq(first: Any, *others: Any) -> bool:
    for other in others:
        comparable(first, other)
        if first == other:
            return True
    return False


def ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(a: Any, b: Any) -> bool:
        comparable(a, b, ordered=True)
        return compare(a, b)
    return check


def sprint(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(arg))
    return "".join(out)


def printf(format: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs: %v %s %d %q %t %x %X %f %e %g %%."""
    pending = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, precision, verb = m.groups()
        if verb == "%":
            return "%"
        if not pending:
            return f"%!{verb}(MISSING)"
        value = pending.pop(0)
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if verb in "vs":
            text = go_print(value)[:int(precision)] if precision else go_print(value)
        elif verb == "q" and isinstance(value, str):
            text = go_quote(value)
        elif verb == "d" and is_int:
            text = str(value)
        elif verb == "t" and isinstance(value, bool):
            text = go_print(value)
        elif verb in "xX" and (is_int or isinstance(value, str)):
            text = format_hex(value, verb)
        elif verb in "feg" and isinstance(value, (int, float)) and not isinstance(value, bool):
            text = f"{float(value):.{precision or 6}{verb}}" if verb != "g" else go_float(float(value))
        else:
            return f"%!{verb}({go_type(value)}={go_print(value)})"
        if width and len(text) < int(width):
            fill = "0" if "0" in flags and "-" not in flags and verb not in "sqvt" else " "
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), fill)
        return text

    text = VERB.sub(one, want(format, str, "string"))
    if pending:
        text += "%!(EXTRA " + ", ".join(f"{go_type(v)}={go_print(v)}" for v in pending) + ")"
    return text


def format_hex(value: int | str, verb: str) -> str:
    text = value.encode().hex() if isinstance(value, str) else format(value, "x")
    return text.upper() if verb == "X" else text


def identity(value: Any, *_: Any) -> Any:
    return value


#: name -> (function, fewest arguments, most arguments or -1 for any number)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "json": (go_json, 1, 1), "split": (split, 2, 2), "join": (join, 2, 2), "title": (title, 1, 1),
    "lower": (lambda s: want(s, str, "string").lower(), 1, 1),
    "upper": (lambda s: want(s, str, "string").upper(), 1, 1),
    "pad": (pad, 3, 3), "truncate": (truncate, 2, 2),
    "and": (lambda *a: next((x for x in a if not truth(x)), a[-1]), 1, -1),
    "or": (lambda *a: next((x for x in a if truth(x)), a[-1]), 1, -1),
    "not": (lambda x: not truth(x), 1, 1), "len": (go_len, 1, 1), "index": (index, 1, -1),
    "slice": (go_slice, 1, -1), "print": (sprint, 0, -1), "printf": (printf, 1, -1),
    "println": (lambda *a: " ".join(go_print(x) for x in a) + "\n", 0, -1),
    "eq": (eq, 1, -1), "ne": (lambda a, b: not eq(a, b), 2, 2),
    "lt": (ordered(lambda a, b: a < b), 2, 2), "le": (ordered(lambda a, b: a <= b), 2, 2),
    "gt": (ordered(lambda a, b: a > b), 2, 2), "ge": (ordered(lambda a, b: a >= b), 2, 2),
}
#: docker's header functions for `table` formats: they return the column title unchanged.
HEADER_FUNCTIONS = dict(FUNCTIONS) | {
    name: (identity, count, count) for name, count in
    [("json", 1), ("split", 2), ("join", 2), ("title", 1), ("lower", 1), ("upper", 1),
     ("pad", 3), ("truncate", 2)]}
