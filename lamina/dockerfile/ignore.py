""".dockerignore files, with moby/patternmatcher semantics.

Reading (``ignorefile.ReadAll``): a UTF-8 BOM is dropped, lines starting with ``#`` are
comments, blank lines are skipped, each pattern is trimmed, ``path.Clean``-ed, a leading
``/`` removed; ``!`` marks an exception.

Matching (``MatchesOrParentMatches``): patterns are tried in order and the last one that
matches decides (``!`` re-includes). A pattern also matches everything under a directory
it matches (``build`` excludes ``build/x/y``). ``*`` and ``?`` do not cross ``/``; ``**``
matches any number of directories; ``[...]`` classes and ``\\`` escapes as in Go's
``filepath.Match``.

Docker still sends the Dockerfile and the .dockerignore when they are excluded:
:meth:`Matcher.keeping` adds those exceptions (the CLI's ``TrimBuildFilesFromExcludes``).
"""

from __future__ import annotations

import os
import posixpath
import re

from lamina.errors import InvalidArgument
from lamina.values import field, value

__all__ = ["Pattern", "Matcher", "read_ignore_file", "find_ignore_file"]

_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(4)
_ESCAPE = set(".+()|{}$")


def _clean(p: str) -> str:
    c = posixpath.normpath(p)
    if c.startswith("//"):
        c = "/" + c.lstrip("/")
    return c


# -- matching without backtracking ---------------------------------------------------------------
# A pattern becomes a regex of a few shapes: literal characters, [^/] (?), [^/]* (*), classes,
# (.*/)? (**/) and .* (a final **). Python's re backtracks: *a*a*a*a*c against a 40-character
# name took 5 minutes (Docker's RE2 is linear). With at most two unbounded parts a regex is
# polynomial at worst on paths of a few KiB, and re stays (it is fast); with more, the
# pattern runs as a bit-parallel NFA instead: linear in the path, same answers.

_RX_TOKEN = re.compile(r"""\(\.\*/\)\?|\.\*|\[\^/\]\*|\[\^/\]|\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|.""", re.S)
_LIT, _ANY, _STAR, _CLASS, _ALL, _DIRS = range(6)


