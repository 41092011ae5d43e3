"""Frozen value classes made cheaply: ``@record`` is
``@dataclasses.dataclass(frozen=True, slots=True)`` in one compile.

Why: dataclasses compiles every generated method on its own (six for a
frozen class, 0.05-0.15 ms each), and a command's start-up makes some twenty
value classes (documents, descriptors, digests, rows): 10-20 ms of a view
command's 70.  ``record`` writes the same methods as one piece of source and
compiles it once.

To every caller the classes are dataclasses: ``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` work, assigning a field raises
``dataclasses.FrozenInstanceError``, and mypy checks them as frozen
dataclasses (``typing.dataclass_transform``).  The generated ``__init__``,
``__repr__``, ``__eq__``, ``__hash__`` and (``order=True``) comparisons are
the ones dataclasses writes; methods the class defines itself are kept.

Supported: fields with or without a default, ``dataclasses.field(default=...)``
or ``field(default_factory=...)``, inheritance from another record (its fields
come first), ``order=True`` and ``repr=False``.  Anything else (``ClassVar``,
``InitVar``, ``KW_ONLY``, ``__post_init__``, other field options) is refused
with a TypeError: use ``dataclasses.dataclass`` for those.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T", bound=type)

#: The ``__init__`` default standing for "call the field's default_factory".
_HAS_FACTORY = object()
_FIELD = dataclasses._FIELD  # type: ignore[attr-defined]  # the marker fields() selects on


@overload
def record(cls: _T, /) -> _T: ...


@overload
def record(*, order: bool = False, repr: bool = True) -> Callable[[_T], _T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: Any = None, /, *, order: bool = False, repr: bool = True) -> Any:
    """Make ``cls`` a frozen, slotted dataclass (see the module docstring)."""

    def wrap(c: type) -> type:
        return _make(c, order=order, with_repr=repr)

    return wrap if cls is None else wrap(cls)


def _own_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The fields ``cls``'s own body declares, as dataclasses.Field objects."""
    if "__post_init__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: record does not call __post_init__")
    out: dict[str, dataclasses.Field[Any]] = {}
    for name, ann in inspect.get_annotations(cls).items():  # (dataclasses imports inspect)
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        if any(k in text for k in ("ClassVar", "InitVar", "KW_ONLY")):
            raise TypeError(f"{cls.__qualname__}.{name}: record supports plain fields only")
        default = cls.__dict__.get(name, dataclasses.MISSING)
        if isinstance(default, dataclasses.Field):
            f = default
            if not (f.init and f.repr and f.compare and f.hash is None and not f.metadata) or (
                f.kw_only is True
            ):
                raise TypeError(f"{cls.__qualname__}.{name}: record supports default(s) only")
        else:
            if isinstance(default, list | dict | set):
                raise ValueError(
                    f"mutable default {type(default)} for field {name} is not allowed: "
                    "use default_factory"
                )
            f = dataclasses.field(default=default)
        f.name = name
        f.type = ann
        f._field_type = _FIELD  # type: ignore[attr-defined]
        out[name] = f
    return out


def _make(cls: type, *, order: bool, with_repr: bool) -> type:
    fields: dict[str, dataclasses.Field[Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        fields.update(getattr(base, "__dataclass_fields__", {}))
    own = _own_fields(cls)
    fields.update(own)
    names = list(fields)

    # The slotted class, as dataclasses builds it: the fields become slots
    # (those of a base are its slots already), defaults leave the class body.
    inherited = {s for b in cls.__mro__[1:-1] for s in b.__dict__.get("__slots__", ())}
    body = dict(cls.__dict__)
    for name in names:
        body.pop(name, None)
    body.pop("__dict__", None)
    body["__slots__"] = tuple(n for n in names if n not in inherited)
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__

    # One source for every generated method, compiled once.
    env: dict[str, Any] = {
        "__cls": new,
        "__set": object.__setattr__,
        "__Frozen": dataclasses.FrozenInstanceError,
        "__FACTORY": _HAS_FACTORY,
    }
    params, sets = [], []
    seen_default = False
    for n, f in fields.items():
        if f.default is not dataclasses.MISSING:
            env[f"__dflt_{n}"] = f.default
            params.append(f"{n}=__dflt_{n}")
            sets.append(f"__set(self, {n!r}, {n})")
            seen_default = True
        elif f.default_factory is not dataclasses.MISSING:
            env[f"__fact_{n}"] = f.default_factory
            params.append(f"{n}=__FACTORY")
            sets.append(f"__set(self, {n!r}, __fact_{n}() if {n} is __FACTORY else {n})")
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {n!r} follows default argument")
        else:
            params.append(n)
            sets.append(f"__set(self, {n!r}, {n})")
    own_methods = cls.__dict__
    tup = "".join(f"self.{n}," for n in names)
    other = "".join(f"other.{n}," for n in names)
    src = []
    if "__init__" not in own_methods:
        src += [f" def __init__(self, {', '.join(params)}):", *[f"  {s}" for s in sets or ["pass"]]]
    if with_repr and "__repr__" not in own_methods:
        shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names)
        src += [" def __repr__(self):", f'  return self.__class__.__qualname__ + f"({shown})"']
    if "__eq__" not in own_methods:
        src += [
            " def __eq__(self, other):",
            "  if other.__class__ is self.__class__:",
            f"   return ({tup}) == ({other})",
            "  return NotImplemented",
        ]
    if own_methods.get("__hash__") is None:
        src += [" def __hash__(self):", f"  return hash(({tup}))"]
    src += [
        " def __setattr__(self, name, value):",
        "  raise __Frozen(f'cannot assign to field {name!r}')",
        " def __delattr__(self, name):",
        "  raise __Frozen(f'cannot delete field {name!r}')",
    ]
    if order:
        for meth, op in (("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"), ("__ge__", ">=")):
            if meth in own_methods:
                raise TypeError(f"{cls.__qualname__} defines {meth}: order=True would replace it")
            src += [
                f" def {meth}(self, other):",
                "  if other.__class__ is self.__class__:",
                f"   return ({tup}) {op} ({other})",
                "  return NotImplemented",
            ]
    made = [line.split("(", 1)[0][5:] for line in src if line.startswith(" def ")]
    text = "\n".join([f"def __create__({', '.join(env)}):", *src, f" return ({', '.join(made)},)"])
    scope: dict[str, Any] = {}
    exec(compile(text, f"<record {cls.__qualname__}>", "exec"), {}, scope)
    for fn in scope["__create__"](**env):
        fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
        setattr(new, fn.__name__, fn)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for n, v in zip(names, state, strict=True):
            object.__setattr__(self, n, v)

    for fn in (__getstate__, __setstate__):
        if fn.__name__ not in own_methods:
            setattr(new, fn.__name__, fn)
    new.__match_args__ = tuple(names)  # type: ignore[attr-defined,misc]
    new.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    new.__dataclass_params__ = _params(order)  # type: ignore[attr-defined]
    return new


def _params(order: bool) -> Any:
    """dataclasses' record of the options (read when a dataclass subclasses
    a record: it must be frozen too)."""
    params: Any = dataclasses._DataclassParams  # type: ignore[attr-defined]
    try:  # Python 3.12 added match_args, kw_only, slots and weakref_slot
        return params(True, True, True, order, False, True, True, False, True, False)
    except TypeError:
        return params(True, True, True, order, False, True)


__all__ = ["record"]
