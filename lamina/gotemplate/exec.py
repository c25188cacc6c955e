"""The template executor: a port of Go's ``text/template/exec.go`` over Python data.

:class:`State` walks a parse tree against a value, evaluating pipelines, fields, variables and
function calls the way Go's reflection-based executor does for the values of
:mod:`lamina.gotemplate.values` (dict = map, GoStruct = struct, None = nil interface, typed
nils), with the same error texts and positions.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.gotemplate.fmt import go_sprint
from lamina.gotemplate.funcs import FUNCS, HEADER_FUNCS, PARAM_TYPES, Func
from lamina.gotemplate.header import HeaderDot, HeaderName
from lamina.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
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
)
from lamina.gotemplate.strconv import quote
from lamina.gotemplate.values import (
    MISSING,
    NIL_SLICE,
    GoStruct,
    NilPointer,
    go_type,
    indirect,
    map_zero,
    sorted_keys,
    truth,
)

__all__ = ["Break", "Continue", "ExecError", "State"]


class ExecError(Exception):
    """Execution failed; the message is Go's (``template: :1:2: executing "" at <.X>: ...``)."""


class Break(Exception):
    """``{{break}}``: unwinds to the innermost range."""


class Continue(Exception):
    """``{{continue}}``: unwinds to the innermost range's next iteration."""


class _NoFinal:
    """No value is piped into this command (Go's ``missingVal``)."""

    __slots__ = ()


_NO_FINAL = _NoFinal()

_PRIMITIVES = (str, int, float, complex, bool, list, tuple, bytes, bytearray)
_MAX_EXEC_DEPTH = 200


def _location(text: str, name: str, pos: int) -> str:
    prefix = text[:pos]
    nl = prefix.rfind("\n")
    line = 1 + prefix.count("\n")
    col = len(prefix[nl + 1 :].encode("utf-8", "surrogatepass"))
    return "%s:%d:%d" % (name, line, col)


