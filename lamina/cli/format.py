"""Output formatting the way Docker's CLI does it: ``--format`` templates, tables, human units.

Pure functions and immutable values; no I/O. Standard library only, and nothing heavier than
``collections.abc`` is imported at module load (``re``, ``json``, ``unicodedata`` and
``urllib.parse`` are imported on first use), so ``lamina --help`` stays fast.

Templates
    :func:`compile_template` parses the subset of Go's ``text/template`` that Docker exposes:
    actions, pipelines (``|``), parentheses, variables (``$x := ...``, ``$x = ...``), ``if`` /
    ``else if`` / ``else``, ``range`` (with ``$i, $v :=``, ``else``, ``break``, ``continue``),
    ``with`` / ``else with``, ``define`` / ``template`` / ``block``, comments, ``{{-`` / ``-}}``
    trimming, string / raw-string / number / char / bool / nil literals, Go's builtin functions
    (and call html index slice js len not or print printf println urlquery eq ne lt le gt ge) and
    Docker's (json split join title lower upper pad truncate). The lexer and parser are a port of
    Go's ``text/template/parse``, so errors read exactly like Docker's::

        template parsing error: template: :1: unexpected "}" in operand
        template parsing error: template: :1:2: executing "" at <.Foo.Bar>: can't evaluate field Bar in type string

    Templates run against plain Python data, where dict keys play the role of Go field names
    (``{"Repository": ..., "Config": {"Labels": {...}}}``). Objects work too: ``.Name`` reads an
    attribute and calls it if it is a method, like a Go method on a struct.

    Value model (how Python values stand in for Go's reflect values):

    * a dict is a Go map: a missing key is Go's invalid value, which prints ``<no value>``, is
      false and ranges empty (``render(..., missingkey="error")`` makes it an error instead);
      JSON sorts its keys;
    * a :class:`GoStruct` is a Go struct: reading a field it lacks is an error, JSON keeps the
      field order, callable fields are methods. ``format_table`` reads dict rows this way,
      because Docker's rows are structs;
    * ``None`` is a nil ``interface{}``: it prints ``<no value>`` at top level, ``<nil>`` inside
      a list or map, JSON-encodes as ``null``. Field access *through* ``None``
      (``.Config.Labels.foo`` when Labels is None) yields ``<no value>``, which is what Docker
      shows for its typed nil maps (with ``missingkey="error"`` it is Go's "nil pointer
      evaluating interface {}.foo", as in Docker's raw-JSON fallback);
    * :data:`NIL_SLICE` / :data:`NIL_MAP` are typed nils: they behave like ``[]`` / ``{}`` (print
      ``[]`` / ``map[]``) but JSON-encode as ``null``, like the nil slices and maps of Docker's
      typed inspect values (``docker inspect -f '{{.Config.Env}}'`` prints ``[]``);
    * lists print as ``[a b]``, dicts as ``map[a:1 b:2]`` (sorted keys), bools as ``true`` /
      ``false``, floats like Go's ``%v`` (``1e+06``);
    * ``index`` on a dict whose values are all strings (or on None / NIL_MAP, Docker's nil
      ``Labels``) returns ``""`` for a missing key, the zero value of ``map[string]string``;
      on other dicts it returns ``<no value>``.

    Checked side by side against Docker 28.2.2 (Go 1.24): 104 ``docker inspect -f`` templates
    over a real image render identically when the image is given as GoStructs with typed nils,
    except ``%T`` of typed slices (``[]string`` in Docker, ``[]interface {}`` here).

Tables
    :func:`format_table` does what docker/cli's ``formatter.Context`` does: a ``table`` prefix
    selects a header row plus tabwriter alignment (``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``,
    cell width measured in terminal columns like docker's go-runewidth fork), ``json`` means
    ``{{json .}}``, and the two-character sequences ``\\t`` and ``\\n`` in a format become a tab and
    a newline.

Units
    :func:`human_size`, :func:`bytes_size`, :func:`human_duration`, :func:`ago` and
    :func:`parse_size` reproduce docker/go-units v0.5.0, the release Docker ships
    (HumanSizeWithPrecision, BytesSize, HumanDuration, RAMInBytes / FromHumanSize).
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidArgument

__all__ = [
    "GoStruct",
    "NIL_MAP",
    "NIL_SLICE",
    "Template",
    "TemplateError",
    "ago",
    "bytes_size",
    "compile_template",
    "derive_header",
    "format_table",
    "go_sprint",
    "human_duration",
    "human_size",
    "json_marshal",
    "parse_size",
    "prepare_format",
    "tabwrite",
]


class TemplateError(InvalidArgument):
    """A ``--format`` template failed to parse or to execute.

    The message is Docker's: ``template parsing error: template: <name>:<line>[:<col>]: ...``.
    """


# ----------------------------------------------------------------------------------------------
# Typed nils and sentinels


class _Missing:
    """Go's invalid reflect.Value: the result of reading a key that is not there."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class _NoFinal:
    """No value is piped into this command (Go's ``missingVal``)."""

    __slots__ = ()


_NO_FINAL = _NoFinal()


class NilSlice(tuple):
    """An empty, immutable sequence that stands for Go's nil slice (JSON ``null``, prints ``[]``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_SLICE"


class NilMap(Mapping):
    """An empty, immutable mapping that stands for Go's nil map (JSON ``null``, prints ``map[]``)."""

    __slots__ = ()

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NIL_MAP"


NIL_SLICE = NilSlice()
NIL_MAP = NilMap()


class GoStruct:
    """A Go struct value: named fields in declaration order (an immutable record).

    Where a plain dict behaves like a Go map (a missing key reads as ``<no value>``, JSON keys
    sorted), a GoStruct behaves like the typed values Docker formats: reading a field it does
    not have is an error (``can't evaluate field Nope in type <type_name>``), JSON keeps the
    field order, ``{{.}}`` prints ``{v1 v2 ...}``. A callable field is a method: it is called,
    with any template arguments (``{{.Label "com.example"}}``), when read.
    """

    __slots__ = ("_fields", "_type_name")

    def __init__(self, fields=(), /, type_name: str = "struct", **kwargs) -> None:
        d = dict(fields)
        d.update(kwargs)
        object.__setattr__(self, "_fields", d)
        object.__setattr__(self, "_type_name", type_name)

    def __setattr__(self, key, value):
        raise AttributeError("GoStruct is immutable")

    @property
    def type_name(self) -> str:
        return self._type_name

    def __getitem__(self, name: str):
        return self._fields[name]

    def __contains__(self, name) -> bool:
        return name in self._fields

    def get(self, name: str, default=None):
        return self._fields.get(name, default)

    def items(self):
        return self._fields.items()

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other) -> bool:
        return isinstance(other, GoStruct) and (self._type_name, self._fields) == (other._type_name, other._fields)

    __hash__ = None

    def __repr__(self) -> str:
        return "GoStruct(%r, type_name=%r)" % (self._fields, self._type_name)

    def __str__(self) -> str:
        return "{" + " ".join(go_sprint(v) for v in self._fields.values()) + "}"


# ----------------------------------------------------------------------------------------------
# Small Go-compatible string helpers


def _go_is_print(c: str) -> bool:
    return c == " " or c.isprintable()


def _go_quote(s: str, *, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif o < 0x80 and " " <= c <= "~":
            out.append(c)
        elif o >= 0x80 and _go_is_print(c) and not ascii_only and not 0xD800 <= o <= 0xDFFF:
            out.append(c)
        elif c in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[c])
        elif o < 0x80:
            out.append("\\x%02x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_U(c: str) -> str:
    """fmt's %#U: ``U+007D '}'``."""
    if not c:
        return "U+FFFFFFFFFFFFFFFF"  # Go formats eof (-1) this way; unreachable in practice
    if _go_is_print(c):
        return "U+%04X '%s'" % (ord(c), c)
    return "U+%04X" % ord(c)


class _SyntaxError(Exception):
    pass


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def _go_unquote_body(body: str, quote: str) -> str:
    out = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == quote or c == "\n":
            raise _SyntaxError("invalid syntax")
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise _SyntaxError("invalid syntax")
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e == quote:
            out.append(e)
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i : i + size]
            if len(digits) != size or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise _SyntaxError("invalid syntax")
            v = int(digits, 16)
            i += size
            if e == "x":
                if quote == "'":
                    out.append(chr(v))
                else:
                    out.append(bytes([v]).decode("latin-1") if v < 0x80 else "\ufffd")
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise _SyntaxError("invalid syntax")
                out.append(chr(v))
        elif e in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                raise _SyntaxError("invalid syntax")
            v = int(digits, 8)
            if v > 255:
                raise _SyntaxError("invalid syntax")
            i += 2
            out.append(chr(v) if v < 0x80 or quote == "'" else "\ufffd")
        else:
            raise _SyntaxError("invalid syntax")
    return "".join(out)


def _go_unquote(s: str) -> str:
    """strconv.Unquote for "..." and `...` literals."""
    if len(s) < 2 or s[0] != s[-1]:
        raise _SyntaxError("invalid syntax")
    q = s[0]
    if q == "`":
        body = s[1:-1]
        if "`" in body:
            raise _SyntaxError("invalid syntax")
        return body.replace("\r", "")
    if q == '"':
        return _go_unquote_body(s[1:-1], '"')
    raise _SyntaxError("invalid syntax")


# ----------------------------------------------------------------------------------------------
# Lexer: a port of Go's text/template/parse/lex.go (Go 1.23)

(
    _ERROR,
    _BOOL,
    _CHAR,
    _CHAR_CONSTANT,
    _COMMENT,
    _COMPLEX,
    _ASSIGN,
    _DECLARE,
    _EOF,
    _FIELD,
    _IDENTIFIER,
    _LEFT_DELIM,
    _LEFT_PAREN,
    _NUMBER,
    _PIPE,
    _RAW_STRING,
    _RIGHT_DELIM,
    _RIGHT_PAREN,
    _SPACE,
    _STRING,
    _TEXT,
    _VARIABLE,
    _KEYWORD,
    _BLOCK,
    _BREAK,
    _CONTINUE,
    _DOT,
    _DEFINE,
    _ELSE,
    _END,
    _IF,
    _NIL,
    _RANGE,
    _TEMPLATE,
    _WITH,
) = range(35)

