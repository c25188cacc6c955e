"""Docker-style flag parsing: clusters, values, booleans with =false, --, errors and exit codes."""

from __future__ import annotations

import pytest

from lamina.cli.args import Parser


def make(**kw) -> Parser:
    p = Parser("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", **kw)
    p.flag("-a", "--all", help="Show all")
    p.flag("-q", "--quiet")
    p.flag("-H", "--human", default=True)
    p.option("-f", "--filter", append=True)
    p.option("--format")
    p.args("repository", max=1)
    return p


def test_clusters_values_and_positionals():
    a = make().parse(["-aq", "-fdangling=true", "busybox", "--filter", "reference=x", "--format={{.ID}}"])
    assert a.all and a.quiet and a.human
    assert a.filter == ["dangling=true", "reference=x"]
    assert a.format == "{{.ID}}" and a.repository == "busybox"
    assert make().parse(["-f", "a=b"]).filter == ["a=b"]
    assert make().parse(["--human=false"]).human is False
    assert make().parse(["-H=false"]).human is False
    assert make().parse(["--", "-notaflag"]).repository == "-notaflag"
    assert make().parse([]).repository is None


def test_stop_at_first_positional():
    p = Parser("run", "IMAGE [COMMAND]", interspersed=False)
    p.flag("-i", "--interactive")
    p.args("args", min=1)
    a = p.parse(["-i", "busybox", "ls", "-la"])
    assert a.interactive and a.args == ["busybox", "ls", "-la"]


@pytest.mark.parametrize("argv,code,msg", [
    (["--bogus"], 125, "unknown flag: --bogus"),
    (["-z"], 125, "unknown shorthand flag: 'z' in -z"),
    (["-aqz"], 125, "unknown shorthand flag: 'z' in -aqz"),
    (["--format"], 125, "flag needs an argument: --format"),
    (["--all=maybe"], 125, 'invalid argument "maybe" for "--all" flag'),
    (["a", "b"], 1, "'lamina images' requires at most 1 argument"),
])
def test_errors(argv, code, msg, capsys):
    with pytest.raises(SystemExit) as e:
        make().parse(argv)
    assert e.value.code == code
    err = capsys.readouterr().err
    assert msg in err and "Usage:  lamina images [OPTIONS] [REPOSITORY[:TAG]]" in err


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        make().parse(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Usage:  lamina images" in out and "-a, --all" in out and "--format string" in out


def test_h_is_a_flag_when_a_verb_claims_it():
    p = Parser("run", "IMAGE", interspersed=False)
    p.option("-h", "--hostname")
    p.args("args", min=1)
    a = p.parse(["-h", "box", "busybox"])
    assert a.hostname == "box" and a.args == ["busybox"]
    assert p.parse(["-hbox", "x"]).hostname == "box"
