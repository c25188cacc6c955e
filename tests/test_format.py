"""Tests for lamina.cli.format: Go templates as Docker's --format uses them, tables, go-units.

Expected strings come from Go's own test vectors where they exist (text/template/parse
errorTests, text/tabwriter tests, docker/go-units size_test.go and duration_test.go) and
otherwise from working Go's rules through by hand (noted next to the case).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from lamina.cli.format import (
    NIL_MAP,
    NIL_SLICE,
    GoStruct,
    Template,
    TemplateError,
    ago,
    bytes_size,
    compile_template,
    derive_header,
    format_table,
    go_sprint,
    human_duration,
    human_size,
    json_marshal,
    parse_size,
    prepare_format,
    tabwrite,
)
from lamina.errors import InvalidArgument

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IMAGE = {
    "Id": "sha256:6fd955f66c231c1a946653170d096a1ac3bee1bf5be7f2ef1a1b12c4c7e8fa6a",
    "Repository": "busybox",
    "Tag": "latest",
    "RepoTags": ["busybox:latest", "busybox:1.36"],
    "Size": 4860000,
    "Config": {
        "Labels": {"maintainer": "me", "org.opencontainers.image.version": "1.36"},
        "Env": ["PATH=/bin", "A=1"],
        "Cmd": ["sh"],
        "Entrypoint": None,
        "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
    },
    "Dangling": False,
    "Ratio": 0.5,
    "Html": "<a href='x'>&</a>",
}


def render(text: str, value=IMAGE) -> str:
    return compile_template(text).render(value)


def error_of(text: str, value=IMAGE, name: str = "") -> str:
    with pytest.raises(TemplateError) as info:
        compile_template(text, name=name).render(value)
    return str(info.value)


# ----------------------------------------------------------------------------------------------
# Fields and Go's %v printing


@pytest.mark.parametrize(
    "text,want",
    [
        ("{{.Repository}}:{{.Tag}}", "busybox:latest"),
        ("{{.Config.Cmd}}", "[sh]"),  # a slice prints as [a b]
        ("{{.Config.Labels.maintainer}}", "me"),  # map key through a field chain
        ("{{.RepoTags}}", "[busybox:latest busybox:1.36]"),
        ("{{.Config.ExposedPorts}}", "map[443/tcp:map[] 80/tcp:map[]]"),  # keys sorted
        ("{{.Size}}", "4860000"),
        ("{{.Dangling}}", "false"),
        ("{{.Ratio}}", "0.5"),
        ("{{.Nope}}", "<no value>"),  # missing map key
        ("{{.Config.Nope.Deeper}}", "<no value>"),  # through a missing key
        ("{{.Config.Entrypoint}}", "<no value>"),  # JSON null (nil interface{})
        ("{{.Config.Entrypoint.X}}", "<no value>"),  # through nil, like a nil map
        ("{{.}}", None),  # checked separately below
    ],
)
def test_field_access_and_printing(text, want):
    if want is None:
        assert render(text, {"b": [1, None], "a": True}) == "map[a:true b:[1 <nil>]]"
    else:
        assert render(text) == want


@pytest.mark.parametrize(
    "value,want",
    [
        (1e6, "1e+06"),  # Go's %v switches to %e at exponent 6 for shortest floats
        (123456.0, "123456"),
        (123456789.0, "1.23456789e+08"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        (3.0, "3"),
        (NIL_SLICE, "[]"),
        (NIL_MAP, "map[]"),
        ([1, "a", None, [2], {"k": 1}], "[1 a <nil> [2] map[k:1]]"),
        (b"hi", "[104 105]"),
        (1 + 2j, "(1+2i)"),
    ],
)
def test_go_sprint(value, want):
    assert go_sprint(value) == want
    assert render("{{.V}}", {"V": value}) == want


def test_none_at_top_level_prints_no_value():
    assert render("{{.}}", None) == "<no value>"
    assert render("{{range .}}{{.}},{{end}}", [None, 1]) == "<no value>,1,"


# ----------------------------------------------------------------------------------------------
# Functions


def test_json_is_compact_sorted_and_does_not_escape_html():
    # docker/cli's json func: json.NewEncoder + SetEscapeHTML(false) + TrimSpace
    assert render("{{json .Config.Labels}}") == '{"maintainer":"me","org.opencontainers.image.version":"1.36"}'
    assert render("{{json .Html}}") == "\"<a href='x'>&</a>\""
    assert render("{{json .Config.Entrypoint}}") == "null"
    assert render("{{json .Missing}}") == "null"
    assert render("{{json .}}", {"b": 1.0, "a": [True, None, 1e21, 1e-7, 0.1]}) == '{"a":[true,null,1e+21,1e-7,0.1],"b":1}'


def test_json_marshal_go_details():
    assert json_marshal("\u2028x\u2029\x01\n") == '"\\u2028x\\u2029\\u0001\\n"'
    assert json_marshal("<&>", escape_html=True) == '"\\u003c\\u0026\\u003e"'
    assert json_marshal(NIL_SLICE) == "null" and json_marshal(NIL_MAP) == "null"
    assert json_marshal({"z": [], "a": {}}) == '{"a":{},"z":[]}'
    assert json_marshal(b"hi") == '"aGk="'  # []byte is base64
    assert json_marshal(-0.0) == "-0"
    with pytest.raises(InvalidArgument, match="unsupported value: NaN"):
        json_marshal(float("nan"))
    assert render("{{json .V}}", {"V": float("inf")}) == ""  # Docker prints nothing on error


@pytest.mark.parametrize(
    "text,want",
    [
        ('{{join .RepoTags ", "}}', "busybox:latest, busybox:1.36"),
        ("{{upper .Tag}}", "LATEST"),
        ("{{lower .Repository | upper}}", "BUSYBOX"),
        ('{{title "hello wide-world_x"}}', "Hello Wide-World_x"),  # strings.Title separators
        ("{{println .Tag}}", "latest\n"),
        ("{{println .Tag 1 2}}", "latest 1 2\n"),
        ('{{print "a" 1 2 "b" 3}}', "a1 2b3"),  # spaces only between non-strings
        ("{{print .Missing}}", "<nil>"),
        ("{{len .RepoTags}} {{len .Config.Labels}} {{len .Tag}} {{len .Config.Entrypoint}}", "2 2 6 0"),
        ('{{index .Config.Labels "org.opencontainers.image.version"}}', "1.36"),
        ('{{index .Config.Labels "absent"}}', ""),  # zero value of map[string]string
        ('{{index .Config.Entrypoint "k"}}', ""),  # nil map[string]string, as Docker's Labels
        ('{{index .Config "absent"}}', "<no value>"),  # map[string]interface{}
        ("{{index .RepoTags 1}}", "busybox:1.36"),
        ('{{index "abc" 1}}', "98"),  # indexing a string yields a byte
        ('{{split "a,b,,c" ","}}', "[a b  c]"),
        ('{{pad .Tag 1 2}}|{{pad "" 1 2}}|', " latest  ||"),
        ('{{truncate .Id 19}} {{truncate "ab" 5}}', "sha256:6fd955f66c23 ab"),
        ('{{slice .Tag 1 3}} {{slice .RepoTags 1}}', "at [busybox:1.36]"),
        ('{{printf "%s-%05d-%x-%.2f-%q-%v-%T" "a" 42 255 3.14159 "q" .Config.Cmd 1.5}}', 'a-00042-ff-3.14-"q"-[sh]-float64'),
        ('{{printf "%d %s"}}|{{printf "%d" "x"}}|{{printf "%s" 1 2}}', "%!d(MISSING) %!s(MISSING)|%!d(string=x)|%!s(int=1)%!(EXTRA int=2)"),
        ("{{html .Html}}", "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
        ('{{js "a\'<b>"}} {{urlquery "a b&c/d"}}', "a\\'\\u003Cb\\u003E a+b%26c%2Fd"),
        ('{{eq .Tag "latest"}} {{eq .Tag "x" "latest"}} {{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', "true true true true true true false"),
        ("{{eq .Missing .Config.Entrypoint}} {{eq .Missing 1}}", "true false"),
        ('{{and 1 0 "x"}} {{and 1 "x"}} {{or 0 "" "y"}} {{or 0 ""}}|{{not .Dangling}}', '0 x y |true'),
        ('{{call .F "x"}}', "got x"),
    ],
)
def test_functions(text, want):
    value = dict(IMAGE, F=lambda s: "got " + s)
    assert render(text, value) == want


# ----------------------------------------------------------------------------------------------
# Control structures, variables, literals, whitespace


@pytest.mark.parametrize(
    "text,want",
    [
        ("{{range .RepoTags}}[{{.}}]{{end}}", "[busybox:latest][busybox:1.36]"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "maintainer=me;org.opencontainers.image.version=1.36;"),
        ("{{range $i, $t := .RepoTags}}{{$i}}:{{$t}} {{end}}", "0:busybox:latest 1:busybox:1.36 "),
        ("{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}", "443/tcp 80/tcp "),
        ("{{range .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
        ("{{range .Nope}}x{{else}}none{{end}}", "none"),
        ("{{range 3}}{{.}}{{end}}", "012"),  # Go 1.22 range over int
        ("{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}", "busybox:1.36"),
        ("{{range $i, $e := .Config.Env}}{{if $i}}{{break}}{{end}}{{$e}}{{end}}", "PATH=/bin"),
        ("{{range .RepoTags}}{{$.Repository}} {{end}}", "busybox busybox "),  # $ is the root
        ("{{if .Dangling}}d{{else if .Tag}}t{{else}}n{{end}}", "t"),
        ("{{if and .Tag (not .Dangling)}}ok{{end}}", "ok"),
        ("{{if .Config.Entrypoint}}y{{else}}n{{end}}{{if .Config.Cmd}}y{{end}}", "ny"),
        ("{{with .Config}}{{.Labels.maintainer}}{{end}}", "me"),
        ("{{with .Nope}}x{{else with .Tag}}{{.}}{{end}}", "latest"),
        ("{{$t := .Tag}}{{$t}}{{$t = \"x\"}}{{$t}}", "latestx"),
        ("{{with $x := .Repository}}{{$x}}{{end}}", "busybox"),
        ('{{define "row"}}<{{.}}>{{end}}{{template "row" .Tag}}{{template "row"}}', "<latest><<no value>>"),
        ('{{block "b" .Repository}}[{{.}}]{{end}}', "[busybox]"),
        ("a{{/* comment */}}b {{- /* trimmed */ -}} c", "abc"),
        ("x  {{- .Tag -}}  \n y", "xlatesty"),
        ("{{- 3}} {{-3}}", "3 -3"),  # "{{-3}}" is a number, not a trim marker
        ('{{"a\\tb\\u00e9"}}|{{`raw\\t`}}', "a\tbé|raw\\t"),
        ("{{1}} {{0x1F}} {{017}} {{0b11}} {{1_000}} {{1.5}} {{1e3}} {{'a'}} {{true}}", "1 31 15 3 1000 1.5 1000 97 true"),
        ("{{(index .RepoTags 0)}} {{(.Config).Cmd}}", "busybox:latest [sh]"),
        ('{{.Tag | printf "%s:%s" .Repository}}', "busybox:latest"),  # piped value is the last arg
        ("{{.Tag\n}}", "latest"),  # newlines are spaces inside actions
    ],
)
def test_control_structures(text, want):
    assert render(text) == want


def test_objects_fields_and_methods():
    @dataclass(frozen=True)
    class Row:
        Name: str
        Labels: dict

        def Short(self, n=3):
            return self.Name[:n]

        @property
        def Broken(self):
            raise RuntimeError("boom")

    row = Row("abcdef", {"k": "v"})
    assert render("{{.Name}} {{.Short}} {{.Short 2}} {{.Labels.k}}", row) == "abcdef abc ab v"
    assert render('{{json .}}', row) == '{"Name":"abcdef","Labels":{"k":"v"}}'  # struct field order
    assert "can't evaluate field Nope in type Row" in error_of("{{.Nope}}", row)
    assert "error calling Broken: boom" in error_of("{{.Broken}}", row)


# ----------------------------------------------------------------------------------------------
# Go structs, typed nils and missingkey: what `docker inspect -f` prints (checked against
# Docker 28.2.2 on a real image; the typed value mirrors image.InspectResponse)

TYPED = GoStruct(
    Id="sha256:811fccc9414b",
    RepoTags=["probe:1"],
    RepoDigests=NIL_SLICE,
    Config=GoStruct(
        User="1000",
        ExposedPorts={"443/udp": GoStruct(), "80/tcp": GoStruct()},
        Env=["A=1", "HTML=<a&b>"],
        Cmd=["sh", "-c", "echo hi"],
        Entrypoint=NIL_SLICE,
        Labels={"maintainer": "me <me@example.com>", "zeta": "last"},
        Volumes=NIL_MAP,
        type_name="container.Config",
    ),
    type_name="image.InspectResponse",
)


@pytest.mark.parametrize(
    "text,want",
    [
        ("{{.RepoDigests}}|{{json .RepoDigests}}", "[]|null"),
        ("{{.Config.Entrypoint}}|{{json .Config.Entrypoint}}|{{len .Config.Entrypoint}}", "[]|null|0"),
        ("{{.Config.Volumes}}|{{json .Config.Volumes}}|{{.Config.Volumes.x}}", "map[]|null|<no value>"),
        ('{{index .Config.Volumes "x"}}|{{index .Config.Labels "nope"}}|{{.Config.Labels.nope}}', "||<no value>"),
        ("{{.Config.ExposedPorts}}|{{json .Config.ExposedPorts}}", "map[443/udp:{} 80/tcp:{}]|{\"443/udp\":{},\"80/tcp\":{}}"),
        ('{{index .Config.ExposedPorts "80/tcp"}}|{{index .Config.ExposedPorts "81/tcp"}}', "{}|{}"),
        ("{{json .Config.Labels.maintainer}}", '"me <me@example.com>"'),
        ("{{json .Config}}", '{"User":"1000","ExposedPorts":{"443/udp":{},"80/tcp":{}},"Env":["A=1","HTML=<a&b>"],'
         '"Cmd":["sh","-c","echo hi"],"Entrypoint":null,"Labels":{"maintainer":"me <me@example.com>","zeta":"last"},'
         '"Volumes":null}'),  # struct fields in declaration order, map keys sorted
        ("{{if .Config}}struct{{end}} {{.Config.User}}", "struct 1000"),
    ],
)
def test_typed_values_print_like_docker_inspect(text, want):
    assert render(text, TYPED) == want


def test_gostruct_fields_methods_and_errors():
    row = GoStruct(ID="abc", Labels=lambda name="": {"a": "1"}.get(name, ""), type_name="*formatter.imageContext")
    assert render('{{.ID}} {{.Labels "a"}}', row) == "abc 1"
    assert error_of("{{.Nope}}", row) == (
        "template parsing error: template: :1:2: executing \"\" at <.Nope>: "
        "can't evaluate field Nope in type *formatter.imageContext"
    )
    assert "ID has arguments but cannot be invoked as function" in error_of("{{.ID 1}}", row)
    assert "can't evaluate field X in type string" in error_of("{{.ID.X}}", row)  # a typed string field
    assert "len of type *formatter.imageContext" in error_of("{{len .}}", row)
    assert render("{{.}}", GoStruct(A="x", B=[1], C=None)) == "{x [1] <nil>}"
    with pytest.raises(AttributeError):
        row.ID = "x"


@pytest.mark.parametrize(
    "text,value,want",
    [  # Docker's raw-JSON fallback runs with Option("missingkey=error")
        ("{{.Nope}}", {}, 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
        ("{{.Config.Nope}}", {"Config": {}}, 'template: :1:9: executing "" at <.Config.Nope>: map has no entry for key "Nope"'),
        ("{{.Config.Env.X}}", {"Config": {"Env": None}}, 'at <.Config.Env.X>: nil pointer evaluating interface {}.X'),
        ("{{$x := .A}}{{$x.B}}", {}, 'at <.A>: map has no entry for key "A"'),
    ],
)
def test_missingkey_error(text, value, want):
    t = compile_template(text)
    with pytest.raises(TemplateError) as info:
        t.render(value, missingkey="error")
    assert want in str(info.value)


def test_missingkey_zero_and_default():
    t = compile_template("{{.a.nope}}|{{.b.nope}}")
    value = {"a": {"k": "v"}, "b": {"k": 1}}
    assert t.render(value) == "<no value>|<no value>"
    assert t.render(value, missingkey="zero") == "|<no value>"
    with pytest.raises(ValueError):
        t.render(value, missingkey="bogus")


def test_table_rows_are_structs_like_dockers_formatter_contexts():
    with pytest.raises(TemplateError) as info:
        format_table(ROWS, "table {{.ID}}\\t{{.Nope}}", type_name="*formatter.imageContext")
    assert str(info.value) == (
        "template parsing error: template: :1:10: executing \"\" at <.Nope>: "
        "can't evaluate field Nope in type *formatter.imageContext"
    )
    # `--format json` (and {{json .}}) sorts the keys, as Docker's MarshalJSON does
    assert format_table([{"b": "2", "a": "1"}], "json") == '{"a":"1","b":"2"}\n'


# ----------------------------------------------------------------------------------------------
# Errors: same text as Go/Docker, naming the template and the position


@pytest.mark.parametrize(
    "text,want",
    [
        # Go's lexer/parser messages (modern Go: "}" is not a terminator unless it starts "}}")
        ("{{ .Foo } }}", 'template: :1: unexpected "}" in operand'),
        ("{{.Foo}", "template: :1: bad character U+007D '}'"),
        ("{{.Foo", "template: :1: unclosed action"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{if .X}}a", "template: :1: unexpected EOF"),
        ("{{nope .X}}", 'template: :1: function "nope" not defined'),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{.X | 3}}", "template: :1: non executable command in pipeline stage 2"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{range .X}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
        ('{{"abcdefghijklmnop" "x"}} {{)', "template: :1: unexpected right paren"),
        ("{{.X .Y 'ab'}}", "template: :1: malformed character constant: 'ab'"),
        ("line1\n{{.X\n\n", "template: :4: unclosed action started at :2"),
        ("{{.A}}\n{{.B | | .C}}", 'template: :2: unexpected "|" in command'),
        ('{{template 1}}', 'template: :1: unexpected "1" in template clause'),
        ("{{.X}} {{.Y} }}", "template: :1: bad character U+007D '}'"),
        ('{{"0123456789abc" 1 | "x"}}', "template: :1: non executable command in pipeline stage 2"),
        ("{{(1 2}}", "template: :1: unclosed left paren"),
        ("{{with $x := 1}}{{end}}{{$x}}", 'template: :1: undefined variable "$x"'),  # scope ends at end
    ],
)
def test_parse_errors_read_like_docker(text, want):
    with pytest.raises(TemplateError) as info:
        compile_template(text)
    assert str(info.value) == "template parsing error: " + want
    assert isinstance(info.value, InvalidArgument)


# From Go's text/template/parse errorTests: (name, input, substring of the error).
GO_PARSE_ERRORS = [
    ("unclosed1", "line1\n{{", "unclosed1:2: unclosed action"),
    ("unclosed2", "line1\n{{define `x`}}line2\n{{", "unclosed2:3: unclosed action"),
    ("unclosed3", 'line1\n{{"x"\n"y"\n', "unclosed3:4: unclosed action started at unclosed3:2"),
    ("unclosed4", "{{\n\n\n\n\n", "unclosed4:6: unclosed action started at unclosed4:1"),
    ("var1", "line1\n{{\nx\n}}", 'var1:3: function "x" not defined'),
    ("comment1", "{{/*}}", "comment1:1: unclosed comment"),
    ("comment2", "{{/*\nhello\n}}", "comment2:1: unclosed comment"),
    ("lparen", "{{.X (1 2 3}}", "unclosed left paren"),
    ("rparen", "{{.X 1 2 3 ) }}", "unexpected right paren"),
    ("rparen2", "{{(.X 1 2 3", "unclosed action"),
    ("space", "{{`x`3}}", "in operand"),
    ("idchar", "{{a#}}", "'#'"),
    ("charconst", "{{'a}}", "unterminated character constant"),
    ("stringconst", '{{"a}}', "unterminated quoted string"),
    ("rawstringconst", "{{`a}}", "unterminated raw quoted string"),
    ("number", "{{0xi}}", "number syntax"),
    ("multidefine", "{{define `a`}}a{{end}}{{define `a`}}b{{end}}", "multiple definition of template"),
    ("eof", "{{range .X}}", "unexpected EOF"),
    ("variable", "{{$x := 23}}{{with $x.y := 3}}{{$x 23}}{{end}}", 'unexpected ":="'),
    ("multidecl", "{{$a,$b,$c := 23}}", "too many declarations"),
    ("undefvar", "{{$a}}", "undefined variable"),
    ("wrongdot", "{{true.any}}", "unexpected . after term"),
    ("wrongpipeline", "{{12|false}}", "non executable command in pipeline"),
    ("emptypipeline", "{{ ( ) }}", "missing value for parenthesized pipeline"),
    ("multilinerawstring", "{{ $v := `\n` }} {{", "multilinerawstring:2: unclosed action"),
    ("rangeundefvar", "{{range $k}}{{end}}", "undefined variable"),
    ("rangeundefvars", "{{range $k, $v}}{{end}}", "undefined variable"),
    ("rangemissingvalue1", "{{range $k,}}{{end}}", "missing value for range"),
    ("rangemissingvalue2", "{{range $k, $v := }}{{end}}", "missing value for range"),
    ("rangenotvariable1", "{{range $k, .}}{{end}}", "range can only initialize variables"),
    ("rangenotvariable2", "{{range $k, 123 := .}}{{end}}", "range can only initialize variables"),
]


@pytest.mark.parametrize("name,text,want", GO_PARSE_ERRORS, ids=[c[0] for c in GO_PARSE_ERRORS])
def test_go_parse_error_vectors(name, text, want):
    with pytest.raises(TemplateError) as info:
        compile_template(text, name=name)
    assert want in str(info.value)
    assert str(info.value).startswith("template parsing error: template: %s:" % name)


@pytest.mark.parametrize(
    "text,want",
    [
        # a value read out of a map is statically an interface{}, as in Docker's raw fallback
        ("{{.Tag.X}}", 'template: :1:6: executing "" at <.Tag.X>: can\'t evaluate field X in type interface {}'),
        ("{{.RepoTags.X}}", "executing \"\" at <.RepoTags.X>: can't evaluate field X in type interface {}"),
        ("{{.X}}", None),
        ("{{upper .Size}}", 'template: :1:8: executing "" at <.Size>: wrong type for value; expected string; got int'),
        ("{{upper .Missing}}", 'template: :1:8: executing "" at <.Missing>: invalid value; expected string'),
        ("{{.Size | upper}}", 'template: :1:10: executing "" at <upper>: wrong type for value; expected string; got int'),
        ("{{index .RepoTags 5}}", 'template: :1:2: executing "" at <index .RepoTags 5>: error calling index: index out of range: 5'),
        ("{{range .Tag}}{{end}}", 'template: :1:8: executing "" at <.Tag>: range can\'t iterate over latest'),
        ("{{upper}}", 'template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0'),
        ('{{eq 1 "a"}}', 'executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'),
        ("{{lt true false}}", "error calling lt: invalid type for comparison"),
        ("{{.Tag 1}}", 'template: :1:2: executing "" at <.Tag>: Tag is not a method but has arguments'),
        ("{{3 4}}", 'template: :1:2: executing "" at <3>: can\'t give argument to non-function 3'),
        ('{{truncate .Tag "3"}}', 'template: :1:16: executing "" at <"3">: expected integer; found "3"'),
        ("{{join .Config.Labels \",\"}}", "wrong type for value; expected []string; got map[string]interface {}"),
        ('{{template "nope"}}', 'template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined'),
        # columns count bytes, like Go
        ("x\n  {{.A}}\n  é{{.Tag.X}}", 'template: :3:10: executing "" at <.Tag.X>: can\'t evaluate field X in type interface {}'),
    ],
)
def test_execution_errors_name_template_and_position(text, want):
    if want is None:  # a bare string as dot has its concrete type
        assert error_of(text, "s").endswith("executing \"\" at <.X>: can't evaluate field X in type string")
        return
    message = error_of(text)
    assert message.startswith("template parsing error: template: ")
    assert want in message


def test_execution_error_in_named_template():
    text = '{{define "t"}}{{.X.Y}}{{end}}{{template "t" .Tag}}'
    assert error_of(text, name="fmt") == (
        'template parsing error: template: fmt:1:18: executing "t" at <.X.Y>: '
        "can't evaluate field X in type string"
    )


# ----------------------------------------------------------------------------------------------
# The Template object


def test_template_is_immutable_cached_and_reusable():
    t = compile_template("{{.Tag}}")
    assert isinstance(t, Template)
    assert compile_template("{{.Tag}}") is t
    with pytest.raises(AttributeError):
        t.text = "x"
    assert [t.render({"Tag": i}) for i in range(3)] == ["0", "1", "2"]
    assert t.text == "{{.Tag}}" and t.name == ""


def test_import_is_cheap():
    code = (
        "import sys; before = set(sys.modules); import lamina.cli.format; "
        "heavy = {'json', 'unicodedata', 'urllib.parse', 'dataclasses', 'inspect', 'decimal'}; "
        "print(sorted(heavy & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=REPO), check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------------------------
# Tables


@pytest.mark.parametrize(
    "fmt,want",
    [
        ("table {{.ID}}\\t{{.Tag}}", (True, "{{.ID}}\t{{.Tag}}")),
        ("table", (True, "")),
        ("json", (False, "{{json .}}")),
        ("  {{.ID}}\\n{{.Tag}}  ", (False, "{{.ID}}\n{{.Tag}}")),
        ("{{.ID}}\t{{.Tag}}", (False, "{{.ID}}\t{{.Tag}}")),
    ],
)
def test_prepare_format(fmt, want):
    assert prepare_format(fmt) == want


DOCKER_IMAGES_FORMAT = (
    "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\\t{{.Size}}"
)
IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "CreatedSince": "CREATED", "Size": "SIZE"}
ROWS = [
    {"Repository": "busybox", "Tag": "latest", "ID": "6fd955f66c23", "CreatedSince": "2 weeks ago", "Size": "4.26MB"},
    {"Repository": "localhost:5000/me/app", "Tag": "v1", "ID": "0123456789ab", "CreatedSince": "", "Size": "1.2GB"},
]


def test_images_table_lines_up_like_docker():
    # tabwriter(10, 1, 3, ' '): width = max(10, widest cell + 3); the last cell is not padded.
    # REPOSITORY: 21+3=24, TAG: max(10, 6+3)=10, IMAGE ID: 12+3=15, CREATED: 11+3=14.
    assert format_table(ROWS, DOCKER_IMAGES_FORMAT, headers=IMAGE_HEADERS) == (
        "REPOSITORY              TAG       IMAGE ID       CREATED       SIZE\n"
        "busybox                 latest    6fd955f66c23   2 weeks ago   4.26MB\n"
        "localhost:5000/me/app   v1        0123456789ab   N/A           1.2GB\n"
    )


def test_single_image_matches_docker_images_output():
    # The familiar `docker images` layout: REPOSITORY (10+3), TAG (minwidth 10), IMAGE ID (12+3).
    assert format_table(ROWS[:1], DOCKER_IMAGES_FORMAT, headers=IMAGE_HEADERS).splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE",
        "busybox      latest    6fd955f66c23   2 weeks ago   4.26MB",
    ]


def test_empty_table_prints_header_only():
    assert format_table([], DOCKER_IMAGES_FORMAT, headers=IMAGE_HEADERS) == (
        "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    )


def test_plain_format_has_no_header_and_keeps_tabs():
    assert format_table(ROWS, "{{.ID}}\\t{{.Tag}}") == "6fd955f66c23\tlatest\n0123456789ab\tv1\n"
    assert format_table(ROWS, "json").splitlines()[0].startswith('{"CreatedSince":"2 weeks ago","ID":')


def test_header_functions_and_derived_titles():
    fmt = (
        'table {{json .Repository}}\\t{{upper .Tag}}\\t{{join .RepoTags ","}}\\t'
        '{{index .Config.Labels "maintainer"}}\\t{{.Config.Labels}}\\t{{range .RepoTags}}{{.}}{{end}}'
    )
    row = {"Repository": "r", "Tag": "t", "RepoTags": ["a", "b"], "Config": {"Labels": {"maintainer": "me"}}}
    # widths: max(10, widest + 3) -> 13, 10, 12, 13, 21; the last column is not padded
    assert format_table([row], fmt, headers={"Config.Labels": "LABELS"}) == (
        "REPOSITORY   TAG       REPO TAGS   MAINTAINER   LABELS               REPO TAGS\n"
        '"r"          T         a,b         me           map[maintainer:me]   ab\n'
    )
    assert [derive_header(n) for n in ("CreatedSince", "ID", "IPAddress", "size_rw", "Tag")] == [
        "CREATED SINCE",
        "ID",
        "IP ADDRESS",
        "SIZE RW",
        "TAG",
    ]


def test_table_with_wide_characters_counts_terminal_columns():
    # docker's tabwriter fork measures cells with go-runewidth: a CJK ideograph is 2 columns.
    out = format_table([{"N": "本本", "T": "x"}, {"N": "ab", "T": "y"}], "table {{.N}}\\t{{.T}}")
    assert out == "N         T\n本本      x\nab        y\n"


# Go's text/tabwriter tests (flags == 0): name, minwidth, tabwidth, padding, padchar, src, want
GO_TABWRITER = [
    ("2", 8, 0, 1, ".", "\n\n\n", "\n\n\n"),
    ("3", 8, 0, 1, ".", "a\nb\nc", "a\nb\nc"),
    ("4a", 8, 0, 1, ".", "\t", ""),
    ("5", 8, 0, 1, ".", "*\t*", "*.......*"),
    ("5c", 8, 0, 1, ".", "*\t*\t", "*.......*"),
    ("6", 8, 0, 1, ".", "\t\n", "........\n"),
    ("7e", 8, 0, 1, ".", "e) foo\tbar\t\n", "e) foo..bar.....\n"),
    ("9a", 1, 0, 0, ".", "1\t2\t3\t4\n11\t222\t3333\t44444\n", "1.2..3...4\n11222333344444\n"),
    ("9c", 1, 0, 0, ".", "1\t2\t3\t4\f11\t222\t3333\t44444\n", "1234\n11222333344444\n"),
    ("10b", 5, 0, 0, ".", "1\t2\t3\t4\t\n", "1....2....3....4....\n"),
    ("12b", 2, 0, 0, " ", "a\tb\tc\naa\tbbb\tcccc\naaa\tbbbb\n", "a  b  c\naa bbbcccc\naaabbbb\n"),
    (
        "13b", 4, 0, 3, ".",
        "4444\t333\t22\t1\t333\n999999999\t22\n7\t22\n\t\t\t88888888\n\n"
        "666666\t666666\t666666\t4444\n1\t1\t999999999\t0000000000\n",
        "4444........333...22...1...333\n999999999...22\n7...........22\n....................88888888\n\n"
        "666666...666666...666666......4444\n1........1........999999999...0000000000\n",
    ),
    ("15a", 4, 0, 0, ".", "a\t\tb", "a.......b"),
    (
        "16a", 100, 100, 0, "\t",
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
        "a\tb\t\td\na\tb\t\td\te\na\na\tb\tc\td\na\tb\tc\td\te\n",
    ),
]


@pytest.mark.parametrize("name,minwidth,tabwidth,padding,padchar,src,want", GO_TABWRITER, ids=[c[0] for c in GO_TABWRITER])
def test_go_tabwriter_vectors(name, minwidth, tabwidth, padding, padchar, src, want):
    assert tabwrite(src, minwidth=minwidth, tabwidth=tabwidth, padding=padding, padchar=padchar) == want


# ----------------------------------------------------------------------------------------------
# docker/go-units


@pytest.mark.parametrize(
    "size,want",
    [  # go-units TestHumanSize (precision 4)
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * 1000**2, "2MB"),
        (3.42 * 1000**3, "3.42GB"),
        (5.372 * 1000**4, "5.372TB"),
        (2.22 * 1000**5, "2.22PB"),
        (10000000000000 * 1000**5, "1e+04YB"),
    ],
)
def test_human_size_go_units_vectors(size, want):
    assert human_size(size, 4) == want


@pytest.mark.parametrize(
    "size,want",
    [  # precision 3, as `docker images` prints SIZE
        (0, "0B"),
        (1, "1B"),
        (512, "512B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (4860000, "4.86MB"),
        (4_261_376, "4.26MB"),
        (999_499, "999kB"),
        (999_500, "1e+03kB"),  # %.3g rounds up to 1e+03 without changing unit, as Docker does
        (123_456_789, "123MB"),
        (10**9, "1GB"),
    ],
)
def test_human_size_docker_images_precision(size, want):
    assert human_size(size) == want


@pytest.mark.parametrize(
    "size,want",
    [  # go-units TestBytesSize
        (0, "0B"),
        (1024, "1KiB"),
        (1024 * 1024, "1MiB"),
        (2 * 1024**2, "2MiB"),
        (3.42 * 1024**3, "3.42GiB"),
        (5.372 * 1024**4, "5.372TiB"),
        (2.22 * 1024**5, "2.22PiB"),
        (1024**5 * 1024**5, "1.049e+06YiB"),
        (1536, "1.5KiB"),
    ],
)
def test_bytes_size(size, want):
    assert bytes_size(size) == want


MIN, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    "seconds,want",
    [  # go-units TestHumanDuration, every case
        (0.45, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (46, "46 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3 * MIN, "3 minutes"),
        (35 * MIN, "35 minutes"),
        (35 * MIN + 40, "35 minutes"),
        (45 * MIN, "45 minutes"),
        (45 * MIN + 40, "45 minutes"),
        (46 * MIN, "46 minutes"),
        (59 * MIN, "59 minutes"),
        (1 * HOUR, "About an hour"),
        (1 * HOUR + 29 * MIN, "About an hour"),
        (1 * HOUR + 31 * MIN, "2 hours"),
        (1 * HOUR + 59 * MIN, "2 hours"),
        (3 * HOUR, "3 hours"),
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (3 * HOUR + 59 * MIN, "4 hours"),
        (3 * HOUR + 60 * MIN, "4 hours"),
        (24 * HOUR, "24 hours"),
        (1 * DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (1 * MONTH, "4 weeks"),
        (1 * MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (2 * MONTH + 2 * WEEK, "2 months"),
        (3 * MONTH, "3 months"),
        (3 * MONTH + 1 * WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        # thresholds: days/weeks/months divide the rounded hours, years the truncated hours
        (0.999, "Less than a second"),
        (-5, "Less than a second"),
        (119.9, "About a minute"),
        (120, "2 minutes"),
        (47 * HOUR + 29 * MIN, "47 hours"),
        (47 * HOUR + 31 * MIN, "2 days"),  # rounds to 48 hours
        (2 * WEEK - 31 * MIN, "13 days"),
        (2 * WEEK - 29 * MIN, "2 weeks"),
        (2 * MONTH - 1, "2 months"),
        (2 * YEAR - HOUR, "24 months"),
        (2 * YEAR - 1, "1 years"),  # go-units quirk, kept: Docker prints this too
        (2 * YEAR, "2 years"),
    ],
)
def test_human_duration(seconds, want):
    assert human_duration(seconds) == want


def test_ago():
    assert ago(1_000_000, 1_000_000 + 2 * WEEK) == "2 weeks ago"
    assert ago(100, 100.5) == "Less than a second ago"
    assert ago(0).endswith(" years ago")  # defaults to now


@pytest.mark.parametrize(
    "text,binary,want",
    [  # go-units TestRAMInBytes / TestFromHumanSize
        ("32", True, 32),
        ("32b", True, 32),
        ("32B", True, 32),
        ("32k", True, 32 * 1024),
        ("32K", True, 32 * 1024),
        ("32kb", True, 32 * 1024),
        ("32Kib", True, 32 * 1024),
        ("32KIB", True, 32 * 1024),
        ("32Mb", True, 32 * 1024**2),
        ("32Gb", True, 32 * 1024**3),
        ("32Tb", True, 32 * 1024**4),
        ("32PB", True, 32 * 1024**5),
        ("32P", True, 32 * 1024**5),
        ("32.3", True, 32),
        ("32.3 mb", True, int(32.3 * 1024**2)),
        ("0.3MB", True, int(0.3 * 1024**2)),
        ("64m", True, 67108864),
        ("512m", True, 536870912),
        ("0", False, 0),
        ("0 B", False, 0),
        ("32k", False, 32000),
        ("32.5kB", False, 32500),
        ("32.5 kB", False, 32500),
        ("32.5 B", False, 32),
        ("0.3 K", False, 300),
        (".3kB", False, 300),
        ("0.", False, 0),
        ("0. ", False, 0),
        ("-0 B", False, 0),
        ("32. b", False, 32),
        ("0 ", False, 0),
        ("1e3", True, 1000),  # Go float syntax
    ],
)
def test_parse_size(text, binary, want):
    assert parse_size(text, binary=binary) == want


@pytest.mark.parametrize(
    "text,detail",
    [
        ("", ""),
        ("hello", ""),
        (".", ": strconv.ParseFloat: parsing \".\": invalid syntax"),
        (" 0", ': strconv.ParseFloat: parsing " 0": invalid syntax'),
        ("0b ", ': strconv.ParseFloat: parsing "0b": invalid syntax'),
        ("-32", ""),
        ("-32 B", ""),
        ("32b.", ': strconv.ParseFloat: parsing "32b.": invalid syntax'),
        ("32 bb", ": invalid suffix: 'bb'"),
        ("32  b", ': strconv.ParseFloat: parsing "32 ": invalid syntax'),
        ("32m b", ': strconv.ParseFloat: parsing "32m": invalid syntax'),
        ("32bm", ": invalid suffix: 'bm'"),
        ("32kiB!", ": invalid suffix: 'kiB!'"),
        ("32x", ": invalid suffix: 'x'"),
        ("32mi", ": invalid suffix: 'mi'"),
        ("1_000", ': strconv.ParseFloat: parsing "1_000": invalid syntax'),
    ],
)
def test_parse_size_errors_name_the_text(text, detail):
    with pytest.raises(InvalidArgument) as info:
        parse_size(text)
    assert str(info.value) == "invalid size: '%s'%s" % (text, detail)