_KEYWORDS = {
    ".": _DOT,
    "block": _BLOCK,
    "break": _BREAK,
    "continue": _CONTINUE,
    "define": _DEFINE,
    "else": _ELSE,
    "end": _END,
    "if": _IF,
    "range": _RANGE,
    "nil": _NIL,
    "template": _TEMPLATE,
    "with": _WITH,
}

_SPACES = " \t\r\n"


def _is_space(c: str) -> bool:
    return c != "" and c in _SPACES


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


class _Item:
    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.line = line

    def __str__(self) -> str:
        if self.typ == _EOF:
            return "EOF"
        if self.typ == _ERROR:
            return self.val
        if self.typ > _KEYWORD:
            return "<%s>" % self.val
        if len(self.val.encode("utf-8", "surrogatepass")) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _has_left_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and s[i] == "-" and s[i + 1] in _SPACES


def _has_right_trim(s: str, i: int) -> bool:
    return i >= 0 and len(s) - i >= 2 and s[i] in _SPACES and s[i + 1] == "-"


def _left_trim_length(s: str, i: int) -> int:
    j = i
    while j < len(s) and s[j] in _SPACES:
        j += 1
    return j - i


class _Lexer:
    """State machine over the template text; ``next_item`` returns one token at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.inside_action = False
        self.item: _Item | None = None
        self._line_idx = 0
        self._line_no = 1

    def line_at(self, idx: int) -> int:
        if idx < self._line_idx:
            self._line_idx, self._line_no = 0, 1
        self._line_no += self.text.count("\n", self._line_idx, idx)
        self._line_idx = idx
        return self._line_no

    # primitive moves
    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return ""
        c = self.input[self.pos]
        self.pos += 1
        return c

    def peek(self) -> str:
        c = self.next()
        self.backup()
        return c

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1

    def this_item(self, typ: int) -> _Item:
        it = _Item(typ, self.start, self.input[self.start : self.pos], self.line_at(self.start))
        self.start = self.pos
        return it

    def emit(self, typ: int):
        self.item = self.this_item(typ)
        return None

    def emit_item(self, it: _Item):
        self.item = it
        return None

    def ignore(self) -> None:
        self.start = self.pos

    def accept(self, valid: str) -> bool:
        c = self.next()
        if c and c in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            c = self.next()
            if not (c and c in valid):
                break
        self.backup()

    def errorf(self, msg: str):
        self.item = _Item(_ERROR, self.start, msg, self.line_at(self.start))
        self.start = 0
        self.pos = 0
        self.input = ""
        return None

    def next_item(self) -> _Item:
        self.item = _Item(_EOF, self.pos, "EOF", self.line_at(self.start))
        state = self.lex_inside_action if self.inside_action else self.lex_text
        while state is not None:
            state = state()
        return self.item

    # states
    def lex_text(self):
        inp = self.input
        x = inp.find("{{", self.pos)
        if x >= 0:
            if x > self.pos:
                self.pos = x
                trim = 0
                if _has_left_trim(inp, x + 2):
                    seg = inp[self.start : x]
                    trim = len(seg) - len(seg.rstrip(_SPACES))
                self.pos -= trim
                it = self.this_item(_TEXT)
                self.pos += trim
                self.ignore()
                if it.val:
                    return self.emit_item(it)
            return self.lex_left_delim
        self.pos = len(inp)
        if self.pos > self.start:
            return self.emit(_TEXT)
        return self.emit(_EOF)

    def at_right_delim(self) -> tuple[bool, bool]:
        inp, p = self.input, self.pos
        if _has_right_trim(inp, p) and inp.startswith("}}", p + 2):
            return True, True
        if inp.startswith("}}", p):
            return True, False
        return False, False

    def lex_left_delim(self):
        self.pos += 2
        trim = _has_left_trim(self.input, self.pos)
        after = 2 if trim else 0
        if self.input.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        it = self.this_item(_LEFT_DELIM)
        self.inside_action = True
        self.pos += after
        self.ignore()
        self.paren_depth = 0
        return self.emit_item(it)

    def lex_comment(self):
        self.pos += 2
        x = self.input.find("*/", self.pos)
        if x < 0:
            return self.errorf("unclosed comment")
        self.pos = x + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        self.this_item(_COMMENT)  # comments are not kept in the tree
        if trim:
            self.pos += 2
        self.pos += 2
        if trim:
            self.pos += _left_trim_length(self.input, self.pos)
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += 2
        it = self.this_item(_RIGHT_DELIM)
        if trim:
            self.pos += _left_trim_length(self.input, self.pos)
            self.ignore()
        self.inside_action = False
        return self.emit_item(it)

    def lex_inside_action(self):
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        r = self.next()
        if r == "":
            return self.errorf("unclosed action")
        if r in _SPACES:
            self.backup()  # put the space back in case we have " -}}"
            return self.lex_space
        if r == "=":
            return self.emit(_ASSIGN)
        if r == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            return self.emit(_DECLARE)
        if r == "|":
            return self.emit(_PIPE)
        if r == '"':
            return self.lex_quote
        if r == "`":
            return self.lex_raw_quote
        if r == "$":
            return self.lex_variable
        if r == "'":
            return self.lex_char
        if r == ".":
            if self.pos < len(self.input):
                c = self.input[self.pos]
                if not "0" <= c <= "9":
                    return self.lex_field
            self.backup()  # '.' can start a number
            return self.lex_number
        if r in "+-" or "0" <= r <= "9":
            self.backup()
            return self.lex_number
        if _is_alnum(r):
            self.backup()
            return self.lex_identifier
        if r == "(":
            self.paren_depth += 1
            return self.emit(_LEFT_PAREN)
        if r == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf("unexpected right paren")
            return self.emit(_RIGHT_PAREN)
        if " " <= r <= "~":
            return self.emit(_CHAR)
        return self.errorf("unrecognized character in action: %s" % _go_U(r))

    def lex_space(self):
        num = 0
        while True:
            if not _is_space(self.peek()):
                break
            self.next()
            num += 1
        if _has_right_trim(self.input, self.pos - 1) and self.input.startswith("}}", self.pos + 1):
            self.backup()  # before the space
            if num == 1:
                return self.lex_right_delim
        return self.emit(_SPACE)

    def lex_identifier(self):
        while True:
            r = self.next()
            if _is_alnum(r):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                return self.errorf("bad character %s" % _go_U(r))
            kw = _KEYWORDS.get(word)
            if kw is not None:
                return self.emit(kw)
            if word[0] == ".":
                return self.emit(_FIELD)
            if word in ("true", "false"):
                return self.emit(_BOOL)
            return self.emit(_IDENTIFIER)

    def lex_field(self):
        return self.lex_field_or_variable(_FIELD)

    def lex_variable(self):
        if self.at_terminator():
            return self.emit(_VARIABLE)
        return self.lex_field_or_variable(_VARIABLE)

    def lex_field_or_variable(self, typ: int):
        if self.at_terminator():
            return self.emit(_VARIABLE if typ == _VARIABLE else _DOT)
        while True:
            r = self.next()
            if not _is_alnum(r):
                self.backup()
                break
        if not self.at_terminator():
            return self.errorf("bad character %s" % _go_U(r))
        return self.emit(typ)

    def at_terminator(self) -> bool:
        r = self.peek()
        if r == "" or r in _SPACES or r in ".,|:)(":
            return True
        return self.input.startswith("}}", self.pos)

    def lex_char(self):
        while True:
            r = self.next()
            if r == "\\":
                r2 = self.next()
                if r2 != "" and r2 != "\n":
                    continue
                return self.errorf("unterminated character constant")
            if r == "" or r == "\n":
                return self.errorf("unterminated character constant")
            if r == "'":
                break
        return self.emit(_CHAR_CONSTANT)

    def lex_number(self):
        if not self.scan_number():
            return self.errorf("bad number syntax: %s" % _go_quote(self.input[self.start : self.pos]))
        sign = self.peek()
        if sign and sign in "+-":
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf("bad number syntax: %s" % _go_quote(self.input[self.start : self.pos]))
            return self.emit(_COMPLEX)
        return self.emit(_NUMBER)

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if _is_alnum(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self):
        while True:
            r = self.next()
            if r == "\\":
                r2 = self.next()
                if r2 != "" and r2 != "\n":
                    continue
                return self.errorf("unterminated quoted string")
            if r == "" or r == "\n":
                return self.errorf("unterminated quoted string")
            if r == '"':
                break
        return self.emit(_STRING)

    def lex_raw_quote(self):
        while True:
            r = self.next()
            if r == "":
                return self.errorf("unterminated raw quoted string")
            if r == "`":
                break
        return self.emit(_RAW_STRING)


# ----------------------------------------------------------------------------------------------
# Parse tree (text/template/parse/node.go); str() of a node is Go's Node.String()


class _Node:
    __slots__ = ("pos",)


class _ListNode(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos, nodes=None):
        self.pos = pos
        self.nodes = nodes if nodes is not None else []

    def __str__(self):
        return "".join(str(n) for n in self.nodes)


class _TextNode(_Node):
    __slots__ = ("text",)

    def __init__(self, pos, text):
        self.pos = pos
        self.text = text

    def __str__(self):
        return self.text


class _PipeNode(_Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line
        self.is_assign = False
        self.decl: list[_VariableNode] = []
        self.cmds: list[_CommandNode] = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _ActionNode(_Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos, line, pipe):
        self.pos = pos
        self.line = line
        self.pipe = pipe

    def __str__(self):
        return "{{%s}}" % self.pipe


class _CommandNode(_Node):
    __slots__ = ("args",)

    def __init__(self, pos):
        self.pos = pos
        self.args: list[_Node] = []

    def __str__(self):
        return " ".join(("(%s)" % a) if isinstance(a, _PipeNode) else str(a) for a in self.args)


class _IdentifierNode(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident

    def __str__(self):
        return self.ident


class _VariableNode(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos, name):
        self.pos = pos
        self.ident = name.split(".")

    def __str__(self):
        return ".".join(self.ident)


class _DotNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class _NilNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class _FieldNode(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos, name):
        self.pos = pos
        self.ident = name[1:].split(".")

    def __str__(self):
        return "".join("." + i for i in self.ident)


class _ChainNode(_Node):
    __slots__ = ("node", "field")

    def __init__(self, pos, node):
        self.pos = pos
        self.node = node
        self.field: list[str] = []

    def add(self, field):
        if not field or field[0] != ".":
            raise AssertionError("no dot in field")
        field = field[1:]
        if not field:
            raise AssertionError("empty field")
        self.field.append(field)

    def __str__(self):
        s = ("(%s)" % self.node) if isinstance(self.node, _PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.field)


class _BoolNode(_Node):
    __slots__ = ("true",)

    def __init__(self, pos, true):
        self.pos = pos
        self.true = true

    def __str__(self):
        return "true" if self.true else "false"


class _NumberNode(_Node):
    __slots__ = ("text", "value", "is_int")

    def __init__(self, pos, text, value, is_int):
        self.pos = pos
        self.text = text
        self.value = value
        self.is_int = is_int

    def __str__(self):
        return self.text


class _StringNode(_Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos, quoted, text):
        self.pos = pos
        self.quoted = quoted
        self.text = text

    def __str__(self):
        return self.quoted


class _EndNode(_Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{end}}"


class _ElseNode(_Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{else}}"


class _BranchNode(_Node):
    __slots__ = ("line", "pipe", "list", "else_list")
    keyword = ""

    def __init__(self, pos, line, pipe, lst, else_list):
        self.pos = pos
        self.line = line
        self.pipe = pipe
        self.list = lst
        self.else_list = else_list

    def __str__(self):
        s = "{{%s %s}}%s" % (self.keyword, self.pipe, self.list)
        if self.else_list is not None:
            s += "{{else}}%s" % self.else_list
        return s + "{{end}}"


class _IfNode(_BranchNode):
    __slots__ = ()
    keyword = "if"


class _RangeNode(_BranchNode):
    __slots__ = ()
    keyword = "range"


class _WithNode(_BranchNode):
    __slots__ = ()
    keyword = "with"


class _BreakNode(_Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{break}}"


class _ContinueNode(_Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{continue}}"


class _TemplateNode(_Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos, line, name, pipe):
        self.pos = pos
        self.line = line
        self.name = name
        self.pipe = pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % _go_quote(self.name)
        return "{{template %s %s}}" % (_go_quote(self.name), self.pipe)


def _is_empty_tree(n) -> bool:
    if n is None:
        return True
    if isinstance(n, _ListNode):
        return all(_is_empty_tree(c) for c in n.nodes)
    if isinstance(n, _TextNode):
        return not n.text.strip()
    return False


def _parse_number(text: str, typ: int) -> tuple[object, bool]:
    """Go's parse.newNumber reduced to what templates need: ``(value, is_int)``.

    The value's Python type follows Go's idealConstant: a literal with ``.``/``e``/``p`` is a
    float64, ``i`` makes it complex, anything else is an int.
    """
    if typ == _CHAR_CONSTANT:
        try:
            s = _go_unquote_body(text[1:-1], "'")
        except _SyntaxError:
            s = ""
        if len(s) != 1:
            raise _SyntaxError("malformed character constant: %s" % text)
        return ord(s), True
    illegal = _SyntaxError("illegal number syntax: %s" % _go_quote(text))
    if typ == _COMPLEX or text.endswith("i"):
        try:
            return complex(text.replace("_", "").replace("i", "j")), False
        except ValueError:
            raise illegal from None
    try:
        return int(text, 0), True
    except ValueError:
        pass
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and all(c in "01234567_" for c in body):
        return int(text.replace("_", ""), 8), True  # Go's legacy octal: 017 == 15
    try:
        if body[:2].lower() == "0x":
            f = float.fromhex(text.replace("_", ""))
        elif body.startswith("_") or body.endswith("_") or "__" in body:
            raise ValueError(text)
        else:
            f = float(text)
    except (ValueError, OverflowError):
        raise illegal from None
    integral = f == f and abs(f) != float("inf") and f == int(f)
    if any(c in text for c in ".eEpP") and not (body[:2].lower() == "0x" and "p" not in body.lower()):
        return f, integral
    return int(f), True


# ----------------------------------------------------------------------------------------------
# Parser: a port of Go's text/template/parse/parse.go


class _ParseError(Exception):
    pass


class _Parser:
    def __init__(self, name: str, parse_name: str, text: str, lex: _Lexer, tree_set: dict) -> None:
        self.name = name
        self.parse_name = parse_name
        self.text = text
        self.lex = lex
        self.tree_set = tree_set
        self.token: list[_Item | None] = [None, None, None]
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.stack_depth = 0

    # token stream
    def next(self) -> _Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: _Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: _Item, t1: _Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> _Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self) -> _Item:
        while True:
            t = self.next()
            if t.typ != _SPACE:
                return t

    def peek_non_space(self) -> _Item:
        t = self.next_non_space()
        self.backup()
        return t

    # errors
    def errorf(self, msg: str):
        line = self.token[0].line if self.token[0] is not None else 1
        raise _ParseError("template: %s:%d: %s" % (self.parse_name, line, msg))

    def expect(self, expected: int, context: str) -> _Item:
        t = self.next_non_space()
        if t.typ != expected:
            self.unexpected(t, context)
        return t

    def expect_one_of(self, e1: int, e2: int, context: str) -> _Item:
        t = self.next_non_space()
        if t.typ != e1 and t.typ != e2:
            self.unexpected(t, context)
        return t

    def unexpected(self, token: _Item, context: str):
        if token.typ == _ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = " in action started at %s:%d" % (self.parse_name, self.action_line)
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf("%s%s" % (token, extra))
        self.errorf("unexpected %s in %s" % (token, context))

    # top level
    def parse(self) -> _ListNode:
        root = _ListNode(self.peek().pos)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == _DEFINE:
                    sub = _Parser("definition", self.parse_name, self.text, self.lex, self.tree_set)
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                self.errorf("unexpected %s" % n)
            root.nodes.append(n)
        self.add(self.name, root)
        return root

    def add(self, name: str, root: _ListNode) -> None:
        old = self.tree_set.get(name)
        if old is None or _is_empty_tree(old):
            self.tree_set[name] = root
            return
        if not _is_empty_tree(root):
            self.errorf("template: multiple definition of template %s" % _go_quote(name))

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(_STRING, _RAW_STRING, context)
        try:
            self.name = _go_unquote(name.val)
        except _SyntaxError as e:
            self.errorf(str(e))
        self.expect(_RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, _EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add(self.name, root)

    def item_list(self):
        lst = _ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != _EOF:
            n = self.text_or_action()
            if isinstance(n, (_EndNode, _ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        token = self.next_non_space()
        if token.typ == _TEXT:
            return _TextNode(token.pos, token.val)
        if token.typ == _LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(token, "input")

    def action(self):
        token = self.next_non_space()
        typ = token.typ
        if typ == _BLOCK:
            return self.block_control()
        if typ == _BREAK:
            return self.break_control(token.pos, token.line)
        if typ == _CONTINUE:
            return self.continue_control(token.pos, token.line)
        if typ == _ELSE:
            return self.else_control()
        if typ == _END:
            return self.end_control()
        if typ == _IF:
            return _IfNode(*self.parse_control("if"))
        if typ == _RANGE:
            return _RangeNode(*self.parse_control("range"))
        if typ == _TEMPLATE:
            return self.template_control()
        if typ == _WITH:
            return _WithNode(*self.parse_control("with"))
        self.backup()
        token = self.peek()
        return _ActionNode(token.pos, token.line, self.pipeline("command", _RIGHT_DELIM))

    def break_control(self, pos, line):
        token = self.next_non_space()
        if token.typ != _RIGHT_DELIM:
            self.unexpected(token, "{{break}}")
        if self.range_depth == 0:
            self.errorf("{{break}} outside {{range}}")
        return _BreakNode(pos, line)

    def continue_control(self, pos, line):
        token = self.next_non_space()
        if token.typ != _RIGHT_DELIM:
            self.unexpected(token, "{{continue}}")
        if self.range_depth == 0:
            self.errorf("{{continue}} outside {{range}}")
        return _ContinueNode(pos, line)

    def pipeline(self, context: str, end: int) -> _PipeNode:
        token = self.peek_non_space()
        pipe = _PipeNode(token.pos, token.line)
        while True:  # "decls:" label in Go
            v = self.peek_non_space()
            if v.typ == _VARIABLE:
                self.next()
                token_after = self.peek()
                nxt = self.peek_non_space()
                if nxt.typ in (_ASSIGN, _DECLARE):
                    pipe.is_assign = nxt.typ == _ASSIGN
                    self.next_non_space()
                    pipe.decl.append(_VariableNode(v.pos, v.val))
                    self.vars.append(v.val)
                elif nxt.typ == _CHAR and nxt.val == ",":
                    self.next_non_space()
                    pipe.decl.append(_VariableNode(v.pos, v.val))
                    self.vars.append(v.val)
                    if context == "range" and len(pipe.decl) < 2:
                        if self.peek_non_space().typ in (_VARIABLE, _RIGHT_DELIM, _RIGHT_PAREN):
                            continue  # second initialized variable in a range pipeline
                        self.errorf("range can only initialize variables")
                    self.errorf("too many declarations in %s" % context)
                elif token_after.typ == _SPACE:
                    self.backup3(v, token_after)
                else:
                    self.backup2(v)
            break
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (
                _BOOL,
                _CHAR_CONSTANT,
                _COMPLEX,
                _DOT,
                _FIELD,
                _IDENTIFIER,
                _NUMBER,
                _NIL,
                _RAW_STRING,
                _STRING,
                _VARIABLE,
                _LEFT_PAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def check_pipeline(self, pipe: _PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf("missing value for %s" % context)
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_BoolNode, _DotNode, _NilNode, _NumberNode, _StringNode)):
                self.errorf("non executable command in pipeline stage %d" % (i + 2))

    def parse_control(self, context: str):
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, _RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _ElseNode):
                if context == "if" and self.peek().typ == _IF:
                    self.next()
                    else_list = _ListNode(nxt.pos, [_IfNode(*self.parse_control("if"))])
                elif context == "with" and self.peek().typ == _WITH:
                    self.next()
                    else_list = _ListNode(nxt.pos, [_WithNode(*self.parse_control("with"))])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _EndNode):
                        self.errorf("expected end; found %s" % nxt)
            return pipe.pos, pipe.line, pipe, lst, else_list
        finally:
            del self.vars[mark:]

    def end_control(self):
        return _EndNode(self.expect(_RIGHT_DELIM, "end").pos)

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in (_IF, _WITH):
            return _ElseNode(peek.pos, peek.line)
        token = self.expect(_RIGHT_DELIM, "else")
        return _ElseNode(token.pos, token.line)

    def block_control(self):
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, _RIGHT_DELIM)
        block = _Parser(name, self.parse_name, self.text, self.lex, self.tree_set)
        root, end = block.item_list()
        if not isinstance(end, _EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        block.add(name, root)
        return _TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self):
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = None
        if self.next_non_space().typ != _RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, _RIGHT_DELIM)
        return _TemplateNode(token.pos, token.line, name, pipe)

    def parse_template_name(self, token: _Item, context: str) -> str:
        if token.typ in (_STRING, _RAW_STRING):
            try:
                return _go_unquote(token.val)
            except _SyntaxError as e:
                self.errorf(str(e))
        self.unexpected(token, context)

    def command(self) -> _CommandNode:
        cmd = _CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()  # skip leading spaces
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == _SPACE:
                continue
            if token.typ in (_RIGHT_DELIM, _RIGHT_PAREN):
                self.backup()
            elif token.typ == _PIPE:
                pass
            else:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == _FIELD:
            chain = _ChainNode(self.peek().pos, node)
            while self.peek().typ == _FIELD:
                chain.add(self.next().val)
            if isinstance(node, _FieldNode):
                node = _FieldNode(chain.pos, str(chain))
            elif isinstance(node, _VariableNode):
                node = _VariableNode(chain.pos, str(chain))
            elif isinstance(node, (_BoolNode, _StringNode, _NumberNode, _NilNode, _DotNode)):
                self.errorf("unexpected . after term %s" % _go_quote(str(node)))
            else:
                node = chain
        return node

    def term(self):
        token = self.next_non_space()
        typ = token.typ
        if typ == _IDENTIFIER:
            if token.val not in _FUNCS:
                self.errorf("function %s not defined" % _go_quote(token.val))
            return _IdentifierNode(token.pos, token.val)
        if typ == _DOT:
            return _DotNode(token.pos)
        if typ == _NIL:
            return _NilNode(token.pos)
        if typ == _VARIABLE:
            return self.use_var(token.pos, token.val)
        if typ == _FIELD:
            return _FieldNode(token.pos, token.val)
        if typ == _BOOL:
            return _BoolNode(token.pos, token.val == "true")
        if typ in (_CHAR_CONSTANT, _COMPLEX, _NUMBER):
            try:
                value, is_int = _parse_number(token.val, typ)
            except _SyntaxError as e:
                self.errorf(str(e))
            return _NumberNode(token.pos, token.val, value, is_int)
        if typ == _LEFT_PAREN:
            if self.stack_depth >= 1000:
                self.errorf("max expression depth exceeded")
            self.stack_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", _RIGHT_PAREN)
            finally:
                self.stack_depth -= 1
        if typ in (_STRING, _RAW_STRING):
            try:
                s = _go_unquote(token.val)
            except _SyntaxError as e:
                self.errorf(str(e))
            return _StringNode(token.pos, token.val, s)
        self.backup()
        return None

    def use_var(self, pos: int, name: str):
        v = _VariableNode(pos, name)
        if v.ident[0] in self.vars:
            return v
        self.errorf("undefined variable %s" % _go_quote(v.ident[0]))


# ----------------------------------------------------------------------------------------------
# Go's fmt: %v printing, Sprint, Sprintln, Sprintf (the common verbs)


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest decimal digits of abs(f) and the decimal point position: 0.DIGITS x 10**dp."""
    r = repr(abs(f))
    if "e" in r:
        m, e = r.split("e")
        exp = int(e)
    else:
        m, exp = r, 0
    ip, _, fp = m.partition(".")
    digits = ip + fp
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "", 0
    return digits, dp


