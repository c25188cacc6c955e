"""Docker's shell-word lexer: a re-implementation of BuildKit's
``frontend/dockerfile/shell/lex.go`` (``ProcessWord`` / ``ProcessWords``), which is the same
lexer the classic builder uses. It is *not* a shell: it knows ``$v ${v} ${v:-w} ${v-w}
${v:+w} ${v+w} ${v:?msg} ${v?msg}`` plus BuildKit's ``${v#pat} ${v##pat} ${v%pat} ${v%%pat}
${v/pat/rep} ${v//pat/rep}``, single and double quotes, and the escape character chosen by
the ``# escape=`` directive. Unset variables expand to the empty string.

- :func:`expand_word` -- one word, quotes removed, spaces kept (``ProcessWord``);
- :func:`expand_words` -- expansion then splitting on unquoted whitespace (``ProcessWords``);
- :func:`lex_words` -- words with unset variables left as written (the parser's heredoc
  detector).

A leaf of lamina.dockerfile: the parser (heredoc markers) and :mod:`lamina.dockerfile.expand`
(where Docker applies expansion) both use it. Errors are :class:`ExpansionError` (an
``InvalidArgument``) with Docker's wording, e.g. ``failed to process "${x:?}": x: is not
allowed to be empty``; ``.variable`` names the variable for the ``?`` modifiers. Pure
functions: no I/O, thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lamina.errors import InvalidArgument

__all__ = ["ExpansionError", "expand_word", "expand_words", "lex_words"]

_EOF = None


class ExpansionError(InvalidArgument):
    """A word could not be expanded. ``variable`` is set for ``${v?msg}`` failures."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _isspace(ch: str) -> bool:
    # Go's unicode.IsSpace; Python also counts \x1c-\x1f as whitespace.
    return ch.isspace() and ch not in "\x1c\x1d\x1e\x1f"


#: Go's unicode.IsSpace, as a character class (what ``_isspace`` accepts)
_WS_CLASS = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WS_SPLIT = re.compile(f"[{_WS_CLASS}]+")


def _isletter(ch: str) -> bool:
    return ch.isalpha()


def _isdigit(ch: str) -> bool:
    return ch.isdecimal()


_SPECIAL_PARAMS = frozenset("@*#?-$!0")

#: deepest ``${a:-${b:-...}}`` nesting expanded; deeper is an error, not a RecursionError
MAX_NESTING = 200
#: longest expanded word: ``ARG B=$A$A$A...`` repeated grows exponentially, and no container
#: could take such a value anyway (Linux caps one argument or variable at 128 KiB)
MAX_WORD = 16 << 20


class _Words:
    """Words being split on unquoted whitespace. Pieces are collected in a list and joined
    once per word, so a word of n characters costs O(n), not O(n^2)."""

    __slots__ = ("cur", "words")

    def __init__(self) -> None:
        self.cur: list[str] = []
        self.words: list[str] = []

    def _flush(self) -> None:
        if self.cur:
            w = "".join(self.cur)
            self.cur = []
            if w:
                self.words.append(w)

    def add_char(self, ch: str) -> None:
        if _isspace(ch):
            self._flush()
        else:
            self.cur.append(ch)

    def add_raw_char(self, ch: str) -> None:
        self.cur.append(ch)

    def add_string(self, s: str) -> None:
        """Characters that may split: unquoted text and expanded variables."""
        parts = _WS_SPLIT.split(s)
        self.cur.append(parts[0])
        for piece in parts[1:]:
            self._flush()
            self.cur.append(piece)

    def add_raw_string(self, s: str) -> None:
        self.cur.append(s)

    def get_words(self) -> list[str]:
        self._flush()
        return self.words


_PLAIN: dict[tuple, re.Pattern] = {}


def _plain_run(*specials: str) -> re.Pattern:
    """A regex matching a (possibly empty) run of characters none of which is special."""
    key = tuple(sorted(set(specials)))
    rx = _PLAIN.get(key)
    if rx is None:
        rx = _PLAIN[key] = re.compile("[^" + "".join(re.escape(c) for c in key) + "]*")
    return rx


