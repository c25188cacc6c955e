"""Docker image references: grammar, normalization, familiar and canonical forms.

Behaves like github.com/distribution/reference (``ParseNormalizedNamed`` followed by
``TagNameOnly``; ``FamiliarName``/``FamiliarString``; ``ParseAnyReference``), which is what
the ``docker`` CLI and daemon use. The grammar, as accepted by :func:`parse` after
normalization::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [ domain "/" ] path
    domain           := host [ ":" port ]
    host             := domain-name | "[" ipv6 "]"
    domain-name      := domain-component ( "." domain-component )*
    domain-component := /[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]/
    port             := /[0-9]+/
    ipv6             := /[a-fA-F0-9:]+/           (no zone ids, no embedded IPv4)
    path             := path-component ( "/" path-component )*     (at most 255 characters)
    path-component   := alnum ( separator alnum )*
    alnum            := /[a-z0-9]+/
    separator        := /[._]|__|-+/
    tag              := /[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}/
    digest           := algorithm ":" hex          (sha256 with 64, sha512 with 128 lower-case hex)

Normalization (familiar -> canonical), exactly as Docker does it:

- No ``/`` at all: the whole text is a Docker Hub official image,
  ``busybox:1`` -> ``docker.io/library/busybox:1`` (so ``localhost:5000`` alone is the image
  ``library/localhost`` with tag ``5000``, as in Docker).
- Otherwise the part before the first ``/`` is the registry domain if it is ``localhost``
  or contains ``.`` or ``:``; ``index.docker.io`` becomes ``docker.io``. If it is none of
  these, the domain is ``docker.io`` and the whole text is the path, so an upper-case first
  component (``Uppercase/lowercase:tag``) is refused: "repository name must be lowercase",
  as dockerd 20.10 answers (newer distribution/reference takes it for a registry host).
- On ``docker.io`` a one-component path gets the ``library/`` prefix.
- :func:`parse` adds the tag ``latest`` when neither a tag nor a digest was given.

The familiar form drops ``docker.io/`` and, for one-component official images only,
``library/``: ``docker.io/library/foo/bar`` is familiar ``library/foo/bar``. The canonical
form (``str(ref)``) always parses back to an equal Reference; the familiar form does too
except where Docker's does not (see :attr:`Reference.familiar`).

One quirk is kept for exact compatibility: a first component that looks like a domain
(has a ``.``) but is not a valid one, yet is a valid path component (``foo_bar.com/x``),
gives ``domain == ""`` and ``path == "foo_bar.com/x"``; Docker does the same. Callers that
need a registry host must reject a Reference with an empty domain.

This module imports only ``re``, :mod:`lamina.values` and lamina's leaf modules; it is cheap
to import.
"""

from __future__ import annotations

import re

from lamina.digest import Digest
from lamina.errors import InvalidArgument
from lamina.values import replace, value

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "Reference",
    "is_image_id_like",
    "check_tag",
    "parse",
    "parse_any",
    "parse_tag",
]

DEFAULT_DOMAIN = "docker.io"
"""Docker Hub's domain in canonical names (the registry itself is registry-1.docker.io)."""
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
"""Maximum length of a repository path (the name without its domain), as in Docker."""
TAG_LENGTH_MAX = 128

# Grammar pieces (see the module docstring). Always used with fullmatch(), never with "$",
# which in Python would also accept a trailing newline.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_RE = re.compile(r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_LIKE_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")


# ---------------------------------------------------------------------------- checks