def _fmt_e(digits: str, dp: int, prec: int, e: str = "e") -> str:
    first = digits[:1] or "0"
    s = first
    if prec > 0:
        s += "." + digits[1 : 1 + prec].ljust(prec, "0")
    exp = dp - 1 if digits else 0
    return "%s%s%s%02d" % (s, e, "-" if exp < 0 else "+", abs(exp))


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    if dp > 0:
        ip = digits[:dp].ljust(dp, "0")
    else:
        ip = "0"
    if prec <= 0:
        return ip
    frac = "".join(digits[dp + i] if 0 <= dp + i < len(digits) else "0" for i in range(prec))
    return ip + "." + frac


def _go_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(f, verb, prec, 64) for the verbs g/G/e/E/f/F."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    neg = str(f).startswith("-")
    sign = "-" if neg else ""
    if prec >= 0:
        # Explicit precision: C's printf agrees with Go's strconv here.
        v = verb if verb != "F" else "f"
        s = ("%." + str(prec) + v) % abs(f)
        return sign + s
    digits, dp = _float_digits(f)
    nd = len(digits)
    if verb in "eE":
        return sign + _fmt_e(digits, dp, max(nd - 1, 0), verb)
    if verb in "fF":
        return sign + _fmt_f(digits, dp, max(nd - dp, 0))
    exp = dp - 1
    if digits and (exp < -4 or exp >= 6):
        return sign + _fmt_e(digits, dp, max(nd - 1, 0), "e" if verb == "g" else "E")
    return sign + _fmt_f(digits, dp, max(nd - dp, 0))


