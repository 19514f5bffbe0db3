"""`@named_tuple` makes what `typing.NamedTuple` makes, from the same class body."""

from __future__ import annotations

import pickle
import typing

import pytest

from mini_runtime.tuples import named_tuple


#: One class body, made into a class both ways below.
BODY = '''
    """A point, with a label."""
    x: int
    y: int = 0
    label: str | None = None

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    @property
    def origin(self) -> bool:
        return self.x == self.y == 0

    @classmethod
    def parse(cls, text: str):
        return cls(*map(int, text.split(",")))
'''
exec(compile(f"from __future__ import annotations\nclass Typed(typing.NamedTuple):{BODY}\n"
             f"@named_tuple\nclass Ours:{BODY}", __file__, "exec"), globals())


@named_tuple
class Bare:
    a: int
    b: list[str]


class TypedBare(typing.NamedTuple):
    a: int
    b: list[str]


def test_the_same_fields_defaults_and_values() -> None:
    for args, kwargs in [((1,), {}), ((1, 2), {}), ((3, -4, "p"), {}), ((5,), {"label": "q"})]:
        ours, typed = Ours(*args, **kwargs), Typed(*args, **kwargs)
        assert tuple(ours) == tuple(typed) and isinstance(ours, tuple)
        assert ours._asdict() == typed._asdict()
        assert repr(ours) == repr(typed).replace("Typed(", "Ours(")
        assert ours.norm1() == typed.norm1() and ours.origin == typed.origin
        assert tuple(ours._replace(y=9)) == tuple(typed._replace(y=9))
        assert type(ours._replace(y=9)) is Ours
    assert Ours._fields == Typed._fields == ("x", "y", "label")
    assert Ours._field_defaults == Typed._field_defaults == {"y": 0, "label": None}
    assert Ours.__doc__ == Typed.__doc__
    assert Bare.__doc__ == TypedBare.__doc__.replace("TypedBare", "Bare")
    assert Ours.__annotations__ == {"x": "int", "y": "int", "label": "str | None"}
    assert type(Ours.parse("1,2")) is Ours and Ours.parse("1,2") == (1, 2, None)
    assert Ours(0).origin and not Ours(0, 1).origin
    with pytest.raises(AttributeError):
        Ours(1).x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Ours()  # type: ignore[call-arg]


def test_it_is_a_module_level_class_that_pickles() -> None:
    assert Ours.__qualname__ == "Ours" and Ours.__module__ == __name__ == Typed.__module__
    assert pickle.loads(pickle.dumps(Ours(1, 2, "z"))) == Ours(1, 2, "z")
    assert not hasattr(Ours(1), "__dict__")  # slots, as a tuple has


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="Wrong: a field without a default follows one"):
        @named_tuple
        class Wrong:
            a: int = 1
            b: int
    with pytest.raises(TypeError):
        class TypedWrong(typing.NamedTuple):
            a: int = 1
            b: int


def test_no_field_and_no_annotation() -> None:
    @named_tuple
    class Empty:
        """Nothing."""
        def hello(self) -> str:
            return "hi"

    assert Empty() == () and Empty().hello() == "hi" and Empty._fields == ()
