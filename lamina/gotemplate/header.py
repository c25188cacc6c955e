"""Header rows of ``--format "table ..."``: the dot and values a header row is rendered with.

docker/cli renders a table's header by executing the same template over a header context
whose every field is its column title; :class:`HeaderDot` is that context, :class:`HeaderName`
a title standing in for a field's value. The header variants of the template functions
(``json``, ``upper``, ``index`` ... leave a title as it is) are ``HEADER_FUNCS`` in
:mod:`lamina.gotemplate.funcs`.

Imports nothing else of the template engine, so a table whose format is plain fields can
title its columns without loading the lexer, parser or executor.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from collections.abc import Mapping

__all__ = ["HeaderDot", "HeaderName", "derive_header"]


class HeaderName(str):
    """A column title standing in for a field's value while the header row is rendered."""

    path = ""


class HeaderDot:
    """The dot of a header row: every field read through it is its column title.

    ``headers[path]`` (a dotted path such as ``"Config.Labels"``), else ``headers[name]``,
    else :func:`derive_header` of the field name.
    """

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str] | None) -> None:
        self.headers = headers or {}

    def lookup(self, receiver, name: str) -> HeaderName:
        path = name if isinstance(receiver, HeaderDot) else receiver.path + "." + name
        h = self.headers.get(path)
        if h is None and path != name:
            h = self.headers.get(name)
        if h is None:
            h = derive_header(name)
        result = HeaderName(h)
        result.path = path
        return result

    def __str__(self) -> str:
        return ""


def derive_header(name: str) -> str:
    """A column title from a field name: ``CreatedSince`` -> ``CREATED SINCE``, ``ID`` -> ``ID``."""
    import re

    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+|[^\W_]+", name)
    return " ".join(w.upper() for w in words) if words else name.upper()