def _go_complex(c: complex) -> str:
    im = _go_float(c.imag)
    if not im.startswith(("-", "+")):
        im = "+" + im
    return "(%s%si)" % (_go_float(c.real), im)


def _sorted_keys(m) -> list:
    def key(k):
        if isinstance(k, bool):
            return (0, int(k), "")
        if isinstance(k, (int, float)):
            return (1, k, "")
        if isinstance(k, str):
            return (2, 0, k)
        return (3, 0, str(k))

    return sorted(m, key=key)


def go_sprint(value) -> str:
    """Go's ``fmt.Sprint(value)`` (the ``%v`` verb) for Python data."""
    if value is None or value is MISSING:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, complex):
        return _go_complex(value)
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join("%s:%s" % (go_sprint(k), go_sprint(value[k])) for k in _sorted_keys(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def _sprint(args) -> str:
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(go_sprint(a))
        prev_string = is_string
    return "".join(out)


def _sprintln(args) -> str:
    return " ".join(go_sprint(a) for a in args) + "\n"


def _go_type(v) -> str:
    """The Go type name Docker would show for a value of this Python type."""
    if isinstance(v, GoStruct):
        return v.type_name
    if v is None or v is MISSING:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, str):
        return "string"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if callable(v) and not isinstance(v, type):
        return "func()"
    return type(v).__name__


def _pad(s: str, width, minus: bool, zero: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if minus:
        return s.ljust(width)
    if zero:
        sign = s[:1] if s[:1] in "+-" else ""
        return sign + s[len(sign) :].rjust(width - len(sign), "0")
    return s.rjust(width)


def _bad_verb(verb: str, a) -> str:
    if a is None or a is MISSING:
        return "%%!%s(<nil>)" % verb
    return "%%!%s(%s=%s)" % (verb, _go_type(a), go_sprint(a))


def _fmt_arg(verb: str, a, flags: str, width, prec) -> str:
    plus, minus, sharp, space, zero = ("+" in flags, "-" in flags, "#" in flags, " " in flags, "0" in flags)
    if verb == "T":
        return _pad(_go_type(a), width, minus)
    if a is None or a is MISSING:
        if verb == "v":
            return _pad("<nil>", width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, bool):
        if verb in "vt":
            return _pad("true" if a else "false", width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, int):
        n = int(a)
        if verb in "vd":
            s = str(abs(n))
        elif verb == "b":
            s = format(abs(n), "b")
        elif verb == "o":
            s = ("0" if sharp else "") + format(abs(n), "o")
        elif verb == "O":
            s = "0o" + format(abs(n), "o")
        elif verb == "x":
            s = ("0x" if sharp else "") + format(abs(n), "x")
        elif verb == "X":
            s = ("0X" if sharp else "") + format(abs(n), "X")
        elif verb == "c":
            return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", width, minus)
        elif verb == "q":
            return _pad("'%s'" % _go_quote(chr(n))[1:-1].replace("'", "\\'").replace('\\"', '"'), width, minus)
        elif verb == "U":
            return _pad("U+%04X" % n, width, minus)
        elif verb in "eEfFgG":
            return _bad_verb(verb, a)
        else:
            return _bad_verb(verb, a)
        if prec is not None and verb in "vdboxX":
            s = s.rjust(prec, "0")
        sign = "-" if n < 0 else ("+" if plus else (" " if space else ""))
        return _pad(sign + s, width, minus, zero and prec is None)
    if isinstance(a, float):
        if verb in "vgGeEfF":
            v = "g" if verb == "v" else verb
            p = -1 if prec is None and v in "gG" else (6 if prec is None else prec)
            s = _go_float(a, v, p)
            if plus and not s.startswith("-"):
                s = "+" + s
            elif space and not s.startswith("-"):
                s = " " + s
            return _pad(s, width, minus, zero)
        return _bad_verb(verb, a)
    if isinstance(a, str):
        if verb in "vs":
            s = a if prec is None else a[:prec]
            return _pad(s, width, minus)
        if verb == "q":
            s = a if prec is None else a[:prec]
            if sharp and "`" not in s and all(_go_is_print(c) or c == "\t" for c in s):
                return _pad("`" + s + "`", width, minus)
            return _pad(_go_quote(s, ascii_only=plus), width, minus)
        if verb in "xX":
            data = a.encode("utf-8", "surrogatepass")
            if prec is not None:
                data = data[:prec]
            fmt = "%02x" if verb == "x" else "%02X"
            sep = " " if space else ""
            pre = ("0x" if verb == "x" else "0X") if sharp else ""
            s = sep.join(pre + fmt % b for b in data) if space else pre + "".join(fmt % b for b in data)
            return _pad(s, width, minus)
        return _bad_verb(verb, a)
    if isinstance(a, Mapping):
        inner = " ".join(
            "%s:%s" % (_fmt_arg(verb, k, flags, width, prec), _fmt_arg(verb, a[k], flags, width, prec))
            for k in _sorted_keys(a)
        )
        return "map[" + inner + "]"
    if isinstance(a, (list, tuple)):
        return "[" + " ".join(_fmt_arg(verb, e, flags, width, prec) for e in a) + "]"
    if verb in "vs":
        return _pad(str(a), width, minus)
    return _bad_verb(verb, a)


def _sprintf(fmt: str, args) -> str:
    out = []
    i, n, argi = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1
        width = None
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            k = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > k:
                width = int(fmt[k:i])
        prec = None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    prec = max(args[argi], 0)
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                k = i
                while i < n and fmt[i].isdigit():
                    i += 1
                prec = int(fmt[k:i]) if i > k else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append("%%!%s(MISSING)" % verb)
            continue
        a = args[argi]
        argi += 1
        out.append(_fmt_arg(verb, a, flags, width, prec))
    if argi < len(args):
        extra = ", ".join(
            ("<nil>" if a is None or a is MISSING else "%s=%s" % (_go_type(a), go_sprint(a))) for a in args[argi:]
        )
        out.append("%!(EXTRA " + extra + ")")
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# JSON like Go's encoding/json


class _JSONError(Exception):
    pass


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise _JSONError("json: unsupported value: %s" % _go_float(f))
    neg = str(f).startswith("-")
    digits, dp = _float_digits(f)
    nd = len(digits)
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = _fmt_e(digits, dp, max(nd - 1, 0))
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
    else:
        s = _fmt_f(digits, dp, max(nd - dp, 0))
    return ("-" if neg else "") + s


def _json_str(s: str, escape_html: bool) -> str:
    import json

    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)
    out = json.dumps(s, ensure_ascii=False)
    if "\u2028" in out or "\u2029" in out:
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        out = out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return out


def _json_encode(v, out: list, escape_html: bool, depth: int = 0) -> None:
    if depth > 1000:
        raise _JSONError("json: unsupported value: encountered a cycle")
    if v is None or v is MISSING or isinstance(v, (NilSlice, NilMap)):
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(_json_str(v, escape_html))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, float):
        out.append(_json_float(v))
    elif isinstance(v, GoStruct):
        out.append("{")
        for i, (k, f) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append(_json_str(k, escape_html))
            out.append(":")
            if callable(f) and not isinstance(f, type):
                try:
                    f = f()
                except Exception as e:
                    raise _JSONError("json: error calling MarshalJSON for type %s: %s" % (v.type_name, e)) from None
            _json_encode(f, out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, Mapping):
        out.append("{")
        first = True
        for k in sorted(v, key=lambda k: k if isinstance(k, str) else go_sprint(k)):
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(k if isinstance(k, str) else go_sprint(k), escape_html))
            out.append(":")
            _json_encode(v[k], out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, e in enumerate(v):
            if i:
                out.append(",")
            _json_encode(e, out, escape_html, depth + 1)
        out.append("]")
    elif isinstance(v, (bytes, bytearray)):
        import base64

        out.append('"' + base64.b64encode(bytes(v)).decode("ascii") + '"')
    elif hasattr(v, "__dataclass_fields__"):
        out.append("{")
        first = True
        for name in v.__dataclass_fields__:
            if name.startswith("_"):
                continue
            if not first:
                out.append(",")
            first = False
            out.append(_json_str(name, escape_html))
            out.append(":")
            _json_encode(getattr(v, name), out, escape_html, depth + 1)
        out.append("}")
    elif isinstance(v, complex):
        raise _JSONError("json: unsupported type: complex128")
    else:
        out.append(_json_str(str(v), escape_html))


def json_marshal(value, *, escape_html: bool = False) -> str:
    """Encode like Go's encoding/json: compact, map keys sorted, floats in Go's shortest form.

    Docker's template ``json`` function turns HTML escaping *off* (``enc.SetEscapeHTML(false)``),
    so that is the default here; ``escape_html=True`` gives ``json.Marshal``'s ``\\u003c`` etc.
    Raises :class:`InvalidArgument` for NaN/Inf and complex numbers (Go refuses them too).
    """
    out: list[str] = []
    try:
        _json_encode(value, out, escape_html)
    except _JSONError as e:
        raise InvalidArgument(str(e)) from None
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# Template functions


class _CallError(Exception):
    """An error returned by a template function (Go's second result)."""


class _Func:
    __slots__ = ("impl", "params", "variadic", "builtin")

    def __init__(self, impl, params=(), variadic=None, builtin=False):
        self.impl = impl
        self.params = params
        self.variadic = variadic
        self.builtin = builtin


_GO_PARAM_TYPES = {
    "any": "interface {}",
    "value": "reflect.Value",
    "string": "string",
    "int": "int",
    "bool": "bool",
    "strings": "[]string",
}


def _indirect(v):
    return MISSING if v is None else v


def _truth(v) -> bool:
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, complex)):
        return v != 0
    if isinstance(v, (str, bytes, bytearray, list, tuple, Mapping)):
        return len(v) > 0
    return True