class State:
    """One execution of a parsed template (Go's ``state``): output, variables, current node.

    ``text`` and ``tmpl_name`` are the template's source and name (error locations), ``trees``
    its named templates. With a ``header`` dot the header variants of the functions are used
    (:mod:`lamina.gotemplate.header`). Raises :class:`ExecError`; a ``{{break}}`` or
    ``{{continue}}`` outside a range surfaces as :class:`Break` / :class:`Continue`.
    """

    def __init__(self, text: str, tmpl_name: str, trees: dict, header: HeaderDot | None = None) -> None:
        self.text = text
        self.tmpl_name = tmpl_name
        self.trees = trees
        self.name = tmpl_name
        self.out: list[str] = []
        self.node = None
        self.vars: list[list] = []
        self.depth = 0
        self.header = header
        self.funcs = HEADER_FUNCS if header is not None else FUNCS
        self.missingkey = "default"

    def errorf(self, msg: str):
        if self.node is None:
            raise ExecError("template: %s: %s" % (self.name, msg))
        loc = _location(self.text, self.tmpl_name, self.node.pos)
        raise ExecError("template: %s: executing %s at <%s>: %s" % (loc, quote(self.name), self.node, msg))

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
        if t is TextNode:
            self.out.append(node.text)
        elif t is ActionNode:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is ListNode:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is IfNode or t is WithNode:
            self.walk_if_or_with(t is WithNode, dot, node)
        elif t is RangeNode:
            self.walk_range(dot, node)
        elif t is TemplateNode:
            self.walk_template(dot, node)
        elif t is BreakNode:
            raise Break
        elif t is ContinueNode:
            raise Continue
        else:
            self.errorf("unknown node: %s" % node)

    def walk_if_or_with(self, is_with: bool, dot, node) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if truth(val):
                self.walk(val if is_with else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, r: RangeNode) -> None:
        self.node = r
        mark0 = len(self.vars)
        try:
            val = indirect(self.eval_pipeline(dot, r.pipe))
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
                except Continue:
                    pass
                finally:
                    del self.vars[mark:]

            ran = False
            if isinstance(val, HeaderName):
                one(0, val)
                ran = True
            elif isinstance(val, (list, tuple)):
                for i, e in enumerate(val):
                    one(i, e)
                ran = len(val) > 0
            elif isinstance(val, Mapping):
                for k in sorted_keys(val):
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
        except Break:
            pass
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot, t: TemplateNode) -> None:
        self.node = t
        root = self.trees.get(t.name)
        if root is None:
            self.errorf("template %s not defined" % quote(t.name))
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

    def eval_command(self, dot, cmd: CommandNode, final):
        first = cmd.args[0]
        t = type(first)
        if t is FieldNode:
            self.node = first
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if t is ChainNode:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if t is IdentifierNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if t is PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is VariableNode:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if t is BoolNode:
            return first.true
        if t is DotNode:
            return dot
        if t is NilNode:
            self.errorf("nil is not a command")
        if t is NumberNode:
            return first.value
        if t is StringNode:
            return first.text
        self.errorf("can't evaluate command %s" % quote(str(first)))

    def eval_chain_node(self, dot, chain: ChainNode, args, final):
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.errorf("indirection through explicit nil in %s" % chain)
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_variable_node(self, dot, variable: VariableNode, args, final):
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

    def eval_function(self, dot, node: IdentifierNode, cmd, args, final):
        self.node = node
        fn = self.funcs.get(node.ident)
        if fn is None:
            self.errorf("%s is not a defined function" % quote(node.ident))
        return self.eval_call(dot, fn, cmd, node.ident, args, final)

    def eval_field(self, dot, name: str, node, args, final, receiver, iface: bool = False):
        if receiver is MISSING:
            if self.missingkey == "error":
                self.errorf("nil data; no entry for key %s" % quote(name))
            return MISSING
        if receiver is None:
            if self.missingkey == "error":  # Go's answer for a nil interface{}
                self.errorf("nil pointer evaluating interface {}.%s" % name)
            return MISSING  # what Docker's typed values give for a nil map
        if isinstance(receiver, NilPointer):
            self.errorf("nil pointer evaluating %s.%s" % (receiver.type_name, name))
        if self.header is not None and isinstance(receiver, (HeaderDot, HeaderName)):
            return self.header.lookup(receiver, name)
        has_args = (args is not None and len(args) > 1) or final is not _NO_FINAL
        if isinstance(receiver, GoStruct):
            try:
                value = receiver[name]
            except KeyError:
                self.errorf("can't evaluate field %s in type %s" % (name, receiver.type_name))
            if callable(value) and not isinstance(value, (type, GoStruct)):
                return self.eval_call(dot, Func(value, (), "any"), node, name, args, final)
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
                    self.errorf("map has no entry for key %s" % quote(name))
                if self.missingkey == "zero":
                    return map_zero(receiver)
                return MISSING
        if isinstance(receiver, _PRIMITIVES) or name.startswith("_"):
            self.errorf("can't evaluate field %s in type %s" % (name, "interface {}" if iface else go_type(receiver)))
        try:
            attr = getattr(receiver, name, _NO_FINAL)
        except Exception as e:  # a property that raised: report it like a failing method
            self.errorf("error calling %s: %s" % (name, e))
        if attr is _NO_FINAL:
            self.errorf("can't evaluate field %s in type %s" % (name, go_type(receiver)))
        if callable(attr) and not isinstance(attr, type):
            return self.eval_call(dot, Func(attr, (), "any"), node, name, args, final)
        if has_args:
            self.errorf("%s has arguments but cannot be invoked as function" % name)
        return attr

    def eval_call(self, dot, fn: Func, node, name: str, args, final):
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
                if truth(v) == (name == "or"):
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
        except (ExecError, Break, Continue):
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
            self.errorf("invalid value; expected %s" % PARAM_TYPES[typ])
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
            self.errorf("wrong type for value; expected %s; got %s" % (PARAM_TYPES[typ], go_type(value)))
        return value

    def eval_arg(self, dot, typ, n):
        self.node = n
        t = type(n)
        if t is DotNode:
            return self.validate_type(dot, typ)
        if t is NilNode:
            if typ in ("any", "value", "strings"):
                return None if typ != "value" else MISSING
            self.errorf("cannot assign nil to %s" % PARAM_TYPES.get(typ, typ))
        if t is FieldNode:
            return self.validate_type(self.eval_field_chain(dot, dot, n, n.ident, [n], _NO_FINAL), typ)
        if t is VariableNode:
            return self.validate_type(self.eval_variable_node(dot, n, None, _NO_FINAL), typ)
        if t is PipeNode:
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if t is IdentifierNode:
            return self.validate_type(self.eval_function(dot, n, n, None, _NO_FINAL), typ)
        if t is ChainNode:
            return self.validate_type(self.eval_chain_node(dot, n, None, _NO_FINAL), typ)
        if typ == "bool":
            if t is BoolNode:
                return n.true
            self.errorf("expected bool; found %s" % n)
        if typ == "string":
            if t is StringNode:
                return n.text
            self.errorf("expected string; found %s" % n)
        if typ == "int":
            if t is NumberNode and n.is_int:
                return int(n.value.real) if isinstance(n.value, complex) else int(n.value)
            self.errorf("expected integer; found %s" % n)
        if typ in ("any", "value"):
            if t is BoolNode:
                return n.true
            if t is NumberNode:
                return n.value
            if t is StringNode:
                return n.text
        self.errorf("can't handle %s for arg of type %s" % (n, PARAM_TYPES.get(typ, typ)))

    def print_value(self, node, v) -> None:
        self.node = node
        if v is MISSING or v is None:
            self.out.append("<no value>")
            return
        if callable(v) and not isinstance(v, (type, Mapping, HeaderDot)) and hasattr(v, "__code__"):
            self.errorf("can't print %s of type %s" % (node, go_type(v)))
        self.out.append(go_sprint(v))
