"""Parser tests: golden Dockerfiles (cross-checked against Docker's own Go parser through
the ``dockerfile`` package) and located errors (message, line, caret column)."""

import glob
import os

import dockerfile as goparser
import pytest

from lamina.dockerfile.parser import DockerfileError, format_error, parse

HERE = os.path.join(os.path.dirname(__file__), "dockerfiles")
GOLDEN = sorted(glob.glob(os.path.join(HERE, "*.Dockerfile")))


def _flat(df):
    out = list(df.meta_args)
    for s in df.stages:
        out.append(s.source)
        out.extend(s.instructions)
    return out


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_matches_docker_go_parser(path):
    data = open(path, "rb").read()
    theirs = goparser.parse_string(data.decode("utf-8-sig"))
    mine = _flat(parse(data))
    assert len(mine) == len(theirs)
    for m, t in zip(mine, theirs):
        assert m.cmd == t.cmd.upper()
        assert (m.line, m.end_line) == (t.start_line, t.end_line), m
        if m.cmd == "ONBUILD":
            assert (m.trigger.cmd,) + m.trigger.args == (t.sub_cmd.upper(),) + t.value
            continue
        assert m.args == t.value, m
        assert m.json == t.json
        assert [k for k, _ in m.flags] == [f[2:].split("=")[0] for f in t.flags]
        assert [h.name for h in m.heredocs] == [h.name for h in t.heredocs]


def test_kitchen_sink_structure():
    df = parse(open(os.path.join(HERE, "kitchen_sink.Dockerfile"), "rb").read())
    assert df.syntax == "docker/dockerfile:1" and df.escape == "\\"
    assert [a.args for a in df.meta_args] == [("BASE=alpine",), ("V",)]
    assert [(s.index, s.name, s.base, s.platform, s.line) for s in df.stages] == [
        (0, "build", "${BASE}:3", "$BUILDPLATFORM", 4), (1, None, "scratch", None, 37)]
    ins = df.stages[0].instructions
    run = ins[0]
    assert run.cmd == "RUN" and run.args == ("echo hi    there",) and (run.line, run.end_line) == (5, 7)
    assert ins[1].json and ins[1].args == ("echo", "a b")
    assert not ins[2].json and ins[2].args == ("[bad",)
    h = ins[4].heredocs[0]
    assert (h.name, h.content, h.expand, h.chomp) == ("EOT", "echo $x\n", False, True)
    assert ins[3].heredocs[0].expand is True
    cp = ins[5]
    assert cp.flags == (("from", "build"), ("chown", "1:1")) and cp.args == ("a", "b", "/dst/")
    add = ins[7]
    assert add.flag("link") == "true" and add.flag("chmod") == "755"
    onb = [i for i in ins if i.cmd == "ONBUILD"]
    assert onb[0].args == ("RUN echo trigger",) and onb[0].trigger.cmd == "RUN"
    assert onb[1].trigger.json and onb[1].trigger.args == ("a", "b")
    assert df.stage("BUILD") is df.stages[0] and df.stage(1) is df.stages[1]
    assert df.stages[1].instructions[0].heredocs[0].content == "hello $USER\n"


def test_escape_directive_and_warnings():
    df = parse(open(os.path.join(HERE, "escape_backtick.Dockerfile"), "rb").read())
    assert df.escape == "`"
    assert df.stages[0].instructions[0].args == ("dir c:\\     /w",)
    assert any("empty continuation line" in w for w in df.warnings)


def test_directive_only_before_first_instruction():
    df = parse("FROM a\n# escape=`\nRUN a `\n")
    assert df.escape == "\\"
    df = parse("\n# escape=`\nFROM a\n")
    assert df.escape == "\\"  # a blank line ends the directive section


def test_crlf_bom_lowercase_and_json_trailing():
    df = parse(b"\xef\xbb\xbffrom a\r\nrun [\"x\"] tail\r\n")
    i = df.stages[0].instructions[0]
    assert i.cmd == "RUN" and i.json and i.args == ("x",)


