"""JSON the way Go's ``encoding/json`` writes it, for output that must match Docker byte for byte.

What differs from :func:`json.dumps`: compact separators; map keys sorted (Go sorts map keys),
while a :class:`~lamina.gotemplate.values.GoStruct` keeps its field order and a dataclass its
field order (struct fields); floats in Go's shortest form (``1e+21``, ``1e-7``, ``-0``,
integral floats without ``.0``); typed nils (``NIL_SLICE``, ``NIL_MAP``) and ``None`` as
``null``; bytes as base64 (``[]byte``); U+2028 / U+2029 always escaped and ``<``, ``>``, ``&``
escaped only when asked (``json.Marshal`` escapes them, Docker's template ``json`` function
does not); NaN, Inf and complex numbers refused, as Go refuses them.

Standard library only and no template machinery, so the registry server and an engine API can
encode with it too. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidArgument
from lamina.gotemplate.fmt import go_sprint
from lamina.gotemplate.strconv import float_digits, fmt_e, fmt_f, format_float
from lamina.gotemplate.values import MISSING, GoStruct, NilMap, NilPointer, NilSlice

__all__ = ["json_marshal"]


class _JSONError(Exception):
    """A value Go's encoder refuses (NaN, Inf, complex, a cycle); the message is Go's."""


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise _JSONError("json: unsupported value: %s" % format_float(f))
    neg = str(f).startswith("-")
    digits, dp = float_digits(f)
    nd = len(digits)
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = fmt_e(digits, dp, max(nd - 1, 0))
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
    else:
        s = fmt_f(digits, dp, max(nd - dp, 0))
    return ("-" if neg else "") + s


def _json_str(s: str, escape_html: bool) -> str:
    import json

    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    out = json.dumps(s, ensure_ascii=False)
    if "\u2028" in out or "\u2029" in out:
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        out = out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return out


def _json_encode(v, out: list, escape_html: bool, depth: int = 0) -> None:
    if depth > 1000:
        raise _JSONError("json: unsupported value: encountered a cycle")
    if v is None or v is MISSING or isinstance(v, (NilSlice, NilMap, NilPointer)):
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_json_str(v, escape_html))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_json_float(v))
    elif isinstance(v, GoStruct):
        out.append("{")
        for i, (k, f) in enumerate(v.json_items()):
            if i:
                out.append(",")
            out.append(_json_str(k, escape_html))
            out.append(":")
            if callable(f) and not isinstance(f, type):
                try:
                    f = f()
                except Exception as e:
                    raise _JSONError("json: error calling MarshalJSON for type %s: %s" % (v.type_name, e)) from None
            _json_encode(f, out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, Mapping):
        out.append("{")
        first = True
        for k in sorted(v, key=lambda k: k if isinstance(k, str) else go_sprint(k)):
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(k if isinstance(k, str) else go_sprint(k), escape_html))
            out.append(":")
            _json_encode(v[k], out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _json_encode(e, out, escape_html, depth + 1)
        out.append("]")
    elif isinstance(v, (bytes, bytearray)):
        import base64

        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    elif hasattr(v, "__dataclass_fields__") or hasattr(v, "__value_fields__"):  # lamina.values
        out.append("{")
        first = True
        names = getattr(v, "__value_fields__", None) or v.__dataclass_fields__
        for name in names:
            if name.startswith("_"):
                continue
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(name, escape_html))
            out.append(":")
            _json_encode(getattr(v, name), out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, complex):
        raise _JSONError("json: unsupported type: complex128")
    else:
        out.append(_json_str(str(v), escape_html))


def json_marshal(value, *, escape_html: bool = False) -> str:
    """Encode like Go's encoding/json: compact, map keys sorted, floats in Go's shortest form.

    Docker's template ``json`` function turns HTML escaping *off* (``enc.SetEscapeHTML(false)``),
    so that is the default here; ``escape_html=True`` gives ``json.Marshal``'s ``\\u003c`` etc.
    Raises :class:`InvalidArgument` for NaN/Inf and complex numbers (Go refuses them too).
    """
    out: list[str] = []
    try:
        _json_encode(value, out, escape_html)
    except _JSONError as e:
        raise InvalidArgument(str(e)) from None
    return "".join(out)
