"""The Go value model: how Python values stand in for the reflect values Go's templates see.

Immutable values and pure predicates; no I/O, standard library only (``collections.abc``).

* a dict is a Go map: a missing key is Go's invalid value (:data:`MISSING`), which prints
  ``<no value>``, is false and ranges empty; JSON sorts its keys;
* a :class:`GoStruct` is a Go struct: reading a field it lacks is an error, JSON keeps the
  field order, callable fields are methods;
* ``None`` is a nil ``interface{}``: it prints ``<no value>`` at top level, ``<nil>`` inside
  a list or map, JSON-encodes as ``null``; field access *through* ``None`` yields
  ``<no value>``, which is what Docker shows for its typed nil maps;
* :class:`NilPointer` is a typed nil pointer (prints ``<nil>``; a field read through it is
  Go's "nil pointer evaluating" error);
* :data:`NIL_SLICE` / :data:`NIL_MAP` are typed nils: they behave like ``[]`` / ``{}`` (print
  ``[]`` / ``map[]``) but JSON-encode as ``null``, like the nil slices and maps of Docker's
  typed inspect values;
* lists and tuples are slices, str is string, int is int, float is float64, complex is
  complex128, bytes is ``[]uint8``; :func:`go_type` names the Go type of a value;
* any other object is a struct too: ``.Name`` reads an attribute and calls it if it is a
  method, like a Go method on a struct.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "GoStruct",
    "MISSING",
    "NIL_MAP",
    "NIL_SLICE",
    "NilMap",
    "NilPointer",
    "NilSlice",
    "go_type",
    "indirect",
    "map_zero",
    "sorted_keys",
    "truth",
]


class _Missing:
    """Go's invalid reflect.Value: the result of reading a key that is not there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class NilSlice(tuple):
    """An empty, immutable sequence that stands for Go's nil slice (JSON ``null``, prints ``[]``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_SLICE"


class NilMap(Mapping):
    """An empty, immutable mapping that stands for Go's nil map (JSON ``null``, prints ``map[]``)."""

    __slots__ = ()

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NIL_MAP"


NIL_SLICE = NilSlice()
NIL_MAP = NilMap()


class NilPointer:
    """A typed nil pointer (``*container.HealthConfig(nil)``): prints ``<nil>``, is false,
    JSON-encodes as ``null``, and reading a field through it fails as in Go (``nil pointer
    evaluating *container.HealthConfig.Test``). Docker's typed inspect values hold these
    where the JSON has no value for a pointer field; ``None`` is a nil ``interface{}``."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        object.__setattr__(self, "type_name", type_name)

    def __setattr__(self, key, value):
        raise AttributeError("NilPointer is immutable")

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other) -> bool:
        return isinstance(other, NilPointer) and other.type_name == self.type_name

    def __hash__(self) -> int:
        return hash(("NilPointer", self.type_name))

    def __repr__(self) -> str:
        return "NilPointer(%r)" % self.type_name

    def __str__(self) -> str:
        return "<nil>"


class GoStruct:
    """A Go struct value: named fields in declaration order (an immutable record).

    Where a plain dict behaves like a Go map (a missing key reads as ``<no value>``, JSON keys
    sorted), a GoStruct behaves like the typed values Docker formats: reading a field it does
    not have is an error (``can't evaluate field Nope in type <type_name>``), JSON keeps the
    field order, ``{{.}}`` prints ``{v1 v2 ...}``. A callable field is a method: it is called,
    with any template arguments (``{{.Label "com.example"}}``), when read.

    ``json_keys`` gives fields Go's json tags: field name -> (JSON key, omitempty), so that
    ``{{json .}}`` prints ``"status"`` for a field ``.Status`` and leaves out an empty one.
    """

    __slots__ = ("_fields", "_type_name", "_json_keys")

    def __init__(self, fields=(), /, type_name: str = "struct", *, json_keys: Mapping | None = None,
                 **kwargs) -> None:
        d = dict(fields)
        d.update(kwargs)
        object.__setattr__(self, "_fields", d)
        object.__setattr__(self, "_type_name", type_name)
        object.__setattr__(self, "_json_keys", json_keys)

    def json_items(self):
        """(JSON key, value) of each field as encoding/json writes them (tags, omitempty)."""
        tags = self._json_keys
        if not tags:
            return self._fields.items()
        out = []
        for k, v in self._fields.items():
            key, omitempty = tags.get(k, (k, False))
            if omitempty and (v is None or isinstance(v, NilPointer) or v == "" or v == 0 or v is False or
                              (isinstance(v, (list, tuple, Mapping)) and not v)):
                continue
            out.append((key, v))
        return out

    def __setattr__(self, key, value):
        raise AttributeError("GoStruct is immutable")

    @property
    def type_name(self) -> str:
        return self._type_name

    def __getitem__(self, name: str):
        return self._fields[name]

    def __contains__(self, name) -> bool:
        return name in self._fields

    def get(self, name: str, default=None):
        return self._fields.get(name, default)

    def items(self):
        return self._fields.items()

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other) -> bool:
        return isinstance(other, GoStruct) and (self._type_name, self._fields) == (other._type_name, other._fields)

    __hash__ = None

    def __repr__(self) -> str:
        return "GoStruct(%r, type_name=%r)" % (self._fields, self._type_name)

    def __str__(self) -> str:
        from lamina.gotemplate.fmt import go_sprint

        return "{" + " ".join(go_sprint(v) for v in self._fields.values()) + "}"


def indirect(v):
    """A nil interface{} reads as no value (Go's indirectInterface)."""
    return MISSING if v is None else v


def truth(v) -> bool:
    """Go's template truth (``if``, ``and``, ``not``): false, 0, empty, nil and no value are false."""
    if v is MISSING or v is None or isinstance(v, NilPointer):
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, complex)):
        return v != 0
    if isinstance(v, (str, bytes, bytearray, list, tuple, Mapping)):
        return len(v) > 0
    return True


def map_zero(m):
    """Zero value of the map's element type: "" for map[string]string, nil otherwise.

    A NilMap stands for Docker's nil ``Labels`` (``map[string]string``), so its zero is "".
    """
    if isinstance(m, NilMap):
        return ""
    values = list(m.values())
    if all(isinstance(v, str) for v in values):
        return ""
    if values and all(isinstance(v, GoStruct) and not len(v) for v in values):
        return values[0]  # map[string]struct{} (Volumes, ExposedPorts): the zero is {}
    return None


def sorted_keys(m) -> list:
    """Map keys in the order fmt and range visit them: bools, numbers, then strings (Go's fmtsort)."""
    def key(k):
        if isinstance(k, bool):
            return (0, int(k), "")
        if isinstance(k, (int, float)):
            return (1, k, "")
        if isinstance(k, str):
            return (2, 0, k)
        return (3, 0, str(k))

    return sorted(m, key=key)


def go_type(v) -> str:
    """The Go type name Docker would show for a value of this Python type."""
    if isinstance(v, (GoStruct, NilPointer)):
        return v.type_name
    if v is None or v is MISSING:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "string"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if callable(v) and not isinstance(v, type):
        return "func()"
    return type(v).__name__
