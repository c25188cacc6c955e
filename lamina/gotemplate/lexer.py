"""The template lexer: a port of Go's ``text/template/parse/lex.go`` (Go 1.23).

:class:`Lexer` turns template text into :class:`Item` tokens one at a time
(``next_item``), with the same state machine as Go's, so error texts and positions match
Docker's (``unclosed action``, ``bad character U+007D '}'``). Delimiters are ``{{`` / ``}}``,
with ``{{-`` / ``-}}`` trimming and ``{{/* */}}`` comments. Positions are character offsets
into the text.
"""

from __future__ import annotations

from lamina.gotemplate.strconv import quote, rune_U

# Item types, in Go's order (itemError ... itemWith); keywords sort after KEYWORD.
(
    ERROR,
    BOOL,
    CHAR,
    CHAR_CONSTANT,
    COMMENT,
    COMPLEX,
    ASSIGN,
    DECLARE,
    EOF,
    FIELD,
    IDENTIFIER,
    LEFT_DELIM,
    LEFT_PAREN,
    NUMBER,
    PIPE,
    RAW_STRING,
    RIGHT_DELIM,
    RIGHT_PAREN,
    SPACE,
    STRING,
    TEXT,
    VARIABLE,
    KEYWORD,
    BLOCK,
    BREAK,
    CONTINUE,
    DOT,
    DEFINE,
    ELSE,
    END,
    IF,
    NIL,
    RANGE,
    TEMPLATE,
    WITH,
) = range(35)

_KEYWORDS = {
    ".": DOT,
    "block": BLOCK,
    "break": BREAK,
    "continue": CONTINUE,
    "define": DEFINE,
    "else": ELSE,
    "end": END,
    "if": IF,
    "range": RANGE,
    "nil": NIL,
    "template": TEMPLATE,
    "with": WITH,
}

_SPACES = " \t\r\n"


def _is_space(c: str) -> bool:
    return c != "" and c in _SPACES


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


class Item:
    """One token: its type, character offset in the text, text and line."""
    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.line = line

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ > KEYWORD:
            return "<%s>" % self.val
        if len(self.val.encode("utf-8", "surrogatepass")) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def _has_left_trim(s: str, i: int) -> bool:
    return len(s) - i >= 2 and s[i] == "-" and s[i + 1] in _SPACES


def _has_right_trim(s: str, i: int) -> bool:
    return i >= 0 and len(s) - i >= 2 and s[i] in _SPACES and s[i + 1] == "-"


def _left_trim_length(s: str, i: int) -> int:
    j = i
    while j < len(s) and s[j] in _SPACES:
        j += 1
    return j - i


class Lexer:
    """State machine over the template text; ``next_item`` returns one token at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.inside_action = False
        self.item: Item | None = None
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

    def this_item(self, typ: int) -> Item:
        it = Item(typ, self.start, self.input[self.start : self.pos], self.line_at(self.start))
        self.start = self.pos
        return it

    def emit(self, typ: int):
        self.item = self.this_item(typ)
        return None

    def emit_item(self, it: Item):
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
        self.item = Item(ERROR, self.start, msg, self.line_at(self.start))
        self.start = 0
        self.pos = 0
        self.input = ""
        return None

    def next_item(self) -> Item:
        self.item = Item(EOF, self.pos, "EOF", self.line_at(self.start))
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
                it = self.this_item(TEXT)
                self.pos += trim
                self.ignore()
                if it.val:
                    return self.emit_item(it)
            return self.lex_left_delim
        self.pos = len(inp)
        if self.pos > self.start:
            return self.emit(TEXT)
        return self.emit(EOF)

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
        it = self.this_item(LEFT_DELIM)
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
        self.this_item(COMMENT)  # comments are not kept in the tree
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
        it = self.this_item(RIGHT_DELIM)
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
            return self.emit(ASSIGN)
        if r == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            return self.emit(DECLARE)
        if r == "|":
            return self.emit(PIPE)
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
            return self.emit(LEFT_PAREN)
        if r == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf("unexpected right paren")
            return self.emit(RIGHT_PAREN)
        if " " <= r <= "~":
            return self.emit(CHAR)
        return self.errorf("unrecognized character in action: %s" % rune_U(r))

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
        return self.emit(SPACE)

    def lex_identifier(self):
        while True:
            r = self.next()
            if _is_alnum(r):
                continue
            self.backup()
            word = self.input[self.start : self.pos]
            if not self.at_terminator():
                return self.errorf("bad character %s" % rune_U(r))
            kw = _KEYWORDS.get(word)
            if kw is not None:
                return self.emit(kw)
            if word[0] == ".":
                return self.emit(FIELD)
            if word in ("true", "false"):
                return self.emit(BOOL)
            return self.emit(IDENTIFIER)

    def lex_field(self):
        return self.lex_field_or_variable(FIELD)

    def lex_variable(self):
        if self.at_terminator():
            return self.emit(VARIABLE)
        return self.lex_field_or_variable(VARIABLE)

    def lex_field_or_variable(self, typ: int):
        if self.at_terminator():
            return self.emit(VARIABLE if typ == VARIABLE else DOT)
        while True:
            r = self.next()
            if not _is_alnum(r):
                self.backup()
                break
        if not self.at_terminator():
            return self.errorf("bad character %s" % rune_U(r))
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
        return self.emit(CHAR_CONSTANT)

    def lex_number(self):
        if not self.scan_number():
            return self.errorf("bad number syntax: %s" % quote(self.input[self.start : self.pos]))
        sign = self.peek()
        if sign and sign in "+-":
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf("bad number syntax: %s" % quote(self.input[self.start : self.pos]))
            return self.emit(COMPLEX)
        return self.emit(NUMBER)

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
        return self.emit(STRING)

    def lex_raw_quote(self):
        while True:
            r = self.next()
            if r == "":
                return self.errorf("unterminated raw quoted string")
            if r == "`":
                break
        return self.emit(RAW_STRING)
