"""The functions templates can call: Go's builtins and Docker's (``docker/cli`` templates).

Go's: ``and call html index slice js len not or print printf println urlquery eq ne lt le gt
ge`` with Go's semantics and error texts (``error calling index: index out of range: 5``);
Docker's ``basicFunctions``: ``json split join title lower upper pad truncate``.
``FUNCS`` maps each name to its :class:`Func`; ``HEADER_FUNCS`` is the set a table header
row is rendered with. ``and`` / ``or`` are evaluated lazily by the executor.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidArgument
from lamina.gotemplate.fmt import go_sprint, sprint, sprintf, sprintln
from lamina.gotemplate.jsonenc import json_marshal
from lamina.gotemplate.strconv import is_print
from lamina.gotemplate.values import MISSING, NilMap, NilSlice, go_type, indirect, map_zero, truth

__all__ = ["FUNCS", "HEADER_FUNCS", "CallError", "Func", "PARAM_TYPES"]


class CallError(Exception):
    """An error returned by a template function (Go's second result)."""


class Func:
    """A template function and its Go signature.

    ``params`` are the fixed parameters' kinds (keys of ``PARAM_TYPES``; the executor checks
    each argument against its kind, "value" and "any" take anything), ``variadic`` the kind of
    the rest (None: not variadic); ``builtin`` marks Go's own functions (of which the executor
    evaluates ``and`` / ``or`` itself, lazily).
    """

    __slots__ = ("impl", "params", "variadic", "builtin")

    def __init__(self, impl, params=(), variadic=None, builtin=False):
        self.impl = impl
        self.params = params
        self.variadic = variadic
        self.builtin = builtin


# parameter kinds -> the Go type named in "wrong type for value; expected ..." messages
PARAM_TYPES = {
    "any": "interface {}",
    "value": "reflect.Value",
    "string": "string",
    "int": "int",
    "bool": "bool",
    "strings": "[]string",
}


def _fn_not(arg):
    return not truth(arg)


def _index_arg(index, cap: int) -> int:
    if index is MISSING:
        raise CallError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise CallError("cannot index slice/array with type %s" % go_type(index))
    if index < 0 or index > cap:
        raise CallError("index out of range: %d" % index)
    return index


def _fn_index(item, *indexes):
    item = indirect(item)
    if item is MISSING:
        if indexes and isinstance(indirect(indexes[0]), str):
            # Docker's typed nil map[string]string (e.g. Config.Labels): missing key -> "".
            item = {}
        else:
            raise CallError("index of untyped nil")
    for index in indexes:
        index = indirect(index)
        if item is None:
            raise CallError("index of nil pointer")
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise CallError("reflect: string index out of range")
            item = data[x]
        elif isinstance(item, (list, tuple, bytes, bytearray)):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise CallError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, Mapping):
            if index is MISSING:
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str) and not all(not isinstance(k, str) for k in item):
                raise CallError("value has type %s; should be string" % go_type(index))
            try:
                item = item[index]
            except (KeyError, TypeError):
                item = map_zero(item)
        else:
            raise CallError("can't index item of type %s" % go_type(item))
    return item


def _fn_slice(item, *indexes):
    item = indirect(item)
    if item is MISSING:
        raise CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise CallError("too many slice indexes: %d" % len(indexes))
    is_str = isinstance(item, str)
    if is_str:
        if len(indexes) == 3:
            raise CallError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        data = item
    else:
        raise CallError("can't slice item of type %s" % go_type(item))
    cap = len(data)
    idx = [0, len(data), cap]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(indirect(index), cap)
    if idx[0] > idx[1]:
        raise CallError("invalid slice index: %d > %d" % (idx[0], idx[1]))
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise CallError("invalid slice index: %d > %d" % (idx[1], idx[2]))
    part = data[idx[0] : idx[1]]
    if is_str:
        return part.decode("utf-8", "replace")
    return list(part) if isinstance(item, list) else part


def _fn_len(item):
    if item is None or isinstance(item, (NilSlice, NilMap)):
        return 0  # a nil map or slice
    if item is MISSING:
        raise CallError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    if isinstance(item, (list, tuple, bytes, bytearray, Mapping)):
        return len(item)
    raise CallError("len of type %s" % go_type(item))


def _fn_call(fn, *args):
    fn = indirect(fn)
    if fn is MISSING:
        raise CallError("call of nil")
    if not callable(fn):
        raise CallError("non-function of type %s" % go_type(fn))
    return fn(*[None if a is MISSING else a for a in args])


_INT, _FLOAT, _STR, _BOOLK, _CPLX = 1, 2, 3, 4, 5


def _basic_kind(v):
    if isinstance(v, bool):
        return _BOOLK
    if isinstance(v, int):
        return _INT
    if isinstance(v, float):
        return _FLOAT
    if isinstance(v, str):
        return _STR
    if isinstance(v, complex):
        return _CPLX
    return 0


def _is_nil(v) -> bool:
    return v is MISSING or v is None or isinstance(v, (NilSlice, NilMap))


