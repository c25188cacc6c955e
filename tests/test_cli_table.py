"""Tests for lamina.cli.table: docker/cli's table formatting (prepare, header row, Go's tabwriter).

Expected strings come from Go's text/tabwriter tests and from docker's own output.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lamina.cli.table import format_table, prepare_format, tabwrite
from lamina.gotemplate.header import derive_header
from lamina.gotemplate.template import TemplateError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
# Plain-field tables (the default `images`, `ps`, `history` formats) need no template engine


def _engine_table(rows, fmt, headers=None, type_name="*formatter.Context"):
    """What the template engine renders for a table: the slow path, spelled out."""
    from lamina.gotemplate.template import compile_template
    from lamina.gotemplate.values import GoStruct

    is_table, text = prepare_format(fmt)
    tmpl = compile_template(text)
    body = "".join(tmpl.render(GoStruct(sorted(r.items()), type_name)) + "\n" for r in rows)
    return tabwrite(tmpl.render_header(headers) + "\n" + body) if is_table else body


@pytest.mark.parametrize(
    "rows,fmt,headers",
    [
        (ROWS, "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}", IMAGE_HEADERS),
        (ROWS, "table {{.Repository}}\\t{{.CreatedSince}}", None),  # derived titles
        (ROWS, "table {{.Repository}}\\t{{.Tag}}", {"Repository": "", "Tag": "T"}),  # an empty title
        ([], "table {{.ID}}\\t{{.Size}}", IMAGE_HEADERS),  # header only
        ([{"A": 1, "B": "x"}, {"A": -20, "B": "本本"}], "table {{.A}}\\t{{.B}}", None),  # ints, wide text
        ([{"A": 1, "B": "x\ty"}], "table {{.A}}\\t{{.B}}", None),  # a tab inside a value
        ([{"A": 1, "B": "x"}], "{{.A}}\\t{{.B}}", None),  # no table: no header, tabs kept
        ([{"A": True, "B": "x"}], "table {{.A}}\\t{{.B}}", None),  # bool: the engine prints it
        ([{"A": None, "B": "x"}], "table {{.A}}\\t{{.B}}", None),  # nil: <no value>
        ([{"A": [1, 2], "B": "x"}], "table {{.A}}\\t{{.B}}", None),  # a slice: [1 2]
        ([{"_a": "1", "B2": "x"}], "table {{._a}}\\t{{.B2}}", None),
        ([{"A": "1"}], "table {{.A}}\\t", None),  # an empty part is not a field
        ([{"A": "1"}], "table {{ .A }}", None),  # spaces: not the plain form, same output
    ],
)
def test_plain_field_tables_render_like_the_engine(rows, fmt, headers):
    assert format_table(rows, fmt, headers=headers) == _engine_table(rows, fmt, headers)


def test_non_ascii_field_names_go_through_the_parser():
    # Python calls "Ⅰ" (a letter number) an identifier; Go's lexer does not take it in a field
    # name, so the template must fail to parse as in Docker, not print the value.
    with pytest.raises(TemplateError, match="bad character U\\+2160"):
        format_table([{"Ⅰ": "x"}], "table {{.Ⅰ}}")


def _imported_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         cwd=REPO, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=REPO)).stdout
    return set(out.split())


def test_plain_field_tables_do_not_import_the_template_engine():
    mods = _imported_modules(
        "from lamina.cli.table import format_table; "
        "assert format_table([{'ID': 'abc', 'Size': 1}], 'table {{.ID}}\\\\t{{.Size}}', headers={'ID': 'IMAGE ID'})"
        " == 'IMAGE ID   SIZE\\nabc        1\\n'"
    )
    assert "lamina.cli.table" in mods
    assert not {m for m in mods if m.startswith("lamina.gotemplate.")} - {"lamina.gotemplate.header"}
    # a format that is more than plain fields does load it
    mods = _imported_modules("from lamina.cli.table import format_table; format_table([{'ID': 'a'}], 'table {{lower .ID}}')")
    assert {"lamina.gotemplate.parser", "lamina.gotemplate.exec"} <= mods


def _lamina_imports(lamina, *args: str) -> tuple[str, set[str]]:
    """stdout of a real ``lamina`` command, and the lamina modules (and typing) it imported (-X importtime)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "lamina", *args], env=lamina.env, cwd=REPO,
                       capture_output=True, text=True, check=True)
    mods = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")}
    return p.stdout, {m for m in mods if m.startswith("lamina") or m == "typing"}


def test_images_and_ps_load_the_template_engine_only_for_a_format(bb):
    engine = {"lamina.gotemplate.template", "lamina.gotemplate.parser", "lamina.gotemplate.exec"}
    heavy = engine | {"typing"}  # typing costs ~10 ms; an annotation-only import must not load it
    out, mods = _lamina_imports(bb, "images")
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "busybox" in out and "lamina.cli.table" in mods and not mods & heavy
    out, mods = _lamina_imports(bb, "ps", "-a")
    assert out.startswith("CONTAINER ID") and "lamina.cli.table" in mods and not mods & heavy
    out, mods = _lamina_imports(bb, "images", "--format", "{{upper .Repository}}")
    assert out == "BUSYBOX\n" and engine <= mods
