"""``records.record`` makes the same classes as
``dataclass(frozen=True, slots=True)``, only cheaper to create: each
behaviour is checked against a real dataclass declared alike."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import pytest

from oci_tools.records import field as rfield
from oci_tools.records import record, replace


@record
class R:
    """A record."""

    a: int
    b: str = "x"
    c: Mapping[str, str] = rfield(default_factory=dict)

    def twice(self) -> int:
        return self.a * 2


@dataclass(frozen=True, slots=True)
class D:
    """The same, as a dataclass."""

    a: int
    b: str = "x"
    c: Mapping[str, str] = field(default_factory=dict)


@record
class Base:
    """A base record."""

    raw: bytes
    doc: int


@record
class Sub(Base):
    """Fields of the base first."""

    kind: str = "k"


@record(order=True, repr=False)
class Ordered:
    """order=True, repr=False."""

    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def _pairs() -> list[tuple[R, D]]:
    return [(R(1), D(1)), (R(2, "y"), D(2, "y")), (R(a=3, c={"k": "v"}), D(a=3, c={"k": "v"}))]


def test_init_repr_eq_like_a_dataclass() -> None:
    for r, d in _pairs():
        assert (r.a, r.b, dict(r.c)) == (d.a, d.b, dict(d.c))
        assert repr(r) == repr(d).replace("D(", "R(")
        assert r == R(r.a, r.b, dict(r.c)) and r != R(r.a + 1) and r != cast(object, d)
    assert R(1).c is not R(1).c  # a fresh default per instance
    assert R(1).twice() == 2
    with pytest.raises(TypeError):
        R()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        R(1, "x", {}, 4)  # type: ignore[call-arg]


def test_frozen_hash_and_slots() -> None:
    r = R(1, "y", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del r.a
    assert not hasattr(r, "__dict__") and vars(R)["__slots__"] == ("a", "b", "c")
    assert hash(Base(b"x", 1)) == hash(Base(b"x", 1)) == hash((b"x", 1))
    assert len({Base(b"x", 1), Base(b"x", 1), Base(b"y", 1)}) == 2


def test_dataclasses_functions_work() -> None:
    r = R(1, "y", {"k": "v"})
    assert dataclasses.is_dataclass(r)
    assert [f.name for f in dataclasses.fields(r)] == ["a", "b", "c"]
    assert dataclasses.replace(r, b="z") == R(1, "z", {"k": "v"}) == replace(r, b="z")
    with pytest.raises(TypeError):
        replace(r, d=1)
    assert dataclasses.asdict(r) == {"a": 1, "b": "y", "c": {"k": "v"}}
    assert pickle.loads(pickle.dumps(Sub(b"r", 2, "q"))) == Sub(b"r", 2, "q")
    assert R.__match_args__ == ("a", "b", "c")


def test_inheritance_order_and_own_methods() -> None:
    s = Sub(b"r", 2)
    assert (s.raw, s.doc, s.kind) == (b"r", 2, "k") and isinstance(s, Base)
    assert repr(s) == "Sub(raw=b'r', doc=2, kind='k')" and vars(Sub)["__slots__"] == ("kind",)
    assert s != Base(b"r", 2)
    a, b = Ordered("sha256", "a"), Ordered("sha256", "b")
    assert a < b <= b and b > a >= a and sorted([b, a]) == [a, b]
    assert str(a) == "sha256:a" and repr(a).startswith("<")  # repr=False: object's


def test_what_record_refuses() -> None:
    with pytest.raises(TypeError):

        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError):

        @record
        class Mutable:
            a: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError):

        @record
        class Post:
            a: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError):

        @record
        class Opts:
            a: int = field(default=1)  # dataclasses' own field: records.field is the one


def test_records_are_made_without_importing_dataclasses() -> None:
    code = (
        "import sys\n"
        "from oci_tools.records import field, record\n"
        "@record\n"
        "class P:\n"
        "    a: int\n"
        "    b: dict = field(default_factory=dict)\n"
        "p = P(1)\n"
        "assert p == P(1) and hash(P(1, None)) == hash((1, None)) and repr(p) == 'P(a=1, b={})'\n"
        "assert 'dataclasses' not in sys.modules and 'inspect' not in sys.modules\n"
        "import dataclasses\n"
        "assert [f.name for f in dataclasses.fields(p)] == ['a', 'b']\n"
        "assert dataclasses.fields(P)[1].default_factory is dict\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@record(frozen=False)
class Mutable:
    """frozen=False: assignable, compared by value, unhashable."""

    name: str
    n: int = 0


def test_a_mutable_record() -> None:
    m = Mutable("a")
    m.n = 2
    assert m == Mutable("a", 2) and repr(m) == "Mutable(name='a', n=2)"
    with pytest.raises(TypeError):
        hash(m)
    with pytest.raises(AttributeError):
        m.other = 1  # type: ignore[attr-defined]  # slotted
    assert dataclasses.fields(Mutable)[1].default == 0
    assert not Mutable.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_methods_are_made_on_first_use_whichever_comes_first() -> None:
    """The generated methods compile on first use; any of them may be the
    first (a subclass's instance, an explicit call), and each then behaves
    as the dataclass's."""

    @record
    class Base:
        a: int

    @record
    class Sub(Base):
        b: int = 2

    class Plain(Base):
        """Not a record: its instances use Base's methods."""

    assert Sub(1) == Sub(1, 2) and repr(Sub(1)).endswith("Sub(a=1, b=2)")
    p = Plain(5)  # Base's __init__ compiles through a subclass's instance
    assert p.a == 5 and hash(p) == hash((5,))

    @record
    class Fresh:
        a: int
        b: str = "x"

    f = object.__new__(Fresh)  # no __init__ yet: the other methods come first
    Fresh.__init__(f, 3)
    assert Fresh.__eq__(f, Fresh(3)) is True and hash(f) == hash((3, "x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.a = 4  # type: ignore[misc]
