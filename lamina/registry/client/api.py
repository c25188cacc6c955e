"""The distribution API of one registry: what pull, push, login and search send on the wire.

``Registry(domain)`` pings ``/v2/`` once (learning the scheme and the auth challenge), then
every call names the scopes it needs (``repository:<path>:pull`` ...) and is authorized by
``auth.Auth``. A registry error becomes a :class:`RegistryError` carrying the wire errors
(parsed with ``lamina.registry.errcodes``), the HTTP status and the request, so callers
can word it as Docker does; its ``str`` is Go's ``<Method> "<url>": <code>: <message>``.

Blob bodies are streamed (``open_blob`` returns the response unread, optionally from an
offset with ``Range``); manifests and configs are read whole, bounded in size.
"""

from __future__ import annotations

from lamina.errors import LaminaError, NotFound, Unauthorized
from lamina.registry import errcodes
from lamina.registry.client import hosts
from lamina.registry.client.auth import Auth
from lamina.registry.client.transport import Transport, TransportError, body_of, keep_body, url_of

MANIFEST_LIMIT = 4 << 20
"""Largest manifest or index accepted (distribution's own limit is 4 MiB)."""
CONFIG_LIMIT = 64 << 20

SCHEMA1_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                 "application/vnd.docker.distribution.manifest.v1+prettyjws")

ACCEPT_MANIFESTS = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    *SCHEMA1_TYPES,
))


class RegistryError(LaminaError):
    """A registry answered with an error. Exit 1 (a failed pull/push, like Docker)."""

    exit_code = 1

    def __init__(self, message: str, *, status: int = 0, errors: list | tuple = (), method: str = "",
                 url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.errors = list(errors)
        self.method = method
        self.url = url

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.errors]

    def wire_text(self) -> str:
        return wire_text(self.errors, self.status)


class RegistryNotFound(RegistryError, NotFound):
    """The manifest, blob or repository does not exist (404)."""


class RegistryDenied(RegistryError, Unauthorized):
    """401/403 after authenticating: wrong credentials, or no access to the repository."""


def wire_text(errors: list, status: int = 0) -> str:
    """Docker's errcode rendering: ``manifest unknown: manifest unknown`` (several joined)."""
    if not errors:
        from http import HTTPStatus
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        if status == 401:
            return "unauthorized: authentication required"
        return f"unexpected status code {status} {phrase}".rstrip() if status else "unknown error"
    parts = []
    for e in errors:
        code = e.code.lower().replace("_", " ")
        msg = e.message or errcodes.by_code(e.code).message
        parts.append(f"{code}: {msg}")
    return "; ".join(parts)


def _bearer_error(header: str | None) -> errcodes.WireError | None:
    """RFC 6750 ``error=`` of a Bearer challenge, as Docker maps it (insufficient_scope ->
    DENIED, invalid_token -> UNAUTHORIZED)."""
    if not header:
        return None
    from lamina.registry.client.auth import parse_challenges
    for scheme, params in parse_challenges(header):
        if scheme != "bearer":
            continue
        code = {"insufficient_scope": "DENIED", "invalid_token": "UNAUTHORIZED"}.get(params.get("error", ""))
        if code:
            return errcodes.WireError(code, params.get("error_description") or errcodes.CODES[code].message)
    return None


def error_from(r, method: str, url: str) -> RegistryError:
    """The RegistryError for an error response ``r`` (body already read)."""
    body = body_of(r)
    errs = errcodes.parse(body)
    be = _bearer_error(r.headers.get("WWW-Authenticate")) if r.status in (401, 403) else None
    if be is not None:
        errs = [be] + [e for e in errs if e.code != be.code]
    go = method[0] + method[1:].lower()
    msg = f'{go} "{url}": {wire_text(errs, r.status)}'
    cls = RegistryError
    if r.status in (401, 403) or any(e.code in ("UNAUTHORIZED", "DENIED") for e in errs):
        cls = RegistryDenied
    elif r.status == 404:
        cls = RegistryNotFound
    return cls(msg, status=r.status, errors=errs, method=method, url=url)


