"""A port of the parts of Go's ``strconv`` that templates and go-units need.

Quoting (``Quote``, ``QuoteToASCII``, fmt's ``%#U``), unquoting of Go string, raw-string and
character literals, float formatting (``FormatFloat`` with the shortest representation, as
``%v`` prints floats) and ``ParseFloat``. Pure functions, standard library only.
"""

from __future__ import annotations

__all__ = [
    "GoSyntaxError",
    "float_digits",
    "fmt_e",
    "fmt_f",
    "format_complex",
    "format_float",
    "is_print",
    "parse_float",
    "quote",
    "rune_U",
    "unquote",
    "unquote_body",
]


def is_print(c: str) -> bool:
    """strconv.IsPrint for one character."""
    return c == " " or c.isprintable()


def quote(s: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x80 and " " <= c <= "~":
            out.append(c)
        elif o >= 0x80 and is_print(c) and not ascii_only and not 0xD800 <= o <= 0xDFFF:
            out.append(c)
        elif c in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[c])
        elif o < 0x80:
            out.append("\\x%02x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def rune_U(c: str) -> str:
    """fmt's %#U: ``U+007D '}'``."""
    if not c:
        return "U+FFFFFFFFFFFFFFFF"  # Go formats eof (-1) this way; unreachable in practice
    if is_print(c):
        return "U+%04X '%s'" % (ord(c), c)
    return "U+%04X" % ord(c)


class GoSyntaxError(Exception):
    """strconv's ErrSyntax (and the parser's literal errors): the message is Go's."""


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def unquote_body(body: str, quote: str) -> str:
    """The inside of a "..." or '...' literal with Go's escapes resolved; raises GoSyntaxError."""
    out = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == quote or c == "\n":
            raise GoSyntaxError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise GoSyntaxError("invalid syntax")
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e == quote:
            out.append(e)
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i : i + size]
            if len(digits) != size or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise GoSyntaxError("invalid syntax")
            v = int(digits, 16)
            i += size
            if e == "x":
                if quote == "'":
                    out.append(chr(v))
                else:
                    out.append(bytes([v]).decode("latin-1") if v < 0x80 else "\ufffd")
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise GoSyntaxError("invalid syntax")
                out.append(chr(v))
        elif e in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                raise GoSyntaxError("invalid syntax")
            v = int(digits, 8)
            if v > 255:
                raise GoSyntaxError("invalid syntax")
            i += 2
            out.append(chr(v) if v < 0x80 or quote == "'" else "\ufffd")
        else:
            raise GoSyntaxError("invalid syntax")
    return "".join(out)


def unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals."""
    if len(s) < 2 or s[0] != s[-1]:
        raise GoSyntaxError("invalid syntax")
    q = s[0]
    if q == "`":
        body = s[1:-1]
        if "`" in body:
            raise GoSyntaxError("invalid syntax")
        return body.replace("\r", "")
    if q == '"':
        return unquote_body(s[1:-1], '"')
    raise GoSyntaxError("invalid syntax")


def float_digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits of abs(f) and the decimal point position: 0.DIGITS x 10**dp."""
    r = repr(abs(f))
    if "e" in r:
        m, e = r.split("e")
        exp = int(e)
    else:
        m, exp = r, 0
    ip, _, fp = m.partition(".")
    digits = ip + fp
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "", 0
    return digits, dp


def fmt_e(digits: str, dp: int, prec: int, e: str = "e") -> str:
    """%e layout of ``float_digits`` output with ``prec`` digits after the point."""
    first = digits[:1] or "0"
    s = first
    if prec > 0:
        s += "." + digits[1 : 1 + prec].ljust(prec, "0")
    exp = dp - 1 if digits else 0
    return "%s%s%s%02d" % (s, e, "-" if exp < 0 else "+", abs(exp))


def fmt_f(digits: str, dp: int, prec: int) -> str:
    """%f layout of ``float_digits`` output with ``prec`` digits after the point."""
    if dp > 0:
        ip = digits[:dp].ljust(dp, "0")
    else:
        ip = "0"
    if prec <= 0:
        return ip
    frac = "".join(digits[dp + i] if 0 <= dp + i < len(digits) else "0" for i in range(prec))
    return ip + "." + frac


def format_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(f, verb, prec, 64) for the verbs g/G/e/E/f/F."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    neg = str(f).startswith("-")
    sign = "-" if neg else ""
    if prec >= 0:
        # Explicit precision: C's printf agrees with Go's strconv here.
        v = verb if verb != "F" else "f"
        s = ("%." + str(prec) + v) % abs(f)
        return sign + s
    digits, dp = float_digits(f)
    nd = len(digits)
    if verb in "eE":
        return sign + fmt_e(digits, dp, max(nd - 1, 0), verb)
    if verb in "fF":
        return sign + fmt_f(digits, dp, max(nd - dp, 0))
    exp = dp - 1
    if digits and (exp < -4 or exp >= 6):
        return sign + fmt_e(digits, dp, max(nd - 1, 0), "e" if verb == "g" else "E")
    return sign + fmt_f(digits, dp, max(nd - dp, 0))


def format_complex(c: complex) -> str:
    """fmt's %v of a complex128: ``(1+2i)``."""
    im = format_float(c.imag)
    if not im.startswith(("-", "+")):
        im = "+" + im
    return "(%s%si)" % (format_float(c.real), im)


def parse_float(num: str) -> float:
    """strconv.ParseFloat(num, 64); raises ValueError with Go's message."""
    body = num.lstrip("+-")[:2].lower()
    try:
        if num != num.strip() or not num:
            raise ValueError
        if body == "0x":
            if "p" not in num.lower():
                raise ValueError
            f = float.fromhex(num.replace("_", ""))
        else:
            if "_" in num or num.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise ValueError
            f = float(num)
    except (ValueError, OverflowError):
        raise ValueError("strconv.ParseFloat: parsing %s: invalid syntax" % quote(num)) from None
    if f in (float("inf"), float("-inf")):
        raise ValueError("strconv.ParseFloat: parsing %s: value out of range" % quote(num))
    return f
