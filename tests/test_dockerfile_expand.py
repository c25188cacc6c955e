"""Expansion cases after BuildKit's shell/envVarTest and wordsTest (Unix/all rows)."""

import pytest

from lamina.dockerfile.expand import ExpansionError, expand_instruction, expand_word, expand_words, key_values
from lamina.dockerfile.parser import parse

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어"}

# (source, expected or "error")
WORD_CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", "error"),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", "error"),
    ("abc\\def", "abcdef"),
    ('"abc\\def"', "abc\\def"),
    ('"abc\\\\def"', "abc\\def"),
    ("'abc\\\\def'", "abc\\\\def"),
    ('"""hello"""', "hello"),
    ("\"'hello'\"", "'hello'"),
    ("'\"hello\"'", '"hello"'),
    ('"hello"', "hello"),
    ("'hello'", "hello"),
    ("\"'\"", "'"),
    ("'\"'", '"'),
    ("'", "error"),
    ('"', "error"),
    ("\\$", "$"),
    ("$", "$"),
    ("a$", "a$"),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ("'he$PWD'", "he$PWD"),
    ("he\\${}", "he${}"),
    ("he\\${}xx", "he${}xx"),
    ("he${}", "error"),
    ("he${}xx", "error"),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", "error"),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", "error"),
    ("he${XXX?}", "error"),
    ("he${XXX:?}", "error"),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ('"he\'$PWD\'"', "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ('"hello\\"world"', 'hello"world'),
    ("${KOREAN}", "한국어"),
    ("안녕${KOREAN}", "안녕한국어"),
    ("${PWD#/h}", "ome"),
    ("${PWD##*/}", "home"),
    ("${SHELL%sh}", "ba"),
    ("${SHELL%%a*}", "b"),
    ("${PWD/o/0}", "/h0me"),
    ("${SHELL//a/A}", "bAsh"),
    ("he${PWD:=000}xx", "error"),
    ("${PWD", "error"),
    ("${PWD:-x", "error"),
]


@pytest.mark.parametrize("source,expected", WORD_CASES)
def test_expand_word(source, expected):
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(source, ENV)
    else:
        assert expand_word(source, ENV) == expected


WORDS_ENV = {"PWD": "/home", "SHELL": "bash", "E": "", "X": "x y z"}
WORDS_CASES = [
    ("hello", ["hello"]),
    ("hello world", ["hello", "world"]),
    ("hello   world  ", ["hello", "world"]),
    ('"hello world"', ["hello world"]),
    ("'hello world'", ["hello world"]),
    ("hello\\ world", ["hello world"]),
    ('he"llo wor"ld', ["hello world"]),
    ("$X", ["x", "y", "z"]),
    ('"$X"', ["x y z"]),
    ("a$X b", ["ax", "y", "z", "b"]),
    ("${E}", []),
    ('""', []),
    ("a ${SHELL:-x} $PWD", ["a", "bash", "/home"]),
    ('"unterminated', "error"),
]


@pytest.mark.parametrize("source,expected", WORDS_CASES)
def test_expand_words(source, expected):
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_words(source, WORDS_ENV)
    else:
        assert expand_words(source, WORDS_ENV) == expected


def test_error_names_the_variable():
    with pytest.raises(ExpansionError) as ei:
        expand_word("${TOKEN:?must be set}", {})
    assert ei.value.variable == "TOKEN"
    assert str(ei.value) == 'failed to process "${TOKEN:?must be set}": TOKEN: must be set'
    with pytest.raises(ExpansionError, match=r"EMPTY: is not allowed to be empty"):
        expand_word("${EMPTY:?}", {"EMPTY": ""})
    with pytest.raises(ExpansionError, match=r"NOPE: is not allowed to be unset"):
        expand_word("${NOPE?}", {})


def test_unsupported_modifier_message():
    with pytest.raises(ExpansionError, match=r"unsupported modifier \(:=\) in substitution"):
        expand_word("${A:=b}", {})


def test_backtick_escape():
    assert expand_word("a`$b", {"b": "x"}, escape="`") == "a$b"
    assert expand_word("C:\\dir\\$b", {"b": "x"}, escape="`") == "C:\\dir\\x"
    assert expand_words("a` b c", {}, escape="`") == ["a b", "c"]


def _instrs(text):
    df = parse(text)
    return {i.cmd: i for i in df.stages[0].instructions}


def test_expand_instruction_where_docker_does():
    env = {"A": "1", "D": "/dst", "U": "app"}
    ins = _instrs("FROM x\nRUN echo $A\nCMD echo $A\nCOPY --chown=$U:$U src$A $D/\n"
                  "ENV B=$A C=\"${A} two\"\nWORKDIR /w/$A\nUSER $U\nEXPOSE $A ${A}0/udp\n"
                  "LABEL k$A=v$A\nVOLUME $D\nSTOPSIGNAL SIG$A\nARG Z=$A Y\n"
                  "HEALTHCHECK CMD echo $A\nSHELL [\"/bin/$A\"]\nENTRYPOINT echo $A\n"
                  "ONBUILD RUN echo $A\n")
    ex = {k: expand_instruction(v, env) for k, v in ins.items()}
    for cmd in ("RUN", "CMD", "HEALTHCHECK", "SHELL", "ENTRYPOINT", "ONBUILD"):
        assert ex[cmd] == ins[cmd], cmd
    assert ex["COPY"].args == ("src1", "/dst/")
    assert ex["COPY"].flag("chown") == "app:app"
    assert key_values(ex["ENV"]) == (("B", "1"), ("C", "1 two"))
    assert ex["WORKDIR"].args == ("/w/1",)
    assert ex["USER"].args == ("app",)
    assert ex["EXPOSE"].args == ("1", "10/udp")
    assert key_values(ex["LABEL"]) == (("k1", "v1"),)
    assert ex["VOLUME"].args == ("/dst",)
    assert ex["STOPSIGNAL"].args == ("SIG1",)
    assert key_values(ex["ARG"]) == (("Z", "1"), ("Y", None))


def test_key_values_legacy_env_form():
    ins = _instrs('FROM x\nENV PATH /usr/local/bin:$PATH  and "more words"\n')
    kv = key_values(ins["ENV"])
    assert kv == (("PATH", '/usr/local/bin:$PATH  and "more words"'),)
    ex = expand_instruction(ins["ENV"], {"PATH": "/bin"})
    assert key_values(ex) == (("PATH", "/usr/local/bin:/bin  and more words"),)


def test_from_expansion_and_heredoc_copy():
    df = parse("ARG V=3\nFROM --platform=$P alpine:$V\nCOPY <<EOF <<'RAW' /dst/\n$V\nEOF\n$V\nRAW\n")
    frm = expand_instruction(df.stages[0].source, {"V": "3.19", "P": "linux/arm64"})
    assert frm.args == ("alpine:3.19",) and frm.flag("platform") == "linux/arm64"
    cp = expand_instruction(df.stages[0].instructions[0], {"V": "x"})
    assert [(h.name, h.content) for h in cp.heredocs] == [("EOF", "x\n"), ("RAW", "$V\n")]