def _fn_not(arg):
    return not _truth(arg)


def _index_arg(index, cap: int) -> int:
    if index is MISSING:
        raise _CallError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise _CallError("cannot index slice/array with type %s" % _go_type(index))
    if index < 0 or index > cap:
        raise _CallError("index out of range: %d" % index)
    return index


def _map_zero(m):
    """Zero value of the map's element type: "" for map[string]string, nil otherwise.

    A NilMap stands for Docker's nil ``Labels`` (``map[string]string``), so its zero is "".
    """
    if isinstance(m, NilMap):
        return ""
    values = list(m.values())
    if all(isinstance(v, str) for v in values):
        return ""
    if values and all(isinstance(v, GoStruct) and not len(v) for v in values):
        return values[0]  # map[string]struct{} (Volumes, ExposedPorts): the zero is {}
    return None


def _fn_index(item, *indexes):
    item = _indirect(item)
    if item is MISSING:
        if indexes and isinstance(_indirect(indexes[0]), str):
            # Docker's typed nil map[string]string (e.g. Config.Labels): missing key -> "".
            item = {}
        else:
            raise _CallError("index of untyped nil")
    for index in indexes:
        index = _indirect(index)
        if item is None:
            raise _CallError("index of nil pointer")
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise _CallError("reflect: string index out of range")
            item = data[x]
        elif isinstance(item, (list, tuple, bytes, bytearray)):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise _CallError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, Mapping):
            if index is MISSING:
                raise _CallError("value is nil; should be of type string")
            if not isinstance(index, str) and not all(not isinstance(k, str) for k in item):
                raise _CallError("value has type %s; should be string" % _go_type(index))
            try:
                item = item[index]
            except (KeyError, TypeError):
                item = _map_zero(item)
        else:
            raise _CallError("can't index item of type %s" % _go_type(item))
    return item


def _fn_slice(item, *indexes):
    item = _indirect(item)
    if item is MISSING:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError("too many slice indexes: %d" % len(indexes))
    is_str = isinstance(item, str)
    if is_str:
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        data = item
    else:
        raise _CallError("can't slice item of type %s" % _go_type(item))
    cap = len(data)
    idx = [0, len(data), cap]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(_indirect(index), cap)
    if idx[0] > idx[1]:
        raise _CallError("invalid slice index: %d > %d" % (idx[0], idx[1]))
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _CallError("invalid slice index: %d > %d" % (idx[1], idx[2]))
    part = data[idx[0] : idx[1]]
    if is_str:
        return part.decode("utf-8", "replace")
    return list(part) if isinstance(item, list) else part


def _fn_len(item):
    if item is None or isinstance(item, (NilSlice, NilMap)):
        return 0  # a nil map or slice
    if item is MISSING:
        raise _CallError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))
    if isinstance(item, (list, tuple, bytes, bytearray, Mapping)):
        return len(item)
    raise _CallError("len of type %s" % _go_type(item))


def _fn_call(fn, *args):
    fn = _indirect(fn)
    if fn is MISSING:
        raise _CallError("call of nil")
    if not callable(fn):
        raise _CallError("non-function of type %s" % _go_type(fn))
    return fn(*[None if a is MISSING else a for a in args])


_INT, _FLOAT, _STR, _BOOLK, _CPLX = 1, 2, 3, 4, 5


def _basic_kind(v):
    if isinstance(v, bool):
        return _BOOLK
    if isinstance(v, int):
        return _INT
    if isinstance(v, float):
        return _FLOAT
    if isinstance(v, str):
        return _STR
    if isinstance(v, complex):
        return _CPLX
    return 0


def _is_nil(v) -> bool:
    return v is MISSING or v is None or isinstance(v, (NilSlice, NilMap))


