"""Go templates as Docker's ``--format`` uses them: :func:`compile_template` and :class:`Template`.

:func:`compile_template` parses the subset of Go's ``text/template`` that Docker exposes:
actions, pipelines (``|``), parentheses, variables (``$x := ...``, ``$x = ...``), ``if`` /
``else if`` / ``else``, ``range`` (with ``$i, $v :=``, ``else``, ``break``, ``continue``),
``with`` / ``else with``, ``define`` / ``template`` / ``block``, comments, ``{{-`` / ``-}}``
trimming, string / raw-string / number / char / bool / nil literals, Go's builtin functions
and Docker's (:mod:`lamina.gotemplate.funcs`). Errors read exactly like Docker's::

    template parsing error: template: :1: unexpected "}" in operand
    template parsing error: template: :1:2: executing "" at <.Foo.Bar>: can't evaluate field Bar in type string

:meth:`Template.render` runs a template against plain Python data in the value model of
:mod:`lamina.gotemplate.values`; :meth:`Template.render_header` renders a table's header row
the way docker/cli does.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.errors import InvalidArgument
from lamina.gotemplate.exec import Break, Continue, ExecError, State
from lamina.gotemplate.funcs import FUNCS
from lamina.gotemplate.header import HeaderDot
from lamina.gotemplate.lexer import Lexer
from lamina.gotemplate.nodes import ListNode
from lamina.gotemplate.parser import ParseError, Parser

__all__ = ["Template", "TemplateError", "compile_template"]


class TemplateError(InvalidArgument):
    """A ``--format`` template failed to parse or to execute.

    The message is Docker's: ``template parsing error: template: <name>:<line>[:<col>]: ...``.
    The CLI prints it as Docker's client does, without ``Error:``, and exits 1.
    """

    exit_code = 1
    prefix = ""


class Template:
    """A parsed template. Immutable; safe to share and to render concurrently."""

    __slots__ = ("name", "text", "_root", "_trees")

    def __init__(self, name: str, text: str, root: ListNode, trees: dict) -> None:
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

    def _execute(self, state: State, value) -> str:
        state.vars = [["$", value]]
        try:
            state.walk(value, self._root)
        except ExecError as e:
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
        state = State(self.text, self.name, self._trees)
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
        dot = HeaderDot(headers)
        state = State(self.text, self.name, self._trees, dot)
        state.vars = [["$", dot]]
        try:
            state.walk(dot, self._root)
        except (ExecError, Break, Continue):
            pass
        return "".join(state.out)


_CACHE: dict[tuple[str, str], Template] = {}


def compile_template(text: str, *, name: str = "") -> Template:
    """Parse a Go template (Docker's ``--format`` dialect). Cached; raises :class:`TemplateError`.

    ``name`` only appears in error messages; Docker's is empty (``template: :1: ...``).
    """
    key = (name, text)
    tmpl = _CACHE.get(key)
    if tmpl is not None:
        return tmpl
    trees: dict[str, ListNode] = {}
    lex = Lexer(text)
    parser = Parser(name, name, text, lex, trees, FUNCS)
    try:
        root = parser.parse()
    except ParseError as e:
        raise TemplateError("template parsing error: %s" % e) from None
    tmpl = Template(name, text, trees.get(name, root), trees)
    if len(_CACHE) >= 256:
        _CACHE.clear()
    _CACHE[key] = tmpl
    return tmpl