class _Lexer:
    """One expansion run over one word (mirrors lex.go's ``shellWord``). Runs of ordinary
    characters are taken a regex match at a time: linear in the word's length."""

    def __init__(self, word: str, env: Mapping[str, str], *, escape: str = "\\",
                 raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False, skip_quotes: bool = False) -> None:
        self.src = word
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.skip_quotes = skip_quotes
        self.depth = 0

    # text/scanner's Peek/Next on runes
    def peek(self):
        return self.src[self.pos] if self.pos < len(self.src) else _EOF

    def next(self):
        if self.pos < len(self.src):
            ch = self.src[self.pos]
            self.pos += 1
            return ch
        return _EOF

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.process_stop_on(_EOF, self.raw_escapes)
        except ExpansionError as e:
            src = self.src if len(self.src) <= 200 else self.src[:200] + "..."
            raise ExpansionError(f"failed to process {_go_quote(src)}: {e}",
                                 variable=e.variable) from None

    def process_stop_on(self, stop, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        specials = ["$", self.escape] + ([] if self.skip_quotes else ["'", '"'])
        if stop is not _EOF:
            specials.append(stop)
        plain = _plain_run(*specials)
        src = self.src
        n = len(src)
        size = 0
        try:
            while self.pos < n:
                if size > MAX_WORD:
                    raise ExpansionError(f"the expanded word is longer than {MAX_WORD >> 20} MiB")
                end = plain.match(src, self.pos).end()
                if end > self.pos:
                    run = src[self.pos:end]
                    self.pos = end
                    words.add_string(run)
                    result.append(run)
                    continue
                ch = src[self.pos]
                if stop is not _EOF and ch == stop:
                    self.pos += 1
                    return "".join(result), words.get_words()
                if ch == "$":
                    tmp = self.process_dollar()
                    size += len(tmp)
                    result.append(tmp)
                    words.add_string(tmp)
                elif not self.skip_quotes and ch == "'":
                    tmp = self.process_single_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                elif not self.skip_quotes and ch == '"':
                    tmp = self.process_double_quote()
                    size += len(tmp)
                    result.append(tmp)
                    words.add_raw_string(tmp)
                else:  # the escape character
                    self.pos += 1
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch is _EOF:
                        break
                    words.add_raw_char(ch)
                    result.append(ch)
            if stop is not _EOF:
                raise ExpansionError(
                    f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        start = self.pos + 1
        end = self.src.find("'", start)
        if end < 0:
            self.pos = len(self.src)
            raise ExpansionError(
                "unexpected end of statement while looking for matching single-quote")
        self.pos = end + 1
        return self.src[start - 1:end + 1] if self.raw_quotes else self.src[start:end]

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        plain = _plain_run('"', "$", self.escape)
        src = self.src
        size = 0
        while True:
            end = plain.match(src, self.pos).end()
            if end > self.pos:
                result.append(src[self.pos:end])
                self.pos = end
            p = self.peek()
            if p is _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self.next()
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if p == "$":
                tmp = self.process_dollar()
                size += len(tmp)
                if size > MAX_WORD:
                    raise ExpansionError(f"the expanded word is longer than {MAX_WORD >> 20} MiB")
                result.append(tmp)
                continue
            ch = self.next()  # the escape character
            if self.raw_escapes:
                result.append(ch)
            q = self.peek()
            if q is _EOF:
                continue  # ignore an escape at the end of the word
            if q in ('"', "$", self.escape):
                ch = self.next()
            result.append(ch)

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() is not _EOF:
            ch = self.peek()
            if not name and _isdigit(ch):
                while self.peek() is not _EOF and _isdigit(self.peek()):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not _isletter(ch) and not _isdigit(ch) and ch != "_":
                break
            name.append(self.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpansionError(f"variable substitutions nested more than {MAX_NESTING} levels deep")
        try:
            return self._process_braces()
        finally:
            self.depth -= 1

    def _process_braces(self) -> str:
        self.next()  # the '{'
        p = self.peek()
        if p is _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if p in ("{", "}", ":"):
            raise ExpansionError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch if ch is not _EOF else ""
        null_is_unset = False

        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch if ch is not _EOF else ""
        if null_is_unset or (ch is not _EOF and ch in "+-?#%"):
            raw = ch is not _EOF and ch in "#%"
            try:
                word, _ = self.process_stop_on("}", raw)
            except ExpansionError:
                if self.peek() is _EOF:
                    raise ExpansionError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.skip_unset and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                if not found or (null_is_unset and value == ""):
                    return word
                return value
            if ch == "+":
                if not found or (null_is_unset and value == ""):
                    return ""
                return word
            if ch == "?":
                if not found:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}",
                                         variable=name)
                if null_is_unset and value == "":
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}",
                                         variable=name)
                return value
            if ch not in ("#", "%"):
                raise ExpansionError(f"unsupported modifier ({chs}) in substitution")
            # '%' / '#': shortest match, doubled: longest
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except ExpansionError:
                if self.peek() is _EOF:
                    raise ExpansionError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except ExpansionError:
                if self.peek() is _EOF:
                    raise ExpansionError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.skip_unset and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            return _replace(pattern, replacement, value, replace_all)
        if ch is _EOF:
            raise ExpansionError("syntax error: missing '}'")
        raise ExpansionError(f"unsupported modifier ({chs}) in substitution")


