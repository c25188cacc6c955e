"""Go's ``text/template``, with ``fmt`` printing and ``encoding/json``, for Python data.

What Docker's ``--format`` flags run, ported so that output and error texts match Docker's
word for word. Standard library only; nothing of the CLI. This ``__init__`` imports nothing:
import what you use from its module, so that a caller who needs one piece (the JSON encoder,
a table's header titles) does not load the lexer, parser and executor.

    template.py  compile_template(), Template (render, render_header), TemplateError
    values.py    the Go value model: GoStruct, NIL_SLICE / NIL_MAP (typed nils), MISSING,
                 go_type() and Go's truth, map-zero and key-order rules
    lexer.py     text/template/parse/lex.go: template text -> items
    nodes.py     text/template/parse/node.go: the parse tree (str() is Go's String())
    parser.py    text/template/parse/parse.go: items -> tree, Go's parse errors
    exec.py      text/template/exec.go: tree + value -> text, Go's execution errors
    funcs.py     Go's builtin functions and Docker's (json split join title lower upper pad
                 truncate); the header-row variants
    header.py    the dot a table header row is rendered with; derive_header()
    fmt.py       fmt: %v (go_sprint), Sprint, Sprintln, Sprintf
    jsonenc.py   encoding/json: json_marshal() (key order, float form, HTML escaping)
    strconv.py   strconv: Quote, Unquote, FormatFloat, ParseFloat

Dependencies point down this list's last lines: template -> parser/exec -> funcs ->
jsonenc/fmt -> strconv/values; header needs nothing.

Checked side by side with Docker's CLI (20.10 / Go 1.19 and 28.2 / Go 1.24; lamina follows
Go 1.23's text/template): the ``docker inspect -f`` templates
of tests/gotemplate/docker_inspect_templates.txt render identically over a real image given
the way Docker's CLI holds it (tests/test_gotemplate_docker.py); that file also lists what the
value model cannot express (embedded structs, ``omitempty``, time.Time, typed nil pointers,
``%T`` of typed slices and maps).
"""
