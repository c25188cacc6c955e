"""``push``: a tagged local image -> a registry.

Per blob (layers 5 at a time, as dockerd; then the config):

    HEAD /v2/<repo>/blobs/<digest>            -> 200: "Layer already exists"
    POST .../uploads/?mount=<d>&from=<other>  -> 201: "Mounted from <other>"  (for each
                                                 repository of this registry the store
                                                 knows holds the blob: blob_sources)
    POST .../uploads/ ; PUT ?digest=          -> monolithic, blobs up to MONOLITHIC bytes
    POST .../uploads/ ; PATCH xN ; PUT        -> chunked (Content-Range), larger blobs
    then PUT /v2/<repo>/manifests/<tag> with the manifest's own media type.

Layers the store holds uncompressed (``docker save`` archives keep them so) are gzipped once
(ISA-L, one pass that also re-checks the diff ID), and the copy is kept (``layer_copies``,
which GC honours), so pushing again compresses nothing; the manifest sent then lists the
compressed blobs, and its digest is recorded as the image's repo digest for that name.
Blobs already compressed are sent as they are: a pushed image keeps its manifest digest.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from lamina import oci
from lamina.digest import Digest
from lamina.errors import LaminaError, NotFound, Unauthorized
from lamina.progress import Progress
from lamina.registry.client.api import Registry, RegistryError, RegistryNotFound
from lamina.values import value

DEFAULT_CONCURRENCY = 5
MONOLITHIC = 16 << 20
"""Blobs up to this size go up in one PUT; larger ones in PATCH chunks."""
CHUNK = 32 << 20

UNCOMPRESSED = (oci.MT_OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar")


@value
class PushResult:
    tag: str
    digest: Digest
    size: int


class _Slice:
    """Up to ``n`` bytes of file ``f`` from its current position, as a body for urllib3,
    reporting progress."""

    def __init__(self, f, n: int, on_read=None) -> None:
        self.f, self.left, self.on_read = f, n, on_read

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        if size is None or size < 0 or size > self.left:
            size = self.left
        data = self.f.read(min(size, 1 << 20))
        self.left -= len(data)
        if self.on_read is not None and data:
            self.on_read(len(data))
        return data


class Pusher:
    def __init__(self, store, *, progress: Progress | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.store = store
        self.content = store.content
        self.progress = progress or Progress(quiet=True)
        self.concurrency = max(1, concurrency)

    def push(self, ref, *, announce: bool = True) -> PushResult:
        """Push the image tagged ``ref`` (a Reference with a tag) to its registry."""
        from lamina.image.service import Images
        images = Images(self.store)
        row = self.store.db.one("SELECT manifest FROM tags WHERE name=?", (str(ref),))
        if row is None:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        rec = images.get(row[0])
        if announce:
            self.progress.line(f"The push refers to repository [{ref.name}]")
        reg = Registry(ref.domain, pool_size=self.concurrency + 2)
        try:
            try:
                result = self._push(reg, images, rec, ref)
                from lamina.events import emit
                emit(self.store.root, "image", "push", ref.familiar, {"name": ref.familiar_name})
                return result
            except Unauthorized as e:
                if isinstance(e, RegistryError):
                    raise
                raise RegistryError(str(e), status=401) from None
        finally:
            reg.close()

    def _push(self, reg: Registry, images, rec, ref) -> PushResult:
        path = ref.path
        raw = self.content.read(rec.manifest)
        m = oci.Manifest.from_json(raw, what=f"manifest {rec.manifest}")
        cfg = images.config(rec)
        p = self.progress
        layers = list(zip(m.layers, cfg.diff_ids))
        order = list(reversed(layers))  # Docker lists the top layer first
        for _d, diff in order:
            p.status(diff.hex[:12], "Preparing")
        for n, (_d, diff) in enumerate(order):
            if n >= self.concurrency:
                p.status(diff.hex[:12], "Waiting")
        sources = self._sources(reg.domain)
        replaced: dict[int, oci.Descriptor] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def one(i: int, d: oci.Descriptor, diff: Digest) -> None:
            if stop.is_set():
                return
            short = diff.hex[:12]
            send = d
            if d.media_type in UNCOMPRESSED:
                send = self._compressed(d, diff, m.media_type)
                with lock:
                    replaced[i] = send
            status = self._blob(reg, path, send, sources.get(str(send.digest), []),
                                on_bytes=lambda n: p.bytes(short, "Pushing", n, send.size))
            p.status(short, status)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push") as ex:
            futs = [ex.submit(one, i, d, diff) for i, (d, diff) in reversed(list(enumerate(layers)))]
            try:
                for f in futs:
                    f.result()
            except BaseException:
                stop.set()
                raise
        self._blob(reg, path, m.config, sources.get(str(m.config.digest), []))
        body = raw
        if replaced:
            doc = json.loads(raw)
            for i, nd in replaced.items():
                entry = dict(doc["layers"][i])
                entry.update({"mediaType": nd.media_type, "digest": str(nd.digest), "size": nd.size})
                doc["layers"][i] = entry
            body = json.dumps(doc, indent=3).encode()
        digest = Digest.of_bytes(body)
        with self.store.operation():
            if body is not raw:
                self.content.put_bytes(body, digest)
            sent = reg.put_manifest(path, ref.tag, body, m.media_type)
            if sent and sent != str(digest):
                raise RegistryError(f"registry {reg.domain} stored manifest {sent} for what lamina sent as {digest}")
            with self.store.db.tx() as c:
                c.execute("INSERT OR REPLACE INTO repo_digests(name, digest, manifest) VALUES(?,?,?)",
                          (ref.name, str(digest), str(rec.manifest)))
                blobs = [m.config.digest] + [replaced.get(i, d).digest for i, d in enumerate(m.layers)]
                c.executemany("INSERT OR IGNORE INTO blob_sources(blob, repo) VALUES(?,?)",
                              [(str(b), ref.name) for b in blobs])
        return PushResult(tag=ref.tag, digest=digest, size=len(body))

    def _sources(self, domain: str) -> dict[str, list[str]]:
        """blob -> other repository paths of this registry known to hold it."""
        out: dict[str, list[str]] = {}
        prefix = domain + "/"
        for blob, repo in self.store.db.query("SELECT blob, repo FROM blob_sources WHERE repo LIKE ?",
                                              (prefix.replace("%", r"\%") + "%",)):
            if repo.startswith(prefix):
                out.setdefault(blob, []).append(repo[len(prefix):])
        return out

    def _compressed(self, d: oci.Descriptor, diff: Digest, manifest_type: str) -> oci.Descriptor:
        """The gzip copy of an uncompressed layer blob: the kept one, or made now (once)."""
        mt = oci.MT_DOCKER_LAYER_GZIP if manifest_type == oci.MT_DOCKER_MANIFEST else oci.MT_OCI_LAYER_GZIP
        row = self.store.db.one("SELECT blob FROM layer_copies WHERE source=? AND media_type=?",
                                (str(d.digest), mt))
        if row:
            b = Digest.parse(row[0])
            if self.content.exists(b):
                return oci.Descriptor(mt, b, self.content.size(b))
        from lamina.layer.ingest import ingest_layer
        ref = f"gzip-{d.digest.hex[:32]}-{os.getpid()}-{os.urandom(3).hex()}"
        with self.content.writer(ref, resume=False, hashing=False) as w:
            with self.content.open(d.digest) as src:
                info = ingest_layer(src, w, compression="gzip", check=False)
            if info.diff_id != diff:
                raise LaminaError(f"layer {d.digest} is corrupt in the store: it hashes to {info.diff_id}, "
                                  f"its image lists diff ID {diff}")
            with self.store.operation():
                w.commit(digest=info.digest)
                with self.store.db.tx() as c:
                    c.execute("INSERT OR REPLACE INTO layer_copies(source, blob, media_type) VALUES(?,?,?)",
                              (str(d.digest), str(info.digest), mt))
                    c.execute("INSERT OR IGNORE INTO layer_blobs(blob, diff_id, media_type) VALUES(?,?,?)",
                              (str(info.digest), str(diff), mt))
        return oci.Descriptor(mt, info.digest, info.size)

    def _blob(self, reg: Registry, path: str, d: oci.Descriptor, sources: list[str], *, on_bytes=None) -> str:
        """Make sure the registry's repository holds blob ``d``; returns Docker's status."""
        digest = str(d.digest)
        if reg.blob_exists(path, digest):
            return "Layer already exists"
        location = None
        for src in [s for s in sources if s != path][:3]:
            try:
                location = reg.mount_blob(path, digest, src)
            except (RegistryNotFound, Unauthorized):
                continue
            except RegistryError:
                continue
            if location is None:
                return f"Mounted from {src}"
            break
        for attempt in range(2):
            if location is None:
                location = reg.start_upload(path)
            sent = 0

            def progress(n: int) -> None:
                nonlocal sent
                sent += n
                if on_bytes is not None:
                    on_bytes(sent)
            try:
                with self.content.open(d.digest) as f:
                    if d.size <= MONOLITHIC:
                        reg.upload_monolithic(path, location, digest, _Slice(f, d.size, progress), d.size)
                    else:
                        self._chunked(reg, path, location, digest, f, d.size, progress)
                return "Pushed"
            except RegistryError:
                raise
            except LaminaError:
                if attempt == 1:
                    raise
                location = None  # a broken connection: start a fresh upload once
        return "Pushed"

    def _chunked(self, reg: Registry, path: str, location: str, digest: str, f, size: int, progress) -> None:
        from urllib.parse import urljoin
        offset = 0
        url = location
        while offset < size:
            n = min(CHUNK, size - offset)
            r = reg.upload_request("PATCH", url, path, body=_Slice(f, n, progress),
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(n),
                                             "Content-Range": f"{offset}-{offset + n - 1}"},
                                    ok=(202, 204))
            offset += n
            if r.headers.get("Location"):
                url = urljoin(url, r.headers["Location"])
        reg.upload_request("PUT", reg.with_query(url, digest=digest), path, body=b"",
                            headers={"Content-Length": "0"}, ok=(201, 204))