def _compile(rx: str) -> re.Pattern:
    """re.compile of a pattern's regex, without re's FutureWarning about ``[[`` in a class
    (the user's text, which Go reads the same way)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(rx, re.S)


def _unbounded(rx: str) -> int:
    return rx.count("[^/]*") + rx.count(".*")


class _Nfa:
    r"""``^body`` followed by ``(/.*)?\Z`` (``tail``) or ``\Z``, run as an NFA over bits:
    bit i = "the first i pieces matched" (a (.*/)? takes two bits: before it, inside it)."""

    def __init__(self, body: str, *, tail: bool) -> None:
        adv_lit: dict[str, int] = {}
        self.any = self.star = self.all = self.dirs_in = 0
        self.skip1 = self.skip2 = 0
        self.classes: list[tuple[int, re.Pattern]] = []
        bit = 0
        for m in _RX_TOKEN.finditer(body):
            t = m.group()
            b = 1 << bit
            if t == "(.*/)?":
                self.skip1 |= b                  # into the group
                self.skip2 |= b                  # or over it
                self.dirs_in |= b << 1           # inside: any character; "/" also leaves it
                adv_lit["/"] = adv_lit.get("/", 0) | (b << 1)
                bit += 2
                continue
            if t == ".*":
                self.all |= b
                self.skip1 |= b
            elif t == "[^/]*":
                self.star |= b
                self.skip1 |= b
            elif t == "[^/]":
                self.any |= b
            elif t.startswith("[") and len(t) > 1:
                self.classes.append((b, _compile(t)))
            else:
                ch = t[1] if t.startswith("\\") and len(t) == 2 else t
                adv_lit[ch] = adv_lit.get(ch, 0) | b
            bit += 1
        self.lit = adv_lit
        self.end = 1 << bit                      # the whole body matched
        self.tail = tail
        self.rest = self.end << 1                # after the body, a "/" and anything
        self.cache: dict[str, tuple[int, int]] = {}
        self.start = self._close(1)

    def _close(self, s: int) -> int:
        while True:
            n = s | ((s & self.skip1) << 1) | ((s & self.skip2) << 2)
            if n == s:
                return s
            s = n

    def _masks(self, ch: str) -> tuple[int, int]:
        m = self.cache.get(ch)
        if m is None:
            adv = self.lit.get(ch, 0)
            loop = self.all | self.dirs_in | self.rest
            if ch != "/":
                adv |= self.any
                loop |= self.star
            elif self.tail:
                adv |= self.end                  # (/.*)? begins
            for b, rx in self.classes:
                if rx.fullmatch(ch):
                    adv |= b
            m = self.cache[ch] = (adv, loop)
        return m

    def fullmatch(self, text: str) -> bool:
        s = self.start
        for ch in text:
            adv, loop = self._masks(ch)
            s = self._close(((s & adv) << 1) | (s & loop))
            if not s:
                return False
        return bool(s & (self.end | self.rest))


def _matcher(body: str, *, tail: bool):
    r"""A callable(text) -> bool: does ``^body(/.*)?\Z`` (or ``^body\Z``) match ``text``?"""
    if _unbounded(body) <= 2:
        rx = _compile(body + (r"(/.*)?\Z" if tail else r"\Z"))
        return lambda text: rx.match(text) is not None
    return _Nfa(body, tail=tail).fullmatch


@value
class Pattern:
    text: str            # cleaned pattern, without "!"
    exclusion: bool      # True for "!pattern" (re-include)
    kind: int
    regex: re.Pattern | None
    matches: object = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def compile(cls, raw: str) -> Pattern:
        p = raw.strip()
        excl = False
        if p.startswith("!"):
            if len(p) == 1:
                raise InvalidArgument('illegal exclusion pattern: "!"')
            excl = True
            p = p[1:]
        p = _clean(p)
        kind = _EXACT
        rx = "^"
        i = 0
        n = len(p)
        step = 0
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == _EXACT:
                            kind = _PREFIX
                        else:
                            rx += ".*"
                            kind = _REGEXP
                    else:
                        rx += "(.*/)?"
                        kind = _REGEXP
                    if step == 0:
                        kind = _SUFFIX
                else:
                    rx += "[^/]*"
                    kind = _REGEXP
            elif ch == "?":
                rx += "[^/]"
                kind = _REGEXP
            elif ch in _ESCAPE:
                rx += "\\" + ch
            elif ch == "\\":
                if i < n:
                    rx += re.escape(p[i])
                    i += 1
                else:
                    rx += "\\\\"
                kind = _REGEXP
            elif ch in "[]":
                if ch == "[" and i < n and p[i] == "^":
                    rx += "[^"
                    i += 1
                elif ch == "[" and i < n and p[i] == "!":
                    rx += "[^"  # filepath.Match does not know [!..]; harmless superset
                    i += 1
                else:
                    rx += ch
                kind = _REGEXP
            else:
                rx += re.escape(ch) if ch in "^" else ch
            step += 1
        compiled = matches = None
        if kind == _REGEXP:
            try:
                compiled = _compile(rx + r"(/.*)?\Z")
            except re.error as e:
                raise InvalidArgument(f"syntax error in .dockerignore pattern {raw!r}: {e}") from None
            matches = _matcher(rx[1:], tail=True)
        return cls(text=p, exclusion=excl, kind=kind, regex=compiled, matches=matches)

    def match(self, path: str) -> bool:
        if self.kind == _EXACT:
            return path == self.text
        if self.kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        return self.matches(path)

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def _component_regex(comp: str):
    """A matcher (``.match(name)``) for one path component of a pattern (``*``, ``?``,
    classes, escapes)."""
    rx = ""
    i = 0
    while i < len(comp):
        ch = comp[i]
        i += 1
        if ch == "*":
            rx += "[^/]*"
        elif ch == "?":
            rx += "[^/]"
        elif ch == "\\" and i < len(comp):
            rx += re.escape(comp[i])
            i += 1
        elif ch == "[":
            j = comp.find("]", i + 1)
            if j < 0:
                rx += "\\["
            else:
                body = comp[i:j]
                if body.startswith(("^", "!")):
                    body = "^" + body[1:]
                rx += "[" + body.replace("\\", "\\\\") + "]"
                i = j + 1
        else:
            rx += re.escape(ch)
    try:
        _compile(rx)
    except re.error:
        return re.compile(r".*\Z", re.S)  # be conservative
    if _unbounded(rx) <= 2:
        return _compile(rx + r"\Z")
    return _NfaMatch(_Nfa(rx, tail=False))


class _NfaMatch:
    def __init__(self, nfa: _Nfa) -> None:
        self.nfa = nfa

    def match(self, text: str) -> bool:
        return self.nfa.fullmatch(text)


def _could_match_under(pat: Pattern, parts: list[str]) -> bool:
    """Could ``pat`` match ``dir`` or something below it (``parts`` = dir's components)?
    Conservative: True unless some leading component certainly differs."""
    comps = pat.text.split("/")
    for k, dir_comp in enumerate(parts):
        if k >= len(comps):
            return True  # the pattern matches an ancestor of (or) the dir itself
        c = comps[k]
        if "**" in c:
            return True
        if not _component_regex(c).match(dir_comp):
            return False
    return True


class Matcher:
    """An ordered list of patterns; ``excluded`` answers for one relative path."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = list(patterns)
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_lines(cls, lines) -> Matcher:
        """From .dockerignore lines (strings or bytes, newline-terminated or not)."""
        pats: list[Pattern] = []
        for idx, line in enumerate(lines):
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="surrogateescape")
            if idx == 0 and line.startswith("\ufeff"):
                line = line[1:]
            line = line.rstrip("\r\n")
            if line.startswith("#"):
                continue
            p = line.strip()
            if not p:
                continue
            invert = p.startswith("!")
            if invert:
                p = p[1:].strip()
            if p:
                p = _clean(p)
                if len(p) > 1 and p.startswith("/"):
                    p = p[1:]
            if invert:
                p = "!" + p
            pats.append(Pattern.compile(p))
        return cls(pats)

    @classmethod
    def from_file(cls, path: str) -> Matcher:
        with open(path, "rb") as f:
            return cls.from_lines(f.read().splitlines())

    def keeping(self, *paths: str) -> Matcher:
        """A matcher that never excludes ``paths`` (Dockerfile, .dockerignore), as the
        docker CLI does before sending the context."""
        extra = [Pattern.compile("!" + _clean(p).lstrip("/")) for p in paths
                 if p and self.excluded(_clean(p).lstrip("/"))]
        return Matcher(self.patterns + extra) if extra else self

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, relpath: str, is_dir: bool = False) -> bool:
        """Is ``relpath`` (slash-separated, relative to the context) excluded?
        ``is_dir`` does not change the answer (patternmatcher ignores it); it is accepted
        so callers can state what they have."""
        path = _clean(relpath).lstrip("/")
        if path in ("", "."):
            return False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            m = pat.match(path)
            if not m and parents:
                for i in range(len(parents)):
                    if pat.match("/".join(parents[:i + 1])):
                        m = True
                        break
            if m:
                matched = not pat.exclusion
        return matched

    def may_exclude_children(self, reldir: str) -> bool:
        """Could any path under ``reldir`` be excluded? False lets a walker stop testing
        paths in that subtree (nothing below can be excluded)."""
        parts = [c for c in _clean(reldir).split("/") if c not in ("", ".")]
        return any(not p.exclusion and _could_match_under(p, parts) for p in self.patterns)

    def can_skip_dir(self, reldir: str) -> bool:
        """True when ``reldir`` is excluded and no exception (``!pattern``) could re-include
        anything under it: a walker may skip the whole directory."""
        if not self.excluded(reldir, True):
            return False
        if not self.has_exclusions:
            return True
        parts = [c for c in _clean(reldir).split("/") if c not in ("", ".")]
        return not any(p.exclusion and _could_match_under(p, parts) for p in self.patterns)


def read_ignore_file(path: str) -> Matcher:
    return Matcher.from_file(path)


def find_ignore_file(context_dir: str, dockerfile_path: str | None) -> str | None:
    """The ignore file for a build, with BuildKit's precedence: ``<Dockerfile>.dockerignore``
    next to the Dockerfile (e.g. ``app.Dockerfile.dockerignore``) wins over
    ``<context>/.dockerignore``. Returns None when neither exists."""
    if dockerfile_path and dockerfile_path != "-":
        df = dockerfile_path
        if not os.path.isabs(df):
            df = os.path.join(context_dir, df)
        cand = df + ".dockerignore"
        if os.path.isfile(cand):
            return cand
    cand = os.path.join(context_dir, ".dockerignore")
    return cand if os.path.isfile(cand) else None