def _fn_eq(arg1, *arg2):
    arg1 = indirect(arg1)
    if not arg2:
        raise CallError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = indirect(arg)
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if arg1 is not MISSING and arg is not MISSING:
                raise CallError("incompatible types for comparison")
        elif k1:
            truth = arg1 == arg
        else:
            if _is_nil(arg1) or _is_nil(arg):
                truth = _is_nil(arg) == _is_nil(arg1)
            else:
                if isinstance(arg, (list, Mapping)) or isinstance(arg1, (list, Mapping)):
                    raise CallError("non-comparable type %s: %s" % (go_sprint(arg), go_type(arg)))
                truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(arg1, arg2):
    arg1, arg2 = indirect(arg1), indirect(arg2)
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if not k1 or not k2:
        raise CallError("invalid type for comparison")
    if k1 != k2:
        raise CallError("incompatible types for comparison")
    if k1 in (_BOOLK, _CPLX):
        raise CallError("invalid type for comparison")
    return arg1 < arg2


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _eval_args(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None or a is MISSING else a for a in args])


def _fn_html(*args):
    s = _eval_args(args)
    for a, b in (("&", "&amp;"), ("\0", "\ufffd"), ('"', "&#34;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;")):
        s = s.replace(a, b)
    return s


_JS_ESC = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def _fn_js(*args):
    out = []
    for c in _eval_args(args):
        if c in _JS_ESC:
            out.append(_JS_ESC[c])
        elif c < " ":
            out.append("\\u00%02X" % ord(c))
        elif ord(c) >= 0x80 and not is_print(c):
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _fn_urlquery(*args):
    from urllib.parse import quote_plus

    return quote_plus(_eval_args(args), safe="")


def _fn_json(v):
    try:
        return json_marshal(v)
    except InvalidArgument:
        return ""  # Docker ignores the encoder's error and prints nothing


def _fn_split(s, sep):
    if sep == "":
        return list(s)
    return s.split(sep)


def _simple_case(s: str, upper: bool) -> str:
    if s.isascii():
        return s.upper() if upper else s.lower()
    out = []
    for c in s:
        m = c.upper() if upper else c.lower()
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _title_separator(c: str) -> bool:
    if c <= "\x7f":
        return not (c.isascii() and (c.isalnum() or c == "_"))
    if c.isalpha() or c.isdecimal():
        return False
    return c.isspace()


def _fn_title(s):
    out = []
    prev = " "
    for c in s:
        if _title_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _fn_pad(source, prefix, suffix):
    if source == "":
        return source
    return " " * prefix + source + " " * suffix


def _fn_truncate(source, length):
    data = source.encode("utf-8", "surrogatepass")
    if len(data) < length:
        return source
    if length < 0:
        raise CallError("runtime error: slice bounds out of range [:%d]" % length)
    return data[:length].decode("utf-8", "replace")


def _and_or_placeholder(*_):  # and/or are evaluated lazily by the executor
    raise AssertionError("unreachable")


# Go's builtins and docker/cli's templates.basicFunctions, by the name templates call them.
FUNCS: dict[str, Func] = {
    # Go builtins
    "and": Func(_and_or_placeholder, ("value",), "value", True),
    "or": Func(_and_or_placeholder, ("value",), "value", True),
    "call": Func(_fn_call, ("value",), "value", True),
    "html": Func(_fn_html, (), "any", True),
    "index": Func(_fn_index, ("value",), "value", True),
    "slice": Func(_fn_slice, ("value",), "value", True),
    "js": Func(_fn_js, (), "any", True),
    "len": Func(_fn_len, ("value",), None, True),
    "not": Func(_fn_not, ("value",), None, True),
    "print": Func(lambda *a: sprint([None if x is MISSING else x for x in a]), (), "any", True),
    "printf": Func(lambda f, *a: sprintf(f, [None if x is MISSING else x for x in a]), ("string",), "any", True),
    "println": Func(lambda *a: sprintln([None if x is MISSING else x for x in a]), (), "any", True),
    "urlquery": Func(_fn_urlquery, (), "any", True),
    "eq": Func(_fn_eq, ("value",), "value", True),
    "ne": Func(_fn_ne, ("value", "value"), None, True),
    "lt": Func(_fn_lt, ("value", "value"), None, True),
    "le": Func(_fn_le, ("value", "value"), None, True),
    "gt": Func(_fn_gt, ("value", "value"), None, True),
    "ge": Func(_fn_ge, ("value", "value"), None, True),
    # docker/cli templates.basicFunctions
    "json": Func(_fn_json, ("any",)),
    "split": Func(_fn_split, ("string", "string")),
    "join": Func(lambda elems, sep: sep.join(elems), ("strings", "string")),
    "title": Func(_fn_title, ("string",)),
    "lower": Func(lambda s: _simple_case(s, False), ("string",)),
    "upper": Func(lambda s: _simple_case(s, True), ("string",)),
    "pad": Func(_fn_pad, ("string", "int", "int")),
    "truncate": Func(_fn_truncate, ("string", "int")),
}


def _header_identity(v, *_):
    return v


# docker/cli's templates.HeaderFunctions: functions that would transform a column title return it
# unchanged, so "{{upper .Name}}" still heads its column with NAME; index yields its key in upper case.
HEADER_FUNCS = dict(FUNCS)
HEADER_FUNCS.update(
    {
        "json": Func(_header_identity, ("string",)),
        "split": Func(_header_identity, ("string", "string")),
        "join": Func(_header_identity, ("string", "string")),
        "title": Func(_header_identity, ("string",)),
        "lower": Func(_header_identity, ("string",)),
        "upper": Func(_header_identity, ("string",)),
        "truncate": Func(_header_identity, ("string", "int")),
    }
)


def _header_index(item, *indexes):
    if indexes:
        last = indirect(indexes[-1])
        if isinstance(last, str):
            return last.upper()
        return go_sprint(last)
    return item


HEADER_FUNCS["index"] = Func(_header_index, ("value",), "value", True)
