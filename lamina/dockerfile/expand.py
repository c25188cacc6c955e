"""Variable expansion: Docker's shell-word lexer, and where Docker applies it.

A re-implementation of BuildKit's ``frontend/dockerfile/shell/lex.go`` (``ProcessWord`` /
``ProcessWords``), which is the same lexer the classic builder uses. It is *not* a shell: it
knows ``$v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?msg} ${v?msg}`` plus BuildKit's
``${v#pat} ${v##pat} ${v%pat} ${v%%pat} ${v/pat/rep} ${v//pat/rep}``, single and double quotes,
and the escape character chosen by the ``# escape=`` directive. Unset variables expand to
the empty string.

Entry points:

- :func:`expand_word` -- one word, quotes removed, spaces kept (``ProcessWord``);
- :func:`expand_words` -- expansion then splitting on unquoted whitespace (``ProcessWords``);
- :func:`expand_instruction` -- an :class:`~lamina.dockerfile.parser.Instruction` with its
  arguments expanded exactly where Docker expands them (ADD COPY ENV EXPOSE FROM LABEL
  STOPSIGNAL USER VOLUME WORKDIR ARG, plus the values of COPY/ADD/FROM flags and RUN --mount
  options); RUN CMD ENTRYPOINT SHELL HEALTHCHECK ONBUILD MAINTAINER are returned unchanged
  (their words are the container shell's business);
- :func:`key_values` -- the typed ``(key, value)`` pairs of ENV, LABEL and ARG.

Errors are :class:`ExpansionError` (an ``InvalidArgument``) with Docker's wording, e.g.
``failed to process "${x:?}": x: is not allowed to be empty``; ``.variable`` names the
variable for the ``?`` modifiers. Pure functions: no I/O, thread-safe.
"""

from __future__ import annotations

from lamina import _dcache as dataclasses
import re
from collections.abc import Mapping

from lamina.errors import InvalidArgument

__all__ = [
    "ExpansionError", "expand_word", "expand_words", "expand_instruction", "key_values",
    "EXPANDED_COMMANDS",
]

#: Instructions whose arguments Docker expands (moby's ``replaceEnvAllowed`` plus FROM).
EXPANDED_COMMANDS = frozenset({
    "ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    "ARG",
})

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


def _isletter(ch: str) -> bool:
    return ch.isalpha()


def _isdigit(ch: str) -> bool:
    return ch.isdecimal()


