"""The template parser: a port of Go's ``text/template/parse/parse.go``.

Builds the tree of :mod:`lamina.gotemplate.nodes` from the items of
:mod:`lamina.gotemplate.lexer`, with Go's checks and error texts (undefined variables and
functions, ``{{break}}`` outside ``{{range}}``, non-executable pipeline stages, multiple
definitions). Literals are decoded here: numbers follow Go's constant rules
(:func:`parse_number`), strings Go's escapes.
"""

from __future__ import annotations

from lamina.gotemplate.lexer import (
    ASSIGN,
    BLOCK,
    BOOL,
    BREAK,
    CHAR,
    CHAR_CONSTANT,
    COMPLEX,
    CONTINUE,
    DECLARE,
    DEFINE,
    DOT,
    ELSE,
    END,
    EOF,
    ERROR,
    FIELD,
    IDENTIFIER,
    IF,
    LEFT_DELIM,
    LEFT_PAREN,
    NIL,
    NUMBER,
    PIPE,
    RANGE,
    RAW_STRING,
    RIGHT_DELIM,
    RIGHT_PAREN,
    SPACE,
    STRING,
    TEMPLATE,
    TEXT,
    VARIABLE,
    WITH,
    Item,
    Lexer,
)
from lamina.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    is_empty_tree,
)
from lamina.gotemplate.strconv import GoSyntaxError, quote, unquote, unquote_body


def parse_number(text: str, typ: int) -> tuple[object, bool]:
    """Go's parse.newNumber reduced to what templates need: ``(value, is_int)``.

    The value's Python type follows Go's idealConstant: a literal with ``.``/``e``/``p`` is a
    float64, ``i`` makes it complex, anything else is an int.
    """
    if typ == CHAR_CONSTANT:
        try:
            s = unquote_body(text[1:-1], "'")
        except GoSyntaxError:
            s = ""
        if len(s) != 1:
            raise GoSyntaxError("malformed character constant: %s" % text)
        return ord(s), True
    illegal = GoSyntaxError("illegal number syntax: %s" % quote(text))
    if typ == COMPLEX or text.endswith("i"):
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


class ParseError(Exception):
    """A template that does not parse; the message is Go's (``template: <name>:<line>: ...``)."""