# (dockerfile, line, message, caret column)
ERRORS = [
    ("FROM a\nFOO bar\n", 2, "unknown instruction: FOO", 0),
    ("FROM a\nFORM b\n", 2, "unknown instruction: FORM (did you mean from?)", 0),
    ("RUN ls\nFROM a\n", 1, "no build stage in current context", 0),
    ("ARG A\n\n  ENV x=y\nFROM a\n", 3, "no build stage in current context", 2),
    ("FROM a\nCOPY --chwon=app a b\n", 2, "unknown flag: chwon", 5),
    ("FROM a\nRUN --mount=type=cache,target=/x --nope ls\n", 2, "unknown flag: nope", 33),
    ("FROM a\nCOPY --from=a --from=b x y\n", 2, "Duplicate flag specified: from", 5),
    ("FROM a\nCOPY --chown x y\n", 2, "Missing a value on flag: chown", 5),
    ("FROM a\nADD --link=maybe x y\n", 2, "Expecting boolean value for flag link, not: maybe", 4),
    ("FROM --plat=x a\n", 1, "unknown flag: plat", 5),
    ("FROM a AS 1bad\n", 1, 'invalid name for build stage: "1bad", name can\'t start with a number or contain symbols', 10),
    ("FROM a b\n", 1, "FROM requires either one or three arguments", 0),
    ("FROM a\nCOPY onlyone\n", 2, "COPY requires at least two arguments, but only one was provided. Destination could not be determined", 0),
    ("FROM a\nRUN [1, 2]\n", 2, "when using JSON array syntax, arrays must be comprised of strings only", 4),
    ("FROM a\nENV a=b c\n", 2, "Syntax error - can't find = in \"c\". Must be of the form: name=value", 8),
    ("FROM a\nENV onlykey\n", 2, "ENV must have two arguments", 0),
    ("FROM a\nUSER\n", 2, "USER requires exactly one argument", 0),
    ("FROM a\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc", 6),
    ("FROM a\nHEALTHCHECK --interval=5x CMD ls\n", 2, 'time: invalid duration "5x"', 12),
    ("FROM a\nHEALTHCHECK --retries=-1 CMD ls\n", 2, "--retries cannot be negative (-1)", 12),
    ("FROM a\nHEALTHCHECK BOGUS ls\n", 2, 'Unknown type "BOGUS" in HEALTHCHECK (try CMD)', 12),
    ("FROM a\nHEALTHCHECK NONE x\n", 2, "HEALTHCHECK NONE takes no arguments", 0),
    ("FROM a\nONBUILD ONBUILD RUN x\n", 2, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", 8),
    ("FROM a\nONBUILD FROM b\n", 2, "FROM isn't allowed as an ONBUILD trigger", 8),
    ("FROM a\nSHELL /bin/sh -c\n", 2, "SHELL requires the arguments to be in JSON form", 0),
    ("# escape=x\nFROM a\n", 1, "invalid escape token 'x' does not match ` or \\", 9),
    ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive can be used", 2),
    ("FROM a\nCOPY x <<EOF\nhi\nEOF\n", 2, "COPY cannot accept a heredoc as a destination", 7),
    ("FROM a\nCMD [\"a\",\n  \"b\"]\n", 3, 'unknown instruction: "b"]', 2),
    ("ARG only\n", 1, "dockerfile contains no stages to build", 0),
    ("# just a comment\n\n", 2, "file with no instructions", 0),
    ("FROM a\nRUN echo \\\n  --x \\\n  && COPY --bogus=1 a b\n", 2, "", None),
    ("FROM a\nCOPY a \\\n   --chown=1 b\n", None, None, None),
]


@pytest.mark.parametrize("text,line,message,column", ERRORS)
def test_errors_are_located(text, line, message, column):
    if line is None:
        parse(text)  # flags only count before the arguments: this one is valid
        return
    if message == "":
        parse(text)  # a RUN line's words are not flags
        return
    with pytest.raises(DockerfileError) as ei:
        parse(text)
    err = ei.value
    first, src, caret = str(err).split("\n")
    assert first == f"Dockerfile:{line}: {message}"
    assert err.line == line and err.reason == message
    assert src == text.split("\n")[line - 1]
    assert caret.index("^") == column == err.column


def test_caret_under_tabs_and_filename():
    with pytest.raises(DockerfileError) as ei:
        parse("FROM a\n\tCOPY --nope x y\n", filename="build/app.Dockerfile")
    first, src, caret = str(ei.value).split("\n")
    assert first == "build/app.Dockerfile:2: unknown flag: nope"
    assert caret == "\t     ^"


def test_format_error_for_later_stages():
    df = parse("FROM a\nCOPY ${X:?} /dst\n")
    msg = format_error(df, 2, "failed to process \"${X:?}\": X: is not allowed to be unset", 5)
    assert msg.split("\n") == [
        'Dockerfile:2: failed to process "${X:?}": X: is not allowed to be unset',
        "COPY ${X:?} /dst", "     ^"]