def _quote(text: str) -> str:
    """``text`` in double quotes, with escapes for anything unprintable."""
    r = repr(text)
    body = r[1:-1]
    if r[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    return '"' + body + '"'


# Each returns None when the piece is valid, else a short phrase naming the rule broken.

def _domain_problem(domain: str) -> str | None:
    if _DOMAIN_RE.fullmatch(domain):
        return None
    hint = ""
    if domain.lower() in ("http:", "https:"):
        hint = " (write the reference without a URL scheme such as https://)"
    elif "%" in domain:
        hint = " (IPv6 zone identifiers are not allowed)"
    return (f"registry host {_quote(domain)} is not a valid host name, [IPv6] address "
            f"or host:port{hint}")


def _path_problem(path: str) -> str | None:
    """Syntax of a repository path (not its length: see _length_problem)."""
    for component in path.split("/"):
        if component == "":
            return (f"repository path {_quote(path)} has an empty component "
                    f"(a leading, trailing or doubled \"/\")")
        if not _PATH_COMPONENT_RE.fullmatch(component):
            if ":" in component:
                return (f"unexpected \":\" in path component {_quote(component)} "
                        f"(only one :tag is allowed, after the last \"/\")")
            if component.lower() != component and _PATH_COMPONENT_RE.fullmatch(component.lower()):
                return "repository name must be lowercase"
            return (f"path component {_quote(component)} must be lowercase letters and digits, "
                    f"separated by single \".\", \"_\", \"__\" or runs of \"-\"")
    return None


def _length_problem(path: str) -> str | None:
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        return (f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters "
                f"(the path has {len(path)})")
    return None


def _tag_problem(tag: str) -> str | None:
    if _TAG_RE.fullmatch(tag):
        return None
    if len(tag) > TAG_LENGTH_MAX and _TAG_RE.fullmatch(tag[:TAG_LENGTH_MAX]):
        return f"tag must not be more than {TAG_LENGTH_MAX} characters (it has {len(tag)})"
    if tag == "":
        return "empty tag after \":\""
    return (f"tag {_quote(tag)} must start with a letter, digit or \"_\" and contain only "
            f"letters, digits, \"_\", \".\" and \"-\"")


def _split_name(name: str) -> tuple[str, str] | str:
    """Split a name into (domain, path) like distribution's anchored name regexp.

    The first component is the domain when it is a valid domain and the rest a valid
    path; otherwise the whole name must be a valid path (domain ""). Returns the phrase
    for the rule broken if neither works. Checks syntax only, not length.
    """
    first, slash, rest = name.partition("/")
    if slash and _DOMAIN_RE.fullmatch(first):
        problem = _path_problem(rest)
        if problem is None:
            return first, rest
        if _path_problem(name) is None:      # the regexp backtracks to "no domain"
            return "", name
        return problem
    problem = _path_problem(name)
    if problem is None:
        return "", name
    if slash and ("." in first or ":" in first or first.lower() != first):
        return _domain_problem(first) or problem
    return problem


def _split_reference(s: str) -> tuple[str, str, str | None, re.Match | None] | str:
    """Syntax of ``name[:tag][@digest]`` as distribution's one regexp sees it.

    Returns (domain, path, tag, digest match) or the phrase for the rule broken.
    """
    left, at, digest_text = s.partition("@")
    colon = left.rfind(":")
    if colon > left.rfind("/"):
        name, tag = left[:colon], left[colon + 1:]
    else:
        name, tag = left, None
    split = _split_name(name)
    if isinstance(split, str):
        return split
    if tag is not None:
        problem = _tag_problem(tag)
        if problem:
            return problem
    match = None
    if at:
        match = _DIGEST_RE.fullmatch(digest_text)
        if match is None:
            return (f"digest {_quote(digest_text)} must be <algorithm>:<hex>, "
                    f"e.g. sha256:<64 hex characters>")
    return split[0], split[1], tag, match


# ---------------------------------------------------------------------------- value type

@value
class Reference:
    """A validated, immutable image reference: ``[domain/]path[:tag][@digest]``.

    Construct it with :func:`parse` (which normalizes familiar names); the constructor
    itself validates but does not normalize (``Reference("index.docker.io", "busybox",
    None, None)`` is kept as given). ``domain`` is ``""`` only for the compatibility quirk
    described in the module docstring. ``str(ref)`` is the canonical form and parses back
    to an equal Reference.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        if isinstance(self.digest, str):
            object.__setattr__(self, "digest", Digest.parse(self.digest))
        elif self.digest is not None and not isinstance(self.digest, Digest):
            raise InvalidArgument(f"invalid reference: digest {self.digest!r} is not a Digest")
        problem = None
        if self.domain:
            problem = _domain_problem(self.domain)
        problem = problem or _path_problem(self.path) or _length_problem(self.path)
        if problem is None and self.tag is not None:
            problem = _tag_problem(self.tag)
        if problem is not None:
            raise _fail(self._render(self.name), problem)

    # -- names
    @property
    def name(self) -> str:
        """Canonical repository name without tag or digest: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: ``busybox``, ``me/app``, ``localhost:5000/me/app``."""
        from lamina.refname import familiar
        return familiar(self.domain, self.path)

    @property
    def familiar(self) -> str:
        """The full reference as Docker shows it: ``busybox:latest``, ``me/app@sha256:...``.

        Like Docker's ``FamiliarString`` this always drops ``docker.io/``, so for a Docker
        Hub path whose first component looks like a domain (``docker.io/foo.bar/baz``) the
        familiar form (``foo.bar/baz:latest``) parses back to a different reference; use
        ``str(ref)`` wherever the text must be parsed again.
        """
        return self._render(self.familiar_name)

    def __str__(self) -> str:
        """Canonical full form: ``docker.io/library/busybox:latest`` (name[:tag][@digest])."""
        return self._render(self.name)

    def _render(self, name: str) -> str:
        out = name
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + str(self.digest)
        return out

    # -- derived references
    def with_tag(self, tag: str) -> Reference:
        """A copy with ``tag`` set (any digest is kept). Raises InvalidArgument for a bad tag."""
        problem = _tag_problem(tag) if isinstance(tag, str) else f"tag {tag!r} is not a string"
        if problem:
            raise InvalidArgument(f"invalid tag {_quote(str(tag))} for {self.name}: {problem}")
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | str) -> Reference:
        """A copy with ``digest`` set (any tag is kept); a string is parsed as a digest."""
        if isinstance(digest, str):
            digest = Digest.parse(digest)
        return replace(self, digest=digest)

    def without_tag(self) -> Reference:
        """A copy with no tag (any digest is kept)."""
        return replace(self, tag=None)

    def without_digest(self) -> Reference:
        """A copy with no digest (any tag is kept)."""
        return replace(self, digest=None)


# ---------------------------------------------------------------------------- parsing

def _fail(text: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference format {_quote(text)}: {problem}")


def _split_docker_domain(text: str) -> tuple[str, str]:
    """Pick the domain of a familiar name; returns (domain, remainder incl. tag/digest)."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse_full(s: str, text: str) -> Reference:
    """Parse an already-qualified ``name[:tag][@digest]``; errors name ``text``.

    Order of checks as in distribution: syntax, then path length, then the digest.
    """
    parts = _split_reference(s)
    if isinstance(parts, str):
        lowered = s.lower()
        if lowered != s and not isinstance(_split_reference(lowered), str):
            raise _fail(text, "repository name must be lowercase")
        raise _fail(text, parts)
    domain, path, tag, match = parts
    problem = _length_problem(path)
    if problem:
        raise _fail(text, problem)
    digest = None
    if match is not None:
        try:
            digest = Digest(match.group(1), match.group(2))
        except InvalidArgument as e:
            raise _fail(text, str(e)) from None
    return Reference(domain, path, tag, digest)


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize a reference the way ``docker pull``/``docker run`` do.

    ``busybox`` -> ``docker.io/library/busybox:latest``; ``localhost:5000/me/app:v1`` stays
    as it is. With ``default_tag`` (the default) a reference with neither tag nor digest
    gets the tag ``latest``; pass ``default_tag=False`` to keep it bare.

    Raises InvalidArgument ``invalid reference format "<text>": <rule broken>`` for any
    invalid input, including a bare 64-hex string (that is an image ID, not a name:
    use :func:`parse_any`). Pure function; never touches the network or disk.
    """
    if not isinstance(text, str):
        raise InvalidArgument(f"invalid reference format {text!r}: not a string")
    if text == "":
        raise _fail(text, "repository name must have at least one component")
    if _IDENTIFIER_RE.fullmatch(text):
        raise _fail(text, "cannot specify 64-byte hexadecimal strings "
                          "(that is an image ID, not a repository name)")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _fail(text, "repository name must be lowercase")
    ref = _parse_full(domain + "/" + remainder, text)
    if default_tag and ref.tag is None and ref.digest is None:
        ref = replace(ref, tag=DEFAULT_TAG)
    return ref


def parse_tag(text: str) -> Reference:
    """A reference a tag may be created as (``tag``, ``build -t``, ``commit``, ``import``):
    :func:`parse` with the default tag, refusing what Docker's reference store refuses --
    a digest (``refusing to create a tag with a digest reference``) and the name ``sha256``
    (``sha256:<hex>`` would read as an image ID)."""
    ref = parse(text)
    check_tag(ref)
    return ref


def check_tag(ref: Reference) -> None:
    """Raise InvalidArgument if ``ref`` cannot name a tag (see :func:`parse_tag`)."""
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {ref.familiar}")
    if ref.familiar_name == "sha256":
        raise InvalidArgument(f"refusing to create an ambiguous tag using digest algorithm as name: "
                              f"{ref.familiar}")


def parse_any(text: str, *, default_tag: bool = True) -> Reference | Digest:
    """Like Docker's ``ParseAnyReference``: an image ID or a reference.

    A bare 64-hex string is the image ID ``sha256:<hex>`` and a valid digest string
    (``sha256:<64 hex>``) is returned as that Digest; anything else goes through
    :func:`parse`. A short hex string such as ``dbcc1`` is a *name* here, as in Docker;
    use :func:`is_image_id_like` to decide whether to also try an ID-prefix lookup.
    """
    if isinstance(text, str):
        if _IDENTIFIER_RE.fullmatch(text):
            return Digest("sha256", text)
        try:
            return Digest.parse(text)
        except InvalidArgument:
            pass
    return parse(text, default_tag=default_tag)


def is_image_id_like(text: str) -> bool:
    """True if ``text`` could name an image by ID: 1 to 64 lower-case hex characters,
    optionally prefixed with ``sha256:`` (full IDs and the short IDs ``images`` prints).

    Short hex strings are also valid repository names (``cafe``), so callers should do as
    Docker does: look the text up as a name first and, if that finds nothing and this
    returns True, search image IDs by prefix. A full 64-hex ID is never a name.
    """
    return isinstance(text, str) and _ID_LIKE_RE.fullmatch(text) is not None
