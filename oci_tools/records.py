"""Frozen value classes made cheaply: ``@record`` is
``@dataclasses.dataclass(frozen=True, slots=True)`` in one compile, without
importing dataclasses.

Why: dataclasses compiles every generated method on its own (six for a
frozen class, 0.05-0.15 ms each), and a command's start-up makes some twenty
value classes (documents, descriptors, digests, rows): 10-20 ms of a view
command's 70; importing dataclasses (it imports inspect, ast, dis, tokenize)
costs 5 ms more.  ``record`` writes the same methods as one piece of source
and compiles it once, when the class is first used (a command defines many
more classes than it instantiates).

To every caller the classes are dataclasses: ``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` work (``__dataclass_fields__``
is made, importing dataclasses, the first time something asks for it),
assigning a field raises ``dataclasses.FrozenInstanceError``, and mypy checks
them as frozen dataclasses (``typing.dataclass_transform``).  The generated
``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and (``order=True``)
comparisons are the ones dataclasses writes; methods the class defines itself
are kept.  :func:`replace` is ``dataclasses.replace`` for records, without
the import.

Supported: fields with or without a default, :func:`field` with ``default``
or ``default_factory``, inheritance from another record (its fields come
first), ``order=True``, ``repr=False`` and ``frozen=False`` (a mutable,
unhashable record, as ``dataclass(slots=True)`` makes).  Anything else (``ClassVar``,
``InitVar``, ``KW_ONLY``, ``__post_init__``, other field options) is refused
with a TypeError: use ``dataclasses.dataclass`` for those.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T", bound=type)
_R = TypeVar("_R")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: No default (dataclasses.MISSING's role).
MISSING: Any = _Missing()
#: The ``__init__`` default standing for "call the field's default_factory".
_HAS_FACTORY = object()


class _Spec:
    """One field: name, annotation, default or default factory."""

    __slots__ = ("default", "factory", "name", "type")

    def __init__(self, default: Any = MISSING, factory: Any = MISSING) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.factory = factory


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] = MISSING) -> Any:
    """A field's default (``dataclasses.field`` with these two options)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Spec(default, default_factory)


@overload
def record(cls: _T, /) -> _T: ...


@overload
def record(
    *, order: bool = False, repr: bool = True, frozen: bool = True
) -> Callable[[_T], _T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(
    cls: Any = None, /, *, order: bool = False, repr: bool = True, frozen: bool = True
) -> Any:
    """Make ``cls`` a slotted dataclass, frozen unless ``frozen=False`` (see
    the module docstring)."""

    def wrap(c: type) -> type:
        return _make(c, order=order, with_repr=repr, frozen=frozen)

    return wrap if cls is None else wrap(cls)


def replace(obj: _R, /, **changes: Any) -> _R:
    """A copy of record ``obj`` with ``changes`` (``dataclasses.replace``)."""
    specs: dict[str, _Spec] = type(obj).__record_specs__  # type: ignore[attr-defined]
    unknown = set(changes) - set(specs)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    values = {n: changes[n] if n in changes else getattr(obj, n) for n in specs}
    return type(obj)(**values)


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of record class ``cls``, in order (without making
    ``__dataclass_fields__``)."""
    return tuple(cls.__record_specs__)  # type: ignore[attr-defined]


def _frozen(message: str) -> Exception:
    import dataclasses  # only when someone tries to assign

    return dataclasses.FrozenInstanceError(message)


class _DataclassFields:
    """``__dataclass_fields__`` (and ``__dataclass_params__``) of a record,
    made on first access: only code that asks (``dataclasses.fields``,
    ``replace``, ``asdict``, a dataclass subclass) imports dataclasses."""

    def __init__(self, what: str, order: bool, frozen: bool) -> None:
        self.what = what
        self.order = order
        self.frozen = frozen

    def __get__(self, obj: Any, owner: type) -> Any:
        import dataclasses

        fields = {}
        for n, s in owner.__record_specs__.items():  # type: ignore[attr-defined]
            kw: dict[str, Any] = {}
            if s.default is not MISSING:
                kw["default"] = s.default
            if s.factory is not MISSING:
                kw["default_factory"] = s.factory
            f: Any = dataclasses.field(**kw)
            f.name, f.type = n, s.type
            f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]  # fields() selects on it
            fields[n] = f
        params: Any = dataclasses._DataclassParams  # type: ignore[attr-defined]
        try:  # Python 3.12 added match_args, kw_only, slots and weakref_slot
            p = params(True, True, True, self.order, False, self.frozen, True, False, True, False)
        except TypeError:
            p = params(True, True, True, self.order, False, self.frozen)
        type.__setattr__(owner, "__dataclass_fields__", fields)
        type.__setattr__(owner, "__dataclass_params__", p)
        return fields if self.what == "fields" else p


def _own_specs(cls: type) -> dict[str, _Spec]:
    """The fields ``cls``'s own body declares."""
    if "__post_init__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: record does not call __post_init__")
    out: dict[str, _Spec] = {}
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063  (inspect costs 5 ms)
    dc = sys.modules.get("dataclasses")
    for name, ann in annotations.items():
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        if any(k in text for k in ("ClassVar", "InitVar", "KW_ONLY")):
            raise TypeError(f"{cls.__qualname__}.{name}: record supports plain fields only")
        default = cls.__dict__.get(name, MISSING)
        if dc is not None and isinstance(default, dc.Field):
            raise TypeError(f"{cls.__qualname__}.{name}: use oci_tools.records.field")
        if isinstance(default, _Spec):
            spec = _Spec(default.default, default.factory)
        elif isinstance(default, list | dict | set):
            raise ValueError(
                f"mutable default {type(default)} for field {name} is not allowed: "
                "use default_factory"
            )
        else:
            spec = _Spec(default)
        spec.name, spec.type = name, ann
        out[name] = spec
    return out


