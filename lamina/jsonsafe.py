"""JSON from outside (configs, manifests, indexes, archive manifests) parsed with bounded depth.

Python's json recurses once per nesting level: a document nested 200,000 ``[`` deep raises
RecursionError instead of a clean error, and one that parses just below the interpreter's
limit fails later wherever the value is walked or re-serialised. ``loads`` first checks the
nesting depth without recursion (two ``count`` calls for any document that cannot be deep, a
scan of its brackets otherwise) and refuses anything nested more than ``MAX_DEPTH`` levels:
no image config, manifest or index comes close (theirs is 4 or 5).

Leaf module: imports nothing of lamina but errors.
"""

from __future__ import annotations

import json
import re

from lamina.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: deepest nesting accepted in a document lamina reads (lamina's own are < 10 deep)
MAX_DEPTH = 512

_STRINGS_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_STRINGS_S = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS_B = re.compile(rb"[\[\]{}]")
_BRACKETS_S = re.compile(r"[\[\]{}]")


def depth(data: bytes | str, *, stop: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``data`` (brackets in strings do not
    count), or a number above ``stop`` as soon as it is exceeded. Linear, no recursion."""
    strings: Any
    brackets: Any
    openers: Any
    if isinstance(data, (bytes, bytearray)):
        opening = data.count(b"[") + data.count(b"{")
        strings, brackets, openers = _STRINGS_B, _BRACKETS_B, (ord("["), ord("{"))
    else:
        opening = data.count("[") + data.count("{")
        strings, brackets, openers = _STRINGS_S, _BRACKETS_S, ("[", "{")
    if stop is not None and opening <= stop:
        return opening  # cannot be deeper than it has opening brackets
    if opening == 0:
        return 0
    stripped = strings.sub(b"" if isinstance(data, (bytes, bytearray)) else "", data)
    cur = deepest = 0
    for m in brackets.finditer(stripped):
        c = m.group()[0]
        if c in openers:
            cur += 1
            if cur > deepest:
                deepest = cur
                if stop is not None and deepest > stop:
                    return deepest
        elif cur:
            cur -= 1
    return deepest


def loads(data: bytes | str, *, what: str, max_depth: int = MAX_DEPTH):
    """``json.loads`` for input from outside: InvalidArgument (naming ``what``) for invalid
    JSON, NaN/Infinity, or nesting deeper than ``max_depth``; never RecursionError."""
    if depth(data, stop=max_depth) > max_depth:
        raise InvalidArgument(f"{what} is nested more than {max_depth} levels deep")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None
    except RecursionError:  # a deep stack of callers; the document itself is within bounds
        raise InvalidArgument(f"{what} is nested too deeply to parse here") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")
