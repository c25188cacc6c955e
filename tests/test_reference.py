"""Reference grammar and normalization, checked against the behaviour of
github.com/distribution/reference (its reference_test.go, normalize_test.go and
regexp_test.go vectors), which is what the docker CLI and daemon use."""

from __future__ import annotations

import pytest

from lamina.digest import Digest
from lamina.errors import InvalidArgument
from lamina.reference import (
    NAME_TOTAL_LENGTH_MAX,
    Reference,
    is_image_id_like,
    parse,
    parse_any,
)
from lamina.values import FrozenInstanceError

F64 = "f" * 64
SHA_F = "sha256:" + F64
SHA_REDIS = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA_BUSY = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA512 = "sha512:" + "a" * 128
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
NONHEX64 = "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"
A255_PATH = "a/" * 127 + "a"
TAG128 = "t" * 128

# input, domain, path, tag, digest, canonical str(), familiar  (parse with default_tag=True)
VALID = [
    # Docker Hub official images
    ("busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/debian", "docker.io", "library/debian", "latest", None,
     "docker.io/library/debian:latest", "debian:latest"),
    ("index.docker.io/library/debian", "docker.io", "library/debian", "latest", None,
     "docker.io/library/debian:latest", "debian:latest"),
    ("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "latest", None,
     "docker.io/library/ubuntu-12.04-base:latest", "ubuntu-12.04-base:latest"),
    ("index.docker.io/library/ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base",
     "latest", None, "docker.io/library/ubuntu-12.04-base:latest", "ubuntu-12.04-base:latest"),
    ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None,
     "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"),
    ("redis@" + SHA_REDIS, "docker.io", "library/redis", None, SHA_REDIS,
     "docker.io/library/redis@" + SHA_REDIS, "redis@" + SHA_REDIS),
    ("busybox:latest@" + SHA_BUSY, "docker.io", "library/busybox", "latest", SHA_BUSY,
     "docker.io/library/busybox:latest@" + SHA_BUSY, "busybox:latest@" + SHA_BUSY),
    ("busybox@" + SHA512, "docker.io", "library/busybox", None, SHA512,
     "docker.io/library/busybox@" + SHA512, "busybox@" + SHA512),
    # Docker Hub user namespaces; "library/" is dropped only for one-component names
    ("docker/docker", "docker.io", "docker/docker", "latest", None,
     "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", None,
     "docker.io/docker/docker:latest", "docker/docker:latest"),
    ("fooo/bar", "docker.io", "fooo/bar", "latest", None,
     "docker.io/fooo/bar:latest", "fooo/bar:latest"),
    ("index.docker.io/fooo/bar", "docker.io", "fooo/bar", "latest", None,
     "docker.io/fooo/bar:latest", "fooo/bar:latest"),
    ("nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", "latest", None,
     "docker.io/nonlibrary/ubuntu:latest", "nonlibrary/ubuntu:latest"),
    ("other/library", "docker.io", "other/library", "latest", None,
     "docker.io/other/library:latest", "other/library:latest"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", None,
     "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
    ("store/foo/bar", "docker.io", "store/foo/bar", "latest", None,
     "docker.io/store/foo/bar:latest", "store/foo/bar:latest"),
    ("dmcgowan/myapp@" + SHA_REDIS, "docker.io", "dmcgowan/myapp", None, SHA_REDIS,
     "docker.io/dmcgowan/myapp@" + SHA_REDIS, "dmcgowan/myapp@" + SHA_REDIS),
    ("test_com/foo", "docker.io", "test_com/foo", "latest", None,
     "docker.io/test_com/foo:latest", "test_com/foo:latest"),
    ("docker-rules/docker", "docker.io", "docker-rules/docker", "latest", None,
     "docker.io/docker-rules/docker:latest", "docker-rules/docker:latest"),
    ("docker---rules/docker", "docker.io", "docker---rules/docker", "latest", None,
     "docker.io/docker---rules/docker:latest", "docker---rules/docker:latest"),
    ("dock__er/docker", "docker.io", "dock__er/docker", "latest", None,
     "docker.io/dock__er/docker:latest", "dock__er/docker:latest"),
    ("d/docker", "docker.io", "d/docker", "latest", None,
     "docker.io/d/docker:latest", "d/docker:latest"),
    ("jess/t", "docker.io", "jess/t", "latest", None, "docker.io/jess/t:latest", "jess/t:latest"),
    (NONHEX64, "docker.io", "library/" + NONHEX64, "latest", None,
     f"docker.io/library/{NONHEX64}:latest", f"{NONHEX64}:latest"),
    # hex-looking names that are not a full 64-hex ID are names
    ("dbcc1", "docker.io", "library/dbcc1", "latest", None,
     "docker.io/library/dbcc1:latest", "dbcc1:latest"),
    (HEX64[:63], "docker.io", "library/" + HEX64[:63], "latest", None,
     f"docker.io/library/{HEX64[:63]}:latest", f"{HEX64[:63]}:latest"),
    ("docker.io/" + HEX64, "docker.io", "library/" + HEX64, "latest", None,
     f"docker.io/library/{HEX64}:latest", f"{HEX64}:latest"),
    # without a "/", a host:port is a name and a tag (Docker's documented FIXME)
    ("localhost:5000", "docker.io", "library/localhost", "5000", None,
     "docker.io/library/localhost:5000", "localhost:5000"),
    ("test.com:5000", "docker.io", "library/test.com", "5000", None,
     "docker.io/library/test.com:5000", "test.com:5000"),
    ("test.com:tag", "docker.io", "library/test.com", "tag", None,
     "docker.io/library/test.com:tag", "test.com:tag"),
    ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", None,
     "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"),
    ("192.168.0.1", "docker.io", "library/192.168.0.1", "latest", None,
     "docker.io/library/192.168.0.1:latest", "192.168.0.1:latest"),
    ("192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", None,
     "docker.io/library/192.168.0.1:80", "192.168.0.1:80"),
    ("sha256:abc", "docker.io", "library/sha256", "abc", None,
     "docker.io/library/sha256:abc", "sha256:abc"),
    # localhost and other registries
    ("localhost/fooo", "localhost", "fooo", "latest", None,
     "localhost/fooo:latest", "localhost/fooo:latest"),
    ("localhost/fooo/bar", "localhost", "fooo/bar", "latest", None,
     "localhost/fooo/bar:latest", "localhost/fooo/bar:latest"),
    ("localhost/library/debian", "localhost", "library/debian", "latest", None,
     "localhost/library/debian:latest", "localhost/library/debian:latest"),
    ("localhost:5000/me/app:v1", "localhost:5000", "me/app", "v1", None,
     "localhost:5000/me/app:v1", "localhost:5000/me/app:v1"),
    ("Foo.com/bar", "Foo.com", "bar", "latest", None, "Foo.com/bar:latest", "Foo.com/bar:latest"),
    ("LOCALDOMAIN:5000/fooo", "LOCALDOMAIN:5000", "fooo", "latest", None,
     "LOCALDOMAIN:5000/fooo:latest", "LOCALDOMAIN:5000/fooo:latest"),
    ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "latest", None,
     "127.0.0.1:8000/private/moonbase:latest", "127.0.0.1:8000/private/moonbase:latest"),
    ("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase", "latest", None,
     "127.0.0.1:8000/privatebase:latest", "127.0.0.1:8000/privatebase:latest"),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", "latest", None,
     "127.0.0.1:5000/library/debian:latest", "127.0.0.1:5000/library/debian:latest"),
    ("192.168.0.1:8/debian", "192.168.0.1:8", "debian", "latest", None,
     "192.168.0.1:8/debian:latest", "192.168.0.1:8/debian:latest"),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None,
     "192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"),
    ("example.com/private/moonbase", "example.com", "private/moonbase", "latest", None,
     "example.com/private/moonbase:latest", "example.com/private/moonbase:latest"),
    ("example.com:8000/privatebasee", "example.com:8000", "privatebasee", "latest", None,
     "example.com:8000/privatebasee:latest", "example.com:8000/privatebasee:latest"),
    ("test.com:8080/foo", "test.com:8080", "foo", "latest", None,
     "test.com:8080/foo:latest", "test.com:8080/foo:latest"),
    ("test-com:8080/foo", "test-com:8080", "foo", "latest", None,
     "test-com:8080/foo:latest", "test-com:8080/foo:latest"),
    ("test:5000/repo@" + SHA_F, "test:5000", "repo", None, SHA_F,
     "test:5000/repo@" + SHA_F, "test:5000/repo@" + SHA_F),
    ("test:5000/repo:tag@" + SHA_F, "test:5000", "repo", "tag", SHA_F,
     "test:5000/repo:tag@" + SHA_F, "test:5000/repo:tag@" + SHA_F),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", None,
     "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080/foo:latest"),
    ("xn--7o8h.com/myimage:xn--7o8h.com@" + SHA_F, "xn--7o8h.com", "myimage", "xn--7o8h.com",
     SHA_F, "xn--7o8h.com/myimage:xn--7o8h.com@" + SHA_F,
     "xn--7o8h.com/myimage:xn--7o8h.com@" + SHA_F),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
     "test.example.com/my-app", "test.example.com", None,
     "b.gcr.io/test.example.com/my-app:test.example.com",
     "b.gcr.io/test.example.com/my-app:test.example.com"),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
     "some-long-tag", None, "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
     "sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
    ("gcr.io/library/busybox", "gcr.io", "library/busybox", "latest", None,
     "gcr.io/library/busybox:latest", "gcr.io/library/busybox:latest"),
    # IPv6 registries
    ("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", "latest", None,
     "[fc00::1]:5000/docker:latest", "[fc00::1]:5000/docker:latest"),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian",
     "latest", None, "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
     "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", None,
     "[2001:db8::1]/repo:latest", "[2001:db8::1]/repo:latest"),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "latest", None,
     "[2001:db8::]:5000/repo:latest", "[2001:db8::]:5000/repo:latest"),
    ("[::1]:5000/repo:tag@" + SHA_F, "[::1]:5000", "repo", "tag", SHA_F,
     "[::1]:5000/repo:tag@" + SHA_F, "[::1]:5000/repo:tag@" + SHA_F),
    # limits: path of exactly 255 characters, tag of exactly 128
    ("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag", None,
     "example.com/" + "a" * 255 + ":tag", "example.com/" + "a" * 255 + ":tag"),
    (A255_PATH + ":tag-puts-this-over-max", "docker.io", A255_PATH, "tag-puts-this-over-max",
     None, f"docker.io/{A255_PATH}:tag-puts-this-over-max",
     f"{A255_PATH}:tag-puts-this-over-max"),
    ("busybox:" + TAG128, "docker.io", "library/busybox", TAG128, None,
     "docker.io/library/busybox:" + TAG128, "busybox:" + TAG128),
    # a first component with a "." that is no valid domain but a valid path: Docker keeps
    # the whole text as the path and leaves the domain empty
    ("foo_bar.com/x", "", "foo_bar.com/x", "latest", None,
     "foo_bar.com/x:latest", "foo_bar.com/x:latest"),
]

