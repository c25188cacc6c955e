"""Go's time.Duration text: ``time.ParseDuration`` and ``Duration.String()``, in nanoseconds.
Leaf module (re, when parsing), cheap."""

from __future__ import annotations

__all__ = ["parse_go_duration", "duration_error", "format_go_duration"]


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(value: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds (``1h30m``, ``1.5s``, ``-2m``, ``0``), or None
    when ``value`` is not a duration."""
    import re
    s = value
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    for m in re.finditer(r"(\d*)(?:\.(\d*))?([a-zµμ]+)|(.)", s):
        if m.group(4) is not None or (not m.group(1) and not m.group(2)):
            return None
        unit = _DURATION_UNITS.get(m.group(3))
        if unit is None:
            return None
        whole = int(m.group(1) or 0) * unit
        frac = m.group(2) or ""
        total += whole + (int(frac) * unit // 10 ** len(frac) if frac else 0)
    if total >= 1 << 63:
        return None
    return -total if neg else total


def duration_error(value: str) -> str:
    """Go's error for a ``value`` :func:`parse_go_duration` refused (``time: missing unit in
    duration "10"``, ``time: unknown unit "x" in duration "1x"``, ``time: invalid duration "a"``)."""
    import re
    q = '"' + value + '"'
    m = re.fullmatch(r"[+-]?(?:\d*(?:\.\d*)?([^\d.]*))+", value)
    if m and re.search(r"\d", value):
        units = re.findall(r"[^\d.+-]+", value)
        if not units:
            return f"time: missing unit in duration {q}"
        for u in units:
            if u not in _DURATION_UNITS:
                return f'time: unknown unit "{u}" in duration {q}'
    return f"time: invalid duration {q}"


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String()``: ``1m30s``, ``500ms``, ``1.5s``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                return sign + _frac(u, size) + unit
    h, rem = divmod(u, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    out = _frac(rem, 1_000_000_000) + "s"
    if h:
        return f"{sign}{h}h{m}m{out}"
    if m:
        return f"{sign}{m}m{out}"
    return sign + out


def _frac(v: int, size: int) -> str:
    whole, rest = divmod(v, size)
    if not rest:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")
