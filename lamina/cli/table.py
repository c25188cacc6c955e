"""Tables the way docker/cli prints them: ``--format`` values and Go's text/tabwriter.

:func:`format_table` does what docker/cli's ``formatter.Context`` does: a ``table`` prefix
selects a header row plus tabwriter alignment (``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``,
cell width measured in terminal columns like docker's go-runewidth fork), ``json`` means
``{{json .}}``, and the two-character sequences ``\\t`` and ``\\n`` in a format become a tab and
a newline. The templates themselves run in :mod:`lamina.gotemplate`, imported when a table
is rendered. Pure functions; no I/O.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from collections.abc import Mapping

__all__ = ["format_table", "prepare_format", "tabwrite"]


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
    """One tab-terminated (``htab``) or trailing cell, with its width in terminal columns."""

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


def _aligned(lines: list[list[str]], minwidth: int = 10, padding: int = 3) -> str:
    """What :func:`tabwrite` makes of lines that all have the same number of cells, none
    holding a tab or newline (a table of plain fields): every column but the last as wide as
    its widest cell plus ``padding`` (at least ``minwidth``), the last one unpadded."""
    if any(any(ch in c for c in line for ch in "\t\n\v\f") for line in lines):
        return tabwrite("".join("\t".join(line) + "\n" for line in lines), minwidth=minwidth, padding=padding)
    ncols = len(lines[0]) if lines else 0
    widths = [[_text_width(c) for c in line] for line in lines]
    cols = [max(minwidth, max(w[i] for w in widths) + padding) for i in range(ncols - 1)]
    out = []
    for line, w in zip(lines, widths):
        parts = [c + " " * (cols[i] - w[i]) for i, c in enumerate(line[:-1])]
        parts.append(line[-1] if line else "")
        out.append("".join(parts) + "\n")
    return "".join(out)


def _plain_fields(text: str) -> list[str] | None:
    """["A", "B"] if ``text`` is exactly "{{.A}}<tab>{{.B}}..." with ASCII field names, else None.

    Such a template always parses (ASCII letters, digits and ``_`` are what Go's lexer takes
    in a field name; other characters Python calls identifiers may not be), and over rows whose
    fields are str or int it prints each row's values, and the header row each field's title,
    joined by tabs: what the engine would print, without loading it.
    """
    out = []
    for part in text.split("\t"):
        if not (part.startswith("{{.") and part.endswith("}}")):
            return None
        name = part[3:-2]
        if not name or not name.isascii() or not name.isidentifier():
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
    fields = _plain_fields(text)
    if fields and all(type(row.get(f)) in (str, int) for row in rows for f in fields):
        # the default formats of images, ps, history ...: same output, no template engine
        cells = [[str(row[f]) for f in fields] for row in rows]
        if not is_table:
            return "".join("\t".join(c) + "\n" for c in cells)
        from lamina.gotemplate.header import HeaderDot

        dot = HeaderDot(headers)
        return _aligned([[str(dot.lookup(dot, f)) for f in fields], *cells])
    if text == "{{json .}}" and all(type(row) is dict for row in rows):
        # a docker/cli formatter context marshals itself with json.Marshal (keys sorted, and
        # <, >, & escaped, unlike the template's json function on a field): a GoStruct row
        # would print through the template's json, so the whole-row case is written here
        from lamina.gotemplate.jsonenc import json_marshal

        body = "".join(json_marshal(dict(sorted(row.items())), escape_html=True) + "\n" for row in rows)
        return tabwrite("\n" + body) if is_table else body
    from lamina.gotemplate.template import compile_template
    from lamina.gotemplate.values import GoStruct

    tmpl = compile_template(text)
    body = "".join(
        tmpl.render(GoStruct(sorted(row.items()), type_name) if type(row) is dict else row) + "\n" for row in rows
    )
    if not is_table:
        return body
    return tabwrite(tmpl.render_header(headers) + "\n" + body)


def print_documents(docs: list, fmt: str | None) -> None:
    """``<object> inspect`` output for maps (networks, volumes): each document through the
    ``--format`` template, one per line, else the JSON array as dockerd indents it."""
    import sys
    if fmt:
        from lamina.gotemplate.template import compile_template
        t = compile_template(fmt)
        sys.stdout.write("".join(t.render(d) + "\n" for d in docs))
    else:
        import json
        sys.stdout.write(json.dumps(docs, indent=4) + "\n")
