"""The distribution API: routes, and one handler per endpoint of the OCI distribution spec.

``App.begin(request)`` is called when a request's headers are complete (see http.py): it
routes, validates names, references and digests against the spec's grammar (a malformed
one is a 400, never a 500), asks :mod:`.auth`, and returns either the final Response
(every GET and HEAD: answered synchronously, in the loop) or a handler that takes the body
as it arrives (uploads stream into their session file; manifests into a bounded buffer).

Endpoints (status codes as in the spec's table; every error is a ``{"errors": [...]}``
envelope from :mod:`lamina.registry.errcodes`)::

    GET/HEAD /v2/                                         200
    GET      /v2/_catalog[?n=&last=]                      200 (+ Link)
    GET      /v2/<name>/tags/list[?n=&last=]              200 (+ Link) | 404
    GET/HEAD /v2/<name>/manifests/<tag|digest>            200 | 404
    PUT      /v2/<name>/manifests/<tag|digest>[?tag=..]   201 (+ OCI-Subject, OCI-Tag) | 400 | 404 | 413
    DELETE   /v2/<name>/manifests/<tag|digest>            202 | 404 | 405
    GET/HEAD /v2/<name>/blobs/<digest>                    200 | 206 | 416 | 404
    DELETE   /v2/<name>/blobs/<digest>                    202 | 404 | 405
    POST     /v2/<name>/blobs/uploads/                    202 (session) | 201 (?digest=, ?mount=)
    GET      /v2/<name>/blobs/uploads/<id>                204 + Range
    PATCH    /v2/<name>/blobs/uploads/<id>                202 + Range | 416
    PUT      /v2/<name>/blobs/uploads/<id>?digest=        201 | 400 | 416
    DELETE   /v2/<name>/blobs/uploads/<id>                204 | 404
    GET      /v2/<name>/referrers/<digest>[?artifactType=] 200 (+ OCI-Filters-Applied)
    GET      /metrics                                     Prometheus text
    GET/POST /token                                       (``--auth token`` only)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import traceback

from lamina.registry import errcodes
from lamina.registry.server import manifests as mf
from lamina.registry.server import names, uploads
from lamina.registry.server.http import Response
from lamina.registry.server.storage import Storage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

JSON = "application/json; charset=utf-8"
MAX_PAGE = 10000
REFERRERS_PAGE = 1000

_ROUTES = (
    (re.compile(r"/v2/(.+)/manifests/([^/]+)"), "manifest"),
    (re.compile(r"/v2/(.+)/blobs/uploads/?"), "upload-start"),
    (re.compile(r"/v2/(.+)/blobs/uploads/([^/]+)"), "upload"),
    (re.compile(r"/v2/(.+)/blobs/([^/]+)"), "blob"),
    (re.compile(r"/v2/(.+)/tags/list"), "tags"),
    (re.compile(r"/v2/(.+)/referrers/([^/]+)"), "referrers"),
)


def err(code: str, message: str | None = None, *, detail=None, status: int | None = None,
        headers: list | None = None) -> Response:
    st, body = errcodes.envelope(code, message=message, detail=detail, status=status)
    h = [("Content-Type", JSON)]
    if headers:
        h.extend(headers)
    return Response(st, h, body)


def json_response(status: int, obj, headers: list | None = None, content_type: str = JSON) -> Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, [("Content-Type", content_type)] + (headers or []), body)


class Options:
    """Server behaviour switches (from the command line)."""

    def __init__(self, *, read_only: bool = False, no_delete: bool = False,
                 max_manifest_size: int = 4 << 20) -> None:
        self.read_only = read_only
        self.no_delete = no_delete
        self.max_manifest_size = max_manifest_size


class _MemorySink:
    """A bounded request body (a manifest)."""

    __slots__ = ("chunks", "size", "limit", "too_big")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.too_big = False

    def write(self, b: bytes) -> None:
        self.size += len(b)
        if self.size > self.limit:
            self.too_big = True
            self.chunks = []
        elif not self.too_big:
            self.chunks.append(b)

    def data(self) -> bytes:
        return b"".join(self.chunks)


class _Handler:
    """A request that takes a body: ``on_body`` streams it, ``done`` answers."""

    def __init__(self, write, done, abort=None) -> None:
        self.write = write
        self.finish = done
        self._abort = abort

    def abort(self) -> None:
        if self._abort is not None:
            self._abort()


class _Gated:
    """A request whose authorization is still being decided (a bcrypt check): the body
    that arrives meanwhile is held (the protocol stops reading), then handed on."""

    def __init__(self, app: App, req, route, fut) -> None:
        self.app, self.req, self.route = app, req, route
        self.gate = fut
        self.held: list[bytes] = []
        self.inner: Any = None
        self.decided = False

    def _decide(self) -> None:
        if self.decided:
            return
        self.decided = True
        deny = self.gate.result()
        self.inner = deny if deny is not None else self.app.dispatch(self.req, self.route)
        if not isinstance(self.inner, Response):
            for b in self.held:
                self.inner.write(b)
        self.held = []

    def write(self, b: bytes) -> None:
        if not self.gate.done():
            self.held.append(b)
            return
        self._decide()
        if not isinstance(self.inner, Response):
            self.inner.write(b)

    async def _finish(self):
        await self.gate
        self._decide()
        if isinstance(self.inner, Response):
            return self.inner
        r = self.inner.finish()
        if not isinstance(r, Response):
            r = await r
        return r

    def finish(self):
        if self.gate.done():
            self._decide()
            if isinstance(self.inner, Response):
                return self.inner
            return self.inner.finish()
        return self._finish()

    def abort(self) -> None:
        if self.inner is not None and not isinstance(self.inner, Response):
            self.inner.abort()


def _parse_range(spec: str, size: int) -> tuple[int, int] | None | Literal[False]:
    """A single ``bytes=`` range against ``size``: (first, last) inclusive; None when the
    header is to be ignored (another unit, several ranges, bad syntax); False when it is
    unsatisfiable."""
    spec = spec.strip()
    if not spec.lower().startswith("bytes="):
        return None
    r = spec[6:].strip()
    if "," in r:
        return None
    first, sep, last = r.partition("-")
    first, last = first.strip(), last.strip()
    if not sep:
        return None
    try:
        if first == "":
            if not last.isdigit():
                return None
            n = int(last)
            if n == 0 or size == 0:
                return False
            return max(0, size - n), size - 1
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        a = int(first)
        b = int(last) if last else size - 1
    except ValueError:
        return None
    if b < a or a >= size:
        return False
    return a, min(b, size - 1)


def _content_range(h: str | None) -> tuple[int, int] | None | Literal[False]:
    """A PATCH Content-Range ``<start>-<end>`` (also ``bytes <start>-<end>[/<total>]``):
    (start, end), None if absent, False if malformed."""
    if h is None:
        return None
    v = h.strip()
    if v.lower().startswith("bytes"):
        v = v[5:].lstrip(" =")
    v = v.split("/", 1)[0]
    sa, sep, sb = v.partition("-")
    if not sep or not sa.strip().isdigit() or not sb.strip().isdigit():
        return False
    a, b = int(sa), int(sb)
    if b < a:
        return False
    return a, b


class App:
    def __init__(self, store: Storage, *, options: Options | None = None, auth=None,
                 metrics=None, loop=None, log_level: str = "info") -> None:
        self.store = store
        self.opts = options or Options()
        self.auth = auth
        self.metrics = metrics
        self.loop = loop
        self.log_level = log_level

    # -- plumbing --------------------------------------------------------------------------
    def internal_error(self, req, e: BaseException) -> Response:
        sys.stderr.write(f"lamina registry: error answering {req.method} {req.target}: {e!r}\n")
        if self.log_level == "debug":
            traceback.print_exception(e)
        if isinstance(e, OSError):
            return err("UNAVAILABLE", f"storage error: {e.strerror or e}")
        return err("UNKNOWN", f"internal error: {type(e).__name__}")

    def _route(self, req):
        path = req.path
        if path in ("/v2/", "/v2"):
            req.route = "base"
            return ("base",)
        if path == "/v2/_catalog":
            req.route = "catalog"
            return ("catalog",)
        if path == "/metrics":
            req.route = "metrics"
            return ("metrics",)
        if path == "/token" and self.auth is not None and self.auth.mode == "token":
            req.route = "token"
            return ("token",)
        if not path.startswith("/v2/"):
            return None
        for rx, kind in _ROUTES:
            m = rx.fullmatch(path)
            if m is not None:
                req.route = {"upload-start": "upload"}.get(kind, kind)
                return (kind,) + m.groups()
        return None

    def begin(self, req):
        route = self._route(req)
        if route is None:
            return err("UNSUPPORTED", f"no such endpoint: {req.path[:200]}", status=404)
        kind = route[0]
        if len(route) > 1 and not names.valid_name(route[1]):
            return err("NAME_INVALID", f"invalid repository name {route[1][:300]!r}",
                       detail={"name": route[1][:300]})
        if self.auth is not None and kind not in ("metrics", "token"):
            scopes = self._scopes(req, route)
            a = self.auth.authorize(req, scopes)
            if a is not None:
                if isinstance(a, Response):
                    return a
                return _Gated(self, req, route, a)
        return self.dispatch(req, route)

    def _scopes(self, req, route) -> list[tuple[str, str, str]]:
        kind = route[0]
        if kind == "base":
            return []
        if kind == "catalog":
            return [("registry", "catalog", "*")]
        name = route[1]
        m = req.method
        if m in ("GET", "HEAD"):
            return [("repository", name, "pull")]
        if m == "DELETE" and kind in ("manifest", "blob"):
            return [("repository", name, "delete")]
        s = [("repository", name, "pull"), ("repository", name, "push")]
        return s

    def dispatch(self, req, route):
        kind = route[0]
        m = req.method
        if kind == "manifest":
            if m in ("GET", "HEAD"):
                return self.get_manifest(req, route[1], route[2])
            if m == "PUT":
                return self.put_manifest(req, route[1], route[2])
            if m == "DELETE":
                return self.delete_manifest(req, route[1], route[2])
        elif kind == "blob":
            if m in ("GET", "HEAD"):
                return self.get_blob(req, route[1], route[2])
            if m == "DELETE":
                return self.delete_blob(req, route[1], route[2])
        elif kind == "upload-start":
            if m == "POST":
                return self.start_upload(req, route[1])
        elif kind == "upload":
            if m == "GET":
                return self.upload_status(req, route[1], route[2])
            if m in ("PATCH", "PUT"):
                return self.upload_append(req, route[1], route[2], final=(m == "PUT"))
            if m == "DELETE":
                return self.cancel_upload(req, route[1], route[2])
        elif kind == "tags":
            if m in ("GET", "HEAD"):
                return self.list_tags(req, route[1])
        elif kind == "referrers":
            if m in ("GET", "HEAD"):
                return self.referrers(req, route[1], route[2])
        elif kind == "base":
            if m in ("GET", "HEAD"):
                return Response(200, [("Content-Type", JSON)], b"{}")
        elif kind == "catalog":
            if m in ("GET", "HEAD"):
                return self.catalog(req)
        elif kind == "metrics":
            if m in ("GET", "HEAD"):
                body = self.metrics.render(uploads.in_progress(self.store)) if self.metrics else b""
                return Response(200, [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body)
        elif kind == "token":
            if m in ("GET", "POST"):
                return self.token(req)
        return err("UNSUPPORTED", f"method {m} is not supported on {req.path}")

    def _write_refused(self) -> Response | None:
        if self.opts.read_only:
            return err("UNSUPPORTED", "the registry is read-only")
        return None

    def _delete_refused(self) -> Response | None:
        if self.opts.read_only:
            return err("UNSUPPORTED", "the registry is read-only")
        if self.opts.no_delete:
            return err("UNSUPPORTED", "deletion is disabled on this registry")
        return None

    # -- listings --------------------------------------------------------------------------
    def _page(self, req, items: list[str], base: str, key: str, extra: dict) -> Response:
        n_arg = req.arg("n")
        last = req.arg("last")
        if last:
            import bisect
            items = items[bisect.bisect_right(items, last):]
        link = []
        if n_arg is not None:
            if not n_arg.isdigit():
                return err("PAGINATION_NUMBER_INVALID", f"invalid page size n={n_arg[:40]!r}",
                           detail={"n": n_arg[:40]})
            n = int(n_arg)
        else:
            n = None
        if n == 0:
            items = []
        elif n is not None or len(items) > MAX_PAGE:
            lim = min(n if n is not None else MAX_PAGE, MAX_PAGE)
            if len(items) > lim:
                items = items[:lim]
                from urllib.parse import quote
                link = [("Link", f'<{base}?last={quote(items[-1], safe="")}&n={lim}>; rel="next"')]
        return json_response(200, {**extra, key: items}, link)

    def catalog(self, req) -> Response:
        return self._page(req, self.store.repositories(), "/v2/_catalog", "repositories", {})

    def list_tags(self, req, name: str) -> Response:
        tags = self.store.tags(name)
        if tags is None:
            return err("NAME_UNKNOWN", f"repository name not known to registry: {name}", detail={"name": name})
        return self._page(req, tags, f"/v2/{name}/tags/list", "tags", {"name": name})

    def referrers(self, req, name: str, dg: str) -> Response:
        if names.parse_digest(dg) is None:
            return err("DIGEST_INVALID", f"invalid digest {dg[:200]!r}", detail={"digest": dg[:200]})
        at = req.arg("artifactType")
        last = req.arg("last")
        if last is not None and names.parse_digest(last) is None:
            return err("DIGEST_INVALID", f"invalid digest last={last[:200]!r}")
        descs, more = self.store.referrers(name, dg, after=last, limit=REFERRERS_PAGE, artifact_type=at)
        headers = []
        if at is not None:
            headers.append(("OCI-Filters-Applied", "artifactType"))
        if more is not None:
            from urllib.parse import quote
            q = f"last={more}" + (f"&artifactType={quote(at, safe='')}" if at is not None else "")
            headers.append(("Link", f'</v2/{name}/referrers/{dg}?{q}>; rel="next"'))
        return json_response(200, {"schemaVersion": 2, "mediaType": mf.MT_OCI_INDEX, "manifests": descs},
                             headers, content_type=mf.MT_OCI_INDEX)

    # -- manifests -------------------------------------------------------------------------
    def _resolve(self, name: str, ref: str) -> tuple[str, str, str] | Response | None:
        """(digest, alg, hex) of a reference; None if unknown; an error Response if bad."""
        if names.looks_like_digest(ref):
            p = names.parse_digest(ref)
            if p is None:
                return err("DIGEST_INVALID", f"invalid digest {ref[:200]!r}", detail={"digest": ref[:200]})
            return ref, p[0], p[1]
        if not names.valid_tag(ref):
            return err("TAG_INVALID", f"invalid tag {ref[:200]!r}", detail={"tag": ref[:200]})
        dg = self.store.tag_digest(name, ref)
        if dg is None:
            return None
        p = names.parse_digest(dg)
        return None if p is None else (dg, p[0], p[1])

    def get_manifest(self, req, name: str, ref: str) -> Response:
        r = self._resolve(name, ref)
        if isinstance(r, Response):
            return r
        if r is None:
            return err("MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref}", detail={"Tag": ref})
        dg, alg, hexd = r
        mt = self.store.manifest_media_type(name, alg, hexd)
        if mt is None:
            return err("MANIFEST_UNKNOWN", f"manifest unknown: {name}@{dg}", detail={"Digest": dg})
        etag = f'"{dg}"'
        if req.headers.get("if-none-match") == etag:
            return Response(304, [("Docker-Content-Digest", dg), ("ETag", etag)])
        ob = self.store.open_blob(alg, hexd)
        if ob is None:
            return err("MANIFEST_UNKNOWN", f"manifest unknown: {name}@{dg}", detail={"Digest": dg})
        fd, size = ob
        return Response(200, [("Content-Type", mt), ("Docker-Content-Digest", dg), ("ETag", etag)],
                        file=(fd, 0, size))

    def put_manifest(self, req, name: str, ref: str):
        refused = self._write_refused()
        if refused:
            return refused
        by_digest = names.looks_like_digest(ref)
        if by_digest:
            p = names.parse_digest(ref)
            if p is None:
                return err("DIGEST_INVALID", f"invalid digest {ref[:200]!r}", detail={"digest": ref[:200]})
        elif not names.valid_tag(ref):
            return err("TAG_INVALID", f"invalid tag {ref[:200]!r}", detail={"tag": ref[:200]})
        limit = self.opts.max_manifest_size
        cl = req.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            return err("MANIFEST_INVALID", f"manifest too large: {cl} bytes (limit {limit})",
                       status=413, detail={"size": int(cl), "limit": limit})
        sink = _MemorySink(limit)

        def done():
            if sink.too_big:
                return err("MANIFEST_INVALID", f"manifest too large: over {limit} bytes", status=413,
                           detail={"limit": limit})
            return self._commit_manifest(req, name, ref, sink.data())
        return _Handler(sink.write, done)

    def _commit_manifest(self, req, name: str, ref: str, data: bytes):
        try:
            info = mf.inspect(data, req.headers.get("content-type"))
        except mf.ManifestError as e:
            return err(e.code, str(e), detail=e.detail)
        if names.looks_like_digest(ref):
            alg, want = names.parse_digest(ref)  # type: ignore[misc]  # looks_like_digest: not None
        else:
            alg, want = "sha256", None
        import hashlib
        hexd = hashlib.new(alg, data).hexdigest()
        dg = f"{alg}:{hexd}"
        if want is not None and hexd != want:
            return err("DIGEST_INVALID", f"manifest digest is {dg}, not {ref}",
                       detail={"expected": ref, "actual": dg})
        tags = [] if want is None else [t for t in req.query().get("tag", [])]
        for t in tags:
            if not names.valid_tag(t):
                return err("TAG_INVALID", f"invalid tag {t[:200]!r}", detail={"tag": t[:200]})
        if want is None:
            tags = [ref]
        # A shared lock on gc.lock while checking references and linking: GC sweeps under
        # the exclusive lock, so it sees this manifest or this manifest sees its deletions.
        lockfd = self.store.open("gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lockfd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._commit_manifest_later(lockfd, req, name, dg, alg, hexd, data, info, tags, want)
        except BaseException:
            os.close(lockfd)
            raise
        try:
            return self._store_manifest(req, name, dg, alg, hexd, data, info, tags, want)
        finally:
            os.close(lockfd)

    async def _commit_manifest_later(self, lockfd, *args):
        def locked():
            try:
                fcntl.flock(lockfd, fcntl.LOCK_SH)
                return self._store_manifest(*args)
            finally:
                os.close(lockfd)
        return await self.loop.run_in_executor(None, locked)

    def _store_manifest(self, req, name, dg, alg, hexd, data, info, tags, want) -> Response:
        st = self.store
        for r in info.refs:
            if r.kind == "blob":
                ok = st.repo_has_blob(name, r.algorithm, r.hex) is not None
            elif r.kind == "manifest":
                ok = (st.manifest_media_type(name, r.algorithm, r.hex) is not None
                      and st.blob_size(r.algorithm, r.hex) is not None)
            else:
                continue
            if not ok:
                return err("MANIFEST_BLOB_UNKNOWN", f"manifest references {r.kind} {r.digest} unknown to "
                           f"repository {name}", detail={"digest": r.digest})
        st.put_blob_bytes(alg, hexd, data)
        st.link_manifest(name, alg, hexd, info.media_type)
        headers = [("Location", f"/v2/{name}/manifests/{dg}"), ("Docker-Content-Digest", dg)]
        if info.subject is not None:
            desc = dict(info.referrer)
            desc["digest"] = dg
            desc["size"] = len(data)
            st.add_referrer(name, info.subject, dg, {k: desc[k] for k in
                            ("mediaType", "digest", "size", "artifactType", "annotations") if k in desc})
            headers.append(("OCI-Subject", info.subject))
        for t in tags:
            st.set_tag(name, t, dg)
        if want is not None and tags:
            headers.append(("OCI-Tag", ", ".join(tags)))
        return Response(201, headers)

    def delete_manifest(self, req, name: str, ref: str) -> Response:
        refused = self._delete_refused()
        if refused:
            return refused
        st = self.store
        if not names.looks_like_digest(ref):
            if not names.valid_tag(ref):
                return err("TAG_INVALID", f"invalid tag {ref[:200]!r}", detail={"tag": ref[:200]})
            if st.delete_tag(name, ref):
                return Response(202)
            return err("MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref}", detail={"Tag": ref})
        p = names.parse_digest(ref)
        if p is None:
            return err("DIGEST_INVALID", f"invalid digest {ref[:200]!r}", detail={"digest": ref[:200]})
        alg, hexd = p
        if st.manifest_media_type(name, alg, hexd) is None:
            return err("MANIFEST_UNKNOWN", f"manifest unknown: {name}@{ref}", detail={"Digest": ref})
        data = st.read_all(f"blobs/{alg}/{hexd[:2]}/{hexd}")
        if data is not None:
            _, subject = mf.references(data)
            if subject:
                st.remove_referrer(name, subject, ref)
        for t in st.tags_of(name, ref):
            st.delete_tag(name, t)
        st.delete_manifest_link(name, alg, hexd)
        return Response(202)

    # -- blobs -----------------------------------------------------------------------------
    def get_blob(self, req, name: str, dg: str) -> Response:
        p = names.parse_digest(dg)
        if p is None:
            return err("DIGEST_INVALID", f"invalid digest {dg[:200]!r}", detail={"digest": dg[:200]})
        ob = self.store.open_repo_blob(name, p[0], p[1])
        if ob is None:
            return err("BLOB_UNKNOWN", f"blob unknown to registry: {dg}", detail={"digest": dg})
        fd, size = ob
        etag = f'"{dg}"'
        headers = [("Content-Type", "application/octet-stream"), ("Docker-Content-Digest", dg),
                   ("ETag", etag), ("Accept-Ranges", "bytes"), ("Cache-Control", "max-age=31536000")]
        if req.headers.get("if-none-match") == etag:
            os.close(fd)
            return Response(304, headers[1:3])
        rng = req.headers.get("range")
        if rng is not None:
            r = _parse_range(rng, size)
            if r is False:
                os.close(fd)
                return Response(416, [("Content-Range", f"bytes */{size}"), ("Docker-Content-Digest", dg)])
            if r is not None:
                a, b = r
                headers.append(("Content-Range", f"bytes {a}-{b}/{size}"))
                return Response(206, headers, file=(fd, a, b - a + 1))
        return Response(200, headers, file=(fd, 0, size))

    def delete_blob(self, req, name: str, dg: str) -> Response:
        refused = self._delete_refused()
        if refused:
            return refused
        p = names.parse_digest(dg)
        if p is None:
            return err("DIGEST_INVALID", f"invalid digest {dg[:200]!r}", detail={"digest": dg[:200]})
        if self.store.unlink_blob(name, p[0], p[1]):
            return Response(202, [("Docker-Content-Digest", dg)])
        return err("BLOB_UNKNOWN", f"blob unknown to registry: {dg}", detail={"digest": dg})

    # -- uploads ---------------------------------------------------------------------------
    def _upload_headers(self, name: str, uid: str, size: int) -> list:
        return [("Location", f"/v2/{name}/blobs/uploads/{uid}"), ("Range", f"0-{max(size - 1, 0)}"),
                ("Docker-Upload-UUID", uid)]

    def start_upload(self, req, name: str):
        refused = self._write_refused()
        if refused:
            return refused
        st = self.store
        mount = req.arg("mount")
        if mount is not None:
            p = names.parse_digest(mount)
            if p is None:
                return err("DIGEST_INVALID", f"invalid digest {mount[:200]!r}", detail={"digest": mount[:200]})
            src = req.arg("from")
            if src is not None and not names.valid_name(src):
                return err("NAME_INVALID", f"invalid repository name {src[:300]!r}", detail={"name": src[:300]})
            if self._may_mount(req, src) and (
                    st.repo_has_blob(src, *p) is not None if src else st.blob_size(*p) is not None):
                st.link_blob(name, *p)
                return Response(201, [("Location", f"/v2/{name}/blobs/{mount}"), ("Docker-Content-Digest", mount)])
            # no such blob there (or not allowed): an ordinary session, as the spec says
        alg = req.arg("digest-algorithm") or "sha256"
        if alg not in names.ALGORITHMS:
            return err("DIGEST_INVALID", f"unsupported digest algorithm {alg[:40]!r}")
        dg = req.arg("digest")
        if dg is not None:
            p = names.parse_digest(dg)
            if p is None:
                return err("DIGEST_INVALID", f"invalid digest {dg[:200]!r}", detail={"digest": dg[:200]})
            uid = uploads.create(st, name, p[0])
            sess = uploads.open_session(st, name, uid)
            return self._body_into(req, name, sess, final_digest=dg, drop_on_error=True)
        uid = uploads.create(st, name, alg)
        return Response(202, self._upload_headers(name, uid, 0))

    def _may_mount(self, req, src: str | None) -> bool:
        if self.auth is None or self.auth.mode == "none":
            return True
        if src is None:
            return False   # an anonymous mount could reach any repository's blobs
        return self.auth._acl_allows(req.user, [("repository", src, "pull")])

    def upload_status(self, req, name: str, uid: str) -> Response:
        if not names.valid_upload_id(uid):
            return err("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {uid[:80]!r}")
        size = uploads.status(self.store, name, uid)
        if size is None:
            return err("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {uid}", detail={"uuid": uid})
        return Response(204, self._upload_headers(name, uid, size))

    def cancel_upload(self, req, name: str, uid: str) -> Response:
        if not names.valid_upload_id(uid) or not uploads.cancel(self.store, name, uid):
            return err("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {uid[:80]}", detail={"uuid": uid[:80]})
        return Response(204)

    def upload_append(self, req, name: str, uid: str, *, final: bool):
        refused = self._write_refused()
        if refused:
            return refused
        if not names.valid_upload_id(uid):
            return err("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {uid[:80]!r}")
        dg = None
        if final:
            dg = req.arg("digest")
            if dg is None or names.parse_digest(dg) is None:
                return err("DIGEST_INVALID", f"invalid or missing digest {str(dg)[:200]!r}")
        try:
            sess = uploads.open_session(self.store, name, uid)
        except uploads.Busy:
            size = uploads.status(self.store, name, uid) or 0
            return err("RANGE_INVALID", "another request is writing to this upload",
                       headers=self._upload_headers(name, uid, size))
        if sess is None:
            return err("BLOB_UPLOAD_UNKNOWN", f"blob upload unknown: {uid}", detail={"uuid": uid})
        cr = _content_range(req.headers.get("content-range"))
        if cr is False:
            sess.close()
            return err("RANGE_INVALID", "malformed Content-Range", status=416,
                       headers=self._upload_headers(name, uid, sess.size))
        if cr is not None and cr[0] != sess.size:
            size = sess.size
            sess.close()
            return err("RANGE_INVALID", f"chunk starts at {cr[0]}, the upload has {size} bytes",
                       headers=self._upload_headers(name, uid, size),
                       detail={"offset": size})
        return self._body_into(req, name, sess, final_digest=dg, content_range=cr)

    def _body_into(self, req, name: str, sess, *, final_digest: str | None,
                   content_range=None, drop_on_error: bool = False):
        """Stream the body into ``sess``; answer 202 (a chunk) or verify and commit
        (``final_digest``)."""
        start = sess.size

        def abort():
            if drop_on_error:
                uploads.remove_session(self.store, sess.uid)
            sess.close()

        def done():
            got = sess.size - start
            if content_range is not None and got != content_range[1] - content_range[0] + 1:
                sess.truncate(start)
                sess.close()
                return err("BLOB_UPLOAD_INVALID", f"Content-Range {content_range[0]}-{content_range[1]} "
                           f"announced {content_range[1] - content_range[0] + 1} bytes, the body had {got}",
                           headers=self._upload_headers(name, sess.uid, start))
            if final_digest is None:
                sess.close()
                return Response(202, self._upload_headers(name, sess.uid, sess.size))
            alg, want = names.parse_digest(final_digest)
            if sess.needs_rehash(alg):
                return self._verify_later(name, sess, final_digest, alg, want)
            return self._verify(name, sess, final_digest, alg, want, sess.digest_hex(alg))
        return _Handler(sess.write, done, abort)

    async def _verify_later(self, name, sess, dg, alg, want) -> Response:
        try:
            got = await self.loop.run_in_executor(None, sess.digest_hex, alg)
        except BaseException:
            sess.close()
            raise
        return self._verify(name, sess, dg, alg, want, got)

    def _verify(self, name, sess, dg, alg, want, got) -> Response:
        if got != want:
            uid = sess.uid
            sess.close()
            uploads.remove_session(self.store, uid)
            return err("DIGEST_INVALID", f"provided digest {dg} did not match uploaded content "
                       f"({alg}:{got})", detail={"expected": dg, "actual": f"{alg}:{got}"})
        sess.commit(alg, want)
        return Response(201, [("Location", f"/v2/{name}/blobs/{dg}"), ("Docker-Content-Digest", dg)])

    # -- token endpoint --------------------------------------------------------------------
    def token(self, req):
        a = self.auth
        if req.method == "GET":
            q = req.query()
            scopes = q.get("scope", [])
            service = q.get("service", [a.service])[0]
            offline = q.get("offline_token", ["false"])[0].lower() == "true"
            r = self._token_for(req, a._basic(req.headers.get("authorization")), scopes, service, offline,
                                allow_anonymous=not req.headers.get("authorization"))
            if isinstance(r, Response):
                return r
            return _Handler(lambda b: None, lambda: r, r.close)
        sink = _MemorySink(1 << 16)

        def done():
            from urllib.parse import parse_qs
            form = parse_qs(sink.data().decode("utf-8", "replace"), keep_blank_values=True)
            def f1(k, d=None):
                return (form.get(k) or [d])[0]
            scopes = (f1("scope") or "").split()
            service = f1("service", a.service)
            grant = f1("grant_type")
            offline = f1("access_type") == "offline"
            if grant == "password":
                return self._token_for(req, (f1("username", ""), f1("password", "")), scopes, service,
                                       offline, allow_anonymous=False, oauth=True)
            if grant == "refresh_token":
                user = a.refresh_subject(f1("refresh_token", ""))
                if user is None:
                    return err("UNAUTHORIZED", "invalid refresh token")
                return self._token_json(a.issue(user, scopes, refresh=False), oauth=True,
                                        refresh=f1("refresh_token"))
            return err("UNSUPPORTED", f"unsupported grant_type {str(grant)[:40]!r}", status=400)
        return _Handler(sink.write, done)

    def _token_json(self, tok: dict, *, oauth: bool = False, refresh: str | None = None) -> Response:
        if refresh and "refresh_token" not in tok:
            tok["refresh_token"] = refresh
        return json_response(200, tok)

    def _token_for(self, req, cred, scopes, service, offline, *, allow_anonymous: bool, oauth: bool = False):
        """A token response, or a coroutine of one (a password to check)."""
        a = self.auth
        if service != a.service:
            return err("DENIED", f"unknown service {service[:80]!r}", status=400)
        if cred is None:
            if allow_anonymous:
                return self._token_json(a.issue(None, scopes))
            return a._unauthorized(req, [], message="credentials required")
        user, pw = cred
        ok = a.check_password(user, pw)

        def decide(ok: bool) -> Response:
            if not ok:
                st, body = errcodes.envelope("UNAUTHORIZED", message="invalid username or password")
                return Response(st, [("Content-Type", JSON)], body)
            req.user = user
            return self._token_json(a.issue(user, scopes, refresh=offline or oauth))
        if isinstance(ok, bool):
            return decide(ok)

        async def later():
            return decide(await ok)
        return later()
