"""A port of Go's ``fmt`` printing as templates use it: ``%v`` (:func:`go_sprint`), ``print``,
``println`` and ``printf`` (the common verbs, flags, width and precision, and Go's
``%!d(string=x)`` style notes for bad verbs, missing and extra operands).

Pure functions over the value model of :mod:`lamina.gotemplate.values`; standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.gotemplate.strconv import format_complex, format_float, is_print, quote
from lamina.gotemplate.values import MISSING, go_type, sorted_keys

__all__ = ["go_sprint", "sprint", "sprintf", "sprintln"]


def go_sprint(value) -> str:
    """Go's ``fmt.Sprint(value)`` (the ``%v`` verb) for Python data."""
    if value is None or value is MISSING:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, complex):
        return format_complex(value)
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join("%s:%s" % (go_sprint(k), go_sprint(value[k])) for k in sorted_keys(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def sprint(args) -> str:
    """fmt.Sprint(args...): a space between operands when neither side is a string."""
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(go_sprint(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args) -> str:
    """fmt.Sprintln(args...): operands separated by spaces, then a newline."""
    return " ".join(go_sprint(a) for a in args) + "\n"


def _pad(s: str, width, minus: bool, zero: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if minus:
        return s.ljust(width)
    if zero:
        sign = s[:1] if s[:1] in "+-" else ""
        return sign + s[len(sign) :].rjust(width - len(sign), "0")
    return s.rjust(width)


def _bad_verb(verb: str, a) -> str:
    if a is None or a is MISSING:
        return "%%!%s(<nil>)" % verb
    return "%%!%s(%s=%s)" % (verb, go_type(a), go_sprint(a))


def _fmt_arg(verb: str, a, flags: str, width, prec) -> str:
    plus, minus, sharp, space, zero = ("+" in flags, "-" in flags, "#" in flags, " " in flags, "0" in flags)
    if verb == "T":
        return _pad("<nil>" if a is None or a is MISSING else go_type(a), width, minus)
    if a is None or a is MISSING:
        if verb == "v":
            return _pad("<nil>", width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, bool):
        if verb in "vt":
            return _pad("true" if a else "false", width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, int):
        n = int(a)
        if verb in "vd":
            s = str(abs(n))
        elif verb == "b":
            s = format(abs(n), "b")
        elif verb == "o":
            s = ("0" if sharp else "") + format(abs(n), "o")
        elif verb == "O":
            s = "0o" + format(abs(n), "o")
        elif verb == "x":
            s = ("0x" if sharp else "") + format(abs(n), "x")
        elif verb == "X":
            s = ("0X" if sharp else "") + format(abs(n), "X")
        elif verb == "c":
            return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", width, minus)
        elif verb == "q":
            return _pad("'%s'" % quote(chr(n))[1:-1].replace("'", "\\'").replace('\\"', '"'), width, minus)
        elif verb == "U":
            return _pad("U+%04X" % n, width, minus)
        elif verb in "eEfFgG":
            return _bad_verb(verb, a)
        else:
            return _bad_verb(verb, a)
        if prec is not None and verb in "vdboxX":
            s = s.rjust(prec, "0")
        sign = "-" if n < 0 else ("+" if plus else (" " if space else ""))
        return _pad(sign + s, width, minus, zero and prec is None)
    if isinstance(a, float):
        if verb in "vgGeEfF":
            v = "g" if verb == "v" else verb
            p = -1 if prec is None and v in "gG" else (6 if prec is None else prec)
            s = format_float(a, v, p)
            if plus and not s.startswith("-"):
                s = "+" + s
            elif space and not s.startswith("-"):
                s = " " + s
            return _pad(s, width, minus, zero)
        return _bad_verb(verb, a)
    if isinstance(a, str):
        if verb in "vs":
            s = a if prec is None else a[:prec]
            return _pad(s, width, minus)
        if verb == "q":
            s = a if prec is None else a[:prec]
            if sharp and "`" not in s and all(is_print(c) or c == "\t" for c in s):
                return _pad("`" + s + "`", width, minus)
            return _pad(quote(s, ascii_only=plus), width, minus)
        if verb in "xX":
            data = a.encode("utf-8", "surrogatepass")
            if prec is not None:
                data = data[:prec]
            fmt = "%02x" if verb == "x" else "%02X"
            sep = " " if space else ""
            pre = ("0x" if verb == "x" else "0X") if sharp else ""
            s = sep.join(pre + fmt % b for b in data) if space else pre + "".join(fmt % b for b in data)
            return _pad(s, width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, Mapping):
        inner = " ".join(
            "%s:%s" % (_fmt_arg(verb, k, flags, width, prec), _fmt_arg(verb, a[k], flags, width, prec))
            for k in sorted_keys(a)
        )
        return "map[" + inner + "]"
    if isinstance(a, (list, tuple)):
        return "[" + " ".join(_fmt_arg(verb, e, flags, width, prec) for e in a) + "]"
    if verb in "vs":
        return _pad(str(a), width, minus)
    return _bad_verb(verb, a)


def sprintf(fmt: str, args) -> str:
    """fmt.Sprintf for the common verbs, with Go's ``%!verb(...)`` error notations."""
    out = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width = None
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            k = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > k:
                width = int(fmt[k:i])
        prec = None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    prec = max(args[argi], 0)
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                k = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[k:i]) if i > k else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append("%%!%s(MISSING)" % verb)
            continue
        a = args[argi]
        argi += 1
        out.append(_fmt_arg(verb, a, flags, width, prec))
    if argi < len(args):
        extra = ", ".join(
            ("<nil>" if a is None or a is MISSING else "%s=%s" % (go_type(a), go_sprint(a))) for a in args[argi:]
        )
        out.append("%!(EXTRA " + extra + ")")
    return "".join(out)
