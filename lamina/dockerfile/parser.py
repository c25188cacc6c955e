"""Dockerfile parser: bytes -> logical lines (with line numbers) -> typed, validated values.

A port of BuildKit's ``frontend/dockerfile/parser`` (line splitting, directives, continuation,
heredocs, per-instruction argument shapes, JSON detection, flag extraction) and of
``instructions/parse.go`` (argument counts, flag sets, stage names). Variable expansion is
*not* done here: see :mod:`lamina.dockerfile.expand`.

Behaviour worth knowing (all as in Docker):

- Parser directives (``# syntax=``, ``# escape=``, ``# check=``) count only before the
  first instruction, comment or blank line; ``escape`` is ``\\`` or `````.
- A line ending in the escape character continues onto the next; comment lines and empty
  lines inside a continuation are skipped (the latter with a warning).
- Instruction names are case-insensitive and come out upper-case. ``#`` starts a comment
  only at the beginning of a line.
- RUN/CMD/ENTRYPOINT/SHELL (and COPY/ADD/VOLUME) use exec (JSON) form when the argument
  text starts with a JSON array of strings; invalid JSON falls back to shell form, a JSON
  array holding a non-string is an error.
- ``Instruction.original`` is the logical line (continuations joined) without heredoc
  bodies; heredoc bodies are in ``Instruction.heredocs`` (``<<-`` bodies already have
  their leading tabs removed, ``chomp`` says so).

Errors are :class:`DockerfileError` (an ``InvalidArgument``) whose message reads::

    Dockerfile:7: unknown flag: chwon
    COPY --chwon=app src /dst
         ^

The first line stands alone; ``.line`` and ``.column`` (0-based) are attributes.
"""

from __future__ import annotations

import codecs
import json
import re

from lamina.dockerfile.lineparsers import (
    _RE_WS,
    _extract_flags,
    _Fail,
    _lstrip,
    _parse_json,
    _parse_name_val,
    _parse_words,
    _strip,
    _ws_split,
)
from lamina.dockerfile.shell import ExpansionError, lex_words
from lamina.errors import InvalidArgument
from lamina.values import field, value

__all__ = [
    "Heredoc", "Instruction", "Stage", "Dockerfile", "DockerfileError",
    "parse", "format_error", "heredoc_name", "COMMANDS",
]

COMMANDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)


# --- values --------------------------------------------------------------------------------

@value
class Heredoc:
    """A here-document attached to RUN/COPY/ADD. ``expand`` is False when the delimiter
    was quoted (``<<'EOF'``); ``chomp`` is True for ``<<-`` (tabs already stripped)."""

    name: str
    content: str
    expand: bool
    chomp: bool
    fd: int = 0


@value
class Instruction:
    """One instruction as written. ``args`` are unexpanded; for ENV/LABEL they alternate
    key, value (see :func:`lamina.dockerfile.expand.key_values`); for HEALTHCHECK the first
    is the type (CMD/NONE); for ONBUILD the single argument is the trigger's text and
    ``trigger`` holds it parsed. ``flags`` are ``(name, value)`` pairs in source order,
    bool flags normalised to "true"/"false"."""

    cmd: str
    args: tuple[str, ...]
    json: bool
    flags: tuple[tuple[str, str], ...]
    original: str
    line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()
    trigger: Instruction | None = None

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The value of flag ``--name`` (the last one if repeated), else ``default``."""
        for k, v in reversed(self.flags):
            if k == name:
                return v
        return default

    def flag_values(self, name: str) -> list[str]:
        """All values of a repeatable flag (``--mount``, ``--exclude``)."""
        return [v for k, v in self.flags if k == name]


@value
class Stage:
    """A build stage: its FROM (``source``) and the instructions after it."""

    index: int
    name: str | None
    base: str
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]
    source: Instruction | None = None


@value
class Dockerfile:
    filename: str
    escape: str
    syntax: str | None
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    lines: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    def stage(self, ref: str | int) -> Stage:
        """A stage by name (case-insensitive) or index; raises InvalidArgument."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            i = int(ref)
            if 0 <= i < len(self.stages):
                return self.stages[i]
        else:
            for st in reversed(self.stages):
                if st.name == ref.lower():
                    return st
        raise InvalidArgument(f"failed to reach build target {ref} in Dockerfile")