class Registry:
    """One registry, for one command. Not a long-lived object: tokens and connections live
    as long as it does. ``close()`` (or use as a context manager) drops the connections."""

    def __init__(self, domain: str, *, cred=None, use_stored_credentials: bool = True,
                 pool_size: int = 8) -> None:
        from lamina.registry.client import credentials
        self.domain = domain
        self.ep = hosts.endpoint(domain)
        self.t = Transport(self.ep, pool_size=pool_size)
        if cred is None and use_stored_credentials:
            cred = credentials.get(domain)
        self.auth = Auth(self.t, cred, login_key=hosts.auth_key(domain))
        self._pinged = False

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.t.close()

    # -- plumbing -----------------------------------------------------------------
    def ping(self) -> int:
        """``GET /v2/``: decides the scheme and learns the challenge. Returns the status
        (200, or 401 when the registry wants credentials)."""
        r = self.t.request("GET", "/v2/", limit=1 << 16)
        self._pinged = True
        if r.status == 401:
            self.auth.set_challenge(r.headers.get("WWW-Authenticate"))
        elif r.status != 200 and r.status != 404:
            raise error_from(r, "GET", url_of(r))
        return r.status

    def request(self, method: str, path: str, scopes: tuple[str, ...], *, headers: dict | None = None,
                body=None, stream: bool = False, ok: tuple[int, ...] = (200,), limit: int = MANIFEST_LIMIT,
                follow: bool = True):
        """An authorized request; a 401 refreshes the token (or takes the new challenge)
        once. A status outside ``ok`` raises the RegistryError for it."""
        if not self._pinged:
            self.ping()
        h = dict(headers or {})
        h.update(self.auth.header(scopes))
        r = self.t.request(method, path, headers=h, body=body, stream=stream, limit=limit, follow=follow)
        replayable = body is None or isinstance(body, (bytes, bytearray))
        if r.status == 401 and replayable:
            challenge = r.headers.get("WWW-Authenticate")
            _release(r, stream)
            before = self.auth.scheme
            self.auth.set_challenge(challenge)
            if self.auth.scheme is not None and (self.auth.scheme == "bearer" or before is None):
                h = dict(headers or {})
                h.update(self.auth.header(scopes, fresh=True))
                r = self.t.request(method, path, headers=h, body=body, stream=stream, limit=limit,
                                   follow=follow)
        if r.status not in ok:
            if stream:
                try:
                    keep_body(r, r.read(1 << 16, decode_content=False))
                except Exception:  # the error status is what matters
                    keep_body(r, b"")
                r.release_conn()
            raise error_from(r, method, url_of(r) or self.t.url(path))
        return r

    @staticmethod
    def scopes(path: str, actions: str = "pull", *extra: str) -> tuple[str, ...]:
        return (f"repository:{path}:{actions}",) + extra

    # -- manifests ----------------------------------------------------------------
    def get_manifest(self, path: str, reference: str, *, scopes=None) -> tuple[bytes, str, str | None]:
        """(body, media type, Docker-Content-Digest) of a manifest or index."""
        r = self.request("GET", f"/v2/{path}/manifests/{reference}", scopes or self.scopes(path),
                         headers={"Accept": ACCEPT_MANIFESTS}, limit=MANIFEST_LIMIT)
        body = body_of(r)
        if len(body) >= MANIFEST_LIMIT:
            raise RegistryError(f"manifest {path}:{reference} is larger than {MANIFEST_LIMIT} bytes")
        mt = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        return body, mt, r.headers.get("Docker-Content-Digest")

    def head_manifest(self, path: str, reference: str, *, scopes=None) -> tuple[str | None, int] | None:
        """(Docker-Content-Digest, size) of a manifest, or None if the registry lacks it."""
        try:
            r = self.request("HEAD", f"/v2/{path}/manifests/{reference}", scopes or self.scopes(path),
                             headers={"Accept": ACCEPT_MANIFESTS})
        except RegistryNotFound:
            return None
        return r.headers.get("Docker-Content-Digest"), int(r.headers.get("Content-Length") or -1)

    def put_manifest(self, path: str, reference: str, data: bytes, media_type: str) -> str | None:
        r = self.request("PUT", f"/v2/{path}/manifests/{reference}", self.scopes(path, "pull,push"),
                         headers={"Content-Type": media_type}, body=data, ok=(200, 201, 202))
        return r.headers.get("Docker-Content-Digest")

    # -- blobs --------------------------------------------------------------------
    def open_blob(self, path: str, digest: str, *, offset: int = 0, scopes=None):
        """The streaming response for a blob, from ``offset`` (status 206 when the registry
        honoured the Range, 200 when it sent the whole blob again)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request("GET", f"/v2/{path}/blobs/{digest}", scopes or self.scopes(path),
                            headers=headers, stream=True, ok=(200, 206))

    def get_blob(self, path: str, digest: str, *, limit: int = CONFIG_LIMIT, scopes=None) -> bytes:
        r = self.request("GET", f"/v2/{path}/blobs/{digest}", scopes or self.scopes(path), limit=limit)
        return body_of(r)

    def blob_exists(self, path: str, digest: str, *, scopes=None) -> bool:
        try:
            self.request("HEAD", f"/v2/{path}/blobs/{digest}", scopes or self.scopes(path, "pull,push"))
        except RegistryNotFound:
            return False
        return True

    def mount_blob(self, path: str, digest: str, source: str) -> str | None:
        """Cross-repository mount from ``source`` (same registry). None when mounted;
        otherwise the upload location the registry opened instead (202)."""
        from urllib.parse import quote
        r = self.request("POST", f"/v2/{path}/blobs/uploads/?mount={quote(digest)}&from={quote(source)}",
                         self.scopes(path, "pull,push", f"repository:{source}:pull"), body=b"",
                         headers={"Content-Length": "0"}, ok=(201, 202))
        if r.status == 201:
            return None
        return self._location(r)

    def start_upload(self, path: str) -> str:
        r = self.request("POST", f"/v2/{path}/blobs/uploads/", self.scopes(path, "pull,push"), body=b"",
                         headers={"Content-Length": "0"}, ok=(202,))
        return self._location(r)

    def _location(self, r) -> str:
        from urllib.parse import urljoin
        loc = r.headers.get("Location")
        if not loc:
            raise RegistryError(f"registry {self.domain} opened an upload without a Location")
        return urljoin(url_of(r) or self.t.url("/v2/"), loc)

    @staticmethod
    def with_query(url: str, **params: str) -> str:
        from urllib.parse import urlencode
        return url + ("&" if "?" in url else "?") + urlencode(params)

    def upload_request(self, method: str, url: str, path: str, *, body, headers: dict, ok):
        """An upload step (its URL is absolute, from Location): authorized like the rest."""
        h = dict(headers)
        h.update(self.auth.header(self.scopes(path, "pull,push")))
        r = self.t.request(method, url, headers=h, body=body, follow=False, retry=False)
        if r.status not in ok:
            raise error_from(r, method, url)
        return r

    def upload_monolithic(self, path: str, location: str, digest: str, body, size: int) -> None:
        """Finish an upload with one ``PUT ?digest=`` carrying the whole blob."""
        self.upload_request("PUT", self.with_query(location, digest=digest), path, body=body,
                             headers={"Content-Type": "application/octet-stream",
                                      "Content-Length": str(size)}, ok=(201, 204))

    # -- listing ------------------------------------------------------------------
    def catalog(self, *, page: int = 1000) -> list[str]:
        """Every repository of the registry (``/v2/_catalog``, following ``Link`` pages)."""
        out: list[str] = []
        path = f"/v2/_catalog?n={page}"
        for _ in range(10000):
            r = self.request("GET", path, ("registry:catalog:*",), limit=16 << 20)
            import json
            try:
                out.extend(json.loads(body_of(r)).get("repositories") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.domain}: _catalog answered something that is not JSON") from None
            nxt = _next_link(r.headers.get("Link"))
            if not nxt:
                break
            path = nxt if nxt.startswith("/") else "/" + nxt.split("/", 3)[-1]
        return out

    def tags(self, path: str) -> list[str]:
        import json
        out: list[str] = []
        url = f"/v2/{path}/tags/list?n=1000"
        for _ in range(10000):
            r = self.request("GET", url, self.scopes(path), limit=16 << 20)
            try:
                out.extend(json.loads(body_of(r)).get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"registry {self.domain}: tags/list for {path} is not JSON") from None
            nxt = _next_link(r.headers.get("Link"))
            if not nxt:
                break
            url = nxt if nxt.startswith("/") else "/" + nxt.split("/", 3)[-1]
        return out

    def search_v1(self, term: str, limit: int) -> list[dict] | None:
        """The Hub's search API (``/v1/search``) on the registry's index host; None when the
        registry does not offer it (404, as registry:2 and lamina's server answer)."""
        import json
        from urllib.parse import urlencode
        host = hosts.DOCKER_HUB_INDEX_HOST if self.ep.host == hosts.DOCKER_HUB_API_HOST else self.ep.host
        scheme = self.t.scheme or self.ep.schemes[0]
        if not self._pinged and host == self.ep.host:
            try:
                self.ping()
            except RegistryError:
                pass
            scheme = self.t.scheme or scheme
        url = f"{scheme}://{host}/v1/search?{urlencode({'q': term, 'n': str(limit)})}"
        r = self.t.request("GET", url, headers=self.auth.header(()) if self.auth.scheme == "basic" else {},
                           limit=16 << 20)
        if r.status in (404, 405, 401):
            return None
        if r.status != 200:
            raise error_from(r, "GET", url)
        try:
            doc = json.loads(body_of(r))
        except ValueError:
            return None
        results = doc.get("results") if isinstance(doc, dict) else None
        return results if isinstance(results, list) else None


def _next_link(header: str | None) -> str | None:
    """The URL of ``<url>; rel="next"`` in a Link header."""
    if not header:
        return None
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            s, e = part.find("<"), part.find(">")
            if s >= 0 and e > s:
                return part[s + 1:e]
    return None


def _release(r, stream: bool) -> None:
    if stream:
        try:
            r.drain_conn()
        finally:
            r.release_conn()


__all__ = ["Registry", "RegistryError", "RegistryNotFound", "RegistryDenied", "TransportError",
           "wire_text", "error_from", "SCHEMA1_TYPES", "Unauthorized"]
