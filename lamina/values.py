"""Value classes without generated code: lamina's ``@value`` in place of ``@dataclass``.

A value class is declared like a frozen dataclass (annotated fields, defaults, ``field()``
with ``default_factory``, ``__post_init__``) and behaves like one: keyword or positional
construction in field order, ``==`` and ``hash`` over the fields, ``repr``
``Name(a=1, b='x')``, optional ordering, assignment refused with :class:`FrozenInstanceError`
(an ``AttributeError``), :func:`replace` for a changed copy, :func:`fields` for the names.

Why not ``dataclasses``: the standard library writes every method of every class as source
text and compiles it when the module is imported (~0.6 ms a class here, plus ~6 ms for
importing ``dataclasses`` and ``inspect``); ``lamina run`` loads some twenty value classes,
which was a fifth of its start-up. The methods here are shared closures made once per class,
so defining a class costs microseconds; constructing one is a little slower than a dataclass
(a loop over the fields instead of straight-line code), which no caller here notices.
Type checkers see ``@value`` as a dataclass (PEP 681 ``dataclass_transform``).

What is not supported (and not used in lamina): inheritance between value classes,
``InitVar``/``ClassVar`` fields, per-field ``init=False``, ``unsafe_hash``, ``slots``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kw):
        return lambda f: f

__all__ = ["value", "field", "replace", "fields", "FrozenInstanceError", "MISSING"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """An assignment to (or deletion of) a field of a value."""


class Field:
    """What :func:`field` returns: a default (or a factory for one) and whether the field
    takes part in ``==``/``hash``/ordering (``compare``, ``hash``) and in ``repr``."""

    __slots__ = ("default", "default_factory", "compare", "hash", "repr")

    def __init__(self, default: Any, default_factory: Any, compare: bool, hash: bool | None,
                 repr: bool) -> None:
        self.default, self.default_factory = default, default_factory
        self.compare, self.repr = compare, repr
        self.hash = compare if hash is None else hash


def field(*, default: Any = MISSING, default_factory: Any = MISSING, compare: bool = True,
          hash: bool | None = None, repr: bool = True) -> Any:
    """A field's options, as :func:`dataclasses.field` (a subset)."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, hash, repr)


def fields(obj_or_cls: Any) -> tuple[str, ...]:
    """The field names of a value class (or of one of its instances), in order."""
    return obj_or_cls.__value_fields__


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of the value ``obj`` with ``changes`` (``__post_init__`` runs again)."""
    names = obj.__value_fields__  # type: ignore[attr-defined]
    for k in changes:
        if k not in names:
            raise TypeError(f"{type(obj).__name__}.__init__() got an unexpected keyword argument {k!r}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _build(cls: type, frozen: bool, order: bool, kw_only: bool) -> type:
    own = cls.__dict__
    names = tuple(own.get("__annotations__", {}))
    defaults: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    compared, hashed, shown = [], [], []
    for n in names:
        spec = own.get(n, MISSING)
        if isinstance(spec, Field):
            if spec.default is not MISSING:
                defaults[n] = spec.default
                setattr(cls, n, spec.default)
            else:
                delattr(cls, n)
                if spec.default_factory is not MISSING:
                    factories[n] = spec.default_factory
            (compared.append(n) if spec.compare else None)
            (hashed.append(n) if spec.hash else None)
            (shown.append(n) if spec.repr else None)
        else:
            if spec is not MISSING:
                defaults[n] = spec
            compared.append(n)
            hashed.append(n)
            shown.append(n)
    if not kw_only:
        seen_default = None
        for n in names:
            if n in defaults or n in factories:
                seen_default = n
            elif seen_default:
                raise TypeError(f"non-default argument {n!r} follows default argument")
    npos = 0 if kw_only else len(names)
    post_init = getattr(cls, "__post_init__", None)
    cname = cls.__name__
    setter = object.__setattr__

    def __init__(self, *args, **kw):
        if len(args) > npos:
            raise TypeError(f"{cname}.__init__() takes {npos + 1} positional arguments "
                            f"but {len(args) + 1} were given")
        for n, a in zip(names, args):
            if n in kw:
                raise TypeError(f"{cname}.__init__() got multiple values for argument {n!r}")
            setter(self, n, a)
        for n in names[len(args):]:
            if n in kw:
                setter(self, n, kw.pop(n))
            elif n in defaults:
                setter(self, n, defaults[n])
            elif n in factories:
                setter(self, n, factories[n]())
            else:
                raise TypeError(f"{cname}.__init__() missing required argument: {n!r}")
        if kw:  # what is left names no field
            raise TypeError(f"{cname}.__init__() got an unexpected keyword argument {next(iter(kw))!r}")
        if post_init is not None:
            post_init(self)

    ctup = tuple(compared)
    htup = tuple(hashed)

    def _key(self, which=ctup):
        return tuple(getattr(self, n) for n in which)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return _key(self) == _key(other)
        return NotImplemented

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{type(self).__qualname__}({inner})"

    def own_method(mname: str, fn: Any) -> None:
        fn.__qualname__ = f"{cls.__qualname__}.{mname}"
        setattr(cls, mname, fn)

    for mname, fn in (("__init__", __init__), ("__eq__", __eq__), ("__repr__", __repr__)):
        if mname not in own:  # a method the class writes itself wins, as with dataclasses
            own_method(mname, fn)
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if frozen:
        for mname, hook in (("__setattr__", _frozen_setattr), ("__delattr__", _frozen_delattr)):
            if mname in own:
                raise TypeError(f"cannot overwrite attribute {mname} in class {cname}")
            setattr(cls, mname, hook)
        if not explicit_hash:
            own_method("__hash__", lambda self: hash(_key(self, htup)))
    elif not explicit_hash:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable and comparable: unhashable
    if order:
        import operator

        def compare(op):
            def method(self, other):
                if other.__class__ is self.__class__:
                    return op(_key(self), _key(other))
                return NotImplemented
            return method
        for mname, op in (("__lt__", operator.lt), ("__le__", operator.le),
                          ("__gt__", operator.gt), ("__ge__", operator.ge)):
            if mname in own:
                raise TypeError(f"cannot overwrite attribute {mname} in class {cname}")
            own_method(mname, compare(op))
    cls.__value_fields__ = names  # type: ignore[attr-defined]
    cls.__match_args__ = () if kw_only else names  # type: ignore[attr-defined,misc]
    return cls


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def value(cls: Any = None, /, *, frozen: bool = True, order: bool = False, kw_only: bool = False) -> Any:
    """Make ``cls`` a value class (frozen unless ``frozen=False``); usable bare (``@value``)
    or with options (``@value(order=True)``, ``@value(kw_only=True)``)."""
    def wrap(c):
        return _build(c, frozen, order, kw_only)
    return wrap if cls is None else wrap(cls)
