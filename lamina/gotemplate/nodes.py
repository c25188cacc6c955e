"""The parse tree: a port of Go's ``text/template/parse/node.go``.

Plain mutable nodes, built by :mod:`lamina.gotemplate.parser` and read (never changed) by the
executor once parsing is done. ``str()`` of a node is Go's ``Node.String()``, which error
messages quote (``executing "" at <.Config.Nope>``).
"""

from __future__ import annotations

from lamina.gotemplate.strconv import quote


class Node:
    """A parse tree node; ``pos`` is its character offset in the template text."""

    __slots__ = ("pos",)


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos, nodes=None):
        self.pos = pos
        self.nodes = nodes if nodes is not None else []

    def __str__(self):
        return "".join(str(n) for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos, text):
        self.pos = pos
        self.text = text

    def __str__(self):
        return self.text


class PipeNode(Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line
        self.is_assign = False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos, line, pipe):
        self.pos = pos
        self.line = line
        self.pipe = pipe

    def __str__(self):
        return "{{%s}}" % self.pipe


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos):
        self.pos = pos
        self.args: list[Node] = []

    def __str__(self):
        return " ".join(("(%s)" % a) if isinstance(a, PipeNode) else str(a) for a in self.args)


class IdentifierNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos, ident):
        self.pos = pos
        self.ident = ident

    def __str__(self):
        return self.ident


class VariableNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos, name):
        self.pos = pos
        self.ident = name.split(".")

    def __str__(self):
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class NilNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos, name):
        self.pos = pos
        self.ident = name[1:].split(".")

    def __str__(self):
        return "".join("." + i for i in self.ident)


class ChainNode(Node):
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
        s = ("(%s)" % self.node) if isinstance(self.node, PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.field)


class BoolNode(Node):
    __slots__ = ("true",)

    def __init__(self, pos, true):
        self.pos = pos
        self.true = true

    def __str__(self):
        return "true" if self.true else "false"


class NumberNode(Node):
    __slots__ = ("text", "value", "is_int")

    def __init__(self, pos, text, value, is_int):
        self.pos = pos
        self.text = text
        self.value = value
        self.is_int = is_int

    def __str__(self):
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos, quoted, text):
        self.pos = pos
        self.quoted = quoted
        self.text = text

    def __str__(self):
        return self.quoted


class EndNode(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "{{end}}"


class ElseNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{else}}"


class BranchNode(Node):
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


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class BreakNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ("line",)

    def __init__(self, pos, line):
        self.pos = pos
        self.line = line

    def __str__(self):
        return "{{continue}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos, line, name, pipe):
        self.pos = pos
        self.line = line
        self.name = name
        self.pipe = pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % quote(self.name)
        return "{{template %s %s}}" % (quote(self.name), self.pipe)


def is_empty_tree(n) -> bool:
    """True for a tree of nothing but spaces (Go's IsEmptyTree): it may be redefined."""
    if n is None:
        return True
    if isinstance(n, ListNode):
        return all(is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return not n.text.strip()
    return False