def _fn_eq(arg1, *arg2):
    arg1 = _indirect(arg1)
    if not arg2:
        raise _CallError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = _indirect(arg)
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if arg1 is not MISSING and arg is not MISSING:
                raise _CallError("incompatible types for comparison")
        elif k1:
            truth = arg1 == arg
        else:
            if _is_nil(arg1) or _is_nil(arg):
                truth = _is_nil(arg) == _is_nil(arg1)
            else:
                if isinstance(arg, (list, Mapping)) or isinstance(arg1, (list, Mapping)):
                    raise _CallError("non-comparable type %s: %s" % (go_sprint(arg), _go_type(arg)))
                truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(arg1, arg2):
    arg1, arg2 = _indirect(arg1), _indirect(arg2)
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if not k1 or not k2:
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    if k1 in (_BOOLK, _CPLX):
        raise _CallError("invalid type for comparison")
    return arg1 < arg2


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _eval_args(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(["<no value>" if a is None or a is MISSING else a for a in args])


def _fn_html(*args):
    s = _eval_args(args)
    for a, b in (("&", "&amp;"), ("\0", "\ufffd"), ('"', "&#34;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;")):
        s = s.replace(a, b)
    return s


_JS_ESC = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def _fn_js(*args):
    out = []
    for c in _eval_args(args):
        if c in _JS_ESC:
            out.append(_JS_ESC[c])
        elif c < " ":
            out.append("\\u00%02X" % ord(c))
        elif ord(c) >= 0x80 and not _go_is_print(c):
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _fn_urlquery(*args):
    from urllib.parse import quote_plus

    return quote_plus(_eval_args(args), safe="")


def _fn_json(v):
    try:
        return json_marshal(v)
    except InvalidArgument:
        return ""  # Docker ignores the encoder's error and prints nothing


def _fn_split(s, sep):
    if sep == "":
        return list(s)
    return s.split(sep)


def _simple_case(s: str, upper: bool) -> str:
    if s.isascii():
        return s.upper() if upper else s.lower()
    out = []
    for c in s:
        m = c.upper() if upper else c.lower()
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _title_separator(c: str) -> bool:
    if c <= "\x7f":
        return not (c.isascii() and (c.isalnum() or c == "_"))
    if c.isalpha() or c.isdecimal():
        return False
    return c.isspace()


def _fn_title(s):
    out = []
    prev = " "
    for c in s:
        if _title_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _fn_pad(source, prefix, suffix):
    if source == "":
        return source
    return " " * prefix + source + " " * suffix


def _fn_truncate(source, length):
    data = source.encode("utf-8", "surrogatepass")
    if len(data) < length:
        return source
    if length < 0:
        raise _CallError("runtime error: slice bounds out of range [:%d]" % length)
    return data[:length].decode("utf-8", "replace")


def _and_or_placeholder(*_):  # and/or are evaluated lazily by the executor
    raise AssertionError("unreachable")


_FUNCS: dict[str, _Func] = {
    # Go builtins
    "and": _Func(_and_or_placeholder, ("value",), "value", True),
    "or": _Func(_and_or_placeholder, ("value",), "value", True),
    "call": _Func(_fn_call, ("value",), "value", True),
    "html": _Func(_fn_html, (), "any", True),
    "index": _Func(_fn_index, ("value",), "value", True),
    "slice": _Func(_fn_slice, ("value",), "value", True),
    "js": _Func(_fn_js, (), "any", True),
    "len": _Func(_fn_len, ("value",), None, True),
    "not": _Func(_fn_not, ("value",), None, True),
    "print": _Func(lambda *a: _sprint([None if x is MISSING else x for x in a]), (), "any", True),
    "printf": _Func(lambda f, *a: _sprintf(f, [None if x is MISSING else x for x in a]), ("string",), "any", True),
    "println": _Func(lambda *a: _sprintln([None if x is MISSING else x for x in a]), (), "any", True),
    "urlquery": _Func(_fn_urlquery, (), "any", True),
    "eq": _Func(_fn_eq, ("value",), "value", True),
    "ne": _Func(_fn_ne, ("value", "value"), None, True),
    "lt": _Func(_fn_lt, ("value", "value"), None, True),
    "le": _Func(_fn_le, ("value", "value"), None, True),
    "gt": _Func(_fn_gt, ("value", "value"), None, True),
    "ge": _Func(_fn_ge, ("value", "value"), None, True),
    # docker/cli templates.basicFunctions
    "json": _Func(_fn_json, ("any",)),
    "split": _Func(_fn_split, ("string", "string")),
    "join": _Func(lambda elems, sep: sep.join(elems), ("strings", "string")),
    "title": _Func(_fn_title, ("string",)),
    "lower": _Func(lambda s: _simple_case(s, False), ("string",)),
    "upper": _Func(lambda s: _simple_case(s, True), ("string",)),
    "pad": _Func(_fn_pad, ("string", "int", "int")),
    "truncate": _Func(_fn_truncate, ("string", "int")),
}


# Header rendering (docker/cli templates.HeaderFunctions): functions that would transform the
# column name return it unchanged, so "{{upper .Name}}" still heads its column with NAME.


class _HeaderName(str):
    """A column title standing in for a field's value while the header row is rendered."""

    path = ""


class _HeaderDot:
    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str] | None) -> None:
        self.headers = headers or {}

    def lookup(self, receiver, name: str) -> _HeaderName:
        path = name if isinstance(receiver, _HeaderDot) else receiver.path + "." + name
        h = self.headers.get(path)
        if h is None and path != name:
            h = self.headers.get(name)
        if h is None:
            h = derive_header(name)
        result = _HeaderName(h)
        result.path = path
        return result

    def __str__(self) -> str:
        return ""


def derive_header(name: str) -> str:
    """A column title from a field name: ``CreatedSince`` -> ``CREATED SINCE``, ``ID`` -> ``ID``."""
    import re

    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+|[^\W_]+", name)
    return " ".join(w.upper() for w in words) if words else name.upper()


def _header_identity(v, *_):
    return v


_HEADER_FUNCS = dict(_FUNCS)
_HEADER_FUNCS.update(
    {
        "json": _Func(_header_identity, ("string",)),
        "split": _Func(_header_identity, ("string", "string")),
        "join": _Func(_header_identity, ("string", "string")),
        "title": _Func(_header_identity, ("string",)),
        "lower": _Func(_header_identity, ("string",)),
        "upper": _Func(_header_identity, ("string",)),
        "truncate": _Func(_header_identity, ("string", "int")),
    }
)


# ----------------------------------------------------------------------------------------------
# Executor: a port of Go's text/template/exec.go


