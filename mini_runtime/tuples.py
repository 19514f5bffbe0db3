"""`@named_tuple`: the class syntax of `typing.NamedTuple`, without importing `typing`.

Every `mini` command is a fresh Python process, so every module it imports is paid for at every
start. `typing` costs about 3 ms to import, and each `class X(NamedTuple)` then turns every
annotation into a `typing.ForwardRef`, compiling its text (our annotations are text: `from
__future__ import annotations`): about 0.2 ms a class, and `mini run` defines fifteen. Together
that was a tenth of `mini run --rm busybox true`.

This decorator reads the same class body and makes the same tuple with `collections.namedtuple`,
which `typing.NamedTuple` itself calls: the fields are the annotations, in order; a value given
in the body is that field's default; methods, properties and the docstring are kept. The
annotations stay what they were, text for the reader and the type checker, never evaluated.
The rest of mini imports names from `typing` only under `if TYPE_CHECKING:`
(tests/test_architecture.py checks both).
"""

from __future__ import annotations

import collections

#: Names of the class body that are not copied onto the tuple: the class machinery's own, and
#: what collections.namedtuple defines (typing.NamedTuple refuses to overwrite the same).
NOT_COPIED = {"__dict__", "__weakref__", "__annotations__", "__qualname__", "__module__",
              "__new__", "__init__", "__slots__", "__getnewargs__",
              "_fields", "_field_defaults", "_make", "_replace", "_asdict"}


def named_tuple(cls: type) -> type:
    """The NamedTuple that `cls`'s body describes (use as a class decorator)."""
    body = cls.__dict__
    fields = list(body.get("__annotations__", {}))
    defaults = [body[name] for name in fields if name in body]
    if any(name not in body for name in fields[len(fields) - len(defaults):]):
        raise TypeError(f"{cls.__qualname__}: a field without a default follows one with a default")
    result = collections.namedtuple(cls.__name__, fields, defaults=defaults, module=cls.__module__)
    for name, value in body.items():
        if name not in NOT_COPIED and name not in fields and not (name == "__doc__" and value is None):
            setattr(result, name, value)
    result.__qualname__ = cls.__qualname__
    result.__annotations__ = dict(body.get("__annotations__", {}))
    return result
