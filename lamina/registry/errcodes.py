"""The distribution API's error codes: one table, shared by the server and the client.

Every error a registry answers is a JSON envelope ``{"errors": [{"code", "message",
"detail"}]}`` with an HTTP status fixed by its code. The server builds envelopes with
:func:`envelope`; the client reads them with :func:`parse` and classes them with
:func:`by_code`. The codes, their meaning and their statuses follow the OCI
distribution-spec v1.1 (plus the few that Docker's distribution registry adds and clients
rely on: TAG_INVALID, MANIFEST_UNVERIFIED, RANGE_INVALID, PAGINATION_NUMBER_INVALID,
UNAVAILABLE, UNKNOWN).

Leaf module: imports only the standard library's json, and that only when used.
"""

from __future__ import annotations

from typing import NamedTuple


class ErrorCode(NamedTuple):
    """One wire error code: its name on the wire, its default message, its HTTP status."""

    code: str
    message: str
    status: int


_TABLE = (
    ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404),
    ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400),
    ErrorCode("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404),
    ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400),
    ErrorCode("MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 404),
    ErrorCode("MANIFEST_INVALID", "manifest invalid", 400),
    ErrorCode("MANIFEST_UNKNOWN", "manifest unknown", 404),
    ErrorCode("MANIFEST_UNVERIFIED", "manifest failed signature verification", 400),
    ErrorCode("NAME_INVALID", "invalid repository name", 400),
    ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404),
    ErrorCode("SIZE_INVALID", "provided length did not match content length", 400),
    ErrorCode("TAG_INVALID", "manifest tag did not match URI", 400),
    ErrorCode("UNAUTHORIZED", "authentication required", 401),
    ErrorCode("DENIED", "requested access to the resource is denied", 403),
    ErrorCode("UNSUPPORTED", "The operation is unsupported.", 405),
    ErrorCode("TOOMANYREQUESTS", "too many requests", 429),
    ErrorCode("RANGE_INVALID", "invalid content range", 416),
    ErrorCode("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400),
    ErrorCode("UNAVAILABLE", "service unavailable", 503),
    ErrorCode("UNKNOWN", "unknown error", 500),
)

CODES: dict[str, ErrorCode] = {e.code: e for e in _TABLE}
"""Every known code by its wire name."""


def by_code(code: str) -> ErrorCode:
    """The table entry for ``code``; an unknown code is classed as UNKNOWN (status 500)."""
    return CODES.get(code, CODES["UNKNOWN"])


def envelope(code: str, *, message: str | None = None, detail=None,
             status: int | None = None) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of a one-error envelope for ``code`` (which must be known).

    ``message`` replaces the table's default text; ``detail`` is any JSON value (omitted
    when None), as the spec allows. ``status`` replaces the table's status where the spec
    asks for another one with the same code (a manifest over the size limit is
    MANIFEST_INVALID with 413 Payload Too Large).
    """
    import json

    e = CODES[code]
    item = {"code": e.code, "message": message or e.message}
    if detail is not None:
        item["detail"] = detail
    return status or e.status, json.dumps({"errors": [item]}, separators=(",", ":")).encode()


class WireError(NamedTuple):
    """One error as a registry sent it."""

    code: str
    message: str
    detail: object = None


def parse(body: bytes | str | None) -> list[WireError]:
    """The errors of an envelope, in order; [] when ``body`` is not a valid envelope.

    Never raises on bad input: registries and proxies answer with HTML pages, empty bodies
    and truncated JSON, and the caller then falls back to the HTTP status alone.
    """
    import json

    if not body:
        return []
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return []
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errs, list):
        return []
    out = []
    for e in errs:
        if isinstance(e, dict) and isinstance(e.get("code"), str):
            msg = e.get("message")
            out.append(WireError(e["code"], msg if isinstance(msg, str) else "", e.get("detail")))
    return out
