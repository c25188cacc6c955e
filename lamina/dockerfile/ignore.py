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
from lamina._dcache import dataclass

from lamina.errors import InvalidArgument

__all__ = ["Pattern", "Matcher", "read_ignore_file", "find_ignore_file"]

_EXACT, _PREFIX, _SUFFIX, _REGEXP = range(4)
_ESCAPE = set(".+()|{}$")


def _clean(p: str) -> str:
    c = posixpath.normpath(p)
    if c.startswith("//"):
        c = "/" + c.lstrip("/")
    return c


@dataclass(frozen=True)
class Pattern:
    text: str            # cleaned pattern, without "!"
    exclusion: bool      # True for "!pattern" (re-include)
    kind: int
    regex: "re.Pattern | None"

    @classmethod
    def compile(cls, raw: str) -> "Pattern":
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
        rx += "(/.*)?$"
        compiled = None
        if kind == _REGEXP:
            try:
                compiled = re.compile(rx, re.S)
            except re.error as e:
                raise InvalidArgument(f"syntax error in .dockerignore pattern {raw!r}: {e}") from None
        return cls(text=p, exclusion=excl, kind=kind, regex=compiled)

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
        return bool(self.regex.match(path))

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def _component_regex(comp: str) -> re.Pattern:
    """A regex for one path component of a pattern (``*``, ``?``, classes, escapes)."""
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
        return re.compile(rx + r"\Z", re.S)
    except re.error:
        return re.compile(r".*\Z", re.S)  # be conservative


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
    def from_lines(cls, lines) -> "Matcher":
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
    def from_file(cls, path: str) -> "Matcher":
        with open(path, "rb") as f:
            return cls.from_lines(f.read().splitlines())

    def keeping(self, *paths: str) -> "Matcher":
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