# input, a substring of the expected error message
INVALID = [
    ("", "repository name must have at least one component"),
    (HEX64, "cannot specify 64-byte hexadecimal strings"),
    ("Busybox", "repository name must be lowercase"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("docker/Docker", "repository name must be lowercase"),
    ("docker.io/docker/Docker", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("docker.io/Busybox", "repository name must be lowercase"),
    # an upper-case first component is a path, not a registry host (dockerd 20.10)
    ("Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("LOCALDOMAIN/fooo", "repository name must be lowercase"),
    ("FOO/bar", "repository name must be lowercase"),
    ("Docker/docker", "repository name must be lowercase"),
    ("busybox@SHA256:" + F64, "repository name must be lowercase"),  # Docker's quirk too
    ("a:b:c", 'invalid reference format "a:b:c"'),
    ("https://github.com/docker/docker", "without a URL scheme"),
    ("-docker", "path component"),
    ("-docker/docker", "path component"),
    ("docker-/docker", "path component"),
    ("-docker-/docker", "path component"),
    ("____/____", "path component"),
    ("_docker/_docker", "path component"),
    ("dock..er/docker", 'registry host "dock..er"'),  # a "." makes it a domain
    ("dock_.er/docker", 'registry host "dock_.er"'),  # a "." makes it a domain
    ("dock-.er/docker", 'registry host "dock-.er"'),  # a "." makes it a domain
    ("foo/bar-", "path component"),
    ("aa/asdf$$^/aa", "path component"),
    ("a^a", "path component"),
    ("busybox\n", "path component"),
    ("foo bar", "path component"),
    ("docker/", "empty component"),
    ("docker///docker", "empty component"),
    ("docker.io/docker///docker", "empty component"),
    ("foo.com/", "empty component"),
    (":justtag", "empty component"),
    ("@" + SHA_F, "empty component"),
    ("-docker.io/docker/docker", 'registry host "-docker.io"'),
    ("test.com:http/bar", 'registry host "test.com:http"'),
    ("[fc00::1]", 'invalid reference format "[fc00::1]"'),
    ("[fc00::1]:5000", 'invalid reference format "[fc00::1]:5000"'),
    ("[2001:db8::1]:tag", 'invalid reference format "[2001:db8::1]:tag"'),
    ("fc00::1:5000/debian", "registry host"),
    ("[fe80::1%eth0]:5000/debian", "zone identifiers"),
    ("[fe80::1%@invalidzone]:5000/repo", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "registry host"),
    ("foo:", "empty tag"),
    ("foo:-bar", 'tag "-bar" must start with'),
    ("foo:.bar", "must start with"),
    ("foo:b@r", "digest"),
    ("busybox:" + "t" * 129, "tag must not be more than 128 characters"),
    ("domain/" + "a" * 256 + ":tag", "must not be more than 255 characters"),
    ("example.com/" + "a" * 256, "must not be more than 255 characters"),
    ("a" * 250, "must not be more than 255 characters"),  # "library/" counts
    ("_".join(["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4)
     + "/docker",
     "must not be more than 255 characters"),
    ("repo@sha256:" + "f" * 34, "want 64 lower-case hex characters"),
    ("repo@sha256:" + "F" * 64, "lower-case hex"),
    ("validname@invaliddigest:" + F64, "unsupported digest algorithm"),
    ("foo@bar", 'digest "bar" must be <algorithm>:<hex>'),
    ("foo@sha256:abc", "must be <algorithm>:<hex>"),
    ("foo@", "must be <algorithm>:<hex>"),
    ("foo@" + SHA_F + "@" + SHA_F, "must be <algorithm>:<hex>"),
]


@pytest.mark.parametrize("text,domain,path,tag,digest,canonical,familiar", VALID,
                         ids=[v[0][:60] for v in VALID])
def test_parse_valid(text, domain, path, tag, digest, canonical, familiar):
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag) == (domain, path, tag)
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert str(ref) == canonical
    assert ref.familiar == familiar
    assert ref.name == (f"{domain}/{path}" if domain else path)


@pytest.mark.parametrize("text,domain,path,tag,digest,canonical,familiar", VALID,
                         ids=[v[0][:60] for v in VALID])
def test_round_trip(text, domain, path, tag, digest, canonical, familiar):
    ref = parse(text)
    assert parse(canonical) == ref
    assert parse(familiar) == ref
    assert parse(str(ref)) == ref
    assert parse(ref.familiar) == ref
    assert str(parse(ref.familiar)) == canonical
    # the constructor accepts what parse produced
    assert Reference(ref.domain, ref.path, ref.tag, ref.digest) == ref


@pytest.mark.parametrize("text,needle", INVALID, ids=[v[0][:60] or "<empty>" for v in INVALID])
def test_parse_invalid(text, needle):
    with pytest.raises(InvalidArgument) as info:
        parse(text)
    msg = str(info.value)
    assert needle in msg
    assert msg.startswith("invalid reference format ")
    assert "\n" not in msg  # one-line messages, even for "busybox\n"


def test_vector_counts():
    assert len(VALID) + len(INVALID) >= 60


# --- default tag --------------------------------------------------------------------

@pytest.mark.parametrize("text,canonical", [
    ("busybox", "docker.io/library/busybox"),
    ("docker.io/library/busybox", "docker.io/library/busybox"),
    ("localhost:5000/me/app", "localhost:5000/me/app"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("busybox@" + SHA_BUSY, "docker.io/library/busybox@" + SHA_BUSY),
])
def test_no_default_tag(text, canonical):
    ref = parse(text, default_tag=False)
    assert str(ref) == canonical
    assert parse(canonical, default_tag=False) == ref


def test_digest_only_gets_no_default_tag():
    ref = parse("busybox@" + SHA_BUSY)
    assert ref.tag is None
    assert ref.familiar == "busybox@" + SHA_BUSY


def test_default_tag_is_keyword_only():
    with pytest.raises(TypeError):
        parse("busybox", False)  # type: ignore[misc]


# --- names --------------------------------------------------------------------------

@pytest.mark.parametrize("text,name,familiar_name", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("me/app:v1", "docker.io/me/app", "me/app"),
    ("docker.io/library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar"),
    ("localhost:5000/me/app:v1", "localhost:5000/me/app", "localhost:5000/me/app"),
    ("localhost/busybox", "localhost/busybox", "localhost/busybox"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox", "gcr.io/library/busybox"),
])
def test_names(text, name, familiar_name):
    ref = parse(text)
    assert ref.name == name
    assert ref.familiar_name == familiar_name


def test_familiar_drops_library_only_on_docker_hub():
    ref = Reference("example.com", "library/busybox", "latest")
    assert ref.familiar == "example.com/library/busybox:latest"


def test_familiar_form_is_not_always_reparseable_as_in_docker():
    # Docker's FamiliarString drops "docker.io/" even when the next component looks like
    # a domain; the canonical form is the one that always round-trips.
    ref = parse("docker.io/foo.bar/baz")
    assert (ref.domain, ref.path) == ("docker.io", "foo.bar/baz")
    assert ref.familiar == "foo.bar/baz:latest"
    assert parse(ref.familiar).domain == "foo.bar"
    assert parse(str(ref)) == ref


# --- value type ---------------------------------------------------------------------

def test_reference_is_frozen_and_hashable():
    ref = parse("busybox")
    with pytest.raises(FrozenInstanceError):
        ref.tag = "1"  # type: ignore[misc]
    assert len({parse("busybox"), parse("docker.io/library/busybox:latest"),
                parse("index.docker.io/busybox")}) == 1


def test_with_tag_and_digest():
    ref = parse("busybox")
    tagged = ref.with_tag("1.36")
    assert str(tagged) == "docker.io/library/busybox:1.36"
    assert ref.tag == "latest"  # the original is unchanged
    both = tagged.with_digest(SHA_BUSY)
    assert str(both) == "docker.io/library/busybox:1.36@" + SHA_BUSY
    assert both.familiar == "busybox:1.36@" + SHA_BUSY
    assert both.with_tag("TAG5").tag == "TAG5"
    assert both.with_digest(Digest.parse(SHA_F)).digest == Digest.parse(SHA_F)
    assert str(both.without_tag()) == "docker.io/library/busybox@" + SHA_BUSY
    assert str(both.without_digest()) == "docker.io/library/busybox:1.36"


@pytest.mark.parametrize("tag", ["-foo", ".x", "", "a/b", "a:b", "t" * 129])
def test_with_tag_rejects_bad_tags(tag):
    with pytest.raises(InvalidArgument):
        parse("busybox").with_tag(tag)


@pytest.mark.parametrize("digest", ["foo", "sha256:abc", "sha256:" + "F" * 64, "md5:" + F64])
def test_with_digest_rejects_bad_digests(digest):
    with pytest.raises(InvalidArgument):
        parse("busybox").with_digest(digest)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(domain="docker.io", path="Library/busybox"), "lowercase"),
    (dict(domain="docker.io", path="library//busybox"), "empty component"),
    (dict(domain="-bad", path="x"), "registry host"),
    (dict(domain="docker.io", path="x" * (NAME_TOTAL_LENGTH_MAX + 1)), "255"),
    (dict(domain="docker.io", path="x", tag="-t"), "tag"),
])
def test_constructor_validates(kwargs, needle):
    with pytest.raises(InvalidArgument) as info:
        Reference(**kwargs)
    assert needle in str(info.value)


def test_constructor_does_not_normalize():
    ref = Reference("index.docker.io", "busybox")
    assert str(ref) == "index.docker.io/busybox"
    assert ref.familiar == "index.docker.io/busybox"


# --- IDs ----------------------------------------------------------------------------

def test_parse_any():
    assert parse_any(HEX64) == Digest("sha256", HEX64)
    assert parse_any(SHA_REDIS) == Digest.parse(SHA_REDIS)
    assert parse_any("redis") == parse("docker.io/library/redis:latest")
    assert parse_any("redis", default_tag=False) == parse("redis", default_tag=False)
    assert parse_any("redis@" + SHA_REDIS) == parse("docker.io/library/redis@" + SHA_REDIS)
    assert parse_any("dbcc1") == parse("docker.io/library/dbcc1")
    assert parse_any(HEX64[:63]) == parse("docker.io/library/" + HEX64[:63])
    # not a valid digest, so a name with a tag, as in Docker
    assert parse_any("sha256:abc") == parse("docker.io/library/sha256:abc")
    with pytest.raises(InvalidArgument):
        parse_any("Busybox")


@pytest.mark.parametrize("text,expected", [
    (HEX64, True),
    ("sha256:" + HEX64, True),
    (HEX64[:12], True),
    ("sha256:" + HEX64[:12], True),
    ("dbcc1", True),
    ("a", True),
    ("", False),
    (HEX64 + "0", False),
    ("sha256:", False),
    ("busybox", False),
    ("DBCC1", False),
    ("sha512:" + HEX64, False),
    ("sha256:" + HEX64 + "\n", False),
])
def test_is_image_id_like(text, expected):
    assert is_image_id_like(text) is expected


def test_imports_only_leaf_modules_of_lamina():
    import subprocess
    import sys
    code = ("import sys, lamina.reference; "
            "print(sorted(m for m in sys.modules if m.startswith('lamina')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == [
        "['lamina',", "'lamina.digest',", "'lamina.errors',", "'lamina.reference',", "'lamina.values']"]
