"""Human units the way Docker prints and parses them: a port of docker/go-units v0.5.0.

:func:`human_size`, :func:`bytes_size`, :func:`human_duration`, :func:`ago` and
:func:`parse_size` reproduce the release Docker ships (HumanSizeWithPrecision, BytesSize,
HumanDuration, RAMInBytes / FromHumanSize). Pure functions; standard library only.
"""

from __future__ import annotations

from lamina.errors import InvalidArgument

__all__ = ["ago", "bytes_size", "human_duration", "human_size", "parse_size"]

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _custom_size(fmt: str, size: float, base: float, abbrs) -> str:
    i = 0
    limit = len(abbrs) - 1
    while size >= base and i < limit:
        size /= base
        i += 1
    return fmt % (size, abbrs[i])


def human_size(size: float, precision: int = 3) -> str:
    """units.HumanSizeWithPrecision: decimal units, ``%.<precision>g``: ``4.86MB``, ``1.23kB``.

    Docker's ``images``/``history`` SIZE column uses precision 3 (the default here);
    units.HumanSize (``ps --size``, ``system df``) is ``human_size(n, 4)``.
    """
    return _custom_size("%." + str(int(precision)) + "g%s", float(size), 1000.0, _DECIMAL_ABBRS)


def bytes_size(size: float) -> str:
    """units.BytesSize: binary units, ``%.4g``: ``1.5MiB``, ``44KiB``, ``0B``."""
    return _custom_size("%.4g%s", float(size), 1024.0, _BINARY_ABBRS)


def human_duration(seconds: float) -> str:
    """units.HumanDuration (go-units v0.5.0, as Docker ships it).

    ``Less than a second``, ``1 second``, ``59 seconds``, ``About a minute``, ``3 minutes``,
    ``About an hour``, ``2 hours`` (hours rounded), then ``N days`` / ``N weeks`` / ``N months``
    by integer division of the rounded hours, and ``N years`` from the truncated hours, which
    is why just under two years reads ``1 years``, exactly as in Docker.
    """
    d = float(seconds)
    s = int(d)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return "%d seconds" % s
    minutes = int(d / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hours = int(d / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    if hours < 24 * 7 * 2:
        return "%d days" % (hours // 24)
    if hours < 24 * 30 * 2:
        return "%d weeks" % (hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "%d months" % (hours // 24 // 30)
    return "%d years" % (int(d / 3600) // 24 // 365)


def ago(ts: float, now: float | None = None) -> str:
    """``<HumanDuration> ago`` for a Unix timestamp, like Docker's CREATED column."""
    if now is None:
        import time

        now = time.time()
    return human_duration(now - ts) + " ago"


def parse_size(text: str, *, binary: bool = True) -> int:
    """units.RAMInBytes (``binary=True``: k = 1024) or units.FromHumanSize (k = 1000).

    The go-units v0.5.0 grammar Docker ships: a number (Go float syntax, not negative),
    optionally one space, then an optional suffix ``b``, ``k``/``m``/``g``/``t``/``p``,
    ``kb``, ``kib`` ... in any case: ``512``, ``64m``, ``1.5g``, ``2 GiB``, ``10kb``.
    Raises :class:`InvalidArgument` with go-units' message (``invalid size: '<text>'``,
    ``invalid suffix: '<sfx>'``, or strconv's), prefixed with ``invalid size: '<text>': ``
    when that message would not name the text.
    """
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise InvalidArgument("invalid size: '%s'" % text)
    if text[sep] != " ":
        num, sfx = text[: sep + 1], text[sep + 1 :]
    else:
        num, sfx = text[:sep], text[sep + 1 :]
    from lamina.gotemplate.strconv import parse_float

    try:
        size = parse_float(num)
    except ValueError as e:
        raise InvalidArgument("invalid size: '%s': %s" % (text, e)) from None
    if size < 0:
        raise InvalidArgument("invalid size: '%s'" % text)
    if sfx:
        bad = InvalidArgument("invalid size: '%s': invalid suffix: '%s'" % (text, sfx if len(sfx) > 3 else sfx.lower()))
        if len(sfx) > 3:
            raise bad
        sfx = sfx.lower()
        if sfx[0] == "b":
            if len(sfx) > 1:
                raise bad
        else:
            if sfx[0] not in "kmgtp":
                raise bad
            size *= (1024 if binary else 1000) ** ("kmgtp".index(sfx[0]) + 1)
            if (len(sfx) == 2 and sfx[1] != "b") or (len(sfx) == 3 and sfx[1:] != "ib"):
                raise bad
    if size >= 2.0**63:
        raise InvalidArgument("invalid size: '%s': value out of range" % text)
    return int(size)