class Parser:
    """Recursive descent over the lexer's items, as Go's ``parse.Tree``.

    ``parse()`` returns the root list and adds every tree it parses (the root under ``name``,
    each ``define`` and ``block`` under its own name) to ``tree_set``. ``funcs`` holds the
    names of the functions templates may call; any other identifier is a parse error, as in
    Go. Raises :class:`ParseError`.
    """

    def __init__(self, name: str, parse_name: str, text: str, lex: Lexer, tree_set: dict, funcs) -> None:
        self.name = name
        self.parse_name = parse_name
        self.text = text
        self.lex = lex
        self.tree_set = tree_set
        self.funcs = funcs
        self.token: list[Item | None] = [None, None, None]
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.stack_depth = 0

    # token stream
    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            t = self.next()
            if t.typ != SPACE:
                return t

    def peek_non_space(self) -> Item:
        t = self.next_non_space()
        self.backup()
        return t

    # errors
    def errorf(self, msg: str):
        line = self.token[0].line if self.token[0] is not None else 1
        raise ParseError("template: %s:%d: %s" % (self.parse_name, line, msg))

    def expect(self, expected: int, context: str) -> Item:
        t = self.next_non_space()
        if t.typ != expected:
            self.unexpected(t, context)
        return t

    def expect_one_of(self, e1: int, e2: int, context: str) -> Item:
        t = self.next_non_space()
        if t.typ != e1 and t.typ != e2:
            self.unexpected(t, context)
        return t

    def unexpected(self, token: Item, context: str):
        if token.typ == ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = " in action started at %s:%d" % (self.parse_name, self.action_line)
                if token.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf("%s%s" % (token, extra))
        self.errorf("unexpected %s in %s" % (token, context))

    # top level
    def parse(self) -> ListNode:
        root = ListNode(self.peek().pos)
        while self.peek().typ != EOF:
            if self.peek().typ == LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == DEFINE:
                    sub = Parser("definition", self.parse_name, self.text, self.lex, self.tree_set, self.funcs)
                    sub.parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf("unexpected %s" % n)
            root.nodes.append(n)
        self.add(self.name, root)
        return root

    def add(self, name: str, root: ListNode) -> None:
        old = self.tree_set.get(name)
        if old is None or is_empty_tree(old):
            self.tree_set[name] = root
            return
        if not is_empty_tree(root):
            self.errorf("template: multiple definition of template %s" % quote(name))

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.expect_one_of(STRING, RAW_STRING, context)
        try:
            self.name = unquote(name.val)
        except GoSyntaxError as e:
            self.errorf(str(e))
        self.expect(RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        self.add(self.name, root)

    def item_list(self):
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        token = self.next_non_space()
        if token.typ == TEXT:
            return TextNode(token.pos, token.val)
        if token.typ == LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(token, "input")

    def action(self):
        token = self.next_non_space()
        typ = token.typ
        if typ == BLOCK:
            return self.block_control()
        if typ == BREAK:
            return self.break_control(token.pos, token.line)
        if typ == CONTINUE:
            return self.continue_control(token.pos, token.line)
        if typ == ELSE:
            return self.else_control()
        if typ == END:
            return self.end_control()
        if typ == IF:
            return IfNode(*self.parse_control("if"))
        if typ == RANGE:
            return RangeNode(*self.parse_control("range"))
        if typ == TEMPLATE:
            return self.template_control()
        if typ == WITH:
            return WithNode(*self.parse_control("with"))
        self.backup()
        token = self.peek()
        return ActionNode(token.pos, token.line, self.pipeline("command", RIGHT_DELIM))

    def break_control(self, pos, line):
        token = self.next_non_space()
        if token.typ != RIGHT_DELIM:
            self.unexpected(token, "{{break}}")
        if self.range_depth == 0:
            self.errorf("{{break}} outside {{range}}")
        return BreakNode(pos, line)

    def continue_control(self, pos, line):
        token = self.next_non_space()
        if token.typ != RIGHT_DELIM:
            self.unexpected(token, "{{continue}}")
        if self.range_depth == 0:
            self.errorf("{{continue}} outside {{range}}")
        return ContinueNode(pos, line)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:  # "decls:" label in Go
            v = self.peek_non_space()
            if v.typ == VARIABLE:
                self.next()
                token_after = self.peek()
                nxt = self.peek_non_space()
                if nxt.typ in (ASSIGN, DECLARE):
                    pipe.is_assign = nxt.typ == ASSIGN
                    self.next_non_space()
                    pipe.decl.append(VariableNode(v.pos, v.val))
                    self.vars.append(v.val)
                elif nxt.typ == CHAR and nxt.val == ",":
                    self.next_non_space()
                    pipe.decl.append(VariableNode(v.pos, v.val))
                    self.vars.append(v.val)
                    if context == "range" and len(pipe.decl) < 2:
                        if self.peek_non_space().typ in (VARIABLE, RIGHT_DELIM, RIGHT_PAREN):
                            continue  # second initialized variable in a range pipeline
                        self.errorf("range can only initialize variables")
                    self.errorf("too many declarations in %s" % context)
                elif token_after.typ == SPACE:
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
                BOOL,
                CHAR_CONSTANT,
                COMPLEX,
                DOT,
                FIELD,
                IDENTIFIER,
                NUMBER,
                NIL,
                RAW_STRING,
                STRING,
                VARIABLE,
                LEFT_PAREN,
            ):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf("missing value for %s" % context)
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf("non executable command in pipeline stage %d" % (i + 2))

    def parse_control(self, context: str):
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                if context == "if" and self.peek().typ == IF:
                    self.next()
                    else_list = ListNode(nxt.pos, [IfNode(*self.parse_control("if"))])
                elif context == "with" and self.peek().typ == WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, [WithNode(*self.parse_control("with"))])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf("expected end; found %s" % nxt)
            return pipe.pos, pipe.line, pipe, lst, else_list
        finally:
            del self.vars[mark:]

    def end_control(self):
        return EndNode(self.expect(RIGHT_DELIM, "end").pos)

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in (IF, WITH):
            return ElseNode(peek.pos, peek.line)
        token = self.expect(RIGHT_DELIM, "else")
        return ElseNode(token.pos, token.line)

    def block_control(self):
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, RIGHT_DELIM)
        block = Parser(name, self.parse_name, self.text, self.lex, self.tree_set, self.funcs)
        root, end = block.item_list()
        if not isinstance(end, EndNode):
            self.errorf("unexpected %s in %s" % (end, context))
        block.add(name, root)
        return TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self):
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = None
        if self.next_non_space().typ != RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, RIGHT_DELIM)
        return TemplateNode(token.pos, token.line, name, pipe)

    def parse_template_name(self, token: Item, context: str) -> str:
        if token.typ in (STRING, RAW_STRING):
            try:
                return unquote(token.val)
            except GoSyntaxError as e:
                self.errorf(str(e))
        self.unexpected(token, context)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()  # skip leading spaces
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == SPACE:
                continue
            if token.typ in (RIGHT_DELIM, RIGHT_PAREN):
                self.backup()
            elif token.typ == PIPE:
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
        if self.peek().typ == FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == FIELD:
                chain.add(self.next().val)
            if isinstance(node, FieldNode):
                node = FieldNode(chain.pos, str(chain))
            elif isinstance(node, VariableNode):
                node = VariableNode(chain.pos, str(chain))
            elif isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf("unexpected . after term %s" % quote(str(node)))
            else:
                node = chain
        return node

    def term(self):
        token = self.next_non_space()
        typ = token.typ
        if typ == IDENTIFIER:
            if token.val not in self.funcs:
                self.errorf("function %s not defined" % quote(token.val))
            return IdentifierNode(token.pos, token.val)
        if typ == DOT:
            return DotNode(token.pos)
        if typ == NIL:
            return NilNode(token.pos)
        if typ == VARIABLE:
            return self.use_var(token.pos, token.val)
        if typ == FIELD:
            return FieldNode(token.pos, token.val)
        if typ == BOOL:
            return BoolNode(token.pos, token.val == "true")
        if typ in (CHAR_CONSTANT, COMPLEX, NUMBER):
            try:
                value, is_int = parse_number(token.val, typ)
            except GoSyntaxError as e:
                self.errorf(str(e))
            return NumberNode(token.pos, token.val, value, is_int)
        if typ == LEFT_PAREN:
            if self.stack_depth >= 1000:
                self.errorf("max expression depth exceeded")
            self.stack_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", RIGHT_PAREN)
            finally:
                self.stack_depth -= 1
        if typ in (STRING, RAW_STRING):
            try:
                s = unquote(token.val)
            except GoSyntaxError as e:
                self.errorf(str(e))
            return StringNode(token.pos, token.val, s)
        self.backup()
        return None

    def use_var(self, pos: int, name: str):
        v = VariableNode(pos, name)
        if v.ident[0] in self.vars:
            return v
        self.errorf("undefined variable %s" % quote(v.ident[0]))