class _ExecError(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_PRIMITIVES = (str, int, float, complex, bool, list, tuple, bytes, bytearray)
_MAX_EXEC_DEPTH = 200


def _location(text: str, name: str, pos: int) -> str:
    prefix = text[:pos]
    nl = prefix.rfind("\n")
    line = 1 + prefix.count("\n")
    col = len(prefix[nl + 1 :].encode("utf-8", "surrogatepass"))
    return "%s:%d:%d" % (name, line, col)


class _State:
    def __init__(self, tmpl: "Template", header: _HeaderDot | None = None) -> None:
        self.tmpl = tmpl
        self.name = tmpl.name
        self.out: list[str] = []
        self.node = None
        self.vars: list[list] = []
        self.depth = 0
        self.header = header
        self.funcs = _HEADER_FUNCS if header is not None else _FUNCS
        self.missingkey = "default"

    def errorf(self, msg: str):
        if self.node is None:
            raise _ExecError("template: %s: %s" % (self.name, msg))
        loc = _location(self.tmpl.text, self.tmpl.name, self.node.pos)
        raise _ExecError("template: %s: executing %s at <%s>: %s" % (loc, _go_quote(self.name), self.node, msg))

    # variables
    def set_var(self, name: str, value) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i][1] = value
                return
        self.errorf("undefined variable: %s" % name)

    def var_value(self, name: str):
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.errorf("undefined variable: %s" % name)

    # walking
    def walk(self, dot, node) -> None:
        self.node = node
        t = type(node)
        if t is _TextNode:
            self.out.append(node.text)
        elif t is _ActionNode:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is _ListNode:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is _IfNode or t is _WithNode:
            self.walk_if_or_with(t is _WithNode, dot, node)
        elif t is _RangeNode:
            self.walk_range(dot, node)
        elif t is _TemplateNode:
            self.walk_template(dot, node)
        elif t is _BreakNode:
            raise _Break
        elif t is _ContinueNode:
            raise _Continue
        else:
            self.errorf("unknown node: %s" % node)

    def walk_if_or_with(self, is_with: bool, dot, node) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if is_with else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, r: _RangeNode) -> None:
        self.node = r
        mark0 = len(self.vars)
        try:
            val = _indirect(self.eval_pipeline(dot, r.pipe))
            mark = len(self.vars)
            decl = r.pipe.decl

            def one(index, elem):
                if decl:
                    if r.pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.vars[-1][1] = elem
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.vars[-2][1] = index
                try:
                    self.walk(elem, r.list)
                except _Continue:
                    pass
                finally:
                    del self.vars[mark:]

            ran = False
            if isinstance(val, _HeaderName):
                one(0, val)
                ran = True
            elif isinstance(val, (list, tuple)):
                for i, e in enumerate(val):
                    one(i, e)
                ran = len(val) > 0
            elif isinstance(val, Mapping):
                for k in _sorted_keys(val):
                    one(k, val[k])
                ran = len(val) > 0
            elif isinstance(val, int) and not isinstance(val, bool):
                if len(decl) > 1:
                    self.errorf("can't use %s to iterate over more than one variable" % val)
                for i in range(val):
                    one(i, i)
                ran = val > 0
            elif val is MISSING:
                pass
            else:
                self.errorf("range can't iterate over %s" % go_sprint(val))
            if not ran and r.else_list is not None:
                self.walk(dot, r.else_list)
        except _Break:
            pass
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot, t: _TemplateNode) -> None:
        self.node = t
        root = self.tmpl._trees.get(t.name)
        if root is None:
            self.errorf("template %s not defined" % _go_quote(t.name))
        if self.depth >= _MAX_EXEC_DEPTH:
            self.errorf("exceeded maximum template depth (%d)" % _MAX_EXEC_DEPTH)
        dot = self.eval_pipeline(dot, t.pipe)
        saved = (self.vars, self.name)
        self.vars = [["$", dot]]
        self.name = t.name
        self.depth += 1
        try:
            self.walk(dot, root)
        finally:
            self.depth -= 1
            self.vars, self.name = saved

    # evaluation
    def eval_pipeline(self, dot, pipe):
        if pipe is None:
            return MISSING
        self.node = pipe
        value = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # an interface{} holding nil: dig down to "no value"
                value = MISSING
        for v in pipe.decl:
            if pipe.is_assign:
                self.set_var(v.ident[0], value)
            else:
                self.vars.append([v.ident[0], value])
        return value

    def not_a_function(self, args, final) -> None:
        if (args is not None and len(args) > 1) or final is not _NO_FINAL:
            self.errorf("can't give argument to non-function %s" % args[0])

    def eval_command(self, dot, cmd: _CommandNode, final):
        first = cmd.args[0]
        t = type(first)
        if t is _FieldNode:
            self.node = first
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if t is _ChainNode:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if t is _IdentifierNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if t is _PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is _VariableNode:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if t is _BoolNode:
            return first.true
        if t is _DotNode:
            return dot
        if t is _NilNode:
            self.errorf("nil is not a command")
        if t is _NumberNode:
            return first.value
        if t is _StringNode:
            return first.text
        self.errorf("can't evaluate command %s" % _go_quote(str(first)))

    def eval_chain_node(self, dot, chain: _ChainNode, args, final):
        self.node = chain
        if isinstance(chain.node, _NilNode):
            self.errorf("indirection through explicit nil in %s" % chain)
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(self, dot, variable: _VariableNode, args, final):
        self.node = variable
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, variable, variable.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        n = len(ident)
        iface = False  # was receiver read out of a map, i.e. statically an interface{}?
        for i in range(n - 1):
            value = self.eval_field(dot, ident[i], node, None, _NO_FINAL, receiver, iface)
            iface = isinstance(receiver, Mapping)
            receiver = value
        return self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)

    def eval_function(self, dot, node: _IdentifierNode, cmd, args, final):
        self.node = node
        fn = self.funcs.get(node.ident)
        if fn is None:
            self.errorf("%s is not a defined function" % _go_quote(node.ident))
        return self.eval_call(dot, fn, cmd, node.ident, args, final)

    def eval_field(self, dot, name: str, node, args, final, receiver, iface: bool = False):
        if receiver is MISSING:
            if self.missingkey == "error":
                self.errorf("nil data; no entry for key %s" % _go_quote(name))
            return MISSING
        if receiver is None:
            if self.missingkey == "error":  # Go's answer for a nil interface{}
                self.errorf("nil pointer evaluating interface {}.%s" % name)
            return MISSING  # what Docker's typed values give for a nil map
        if self.header is not None and isinstance(receiver, (_HeaderDot, _HeaderName)):
            return self.header.lookup(receiver, name)
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if isinstance(receiver, GoStruct):
            try:
                value = receiver[name]
            except KeyError:
                self.errorf("can't evaluate field %s in type %s" % (name, receiver.type_name))
            if callable(value) and not isinstance(value, (type, GoStruct)):
                return self.eval_call(dot, _Func(value, (), "any"), node, name, args, final)
            if has_args:
                self.errorf("%s has arguments but cannot be invoked as function" % name)
            return value
        if isinstance(receiver, Mapping):
            if has_args:
                self.errorf("%s is not a method but has arguments" % name)
            try:
                return receiver[name]
            except KeyError:
                if self.missingkey == "error":
                    self.errorf("map has no entry for key %s" % _go_quote(name))
                if self.missingkey == "zero":
                    return _map_zero(receiver)
                return MISSING
        if isinstance(receiver, _PRIMITIVES) or name.startswith("_"):
            self.errorf("can't evaluate field %s in type %s" % (name, "interface {}" if iface else _go_type(receiver)))
        try:
            attr = getattr(receiver, name, _NO_FINAL)
        except Exception as e:  # a property that raised: report it like a failing method
            self.errorf("error calling %s: %s" % (name, e))
        if attr is _NO_FINAL:
            self.errorf("can't evaluate field %s in type %s" % (name, _go_type(receiver)))
        if callable(attr) and not isinstance(attr, type):
            return self.eval_call(dot, _Func(attr, (), "any"), node, name, args, final)
        if has_args:
            self.errorf("%s has arguments but cannot be invoked as function" % name)
        return attr

    def eval_call(self, dot, fn: _Func, node, name: str, args, final):
        args = list(args[1:]) if args is not None else []
        params, variadic = fn.params, fn.variadic
        num_in = len(args) + (0 if final is _NO_FINAL else 1)
        num_fixed = len(args)
        if variadic is not None:
            num_fixed = len(params)
            if num_in < num_fixed:
                self.errorf("wrong number of args for %s: want at least %d got %d" % (name, len(params), len(args)))
        elif num_in != len(params):
            self.errorf("wrong number of args for %s: want %d got %d" % (name, len(params), num_in))

        if fn.builtin and name in ("and", "or"):
            v = MISSING
            for arg in args:
                v = self.eval_arg(dot, "value", arg)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _NO_FINAL:
                v = self.validate_type(final, "value")
            return v

        argv = []
        i = 0
        while i < num_fixed and i < len(args):
            argv.append(self.eval_arg(dot, params[i], args[i]))
            i += 1
        if variadic is not None:
            while i < len(args):
                argv.append(self.eval_arg(dot, variadic, args[i]))
                i += 1
        if final is not _NO_FINAL:
            if variadic is None:
                t = params[-1]
            elif num_in - 1 < num_fixed:
                t = params[num_in - 1]
            else:
                t = variadic
            argv.append(self.validate_type(final, t))
        try:
            return fn.impl(*argv)
        except (_ExecError, _Break, _Continue):
            raise
        except Exception as e:  # Go's safeCall turns panics and returned errors into this
            self.node = node
            self.errorf("error calling %s: %s" % (name, e))

    def validate_type(self, value, typ):
        if value is MISSING:
            if typ is None or typ == "value":
                return MISSING
            if typ == "any":
                return None
            if typ == "strings":
                return NIL_SLICE
            self.errorf("invalid value; expected %s" % _GO_PARAM_TYPES[typ])
        if typ is None or typ == "value" or typ == "any":
            return value
        ok = False
        if typ == "string":
            ok = isinstance(value, str)
        elif typ == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif typ == "bool":
            ok = isinstance(value, bool)
        elif typ == "strings":
            ok = isinstance(value, (list, tuple)) and all(isinstance(e, str) for e in value)
        if not ok:
            self.errorf("wrong type for value; expected %s; got %s" % (_GO_PARAM_TYPES[typ], _go_type(value)))
        return value

    def eval_arg(self, dot, typ, n):
        self.node = n
        t = type(n)
        if t is _DotNode:
            return self.validate_type(dot, typ)
        if t is _NilNode:
            if typ in ("any", "value", "strings"):
                return None if typ != "value" else MISSING
            self.errorf("cannot assign nil to %s" % _GO_PARAM_TYPES.get(typ, typ))
        if t is _FieldNode:
            return self.validate_type(self.eval_field_chain(dot, dot, n, n.ident, [n], _NO_FINAL), typ)
        if t is _VariableNode:
            return self.validate_type(self.eval_variable_node(dot, n, None, _NO_FINAL), typ)
        if t is _PipeNode:
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if t is _IdentifierNode:
            return self.validate_type(self.eval_function(dot, n, n, None, _NO_FINAL), typ)
        if t is _ChainNode:
            return self.validate_type(self.eval_chain_node(dot, n, None, _NO_FINAL), typ)
        if typ == "bool":
            if t is _BoolNode:
                return n.true
            self.errorf("expected bool; found %s" % n)
        if typ == "string":
            if t is _StringNode:
                return n.text
            self.errorf("expected string; found %s" % n)
        if typ == "int":
            if t is _NumberNode and n.is_int:
                return int(n.value.real) if isinstance(n.value, complex) else int(n.value)
            self.errorf("expected integer; found %s" % n)
        if typ in ("any", "value"):
            if t is _BoolNode:
                return n.true
            if t is _NumberNode:
                return n.value
            if t is _StringNode:
                return n.text
        self.errorf("can't handle %s for arg of type %s" % (n, _GO_PARAM_TYPES.get(typ, typ)))

    def print_value(self, node, v) -> None:
        self.node = node
        if v is MISSING or v is None:
            self.out.append("<no value>")
            return
        if callable(v) and not isinstance(v, (type, Mapping, _HeaderDot)) and hasattr(v, "__code__"):
            self.errorf("can't print %s of type %s" % (node, _go_type(v)))
        self.out.append(go_sprint(v))


# ----------------------------------------------------------------------------------------------
# Public template API