_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _Words:
    __slots__ = ("word", "words", "in_word")

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _isspace(ch):
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    """One expansion run over one word (mirrors lex.go's ``shellWord``)."""

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
            raise ExpansionError(f"failed to process {_go_quote(self.src)}: {e}",
                                 variable=e.variable) from None

    def process_stop_on(self, stop, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            while self.peek() is not _EOF:
                ch = self.peek()
                if stop is not _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    tmp = self.process_dollar()
                    result.append(tmp)
                    words.add_string(tmp)
                elif not self.skip_quotes and ch == "'":
                    tmp = self.process_single_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                elif not self.skip_quotes and ch == '"':
                    tmp = self.process_double_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                else:
                    ch = self.next()
                    if ch == self.escape:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = self.next()
                        if ch is _EOF:
                            break
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop is not _EOF:
                raise ExpansionError(
                    f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch is _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.raw_quotes:
            result.append(ch)
        while True:
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
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == self.escape:
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
            rx = _shell_pattern_regex(pattern, greedy=True, anchored=False)
            repl = _go_expand_template(replacement)
            if replace_all:
                return rx.sub(repl, value)
            return rx.sub(repl, value, count=1)
        if ch is _EOF:
            raise ExpansionError("syntax error: missing '}'")
        raise ExpansionError(f"unsupported modifier ({chs}) in substitution")


def _go_expand_template(template: str):
    """A re.sub callback doing Go's Regexp.Expand on ``template`` ($0, ${0}, $$)."""
    def repl(m: re.Match) -> str:
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
                out.append(m.group(0))
            # the converted pattern has no capture groups: any other name is empty
        return "".join(out)
    return repl


_REGEX_SPECIAL = set("[]{}.+()|^$")


def _shell_pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            if i < n and pattern[i] in "}/":
                continue
            nxt = pattern[i] if i < n else ""
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution: "
                                     f"invalid escape '\\{nxt}'")
            out.append("\\" + nxt)
            continue
        if tok in _REGEX_SPECIAL:
            out.append("\\" + tok)
        else:
            out.append(re.escape(tok) if not tok.isalnum() else tok)
    return re.compile("".join(out), re.DOTALL if False else 0)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    rx = _shell_pattern_regex(pattern, greedy=greedy, anchored=True)
    m = rx.search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
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
    # regexps find leftmost matches: reverse both to find the shortest rightmost one
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


# --- public API ---------------------------------------------------------------------------

def expand_word(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """``ProcessWord``: expand variables and remove quotes; whitespace is kept as is."""
    return _Lexer(word, env, escape=escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """``ProcessWords``: expand, then split on whitespace that was not quoted or escaped."""
    return _Lexer(text, env, escape=escape).process()[1]


def _lex_words(text: str, *, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """Words with unset variables left as written (the heredoc detector's lexer)."""
    return _Lexer(text, {}, raw_quotes=raw_quotes, raw_escapes=raw_escapes,
                  skip_unset=True).process()[1]


def key_values(instr) -> tuple[tuple[str, str | None], ...]:
    """The ``(key, value)`` pairs of an ENV, LABEL or ARG instruction.

    ENV and LABEL come out of the parser as alternating key/value arguments (both the
    ``k=v k2=v2`` form and the legacy ``ENV key value words`` form); ARG arguments are
    ``name`` or ``name=default`` and give ``None`` for a missing default. Values are
    returned as they are in ``instr`` (call on an expanded instruction for final values).
    """
    cmd = instr.cmd
    if cmd in ("ENV", "LABEL"):
        a = instr.args
        return tuple((a[i], a[i + 1]) for i in range(0, len(a) - 1, 2))
    if cmd == "ARG":
        out = []
        for arg in instr.args:
            k, sep, v = arg.partition("=")
            out.append((k, v if sep else None))
        return tuple(out)
    raise ValueError(f"key_values: {cmd} has no key/value arguments")


_FLAG_EXPANDED = {
    "ADD": ("chown", "chmod", "checksum"),
    "COPY": ("chown", "chmod", "from"),
    "FROM": ("platform",),
    "RUN": ("mount",),
}


def _expand_mount(value: str, env: Mapping[str, str], escape: str) -> str:
    # BuildKit expands each field of a --mount option separately (csv key=value fields)
    parts = value.split(",")
    return ",".join(expand_word(p, env, escape=escape) for p in parts)


def expand_instruction(instr, env: Mapping[str, str], *, escape: str = "\\"):
    """A copy of ``instr`` with variables expanded where Docker expands them.

    ``env`` is the build environment at this step (ENV values, then ARG values in scope;
    for FROM: the meta ARGs). Instructions outside :data:`EXPANDED_COMMANDS` keep their
    arguments (RUN only has its ``--mount`` option values expanded, as in BuildKit).
    Heredocs of COPY/ADD marked ``expand`` are expanded too. Raises ExpansionError.
    """
    cmd = instr.cmd
    flags = instr.flags
    names = _FLAG_EXPANDED.get(cmd, ())
    if names:
        new_flags = []
        for k, v in flags:
            if k in names and v is not None:
                v = (_expand_mount(v, env, escape) if k == "mount"
                     else expand_word(v, env, escape=escape))
            new_flags.append((k, v))
        flags = tuple(new_flags)
    if cmd not in EXPANDED_COMMANDS:
        return dataclasses.replace(instr, flags=flags) if flags != instr.flags else instr

    def w(s: str) -> str:
        return expand_word(s, env, escape=escape)

    args = instr.args
    heredocs = instr.heredocs
    if cmd == "ARG":
        out = []
        for k, v in key_values(instr):
            k = w(k)
            out.append(k if v is None else f"{k}={w(v)}")
        args = tuple(out)
    elif cmd == "EXPOSE":
        args = tuple(p for a in args for p in expand_words(a, env, escape=escape))
    elif cmd in ("ADD", "COPY") and heredocs:
        from lamina.dockerfile.parser import heredoc_name  # local: parser imports us
        names_in_args = set()
        new_args = []
        for a in args:
            h = heredoc_name(a)
            if h is not None:
                names_in_args.add(h)
                new_args.append(a)
            else:
                new_args.append(w(a))
        args = tuple(new_args)
        heredocs = tuple(
            dataclasses.replace(h, content=w(h.content)) if h.expand else h
            for h in heredocs)
    else:
        args = tuple(w(a) for a in args)
    return dataclasses.replace(instr, args=args, flags=flags, heredocs=heredocs)