def _go_expand_template(template: str):
    """A function of the matched text doing Go's Regexp.Expand on ``template`` ($0, ${0}, $$)."""
    def repl(matched: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(template):
            c = template[i]
            if c != "$" or i + 1 >= len(template):
                out.append(c)
                i += 1
                continue
            nxt = template[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "{":
                end = template.find("}", i + 2)
                if end < 0:
                    out.append(c)
                    i += 1
                    continue
                name = template[i + 2:end]
                i = end + 1
            else:
                j = i + 1
                while j < len(template) and (template[j].isalnum() or template[j] == "_"):
                    j += 1
                if j == i + 1:
                    out.append(c)
                    i += 1
                    continue
                name = template[i + 1:j]
                i = j
            if name == "0":
                out.append(matched)
            # the converted pattern has no capture groups: any other name is empty
        return "".join(out)
    return repl


class _Glob:
    r"""A shell pattern of ``${v#pat}`` / ``${v%pat}`` / ``${v/pat/rep}``: ``*`` any string,
    ``?`` any one character (neither crosses a newline, as Go's ``.`` does not), ``\*``
    ``\?`` ``\\`` literal, ``\}`` ``\/`` the character itself.

    BuildKit compiles it to a Go (RE2) regexp, which is linear. A backtracking ``re`` would
    take exponential time on ``*a*a*a*...`` against a long value, so this runs the pattern
    as a bit-parallel NFA: state i (bit i) = "the first i tokens matched"; each character of
    the value costs a few integer operations, O(len(value) * len(pattern) / 64) in all.
    Leftmost-first matching with lazy stars (Go's ``.*?``) gives the shortest match, with
    greedy stars (``.*``) the longest: that is what is computed.
    """

    def __init__(self, pattern: str, *, reverse: bool = False) -> None:
        toks: list[str | None] = []  # a character, or None for '*', or "" for '?'
        i, n = 0, len(pattern)
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                if not toks or toks[-1] is not None:  # ** is *
                    toks.append(None)
            elif c == "?":
                toks.append("")
            elif c == "\\":
                if i < n and pattern[i] in "}/":
                    continue
                nxt = pattern[i] if i < n else ""
                i += 1
                if nxt not in ("*", "?", "\\"):
                    raise ExpansionError(f"invalid pattern ({pattern}) in substitution: "
                                         f"invalid escape '\\{nxt}'")
                toks.append(nxt)
            else:
                toks.append(c)
        if reverse:
            toks.reverse()
            merged: list[str | None] = []
            for t in toks:
                if t is None and merged and merged[-1] is None:
                    continue
                merged.append(t)
            toks = merged
        self.star = self.any = 0
        self.lit: dict[str, int] = {}
        for k, t in enumerate(toks):
            bit = 1 << k
            if t is None:
                self.star |= bit
            elif t == "":
                self.any |= bit
            else:
                self.lit[t] = self.lit.get(t, 0) | bit
        self.accept = 1 << len(toks)
        self.start = self._close(1)

    def _close(self, s: int) -> int:
        return s | ((s & self.star) << 1)

    def _step(self, s: int, ch: str) -> int:
        if ch == "\n":
            return self._close((s & self.lit.get(ch, 0)) << 1)
        return self._close(((s & (self.any | self.lit.get(ch, 0))) << 1) | (s & self.star))

    def prefix(self, value: str, pos: int = 0, *, longest: bool) -> int | None:
        """The end of the shortest (or longest) match of the whole pattern starting at ``pos``."""
        s = self.start
        found = pos if s & self.accept else None
        if found is not None and not longest:
            return found
        for i in range(pos, len(value)):
            s = self._step(s, value[i])
            if not s:
                break
            if s & self.accept:
                found = i + 1
                if not longest:
                    break
        return found


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    end = _Glob(pattern).prefix(value, longest=greedy)
    return value if end is None else value[end:]


def _reverse_pattern(pattern: str) -> str:
    """The pattern backwards, escapes kept in front of what they escape (BuildKit's
    reversePattern: a lone trailing backslash stays in place)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append(pattern[i:i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # the shortest/longest rightmost match is a leftmost one of both reversed, as BuildKit
    # finds it (its errors name the reversed pattern too)
    rev = value[::-1]
    end = _Glob(_reverse_pattern(pattern)).prefix(rev, longest=greedy)
    return value if end is None else rev[end:][::-1]


def _match_starts(pattern: str, value: str) -> list[bool]:
    """For every position p of ``value`` (and len(value)): does a match start at p? One
    backward pass of the reversed pattern over the value."""
    g = _Glob(pattern, reverse=True)
    n = len(value)
    out = [False] * (n + 1)
    s = g.start
    out[n] = bool(s & g.accept)
    for q in range(n - 1, -1, -1):
        s = g._step(s, value[q]) | g.start
        out[q] = bool(s & g.accept)
    return out


def _replace(pattern: str, replacement: str, value: str, replace_all: bool) -> str:
    """``${v/pat/rep}`` (the first match, rep taken literally) and ``${v//pat/rep}`` (Go's
    ``ReplaceAllString``: every leftmost-longest match, ``$0``/``${0}`` in rep expanded, an
    empty match right after a match skipped)."""
    g = _Glob(pattern)
    starts = _match_starts(pattern, value)
    n = len(value)
    out: list[str] = []
    last = 0
    pos = 0
    expand = _go_expand_template(replacement) if replace_all else None
    while pos <= n:
        p = pos
        while p <= n and not starts[p]:
            p += 1
        if p > n:
            break
        e = g.prefix(value, p, longest=True)
        out.append(value[last:p])
        if not replace_all:
            out.append(replacement)
            last = e
            break
        if e > last or p == 0:
            out.append(expand(value[p:e]))
        last = e
        pos = p + 1 if e <= p else e
    out.append(value[last:])
    return "".join(out)


# --- public API ---------------------------------------------------------------------------

def expand_word(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """``ProcessWord``: expand variables and remove quotes; whitespace is kept as is."""
    return _Lexer(word, env, escape=escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """``ProcessWords``: expand, then split on whitespace that was not quoted or escaped."""
    return _Lexer(text, env, escape=escape).process()[1]


def lex_words(text: str, *, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """Words with unset variables left as written (the heredoc detector's lexer)."""
    return _Lexer(text, {}, raw_quotes=raw_quotes, raw_escapes=raw_escapes,
                  skip_unset=True).process()[1]