# --- errors --------------------------------------------------------------------------------

class DockerfileError(InvalidArgument):
    """A Dockerfile error located at ``filename:line`` (and 0-based ``column``)."""

    def __init__(self, message: str, *, filename: str, line: int, column: int,
                 reason: str) -> None:
        super().__init__(message)
        self.filename = filename
        self.line = line
        self.column = column
        self.reason = reason


_SHOWN = 160  # longest source excerpt shown under an error


def _caret_block(src: str, column: int) -> str:
    column = max(0, min(column, len(src)))
    if len(src) > _SHOWN:  # a window around the caret, not a 60 KiB line
        start = max(0, min(column - _SHOWN // 2, len(src) - _SHOWN))
        end = start + _SHOWN
        shown, col = src[start:end], column - start
        if start:
            shown, col = "..." + shown, col + 3
        if end < len(src):
            shown += "..."
        src, column = shown, col
    pad = "".join("\t" if c == "\t" else " " for c in src[:column])
    return f"{src}\n{pad}^"


def _first_col(src: str) -> int:
    return len(src) - len(src.lstrip())


def format_error(df: Dockerfile | tuple[str, ...] | list[str], line: int, message: str,
                 column: int | None = None, *, filename: str | None = None) -> str:
    """``Dockerfile:LINE: message`` + the source line + a caret line (for reuse by the
    executor, e.g. when expansion fails). ``column`` defaults to the first non-blank."""
    lines = df.lines if isinstance(df, Dockerfile) else tuple(df)
    fname = filename or (df.filename if isinstance(df, Dockerfile) else "Dockerfile")
    head = f"{fname}:{line}: {message}"
    if 1 <= line <= len(lines):
        src = lines[line - 1]
        return head + "\n" + _caret_block(src, _first_col(src) if column is None else column)
    return head


def error_at(df: Dockerfile | tuple[str, ...] | list[str], line: int, message: str,
             column: int | None = None, *, filename: str | None = None) -> DockerfileError:
    """A :class:`DockerfileError` for ``line`` (as :func:`format_error` formats it)."""
    lines = df.lines if isinstance(df, Dockerfile) else tuple(df)
    fname = filename or (df.filename if isinstance(df, Dockerfile) else "Dockerfile")
    if column is None:
        column = _first_col(lines[line - 1]) if 1 <= line <= len(lines) else 0
    return DockerfileError(format_error(lines, line, message, column, filename=fname),
                           filename=fname, line=line, column=column, reason=message)


# --- low level: lines, directives, continuation ------------------------------------------

# BuildKit's ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ (RE2, linear); the value part is
# computed by hand (_directive): a backtracking (.+?)\s*$ is quadratic in a run of spaces
_RE_DIRECTIVE_HEAD = re.compile(r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=")
_GO_SPACE = "\t\n\f\r "
_RE_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$", re.S)
_RE_LEADING_TABS = re.compile(r"^\t+", re.M)
_VALID_DIRECTIVES = ("escape", "syntax", "check")
_HEREDOC_CMDS = ("ADD", "COPY", "RUN")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(raw: str) -> bool:
    return _lstrip(_trim_newline(raw)).startswith("#")


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: dict[str, str] = {}
        self._set_escape("\\")

    def _set_escape(self, s: str) -> None:
        if s not in ("`", "\\"):
            raise _Fail(f"invalid escape token '{s}' does not match ` or \\", s)
        self.escape = s
        e = re.escape(s)
        self.continuation = re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")

    def possible(self, line: str) -> None:
        if self.done:
            return
        m = _RE_DIRECTIVE_HEAD.match(line)
        value = _directive_value(line[m.end():]) if m else None
        if value is None or "\n" in line:
            self.done = True
            return
        k = m.group(1).lower()
        if k not in _VALID_DIRECTIVES:
            self.done = True
            return
        if k in self.seen:
            raise _Fail(f"only one {k} parser directive can be used", m.group(1))
        self.seen[k] = value
        if k == "escape":
            self._set_escape(value)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        m = self.continuation.search(line)
        if m:
            return line[:m.start()] + (m.group(1) or ""), False
        return line, True


def _directive_value(rest: str) -> str | None:
    r"""What ``\s*(.+?)\s*$`` captures of ``rest`` (None: no match)."""
    if not rest:
        return None
    value = rest.lstrip(_GO_SPACE).rstrip(_GO_SPACE)
    return value if value else rest[-1]  # all blanks: the lazy group takes the last one


def _process_line(d: _Directives, token: str, strip_left: bool) -> str:
    token = _trim_newline(token)
    if strip_left:
        token = _lstrip(token)
    d.possible(token)
    return "" if token.startswith("#") else token


# --- nodes (argument shapes: lamina.dockerfile.lineparsers) ---------------------------------

@value(frozen=False)
class _Node:
    cmd: str                       # upper-case
    cmd_written: str
    flags: list[str]
    args: list[str]
    json: bool
    original: str
    child: _Node | None = None
    heredocs: list[Heredoc] = field(default_factory=list)


def _node_from_line(line: str, escape: str, nested: bool = False) -> _Node:
    stripped = _strip(line)
    parts = _RE_WS.split(stripped, maxsplit=1)
    written = parts[0]
    cmd = written.upper()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
    rest = _strip(rest)
    args: list[str] = []
    is_json = False
    child = None
    if cmd in ("ADD", "COPY", "VOLUME"):
        j = _parse_json(rest)
        if j is not None:
            args, is_json = j, True
        else:
            args = _ws_split(rest)
    elif cmd in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
        if rest:
            j = _parse_json(rest)
            if j is not None:
                args, is_json = j, True
            else:
                args = [rest]
    elif cmd == "ARG":
        args = _parse_words(rest, escape)
    elif cmd in ("ENV", "LABEL"):
        args = _parse_name_val(rest, cmd, escape)
    elif cmd in ("EXPOSE", "FROM"):
        args = _ws_split(rest)
    elif cmd == "HEALTHCHECK":
        m = re.match(r"\S+", rest)
        if m:
            typ = m.group(0)
            sub = _lstrip(rest[m.end():])
            args = [typ]
            if sub:
                j = _parse_json(sub)
                if j is not None:
                    args += j
                    is_json = True
                else:
                    args.append(sub)
    elif cmd in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        args = [rest] if rest else []
    elif cmd == "ONBUILD":
        if rest:
            # one level: ONBUILD ONBUILD is refused by validation, so a chain of 20,000
            # ONBUILDs is never parsed (nor recursed into) beyond its second word
            child = _node_from_line(rest, escape, True) if not nested else \
                _Node(_RE_WS.split(_strip(rest), maxsplit=1)[0].upper(),
                      _RE_WS.split(_strip(rest), maxsplit=1)[0], [], [rest], False, rest)
            args = [rest]
    return _Node(cmd, written, flags, args, is_json, line, child)


def heredoc_name(word: str) -> str | None:
    """The delimiter if ``word`` is a heredoc marker (``<<EOF``, ``<<-"EOF"``), else None."""
    h = _parse_heredoc(word)
    return h.name if h else None


def _parse_heredoc(word: str) -> Heredoc | None:
    m = _RE_HEREDOC.match(word)
    if not m:
        return None
    rest = m.group(3)
    if not rest:
        return None
    try:
        words = lex_words(rest, raw_quotes=False, raw_escapes=False)
    except ExpansionError as e:
        raise _Fail(str(e), word) from None
    if len(words) != 1:
        return None
    raw = lex_words(rest, raw_quotes=True, raw_escapes=False)
    if len(raw) != 1:
        raise _Fail(f"internal lexing of heredoc produced inconsistent results: {rest}", word)
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=name, content="", expand=quotes == raw_quotes,
                   chomp=m.group(2) == "-", fd=int(m.group(1) or 0))


def _heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = lex_words(line, raw_quotes=True, raw_escapes=True)
    except ExpansionError:
        words = []
    out = []
    for w in words:
        h = _parse_heredoc(w)
        if h is not None:
            out.append(h)
    return out


# --- typed validation (instructions/parse.go) ----------------------------------------------

_BOOL, _STR, _STRS = 0, 1, 2
_FLAGSETS: dict[str, dict[str, int]] = {
    "ADD": {"chown": _STR, "chmod": _STR, "link": _BOOL, "keep-git-dir": _BOOL,
            "checksum": _STR, "exclude": _STRS},
    "COPY": {"chown": _STR, "from": _STR, "chmod": _STR, "link": _BOOL, "parents": _BOOL,
             "exclude": _STRS},
    "FROM": {"platform": _STR},
    "RUN": {"mount": _STRS, "network": _STR, "security": _STR},
    "HEALTHCHECK": {"interval": _STR, "timeout": _STR, "start-period": _STR,
                    "start-interval": _STR, "retries": _STR},
}


def _parse_flags(cmd: str, raw: list[str]) -> tuple[tuple[str, str], ...]:
    spec = _FLAGSETS.get(cmd, {})
    out: list[tuple[str, str]] = []
    used: set[str] = set()
    for arg in raw:
        if not arg.startswith("--"):
            raise _Fail(f"Arg should start with -- : {arg}", arg)
        if arg == "--":
            break
        body = arg[2:]
        name, eq, value = body.partition("=")
        typ = spec.get(name)
        if typ is None:
            raise _Fail(f"unknown flag: {name}", "--" + name)
        if name in used and typ != _STRS:
            raise _Fail(f"Duplicate flag specified: {name}", "--" + name)
        used.add(name)
        if typ == _BOOL:
            if eq and value == "":
                raise _Fail(f"Missing a value on flag: {name}", "--" + name)
            low = value.lower()
            if low == "":
                value = "true"
            elif low in ("true", "false"):
                value = low
            else:
                raise _Fail(f"Expecting boolean value for flag {name}, not: {value}", "--" + name)
        elif not eq:
            raise _Fail(f"Missing a value on flag: {name}", "--" + name)
        out.append((name, value))
    return tuple(out)


_DURATION_RE = re.compile(r"^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DUR_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
              "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(s: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (``"0"`` allowed). Raises ValueError."""
    if s in ("0", "+0", "-0"):
        return 0
    if not _DURATION_RE.match(s):
        raise ValueError(f'time: invalid duration "{s}"')
    total = sum(float(n) * _DUR_UNITS[u] for n, u in _DUR_PART.findall(s))
    if not total < 1 << 63:  # Go: an int64 of nanoseconds (inf and NaN included)
        raise ValueError(f'time: invalid duration "{s}"')
    return int(-total if s.startswith("-") else total)


def _validate(node: _Node, *, nested: bool = False) -> Instruction:
    cmd = node.cmd
    if cmd not in COMMANDS:
        msg = f"unknown instruction: {node.cmd_written}"
        import difflib  # only for this message: not on every parse
        close = difflib.get_close_matches(cmd, COMMANDS, n=1, cutoff=0.6)
        if close:
            msg += f" (did you mean {close[0].lower()}?)"
        raise _Fail(msg, node.cmd_written)
    args = node.args
    healthcheck_none = cmd == "HEALTHCHECK" and args and args[0].upper() == "NONE"
    flags = () if healthcheck_none else _parse_flags(cmd, node.flags)
    trigger = None

    def need(cond: bool, msg: str, token: str | None = None) -> None:
        if not cond:
            raise _Fail(msg, token)

    if cmd in ("ENV", "LABEL"):
        need(len(args) > 0, f"{cmd} requires at least one argument")
        for i in range(0, len(args), 2):
            need(args[i] != "", f"{cmd} names can not be blank")
    elif cmd in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"):
        need(len(args) == 1, f"{cmd} requires exactly one argument")
    elif cmd in ("ADD", "COPY"):
        need(len(args) >= 2, f"{cmd} requires at least two arguments, but only one was "
                             "provided. Destination could not be determined")
        if _RE_HEREDOC.match(args[-1]) and _parse_heredoc(args[-1]):
            raise _Fail(f"{cmd} cannot accept a heredoc as a destination", args[-1])
    elif cmd == "FROM":
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            need(bool(_STAGE_NAME.match(name)),
                 f"invalid name for build stage: {json.dumps(args[2])}, name can't start "
                 "with a number or contain symbols", args[2])
        else:
            need(len(args) == 1, "FROM requires either one or three arguments")
    elif cmd == "ONBUILD":
        need(node.child is not None, "ONBUILD requires at least one argument")
        sub = node.child.cmd
        if sub == "ONBUILD":
            raise _Fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        node.child.cmd_written, nth=1)
        if sub in ("MAINTAINER", "FROM"):
            raise _Fail(f"{sub} isn't allowed as an ONBUILD trigger", node.child.cmd_written)
        trigger = _validate(node.child, nested=True)
        expr = node.args[0]
        for h in node.child.heredocs:  # as Docker stores it in the image's OnBuild list
            expr += "\n" + h.content + h.name
        args = [expr]
    elif cmd == "HEALTHCHECK":
        need(len(args) > 0, "HEALTHCHECK requires at least one argument")
        typ = args[0].upper()
        if typ == "NONE":
            need(len(args) == 1, "HEALTHCHECK NONE takes no arguments")
        elif typ == "CMD":
            need(len(args) > 1, "Missing command after HEALTHCHECK CMD")
        else:
            raise _Fail(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)', args[0])
        for k, v in flags:
            if k == "retries":
                try:
                    r = int(v, 10)
                except ValueError:
                    raise _Fail(f'strconv.ParseInt: parsing "{v}": invalid syntax', "--" + k) from None
                need(r >= 0, f"--retries cannot be negative ({r})", "--" + k)
            elif v:
                try:
                    d = parse_duration(v)
                except ValueError as e:
                    raise _Fail(str(e), "--" + k) from None
                need(d == 0 or d >= 1_000_000, f'Interval "{k}" cannot be less than 1ms', "--" + k)
    elif cmd == "EXPOSE":
        need(len(args) > 0, "EXPOSE requires at least one argument")
    elif cmd == "VOLUME":
        need(len(args) > 0, "VOLUME requires at least one argument")
        for v in args:
            need(_strip(v) != "", "VOLUME specified can not be an empty string")
    elif cmd == "ARG":
        need(len(args) > 0, "ARG requires at least one argument")
        for a in args:
            need(not a.startswith("="), "ARG names can not be blank", a)
    elif cmd == "SHELL":
        need(len(args) > 0, "SHELL requires at least one argument")
        need(node.json, "SHELL requires the arguments to be in JSON form")

    original = node.original.strip() if nested else node.original
    return Instruction(cmd=cmd, args=tuple(args), json=node.json, flags=flags,
                       original=original, line=0, end_line=0,
                       heredocs=tuple(node.heredocs), trigger=trigger)


# --- the driver ------------------------------------------------------------------------------

def _split_keep_ends(text: str) -> list[str]:
    out = []
    start = 0
    while True:
        i = text.find("\n", start)
        if i < 0:
            if start < len(text):
                out.append(text[start:])
            return out
        out.append(text[start:i + 1])
        start = i + 1


#: Docker reads a Dockerfile with a line scanner of 64 KiB: a longer line is an error
MAX_LINE = 65535


def _long_line(data: bytes) -> int:
    """The 1-based number of the first line longer than MAX_LINE bytes (newline excluded), or 0."""
    start = 0
    n = len(data)
    line = 1
    while start < n:
        end = data.find(b"\n", start)
        if end < 0:
            end = n
        if end - start > MAX_LINE:
            return line
        start = end + 1
        line += 1
    return 0


def _go_replace(err: UnicodeDecodeError):
    """Decode error handler: every invalid byte becomes U+FFFD, as Go does when the
    Dockerfile's strings are encoded to JSON (the image config, the RUN command)."""
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("lamina-go-replace", _go_replace)


def parse(data: bytes | str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile. Raises :class:`DockerfileError` (InvalidArgument).

    Linear in the size of the input. A line longer than 65535 bytes is refused as Docker
    refuses it; bytes that are not UTF-8 read as U+FFFD, as Docker stores them."""
    if isinstance(data, str):  # from argv (--change): undecodable bytes come as surrogates
        try:
            data = data.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            data = data.encode("utf-8", errors="surrogatepass")
    bad = _long_line(data)
    if bad:
        reason = f"dockerfile line greater than max allowed size of {MAX_LINE}"
        raise DockerfileError(f"{filename}:{bad}: {reason}", filename=filename, line=bad,
                              column=0, reason=reason)
    text = data.decode("utf-8", errors="lamina-go-replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    raw_lines = _split_keep_ends(text)
    src_lines = tuple(_trim_newline(l) for l in raw_lines)

    def fail(msg: str, line: int, end: int | None = None, token: str | None = None,
             nth: int = 0):
        line = max(1, line)
        col = None
        at = line
        if token:
            for ln in range(line, (end or line) + 1):
                if ln - 1 < len(src_lines):
                    k = src_lines[ln - 1].find(token)
                    while k >= 0 and nth > 0:
                        k = src_lines[ln - 1].find(token, k + 1)
                        nth -= 1
                    if k >= 0:
                        at, col = ln, k
                        break
        return error_at(src_lines, at, msg, col, filename=filename)

    d = _Directives()
    nodes: list[tuple[_Node, int, int]] = []
    warnings: list[str] = []
    i = 0
    n = len(raw_lines)
    while i < n:
        raw = raw_lines[i]
        try:
            content = _process_line(d, raw, True)
        except _Fail as e:
            raise fail(e.message, i + 1, token=e.token) from None
        i += 1
        start = i
        line, eol = d.trim_continuation(content)
        if eol and line == "":
            continue
        empty_cont = False
        parts = [line]
        while not eol and i < n:
            raw = raw_lines[i]
            try:
                content = _process_line(d, raw, False)
            except _Fail as e:
                raise fail(e.message, i + 1, token=e.token) from None
            i += 1
            if _is_comment(raw):
                continue
            if _lstrip(_trim_newline(content)) == "":
                empty_cont = True
                continue
            cont, eol = d.trim_continuation(content)
            parts.append(cont)
        line = "".join(parts)
        if empty_cont:
            warnings.append(f"{filename}:{start}: empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d.escape)
        except _Fail as e:
            raise fail(e.message, start, i, e.token) from None
        target = node.child if node.cmd == "ONBUILD" and node.child else node
        if target.cmd in _HEREDOC_CMDS and not target.json:
            try:
                docs = _heredocs_from_line(line)
            except _Fail as e:
                raise fail(e.message, start, i, e.token) from None
            for h in docs:
                body: list[str] = []
                terminated = False
                while i < n:
                    raw = raw_lines[i]
                    i += 1
                    cand = _trim_newline(raw)
                    if h.chomp:
                        cand = cand.lstrip("\t")
                    if cand == h.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise fail("unterminated heredoc", start, i, h.name)
                content_text = "".join(body)
                if h.chomp:
                    content_text = _RE_LEADING_TABS.sub("", content_text)
                target.heredocs.append(Heredoc(h.name, content_text, h.expand, h.chomp, h.fd))
        nodes.append((node, start, i))

    if not nodes:
        raise error_at(src_lines, max(1, len(src_lines)), "file with no instructions",
                       filename=filename) if src_lines else DockerfileError(
            f"{filename}:1: file with no instructions", filename=filename, line=1, column=0,
            reason="file with no instructions")

    meta: list[Instruction] = []
    stages: list[dict] = []
    for node, start, end in nodes:
        try:
            ins = _validate(node)
        except _Fail as e:
            raise fail(e.message, start, end, e.token, e.nth) from None
        trig = ins.trigger
        if trig is not None:
            trig = _with_lines(trig, start, end)
        ins = _with_lines(ins, start, end, trigger=trig)
        if ins.cmd == "FROM":
            name = ins.args[2].lower() if len(ins.args) == 3 else None
            if name and any(s["name"] == name for s in stages):
                warnings.append(f"{filename}:{start}: duplicate stage name {json.dumps(name)}")
            stages.append(dict(index=len(stages), name=name, base=ins.args[0],
                               platform=ins.flag("platform"), line=start, source=ins,
                               instructions=[]))
        elif not stages:
            if ins.cmd != "ARG":
                raise fail("no build stage in current context", start, end, node.cmd_written)
            meta.append(ins)
        else:
            stages[-1]["instructions"].append(ins)
    if not stages:
        raise fail("dockerfile contains no stages to build", nodes[-1][1], nodes[-1][2])

    return Dockerfile(
        filename=filename, escape=d.escape, syntax=d.seen.get("syntax"),
        meta_args=tuple(meta),
        stages=tuple(Stage(index=s["index"], name=s["name"], base=s["base"],
                           platform=s["platform"], line=s["line"],
                           instructions=tuple(s["instructions"]), source=s["source"])
                     for s in stages),
        lines=src_lines, warnings=tuple(warnings))


def _with_lines(ins: Instruction, start: int, end: int, **kw) -> Instruction:
    from lamina.values import replace
    return replace(ins, line=start, end_line=end, **kw)