class Template:
    """A parsed template. Immutable; safe to share and to render concurrently."""

    __slots__ = ("name", "text", "_root", "_trees")

    def __init__(self, name: str, text: str, root: _ListNode, trees: dict) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_trees", trees)

    def __setattr__(self, key, value):
        raise AttributeError("Template is immutable")

    def __delattr__(self, key):
        raise AttributeError("Template is immutable")

    def __repr__(self) -> str:
        return "Template(%r)" % self.text

    def __eq__(self, other) -> bool:
        return isinstance(other, Template) and (self.name, self.text) == (other.name, other.text)

    def __hash__(self) -> int:
        return hash((self.name, self.text))

    def _execute(self, state: _State, value) -> str:
        state.vars = [["$", value]]
        try:
            state.walk(value, self._root)
        except _ExecError as e:
            raise TemplateError("template parsing error: %s" % e) from None
        return "".join(state.out)

    def render(self, value, *, missingkey: str = "default") -> str:
        """Execute against ``value`` (dicts, lists, scalars, objects) and return the text.

        ``missingkey`` is Go's ``Option("missingkey=...")``: ``"default"`` / ``"invalid"``
        (a missing map key is ``<no value>``), ``"zero"`` (the map's zero value), or ``"error"``
        (``map has no entry for key "X"``; also makes reading through a nil value an error).
        ``docker inspect -f`` renders Docker's typed value first and, if that fails, the raw
        JSON with ``missingkey=error``; callers can do the same with two calls.

        Raises :class:`TemplateError` (``template parsing error: template: :1:2: executing
        ...``) when execution fails, as Docker does.
        """
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise ValueError("unrecognized option: missingkey=%s" % missingkey)
        state = _State(self)
        state.missingkey = missingkey
        return self._execute(state, value)

    def render_header(self, headers: Mapping[str, str] | None = None) -> str:
        """Render the table header row, the way docker/cli renders ``FullHeader()``.

        Every field reads as its column title: ``headers[field]`` (a dotted path such as
        ``"Config.Labels"`` or the last field name), else a title derived from the field name
        (``CreatedSince`` -> ``CREATED SINCE``). Functions that would alter a value (json,
        upper, join, ...) return the title unchanged; ``index`` yields the key in upper case;
        ``range`` runs once. Like Docker, an execution error leaves the partial header.
        """
        dot = _HeaderDot(headers)
        state = _State(self, dot)
        state.vars = [["$", dot]]
        try:
            state.walk(dot, self._root)
        except (_ExecError, _Break, _Continue):
            pass
        return "".join(state.out)


def _header_index(item, *indexes):
    if indexes:
        last = _indirect(indexes[-1])
        if isinstance(last, str):
            return last.upper()
        return go_sprint(last)
    return item


_HEADER_FUNCS["index"] = _Func(_header_index, ("value",), "value", True)

_CACHE: dict[tuple[str, str], Template] = {}


def compile_template(text: str, *, name: str = "") -> Template:
    """Parse a Go template (Docker's ``--format`` dialect). Cached; raises :class:`TemplateError`.

    ``name`` only appears in error messages; Docker's is empty (``template: :1: ...``).
    """
    key = (name, text)
    tmpl = _CACHE.get(key)
    if tmpl is not None:
        return tmpl
    trees: dict[str, _ListNode] = {}
    lex = _Lexer(text)
    parser = _Parser(name, name, text, lex, trees)
    try:
        root = parser.parse()
    except _ParseError as e:
        raise TemplateError("template parsing error: %s" % e) from None
    tmpl = Template(name, text, trees.get(name, root), trees)
    if len(_CACHE) >= 256:
        _CACHE.clear()
    _CACHE[key] = tmpl
    return tmpl


# ----------------------------------------------------------------------------------------------
# Tables: docker/cli formatter.Context + its tabwriter


def prepare_format(fmt: str) -> tuple[bool, str]:
    """Split a ``--format`` value as docker/cli does: ``(is_table, template_text)``.

    ``table ...`` drops the prefix, ``json`` becomes ``{{json .}}``; the result is trimmed of
    spaces and the two-character sequences ``\\t`` / ``\\n`` become a tab / newline.
    """
    is_table = fmt.startswith("table")
    if is_table:
        text = fmt[len("table") :]
    elif fmt == "json":
        text = "{{json .}}"
    else:
        text = fmt
    text = text.strip(" ")
    return is_table, text.replace("\\t", "\t").replace("\\n", "\n")


def _text_width(s: str) -> int:
    """Terminal columns, like go-runewidth's StringWidth (East Asian wide = 2, marks = 0)."""
    if s.isascii():
        if s.isprintable():
            return len(s)
        return sum(1 for c in s if " " <= c <= "~")
    import unicodedata

    w = 0
    for c in s:
        o = ord(c)
        if o < 0x20 or 0x7F <= o < 0xA0:
            continue
        if unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return w


class _Cell:
    __slots__ = ("text", "width", "htab")

    def __init__(self, text: str, width: int, htab: bool) -> None:
        self.text = text
        self.width = width
        self.htab = htab


class _TabWriter:
    """Go's text/tabwriter (elastic tabstops) for flags == 0, as docker/cli configures it."""

    def __init__(self, minwidth: int, tabwidth: int, padding: int, padchar: str) -> None:
        self.minwidth = minwidth
        self.tabwidth = tabwidth
        self.padding = padding
        self.padchar = padchar
        self.out: list[str] = []
        self.lines: list[list[_Cell]] = [[]]
        self.widths: list[int] = []
        self.pending = ""  # text of the current, unterminated cell

    def write(self, text: str) -> None:
        start = 0
        for i, c in enumerate(text):
            if c in "\t\v\n\f":
                cell_text = self.pending + text[start:i]
                self.pending = ""
                start = i + 1
                self.lines[-1].append(_Cell(cell_text, _text_width(cell_text), c == "\t"))
                if c in "\n\f":
                    ncells = len(self.lines[-1])
                    self.lines.append([])
                    if c == "\f" or ncells == 1:
                        self.flush()
        self.pending += text[start:]

    def flush(self) -> None:
        if self.pending:
            self.lines[-1].append(_Cell(self.pending, _text_width(self.pending), False))
            self.pending = ""
        self._format(0, len(self.lines))
        self.lines = [[]]
        self.widths = []

    def _pad(self, textw: int, cellw: int) -> None:
        if self.padchar == "\t":
            if self.tabwidth == 0:
                return
            cellw = (cellw + self.tabwidth - 1) // self.tabwidth * self.tabwidth
            n = cellw - textw
            self.out.append("\t" * ((n + self.tabwidth - 1) // self.tabwidth))
            return
        self.out.append(self.padchar * (cellw - textw))

    def _write_lines(self, line0: int, line1: int) -> None:
        for i in range(line0, line1):
            line = self.lines[i]
            for j, c in enumerate(line):
                if c.text:
                    self.out.append(c.text)
                if j < len(self.widths):
                    self._pad(c.width, self.widths[j])
            if i + 1 < len(self.lines):
                self.out.append("\n")

    def _format(self, line0: int, line1: int) -> None:
        column = len(self.widths)
        this = line0
        while this < line1:
            line = self.lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            # this line has a cell in this column: print what came before, then size the block
            self._write_lines(line0, this)
            line0 = this
            width = self.minwidth
            while this < line1:
                line = self.lines[this]
                if column >= len(line) - 1:
                    break
                w = line[column].width + self.padding
                if w > width:
                    width = w
                this += 1
            self.widths.append(width)
            self._format(line0, this)
            self.widths.pop()
            line0 = this
        self._write_lines(line0, line1)


def tabwrite(text: str, *, minwidth: int = 10, tabwidth: int = 1, padding: int = 3, padchar: str = " ") -> str:
    """Align tab-terminated cells like Go's text/tabwriter with flags 0.

    The defaults are docker/cli's: ``tabwriter.NewWriter(output, 10, 1, 3, ' ', 0)``. A column
    is as wide as its widest cell plus ``padding`` (at least ``minwidth``); the text after the
    last tab of a line is not part of any column and is not padded.
    """
    w = _TabWriter(minwidth, tabwidth, padding, padchar)
    w.write(text)
    w.flush()
    return "".join(w.out)


def _simple_fields(text: str) -> list[str] | None:
    """["A", "B"] if ``text`` is exactly "{{.A}}<tab>{{.B}}..." (plain field actions), else None."""
    out = []
    for part in text.split("\t"):
        if not (part.startswith("{{.") and part.endswith("}}")):
            return None
        name = part[3:-2]
        if not name or not name.isidentifier():
            return None
        out.append(name)
    return out


def format_table(
    rows, fmt: str, *, headers: Mapping[str, str] | None = None, type_name: str = "*formatter.Context"
) -> str:
    """Render ``rows`` with a ``--format`` value, exactly as docker/cli's formatter would.

    ``fmt`` is ``"table {{.A}}\\t{{.B}}"`` (header row + aligned columns), ``"json"``, or any
    other template (one line per row, tabs left as they are). ``headers`` maps a field name to
    its column title (``{"ID": "IMAGE ID"}``); other fields get a derived title. Each row's
    output is followed by a newline; a table prints its header even with no rows.

    Docker's rows are formatter contexts (Go structs), so a plain dict row is read as a
    :class:`GoStruct` of type ``type_name`` with its keys sorted (Docker's MarshalJSON sorts
    them): ``{{.Nope}}`` fails with ``can't evaluate field Nope in type <type_name>``, as in
    Docker (pass ``"*formatter.imageContext"`` to match ``docker images`` word for word).
    Raises :class:`TemplateError` for a bad template or a failing row.
    """
    is_table, text = prepare_format(fmt)
    tmpl = compile_template(text)
    fields = _simple_fields(text)
    if fields and all(type(row.get(f)) in (str, int) for row in rows for f in fields):
        # fast path for the common "{{.A}}\t{{.B}}" formats: same output, no template walk
        body = "".join("\t".join([str(row[f]) for f in fields]) + "\n" for row in rows)
    else:
        body = "".join(
        tmpl.render(GoStruct(sorted(row.items()), type_name) if type(row) is dict else row) + "\n" for row in rows
    )
    if not is_table:
        return body
    return tabwrite(tmpl.render_header(headers) + "\n" + body)


# ----------------------------------------------------------------------------------------------
# docker/go-units

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


def _go_parse_float(num: str) -> float:
    """strconv.ParseFloat(num, 64); raises ValueError with Go's message."""
    body = num.lstrip("+-")[:2].lower()
    try:
        if num != num.strip() or not num:
            raise ValueError
        if body == "0x":
            if "p" not in num.lower():
                raise ValueError
            f = float.fromhex(num.replace("_", ""))
        else:
            if "_" in num or num.lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise ValueError
            f = float(num)
    except (ValueError, OverflowError):
        raise ValueError("strconv.ParseFloat: parsing %s: invalid syntax" % _go_quote(num)) from None
    if f in (float("inf"), float("-inf")):
        raise ValueError("strconv.ParseFloat: parsing %s: value out of range" % _go_quote(num))
    return f


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
    try:
        size = _go_parse_float(num)
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
