"""The grammar of what a request may name: repositories, tags, digests, upload IDs.

Everything the server turns into a path in its store passes one of these checks first, so
a component can never be ``.``, ``..``, empty, contain ``/`` or start with ``_`` (the
store's own directories all start with ``_``). The grammar is the distribution spec's::

    name      := component ( "/" component )*          (at most 255 characters)
    component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag       := [a-zA-Z0-9_] [a-zA-Z0-9._-]{0,127}
    digest    := algorithm ":" encoded
    algorithm := [a-z0-9]+ ( [+._-] [a-z0-9]+ )*
    encoded   := [a-zA-Z0-9=_-]+

Of the well-formed digests the server stores ``sha256`` (64 lower-case hex characters) and
``sha512`` (128); any other digest is a 400 ``DIGEST_INVALID``, never a 500.

Imports only ``re``.
"""

from __future__ import annotations

import re

NAME_MAX = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(_COMPONENT + r"(?:/" + _COMPONENT + r")*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_HEX = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
_UPLOAD_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

ALGORITHMS = ("sha256", "sha512")


def valid_name(name: str) -> bool:
    """True if ``name`` is a repository name the spec allows (and short enough)."""
    return len(name) <= NAME_MAX and _NAME_RE.fullmatch(name) is not None


def valid_tag(tag: str) -> bool:
    return _TAG_RE.fullmatch(tag) is not None


def looks_like_digest(ref: str) -> bool:
    """True if a manifest reference is meant as a digest (it has a ``:``; tags cannot)."""
    return ":" in ref


def parse_digest(text: str) -> tuple[str, str] | None:
    """``(algorithm, hex)`` of a digest the server can store, else None (malformed or an
    algorithm other than sha256/sha512)."""
    m = _DIGEST_RE.fullmatch(text)
    if m is None:
        return None
    alg, enc = m.group(1), m.group(2)
    pat = _HEX.get(alg)
    if pat is None or pat.fullmatch(enc) is None:
        return None
    return alg, enc


def valid_upload_id(uid: str) -> bool:
    return _UPLOAD_RE.fullmatch(uid) is not None


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for a digest (``sha256-<hex>``, truncated as the spec
    says, characters a tag cannot hold replaced by ``-``)."""
    alg, _, enc = digest.partition(":")
    tag = f"{alg[:32]}-{enc[:64]}"
    return re.sub(r"[^a-zA-Z0-9._-]", "-", tag)
