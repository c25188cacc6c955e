"""The exact message for each kind of invalid reference (test_reference checks that the
right rule is named; this pins the whole line, quoting included), and the Reference
constructor's own checks. Written to kill the mutants scripts/mutants.sh found surviving
in lamina/reference.py's message selection."""

from __future__ import annotations

import pytest

from lamina.errors import InvalidArgument
from lamina.reference import Reference, parse

PATH_RULE = 'must be lowercase letters and digits, separated by single ".", "_", "__" or runs of "-"'
HOST_RULE = "is not a valid host name, [IPv6] address or host:port"
TAG_RULE = 'must start with a letter, digit or "_" and contain only letters, digits, "_", "." and "-"'


@pytest.mark.parametrize("text,message", [
    ('a"b', f'invalid reference format "a\\"b": path component "a\\"b" {PATH_RULE}'),
    ("a'b", f'invalid reference format "a\'b": path component "a\'b" {PATH_RULE}'),
    ("a\tb", f'invalid reference format "a\\tb": path component "a\\tb" {PATH_RULE}'),
    ("a'b\"c", f'invalid reference format "a\'b\\"c": path component "a\'b\\"c" {PATH_RULE}'),
    ("a" * 250, f'invalid reference format "{"a" * 250}": repository name must not be more than 255 '
                "characters (the path has 258)"),
    ("http://x/y", f'invalid reference format "http://x/y": registry host "http:" {HOST_RULE} '
                   "(write the reference without a URL scheme such as https://)"),
    ("HTTPS://x/y", f'invalid reference format "HTTPS://x/y": registry host "HTTPS:" {HOST_RULE} '
                    "(write the reference without a URL scheme such as https://)"),
    ("dock..er/docker", f'invalid reference format "dock..er/docker": registry host "dock..er" {HOST_RULE}'),
    ("[fe80::1%eth0]:5000/debian", f'invalid reference format "[fe80::1%eth0]:5000/debian": registry host '
                                   f'"[fe80::1%eth0]:5000" {HOST_RULE} (IPv6 zone identifiers are not allowed)'),
    ("foo:-" + "t" * 200, f'invalid reference format "foo:-{"t" * 200}": tag "-{"t" * 200}" {TAG_RULE}'),
    ("foo:" + "t" * 129, f'invalid reference format "foo:{"t" * 129}": tag must not be more than 128 '
                         "characters (it has 129)"),
    ("foo:" + "t" * 127 + "$", f'invalid reference format "foo:{"t" * 127}$": tag "{"t" * 127}$" {TAG_RULE}'),
])
def test_parse_messages(text, message):
    with pytest.raises(InvalidArgument) as ei:
        parse(text)
    assert str(ei.value) == message
    assert parse("foo:" + "t" * 128).tag == "t" * 128  # the longest tag is fine


def test_parse_needs_a_string():
    with pytest.raises(InvalidArgument) as ei:
        parse(5)
    assert str(ei.value) == "invalid reference format 5: not a string"


@pytest.mark.parametrize("args,message", [
    (("docker.io", "Foo"), 'invalid reference format "docker.io/Foo": repository name must be lowercase'),
    (("docker.io", "A$"), f'invalid reference format "docker.io/A$": path component "A$" {PATH_RULE}'),
    (("docker.io", "a:b"), 'invalid reference format "docker.io/a:b": unexpected ":" in path component '
                           '"a:b" (only one :tag is allowed, after the last "/")'),
    (("Exa mple.com", "x"), f'invalid reference format "Exa mple.com/x": registry host "Exa mple.com" {HOST_RULE}'),
    (("docker.io", "x", "-bad"), f'invalid reference format "docker.io/x:-bad": tag "-bad" {TAG_RULE}'),
    (("docker.io", "library/x", None, 123), "invalid reference: digest 123 is not a Digest"),
    (("docker.io", "x/"), 'invalid reference format "docker.io/x/": repository path "x/" has an empty '
                          'component (a leading, trailing or doubled "/")'),
])
def test_constructor_messages(args, message):
    with pytest.raises(InvalidArgument) as ei:
        Reference(*args)
    assert str(ei.value) == message


def test_constructor_parses_a_digest_string():
    d = "sha256:" + "f" * 64
    r = Reference("docker.io", "library/x", None, d)
    assert str(r.digest) == d and type(r.digest).__name__ == "Digest" and str(r) == f"docker.io/library/x@{d}"


def test_with_tag_messages():
    r = parse("busybox")
    with pytest.raises(InvalidArgument) as ei:
        r.with_tag(5)
    assert str(ei.value) == 'invalid tag "5" for docker.io/library/busybox: tag 5 is not a string'
    with pytest.raises(InvalidArgument) as ei:
        r.with_tag("-x")
    assert str(ei.value) == f'invalid tag "-x" for docker.io/library/busybox: tag "-x" {TAG_RULE}'