def _stub(cls: type, name: str, materialize: Callable[[], None]) -> Callable[..., Any]:
    """A stand-in for generated method ``name`` of ``cls``: compiles the
    class's methods, then calls the real one."""

    def stub(self: Any, *args: Any, **kwargs: Any) -> Any:
        materialize()
        return getattr(cls, name)(self, *args, **kwargs)

    stub.__name__ = name
    return stub


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise _frozen(f"cannot assign to field {name!r}")


_frozen_setattr.__name__ = "__setattr__"


def _frozen_delattr(self: Any, name: str) -> None:
    raise _frozen(f"cannot delete field {name!r}")


_frozen_delattr.__name__ = "__delattr__"


def _make(cls: type, *, order: bool, with_repr: bool, frozen: bool) -> type:
    specs: dict[str, _Spec] = {}
    for base in reversed(cls.__mro__[1:]):
        if "__dataclass_fields__" in base.__dict__ and "__record_specs__" not in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: a record's bases must be records")
        specs.update(base.__dict__.get("__record_specs__", {}))
    specs.update(_own_specs(cls))
    names = list(specs)

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
        "__set": object.__setattr__,
        "__FACTORY": _HAS_FACTORY,
    }
    params, sets = [], []
    seen_default = False
    for n, s in specs.items():
        if s.default is not MISSING:
            env[f"__dflt_{n}"] = s.default
            params.append(f"{n}=__dflt_{n}")
            sets.append(f"__set(self, {n!r}, {n})")
            seen_default = True
        elif s.factory is not MISSING:
            env[f"__fact_{n}"] = s.factory
            params.append(f"{n}=__FACTORY")
            sets.append(f"__set(self, {n!r}, __fact_{n}() if {n} is __FACTORY else {n})")
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {n!r} follows default argument")
        else:
            params.append(n)
            sets.append(f"__set(self, {n!r}, {n})")
    own = cls.__dict__
    tup = "".join(f"self.{n}," for n in names)
    other = "".join(f"other.{n}," for n in names)
    src = []
    if "__init__" not in own:
        src += [f" def __init__(self, {', '.join(params)}):", *[f"  {s}" for s in sets or ["pass"]]]
    if with_repr and "__repr__" not in own:
        shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names)
        src += [" def __repr__(self):", f'  return self.__class__.__qualname__ + f"({shown})"']
    if "__eq__" not in own:
        src += [
            " def __eq__(self, other):",
            "  if other.__class__ is self.__class__:",
            f"   return ({tup}) == ({other})",
            "  return NotImplemented",
        ]
    if frozen and own.get("__hash__") is None:
        src += [" def __hash__(self):", f"  return hash(({tup}))"]
    if order:
        for meth, op in (("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"), ("__ge__", ">=")):
            if meth in own:
                raise TypeError(f"{cls.__qualname__} defines {meth}: order=True would replace it")
            src += [
                f" def {meth}(self, other):",
                "  if other.__class__ is self.__class__:",
                f"   return ({tup}) {op} ({other})",
                "  return NotImplemented",
            ]
    made = [line.split("(", 1)[0][5:] for line in src if line.startswith(" def ")]
    text = "\n".join([f"def __create__({', '.join(env)}):", *src, f" return ({', '.join(made)},)"])

    def materialize() -> None:
        # Compiled on first use: a command defines many more classes than it
        # instantiates, and the compile is most of what a record costs.
        if not stubs:
            return
        scope: dict[str, Any] = {}
        exec(compile(text, f"<record {cls.__qualname__}>", "exec"), {}, scope)
        for fn in scope["__create__"](**env):
            fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
            type.__setattr__(new, fn.__name__, fn)
        stubs.clear()

    stubs = {name: _stub(new, name, materialize) for name in made}
    for name, fn in stubs.items():
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        type.__setattr__(new, name, fn)
    if frozen:
        for fn in (_frozen_setattr, _frozen_delattr):
            if fn.__name__ not in own:
                type.__setattr__(new, fn.__name__, fn)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for n, v in zip(names, state, strict=True):
            object.__setattr__(self, n, v)

    for fn in (__getstate__, __setstate__):
        if fn.__name__ not in own:
            type.__setattr__(new, fn.__name__, fn)
    if not frozen and own.get("__hash__") is None:
        type.__setattr__(new, "__hash__", None)  # mutable and compared by value: unhashable
    type.__setattr__(new, "__match_args__", tuple(names))
    type.__setattr__(new, "__record_specs__", specs)
    type.__setattr__(new, "__dataclass_fields__", _DataclassFields("fields", order, frozen))
    type.__setattr__(new, "__dataclass_params__", _DataclassFields("params", order, frozen))
    return new


__all__ = ["MISSING", "field", "field_names", "record", "replace"]
