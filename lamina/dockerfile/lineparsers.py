"""Dockerfile argument shapes: BuildKit's ``parser/line_parsers.go`` -- the JSON form
(``["a", "b"]``, with Go's depth and validity rules), whitespace-split words with the escape
character, ``key=value`` pairs (ENV, LABEL, ARG), and the ``--flag`` prefix of a line; plus
the Go notion of whitespace they share with the parser.

A leaf of lamina.dockerfile: :mod:`lamina.dockerfile.parser` turns lines into nodes with
these. Failures raise :class:`_Fail` (a message and the token to point the caret at), which
the parser turns into a located :class:`~lamina.dockerfile.parser.DockerfileError`.
"""

from __future__ import annotations

import json
import re


class _Fail(Exception):
    """Internal: an error with an optional token to point the caret at."""

    def __init__(self, message: str, token: str | None = None, nth: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.token = token
        self.nth = nth  # point at the nth (0-based) occurrence of token


_RE_WS = re.compile(r"[\t\v\f\r ]+")


def _go_isspace(ch: str) -> bool:
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


def _lstrip(s: str) -> str:
    i = 0
    while i < len(s) and _go_isspace(s[i]):
        i += 1
    return s[i:]


def _strip(s: str) -> str:
    s = _lstrip(s)
    j = len(s)
    while j > 0 and _go_isspace(s[j - 1]):
        j -= 1
    return s[:j]


class _NotStringArray(Exception):
    pass

#: Go's encoding/json refuses input nested deeper than this ("exceeded max depth")
_GO_JSON_MAX_DEPTH = 10000

#: deepest array Python's recursive json module is asked to parse
_PY_JSON_DEPTH = 500


_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


def _json_depth(text: str) -> int:
    """Nesting depth of the JSON value ``text`` starts with (strings skipped; stops counting
    past Go's limit). No recursion: ``CMD [[[...`` 200,000 deep is just counted."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > _GO_JSON_MAX_DEPTH:
                    break
        elif c in "]}":
            depth -= 1
            if depth <= 0:
                break
    return deepest


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _json_value_valid(text: str) -> bool:
    """Whether ``text`` starts with one valid JSON value (all Go's json.Decoder reads),
    checked with an explicit stack instead of recursion."""
    from json.decoder import scanstring
    stack: list[str] = []
    n = len(text)
    i = 0

    def ws(i: int) -> int:
        while i < n and text[i] in " \t\n\r":
            i += 1
        return i

    def string_end(i: int) -> int:  # text[i] == '"'
        return scanstring(text, i + 1, True)[1]

    want_value = True
    try:
        while True:
            if not want_value and not stack:
                return True  # one whole value read; what follows is not looked at
            i = ws(i)
            if i >= n:
                return False
            if want_value:
                c = text[i]
                if c == "[":
                    stack.append("[")
                    i = ws(i + 1)
                    if i < n and text[i] == "]":
                        stack.pop()
                        i += 1
                        want_value = False
                    continue
                if c == "{":
                    stack.append("{")
                    i = ws(i + 1)
                    if i < n and text[i] == "}":
                        stack.pop()
                        i += 1
                        want_value = False
                        continue
                    if i >= n or text[i] != '"':
                        return False
                    i = ws(string_end(i))
                    if i >= n or text[i] != ":":
                        return False
                    i += 1
                    continue
                if c == '"':
                    i = string_end(i)
                elif text.startswith(("true", "null"), i):
                    i += 4
                elif text.startswith("false", i):
                    i += 5
                else:
                    m = _JSON_NUMBER.match(text, i)
                    if not m:
                        return False
                    i = m.end()
                want_value = False
                continue
            c = text[i]
            top = stack[-1]
            if c == ",":
                i = ws(i + 1)
                if top == "{":
                    if i >= n or text[i] != '"':
                        return False
                    i = ws(string_end(i))
                    if i >= n or text[i] != ":":
                        return False
                    i += 1
                want_value = True
            elif (c == "]" and top == "[") or (c == "}" and top == "{"):
                stack.pop()
                i += 1
            else:
                return False
    except ValueError:  # a bad string
        return False


def _parse_json(rest: str) -> list[str] | None:
    rest = _lstrip(rest)
    if not rest.startswith("["):
        return None
    depth = _json_depth(rest)
    if depth > _GO_JSON_MAX_DEPTH:
        return None  # Docker's JSON decoder gives up: the shell form
    if depth > _PY_JSON_DEPTH:
        # too deep for Python's json; an array holding an array: Docker's error if it is JSON
        if _json_value_valid(rest):
            raise _Fail("when using JSON array syntax, arrays must be comprised of strings only", "[")
        return None

    def bad_constant(_):
        raise ValueError("not JSON")
    try:
        val, _ = json.JSONDecoder(parse_constant=bad_constant).raw_decode(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(val, list):
        return None
    if not all(isinstance(v, str) for v in val):
        raise _Fail("when using JSON array syntax, arrays must be comprised of strings only",
                    "[")
    return val


def _ws_split(rest: str) -> list[str]:
    if rest == "":
        return []
    return _RE_WS.split(rest)


_GO_WS_CLASS = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


_WORD_RUNS: dict[str, tuple[re.Pattern, re.Pattern, re.Pattern]] = {}


def _word_runs(escape: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """Runs of ordinary characters: in a word, in double quotes, in single quotes."""
    r = _WORD_RUNS.get(escape)
    if r is None:
        e = re.escape(escape)
        r = _WORD_RUNS[escape] = (re.compile(f"[^{_GO_WS_CLASS}'\"{e}]+"),
                                  re.compile(f'[^"{e}]+'), re.compile("[^']+"))
    return r


def _parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on spaces keeping quotes and escapes (removed at expansion).
    Linear, and runs of ordinary characters are taken a regex match at a time."""
    in_word, in_double, in_single = _word_runs(escape)
    words: list[str] = []
    word: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    i = 0
    n = len(rest)
    while i <= n:
        ch = rest[i] if i < n else ""
        if phase == 0:
            if i == n:
                break
            if _go_isspace(ch):
                i += 1
                continue
            phase = 1
        if phase in (1, 2) and i == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == 1:
            m = in_word.match(rest, i)
            if m:
                word.append(m.group())
                i = m.end()
                continue
            if _go_isspace(ch):
                phase = 0
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                i += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = 2
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if phase == 2:
            m = (in_single if quote == "'" else in_double).match(rest, i)
            if m:
                word.append(m.group())
                i = m.end()
                continue
            if ch == quote:
                phase = 1
            if ch == escape and quote != "'":
                if i + 1 == n:
                    phase = 1
                    i += 1
                    continue
                i += 1
                word.append(ch)
                ch = rest[i]
            word.append(ch)
            i += 1
    return words


def _parse_name_val(rest: str, key: str, escape: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _RE_WS.split(rest, maxsplit=1)
        if len(parts) < 2 or parts[1] == "":
            raise _Fail(f"{key} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for w in words:
        if "=" not in w:
            raise _Fail(f"Syntax error - can't find = in {json.dumps(w)}. "
                        "Must be of the form: name=value", w)
        k, _, v = w.partition("=")
        out += [k, v]
    return out


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """extractBuilderFlags: leading ``--flag[=value]`` words, and the rest of the line."""
    words: list[str] = []
    phase = 0
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if _go_isspace(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = 1
        if phase in (1, 2) and pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == 1:
            if _go_isspace(ch):
                phase = 0
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = 2
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        if phase == 2:
            if ch == quote:
                phase = 1
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    phase = 1
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
    return "", words
