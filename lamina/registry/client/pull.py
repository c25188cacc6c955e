"""``pull``: a reference on a registry -> an image record in the store (nothing unpacked).

::

    GET manifest (tag or digest) --index?--> pick the platform's manifest (host or --platform)
      -> config blob (verified) -> layers, 3 at a time by default:
         HTTP body --> content writer (sha256 + size of the blob, checked as it streams)
                   \\-> decompress (gzip/zstd/none) -> sha256 = diff ID
                                                   \\-> tar headers checked and unpacked
                                                       (apply_layer) into ingest/<ref>/unpack/fs
      -> every layer verified (digest, size, diff ID against the config)
      -> under store.operation(): publish blobs, config, manifest (and index), install the
         verified unpacked layers as snapshots (rename), record image, tag, repo digest
         (``name@<what the reference resolved to>``) and blob sources

Contracts:
- Each blob is read from the network once; its digest, size and diff ID are computed in
  that pass. A mismatch anywhere aborts the pull and stores nothing (the bad bytes are
  discarded, never resumed).
- A download cut short (connection reset, registry restart) is resumed with ``Range``
  within the pull (retries with backoff); a pull that was killed or failed on the network
  leaves its partial blob in ``content/ingest/pull-<digest>/``, and the next pull of that
  blob resumes from it (its bytes are re-hashed, not re-fetched).
- Pull does not unpack by default (snapshots stay lazy, as after ``import``). With
  ``$LAMINA_PULL_UNPACK=1`` each layer is unpacked while it streams (``unpack=True``), by
  the same safe extractor a lazy unpack uses, into a directory
  inside the blob's ingest dir (held by the ingest's lock, so GC leaves it alone; a killed
  pull's one is discarded by the next pull or by GC). It becomes the layer's snapshot by
  rename only after the blob and its diff ID verified, so a pulled image's first ``run``
  unpacks nothing. A layer whose chain is already unpacked is only checked, not unpacked.
- The store's GC lock is held only while the verified blobs are published and recorded
  (blobs still downloading live in ingest/, which GC leaves to their live writers), so a
  long pull never blocks ``rmi`` or ``image prune``.
- The repo digest recorded is Docker's: the index digest for a multi-platform pull, and
  ``name@<that digest>`` resolves to the image.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from lamina import oci
from lamina.digest import Digest
from lamina.errors import DigestMismatch, InvalidArgument, LaminaError, NotFound, Unauthorized, Unsupported
from lamina.progress import Progress
from lamina.registry.client.api import SCHEMA1_TYPES, Registry, RegistryError
from lamina.registry.client.transport import STREAM_ERRORS, TransportError
from lamina.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONCURRENCY = 3
STREAM_RETRIES = 5

LAYER_MEDIA_TYPES = frozenset(oci.LAYER_TYPES) | {
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}


@value
class PullResult:
    """What a pull did. ``digest``: what the reference resolved to on the registry (the
    index for a multi-platform image); ``manifest``: the image manifest recorded;
    ``updated``: the name now names another image than before (Docker's "Downloaded newer
    image"); ``downloaded``: layer blobs fetched."""

    digest: Digest
    manifest: Digest
    image_id: Digest
    updated: bool
    downloaded: int


class Cancelled(LaminaError):
    """Another layer of the same pull failed; this one stopped (its partial bytes kept)."""


# -- platforms -------------------------------------------------------------------------
_ARCH_ALIASES = {"x86_64": ("amd64", None), "x86-64": ("amd64", None), "aarch64": ("arm64", None),
                 "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "i386": ("386", None)}
_OSES = {"linux", "windows", "darwin", "freebsd"}


def parse_platform(text: str) -> oci.Platform:
    """``os[/arch[/variant]]`` (or a bare architecture), normalized as containerd does."""
    parts = [p.strip().lower() for p in text.split("/")]
    if not text or any(not p for p in parts) or len(parts) > 3:
        raise InvalidArgument(f'"{text}": unknown operating system or architecture: invalid argument')
    host = oci.host_platform()
    if len(parts) == 1:
        if parts[0] in _OSES:
            os_, arch, variant = parts[0], host.architecture, host.variant
        else:
            os_, arch, variant = "linux", parts[0], None
    else:
        os_, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else None
    if arch in _ARCH_ALIASES:
        arch, v = _ARCH_ALIASES[arch]
        variant = variant or v
    if arch == "arm64" and variant in (None, "v8"):
        variant = "v8"
    if arch == "arm" and variant is None:
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = None
    return oci.Platform(os_, arch, variant)


def matches(want: oci.Platform, have: oci.Platform | None) -> bool:
    if have is None:
        return False
    if (have.os or "").lower() != want.os or (have.architecture or "").lower() != want.architecture:
        return False
    hv = (have.variant or "").lower() or None
    if want.architecture == "arm64" and hv is None:
        hv = "v8"
    if want.architecture == "arm" and hv is None:
        hv = "v7"
    if want.architecture == "amd64" and hv == "v1":
        hv = None
    return want.variant is None or hv == want.variant or \
        bool(want.variant and hv is None and want.architecture == "amd64")


# -- the blob source -------------------------------------------------------------------
class BlobSource:
    """A reader of one blob for the layer pipeline: first the bytes a previous attempt left
    in the ingest file (not written again), then the network from that offset. Every
    network byte is written to the content writer (which hashes it) before it is handed
    on, so the blob digest and the diff ID come from one pass. A broken connection is
    resumed with ``Range`` (up to STREAM_RETRIES times, with backoff); bytes beyond the
    descriptor's size abort at once."""

    def __init__(self, reg: Registry, path: str, desc: oci.Descriptor, writer, *, on_bytes=None,
                 stop: threading.Event | None = None, scopes=None) -> None:
        self.reg, self.path, self.desc, self.w = reg, path, desc, writer
        self.size = desc.size
        self.have = writer.offset
        self.pos = 0
        self.resp = None
        self.on_bytes = on_bytes
        self.stop = stop
        self.scopes = scopes
        self.retries = 0
        self.ranged: list[int] = []  # offsets of the Range requests made (for tests and logs)
        self._fd = os.open(writer.data_path, os.O_RDONLY) if self.have else -1
        if self.have > self.size:
            raise DigestMismatch(f"filesystem layer verification failed for digest {desc.digest}")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.resp is not None:
            try:
                self.resp.release_conn()
            except Exception:  # closing a broken connection
                pass
            self.resp = None

    def _open(self) -> None:
        r = self.reg.open_blob(self.path, str(self.desc.digest), offset=self.pos, scopes=self.scopes)
        if self.pos:
            self.ranged.append(self.pos)
        if r.status == 200 and self.pos:  # the registry ignored Range: skip what we have
            skip = self.pos
            while skip:
                chunk = r.read(min(skip, 1 << 20), decode_content=False)
                if not chunk:
                    raise TransportError(f"blob {self.desc.digest}: the registry sent less than it has")
                skip -= len(chunk)
        self.resp = r

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        if self.stop is not None and self.stop.is_set():
            raise Cancelled("cancelled")
        if self.pos < self.have:
            data = os.pread(self._fd, min(n, self.have - self.pos), self.pos)
            self.pos += len(data)
            return data
        if self.pos >= self.size:
            return b""
        while True:
            try:
                if self.resp is None:
                    self._open()
                assert self.resp is not None
                # what has arrived (at most 1 MiB): a caller asking for more must not wait
                # for bytes that are slow to come while the ones it has are not on disk
                data = self.resp.read1(min(n, self.size - self.pos, 1 << 20), decode_content=False)
                if not data:
                    raise TransportError(f"blob {self.desc.digest}: connection closed after "
                                         f"{self.pos} of {self.size} bytes")
            except (TransportError, *STREAM_ERRORS) as e:
                if isinstance(e, RegistryError):
                    raise
                self.close_response()
                self.retries += 1
                if self.retries > STREAM_RETRIES:
                    if isinstance(e, TransportError):
                        raise
                    from lamina.registry.client.transport import describe
                    raise TransportError(describe("GET", self.reg.t.url(
                        f"/v2/{self.path}/blobs/{self.desc.digest}"), e)) from None
                time.sleep(min(0.2 * (2 ** (self.retries - 1)), 5.0))
                continue
            self.w.write(data)
            self.w.flush()  # what arrived is on disk for a resume, even after kill -9
            self.pos += len(data)
            if self.on_bytes is not None:
                self.on_bytes(self.pos)
            return data

    def close_response(self) -> None:
        if self.resp is not None:
            try:
                self.resp.release_conn()
            except Exception:  # noqa: BLE001 - the connection is broken anyway
                pass
            self.resp = None

    def finish(self) -> None:
        """Read whatever the consumer left (bytes after the compressed stream's end) so
        the digest covers the whole blob."""
        while self.read(1 << 20):
            pass


class _Null:
    def write(self, b) -> int:
        return len(b)

    def flush(self) -> None:
        pass


# -- the pull ---------------------------------------------------------------------------
class Puller:
    """One pull into ``store``. Create per pull; not reusable across threads of callers."""

    def __init__(self, store, *, progress: Progress | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 platform: oci.Platform | None = None, registry: Registry | None = None,
                 unpack: bool = True) -> None:
        self.store = store
        self.content = store.content
        self.progress = progress or Progress(quiet=True)
        self.concurrency = max(1, int(concurrency))
        self.platform = platform
        self._registry = registry
        self.unpack = unpack

    def pull(self, ref, *, announce: bool = True) -> PullResult:
        """Pull ``ref`` (a lamina.reference.Reference with a tag or a digest)."""
        from lamina.registry.client.api import RegistryDenied
        if not ref.domain:
            raise InvalidArgument(f"invalid reference format: {ref} has no registry")
        reg = self._registry or Registry(ref.domain, pool_size=self.concurrency + 2)
        try:
            which = str(ref.digest) if ref.digest is not None else ref.tag
            if announce:
                self.progress.line(f"{which}: Pulling from {ref.path}")
            try:
                result = self._pull(reg, ref, which)
                from lamina.events import emit
                emit(self.store.root, "image", "pull", ref.familiar, {"name": ref.familiar_name})
                return result
            except RegistryError as e:
                raise _translate(e, ref) from None
            except Unauthorized as e:  # "no basic auth credentials": nothing was sent
                raise RegistryDenied(f'Get "{reg.t.url(f"/v2/{ref.path}/manifests/{which}")}": {e}',
                                     status=401) from None
        finally:
            if self._registry is None:
                reg.close()

    def _pull(self, reg: Registry, ref, which: str) -> PullResult:
        path = ref.path
        body, mt, header_digest = reg.get_manifest(path, which)
        top = Digest.of_bytes(body)
        if ref.digest is not None and top != ref.digest:
            raise DigestMismatch(f"manifest verification failed for digest {ref.digest}")
        if ref.digest is None and header_digest and header_digest != str(top):
            raise DigestMismatch(f"manifest for {ref.familiar} does not match its Docker-Content-Digest "
                                 f"{header_digest} (got {top})")
        mt = _media_type(body, mt)
        index_bytes = None
        if mt in SCHEMA1_TYPES:
            raise Unsupported(f"{ref.familiar}: Docker Image Format v1 and Docker Image manifest version 2, "
                              "schema 1 are not supported: the image must be pushed again with a "
                              "current tool (schema 2 or OCI)")
        if mt in oci.INDEX_TYPES:
            index_bytes = body
            desc = self._pick(oci.Index.from_json(body, what=f"index {top}"), top)
            mbody, _, _ = reg.get_manifest(path, str(desc.digest))
            if Digest.of_bytes(mbody) != desc.digest:
                raise DigestMismatch(f"manifest verification failed for digest {desc.digest}")
            body = mbody
            mt = _media_type(mbody, desc.media_type)
            if mt in oci.INDEX_TYPES:
                raise Unsupported(f"index {top} nests another index for {desc.platform}: not supported")
        if mt not in oci.MANIFEST_TYPES:
            raise Unsupported(f"{ref.familiar}: unsupported manifest media type {mt!r}")
        mdigest = Digest.of_bytes(body)
        m = oci.Manifest.from_json(body, what=f"manifest {mdigest}")
        for d in m.layers:
            if d.media_type and d.media_type not in LAYER_MEDIA_TYPES:
                raise Unsupported(f"layer {d.digest} of {ref.familiar} has unsupported media type {d.media_type!r}")
        # config
        cfg_bytes = None
        if self.content.exists(m.config.digest):
            # kept to be stored again at the end: GC may collect it while the layers download
            cfg_raw = cfg_bytes = self.content.read(m.config.digest)
        else:
            cfg_raw = cfg_bytes = reg.get_blob(path, str(m.config.digest))
            if Digest.of_bytes(cfg_raw, m.config.digest.algorithm) != m.config.digest or len(cfg_raw) != m.config.size:
                raise DigestMismatch(f"image config verification failed for digest {m.config.digest}")
        cfg = oci.ImageConfig.from_json(cfg_raw, what=f"image config {m.config.digest}")
        if len(cfg.diff_ids) != len(m.layers):
            raise InvalidArgument(f"image config {m.config.digest} lists {len(cfg.diff_ids)} diff IDs "
                                  f"but manifest {mdigest} has {len(m.layers)} layers")
        if index_bytes is None and self.platform is not None and not matches(self.platform, cfg.platform):
            raise NotFound(f"image with reference {ref.familiar} was found but does not match the specified "
                           f"platform: wanted {self.platform}, actual: {cfg.platform}")
        before = self._current(ref)
        known = self.store.db.one("SELECT 1 FROM images WHERE manifest=?", (str(mdigest),)) is not None
        writers, facts, downloaded = self._layers(reg, path, m, cfg, quiet=known and all(
            self.content.exists(d.digest) for d in m.layers))
        from lamina.digest import chain_ids
        chains = chain_ids(list(cfg.diff_ids))
        try:
            for attempt in range(4):
                with self.store.operation():
                    # a layer that was here when the pull began may have been collected since
                    # (GC runs while layers download): fetch it, outside the lock, and retry
                    gone = {d.digest for d in m.layers if d.digest not in writers and not self.content.exists(d.digest)}
                    if not gone:
                        rec = self._record(ref, m, body, mdigest, cfg_bytes, index_bytes, top, writers, facts,
                                           chains, cfg.diff_ids)
                        break
                if attempt == 3:
                    raise NotFound(f"layers of {ref.familiar} keep being removed from the store while "
                                   "pulling; pull again")
                more, more_facts, n = self._layers(reg, path, m, cfg, quiet=False, refetch=gone)
                writers.update(more)
                facts.update(more_facts)
                downloaded += n
        finally:
            for w in writers.values():
                _drop_unpacked(w)
                w.close()
        return PullResult(digest=top, manifest=mdigest, image_id=rec.id,
                          updated=before != str(mdigest), downloaded=downloaded)

    def _record(self, ref, m, body: bytes, mdigest: Digest, cfg_bytes, index_bytes, top: Digest,
                writers: dict, facts: dict, chains: list[Digest], diff_ids):
        """Publish the verified blobs, install the layers unpacked while pulling as
        snapshots, and record the image (inside store.operation())."""
        for w in writers.values():
            w.commit()
        self._install(m, writers, chains, diff_ids, facts)
        if cfg_bytes is not None:
            self.content.put_bytes(cfg_bytes, m.config.digest)
        self.content.put_bytes(body, mdigest)
        if index_bytes is not None:
            self.content.put_bytes(index_bytes, top)
        from lamina.image.service import Images
        images = Images(self.store)
        tags = [ref] if ref.digest is None else []
        rec = images.add_image(body, tags=tags, layer_facts=facts,
                               repo_digest_names=[(ref.name, top)])
        with self.store.db.tx() as c:
            c.executemany("INSERT OR IGNORE INTO blob_sources(blob, repo) VALUES(?,?)",
                          [(str(d.digest), ref.name) for d in (m.config, *m.layers)])
        return rec

    def _install(self, m, writers: dict, chains: list[Digest], diff_ids, facts: dict) -> None:
        """Each verified layer unpacked during the pull becomes its chain's snapshot (first
        occurrence of a blob only; a chain unpacked meanwhile keeps its snapshot). A tree
        that cannot be moved into snapshots/ is dropped: the first run unpacks that layer."""
        from lamina.snapshot import Layer, Snapshotter
        snaps = Snapshotter(self.store)
        done: set[Digest] = set()
        for i, d in enumerate(m.layers):
            w = writers.get(d.digest)
            if w is None or d.digest in done:
                continue
            done.add(d.digest)
            fs = os.path.join(w.dir, "unpack", "fs")
            if not os.path.isdir(fs):
                continue
            layer = Layer(chains[i], diff_ids[i], d.digest)
            try:
                snaps.install(layer, chains[i - 1] if i else None, fs, facts[d.digest][1])
            except OSError:  # e.g. ingest/ on another filesystem (EXDEV): the layer stays lazy
                pass
            _drop_unpacked(w)

    def _current(self, ref) -> str | None:
        db = self.store.db
        if ref.digest is not None:
            row = db.one("SELECT manifest FROM repo_digests WHERE name=? AND digest=?", (ref.name, str(ref.digest)))
            if row is None:
                row = db.one("SELECT manifest FROM images WHERE manifest=?", (str(ref.digest),))
        else:
            row = db.one("SELECT manifest FROM tags WHERE name=?", (str(ref),))
        return row[0] if row else None

    def _pick(self, idx: oci.Index, digest: Digest) -> oci.Descriptor:
        want = self.platform or oci.host_platform()
        for d in idx.manifests:
            if matches(want, d.platform):
                return d
        if self.platform is None:  # the host's variant is a preference, not a must
            for d in idx.manifests:
                if d.platform and d.platform.os == want.os and d.platform.architecture == want.architecture:
                    return d
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")

    # -- layers -----------------------------------------------------------------------
    def _layers(self, reg: Registry, path: str, m: oci.Manifest, cfg: oci.ImageConfig, *, quiet: bool,
                refetch: set | None = None):
        """Fetch the missing layer blobs. Returns ({digest: verified open writer},
        layer facts for add_image, number downloaded)."""
        p = self.progress
        facts: dict[Digest, tuple] = {}
        todo: list[tuple[int, oci.Descriptor]] = []
        seen: set[Digest] = set()
        for i, d in enumerate(m.layers):
            short = d.digest.hex[:12]
            if d.digest in seen:
                continue
            seen.add(d.digest)
            if refetch is not None:
                if d.digest in refetch:
                    todo.append((i, d))
                continue
            if self.content.exists(d.digest):
                row = self.store.db.one("SELECT diff_id FROM layer_blobs WHERE blob=?", (str(d.digest),))
                if row and row[0] != str(cfg.diff_ids[i]):
                    raise DigestMismatch(f"layer {d.digest} does not match its image config: the store knows it "
                                         f"as diff ID {row[0]}, the config lists {cfg.diff_ids[i]}")
                if not quiet:
                    p.status(short, "Already exists")
                continue
            todo.append((i, d))
        if not todo:
            return {}, facts, 0
        for _, d in todo:
            p.status(d.digest.hex[:12], "Pulling fs layer")
        for n, (_, d) in enumerate(todo):
            if n >= self.concurrency:
                p.status(d.digest.hex[:12], "Waiting")
        stop = threading.Event()
        writers: dict[Digest, Any] = {}
        lock = threading.Lock()
        unpack: set[Digest] = set()
        if self.unpack:
            from lamina.digest import chain_ids
            from lamina.snapshot import Snapshotter
            snaps = Snapshotter(self.store)
            chains = chain_ids(list(cfg.diff_ids))
            unpack = {d.digest for i, d in todo if snaps.dir_of(chains[i]) is None}

        def fetch(i: int, d: oci.Descriptor):
            w, info = self._fetch_layer(reg, path, d, stop, unpack=d.digest in unpack)
            with lock:
                writers[d.digest] = w
            if info.diff_id != cfg.diff_ids[i]:
                raise DigestMismatch(f"layer {d.digest} does not match its image config: it decompresses to "
                                     f"diff ID {info.diff_id}, the config lists {cfg.diff_ids[i]}")
            return info

        ok = False
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="pull") as ex:
                futs = [(i, d, ex.submit(fetch, i, d)) for i, d in todo]
                try:
                    for _i, d, f in futs:
                        info = f.result()
                        facts[d.digest] = (info.diff_id, info.content_size, d.media_type)
                        p.status(d.digest.hex[:12], "Pull complete")
                except BaseException:
                    stop.set()
                    raise
            ok = True
        finally:
            if not ok:
                for w in writers.values():
                    _drop_unpacked(w)
                    w.close()
        return writers, facts, len(todo)

    def _fetch_layer(self, reg: Registry, path: str, d: oci.Descriptor, stop: threading.Event, *,
                     unpack: bool = False):
        """Download one layer blob into an ingest writer, verified; returns (writer, LayerInfo).
        With ``unpack`` the layer is also unpacked into ``<writer.dir>/unpack/fs`` from the
        same decompressed stream (see :func:`_unpack_stream`); the diff ID is not checked
        here (the caller compares it with the config before using the tree).

        On a network failure the partial bytes are kept for the next pull; on a
        verification failure they are discarded. Either way the unpacked tree is removed."""
        from lamina.layer.ingest import LayerInfo, ingest_layer
        short = d.digest.hex[:12]
        p = self.progress
        w = self._writer(d)
        src = None
        try:
            src = BlobSource(reg, path, d, w, stop=stop,
                             on_bytes=lambda n: p.bytes(short, "Downloading", n, d.size))
            try:
                info: _Unpacked | LayerInfo
                if unpack:
                    info = _unpack_stream(src, w.dir)
                else:
                    info = ingest_layer(src, _Null(), compression=None, check=True)  # type: ignore[arg-type]  # a file-like object
                src.finish()
            except (InvalidArgument, EOFError) as e:
                if isinstance(e, DigestMismatch):
                    raise
                # bad content: if the bytes are not what the digest says, say that
                try:
                    src.finish()
                except LaminaError:
                    pass
                if w.offset == d.size:
                    try:
                        w.verify()
                    except DigestMismatch:
                        raise DigestMismatch(f"filesystem layer verification failed for digest {d.digest}") from None
                raise InvalidArgument(f"layer {d.digest}: {e}") from None
            p.status(short, "Verifying Checksum")
            try:
                w.verify()
            except DigestMismatch:
                raise DigestMismatch(f"filesystem layer verification failed for digest {d.digest}") from None
            os.fsync(w.fileno)  # here, in parallel with the other downloads, not at publish time
            p.status(short, "Download complete")
            return w, info
        except (TransportError, Cancelled, KeyboardInterrupt, OSError):
            _drop_unpacked(w)
            w.keep_partial()  # the bytes so far are good: the next pull resumes from them
            w.close()
            raise
        except BaseException:
            _drop_unpacked(w)
            w.close()  # verification failed: the bytes are discarded
            raise
        finally:
            if src is not None:
                src.close()

    def _writer(self, d: oci.Descriptor):
        """The ingest writer for a layer; waits while another lamina process writes it."""
        from lamina.errors import Unavailable
        ref = f"pull-{d.digest.algorithm}-{d.digest.hex}"
        delay = 0.05
        for _ in range(6000):
            try:
                return self.content.writer(ref, expected=d.digest, size=d.size, resume=True)
            except Unavailable:
                time.sleep(delay)  # another pull of the same blob; its lock is the condition
                delay = min(delay * 2, 0.5)
        raise LaminaError(f"layer {d.digest} is being pulled by another lamina process")


@value
class _Unpacked:
    """What :func:`_unpack_stream` learnt (the fields of LayerInfo the pull uses)."""

    diff_id: Digest
    content_size: int


def _unpack_stream(src, ingest_dir: str) -> _Unpacked:
    """Decompress ``src`` once: hash the plain tar (the diff ID) and unpack it with
    :func:`lamina.layer.extract.apply_layer` (every entry checked, overlay form: the tree a
    lazy unpack of the same blob makes) into ``<ingest_dir>/unpack/fs``, made afresh (a
    killed pull may have left one; the caller holds the ingest's lock)."""
    import shutil

    from lamina import perms
    from lamina.digest import HashingReader
    from lamina.layer.compress import open_decompressed
    from lamina.layer.extract import apply_layer
    from lamina.snapshot import make_unpack_root
    top = os.path.join(ingest_dir, "unpack")
    shutil.rmtree(top, ignore_errors=True)
    perms.mkdir(top)
    fs = os.path.join(top, "fs")
    make_unpack_root(fs)  # as a lazy unpack makes it
    reader, _ = open_decompressed(src)
    try:
        h = HashingReader(reader)
        res = apply_layer(h, fs, mode="overlay")  # type: ignore[arg-type]  # a file-like object
        while h.read(1 << 20):  # bytes after the tar's end are part of the diff ID
            pass
    finally:
        reader.close()
    return _Unpacked(diff_id=h.digest(), content_size=res.content_size)


def _drop_unpacked(w) -> None:
    """Remove what :func:`_unpack_stream` left in ``w``'s ingest dir (nothing if none)."""
    top = os.path.join(w.dir, "unpack")
    if os.path.lexists(top):
        import shutil
        shutil.rmtree(top, ignore_errors=True)


def _media_type(body: bytes, declared: str | None) -> str:
    mt = declared or ""
    if mt in ("", "application/json", "text/plain", "application/octet-stream"):
        import json
        try:
            doc = json.loads(body)
        except ValueError:
            raise InvalidArgument("the registry answered a manifest that is not JSON") from None
        if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
            return SCHEMA1_TYPES[0]
        mt = oci.sniff_media_type(body)
    return mt


def _translate(e: RegistryError, ref) -> RegistryError:
    """Docker's words for a failed pull (moby distribution/errors.go)."""
    from lamina.registry.client.api import RegistryDenied, RegistryNotFound
    codes = e.codes
    from lamina.registry.client.api import wire_text
    cause = wire_text(e.errors[:1], e.status)  # Docker words the first error only
    if "DENIED" in codes or (e.status in (401, 403) and "UNAUTHORIZED" not in codes and not codes):
        return RegistryDenied(f"pull access denied for {ref.familiar_name}, repository does not exist or may "
                              f"require 'lamina login': {cause}", status=e.status, errors=e.errors)
    if "MANIFEST_UNKNOWN" in codes:
        return RegistryNotFound(f"manifest for {ref.familiar} not found: {cause}", status=e.status, errors=e.errors)
    if "NAME_UNKNOWN" in codes:
        return RegistryNotFound(f"repository {ref.familiar_name} not found: {cause}", status=e.status,
                                errors=e.errors)
    if e.status == 404 and not codes and "/manifests/" in e.url:
        return RegistryNotFound(f"manifest for {ref.familiar} not found: manifest unknown: manifest unknown",
                                status=404)
    return e


def concurrency(env: str, default: int) -> int:
    """Parallel transfers: ``$<env>`` (LAMINA_MAX_CONCURRENT_DOWNLOADS / _UPLOADS, like
    dockerd's max-concurrent-downloads / -uploads), else ``default``."""
    text = os.environ.get(env)
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgument(f"{env}={text!r}: want a whole number of parallel transfers") from None
    if not 1 <= n <= 64:
        raise InvalidArgument(f"{env}={n}: want 1 to 64 parallel transfers")
    return n


def unpack_on_pull() -> bool:
    """``$LAMINA_PULL_UNPACK``: "0" (the default) leaves layers to the first run (a pull that
    only fetches and verifies, as ``skopeo copy``; snapshots stay lazy as after ``import``),
    "1" unpacks them while pulling, so the first run unpacks nothing (a slower pull: on ext4
    right after mass deletions, 3-5x the lazy one here)."""
    text = os.environ.get("LAMINA_PULL_UNPACK", "0")
    if text not in ("0", "1"):
        raise InvalidArgument(f"LAMINA_PULL_UNPACK={text!r}: want 1 (unpack while pulling) or 0 (unpack at first run)")
    return text == "1"


def pull_reporting(store, name: str, *, progress: Progress, all_tags: bool = False,
                   platform: str | None = None, out=None):
    """``docker pull NAME`` end to end with Docker's output: ``Using default tag``, the
    layers, ``Digest:``, ``Status:``, then the full reference on ``out`` (None: not
    printed). Returns the Reference pulled. Raises LaminaError on failure."""
    from lamina import reference
    bare = reference.parse(name, default_tag=False)
    if all_tags and (bare.tag is not None or bare.digest is not None):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    plat = parse_platform(platform) if platform else None
    puller = Puller(store, progress=progress, platform=plat,
                    concurrency=concurrency("LAMINA_MAX_CONCURRENT_DOWNLOADS", DEFAULT_CONCURRENCY),
                    unpack=unpack_on_pull())
    if all_tags:
        with Registry(bare.domain) as reg:
            try:
                tags = sorted(reg.tags(bare.path))
            except RegistryError as e:
                raise _translate(e, bare.with_tag(reference.DEFAULT_TAG)) from None
        if not tags:
            raise NotFound(f"no tags found for {bare.familiar_name}")
        updated = False
        for t in tags:
            r = puller.pull(bare.with_tag(t))
            progress.line(f"Digest: {r.digest}")
            updated = updated or r.updated
        state = "Downloaded newer image" if updated else "Image is up to date"
        progress.line(f"Status: {state} for {bare.familiar_name}")
        if out is not None:
            out.write(f"{bare.name}\n")
            out.flush()
        return bare
    ref = bare
    if ref.tag is None and ref.digest is None:
        progress.line(f"Using default tag: {reference.DEFAULT_TAG}")
        ref = ref.with_tag(reference.DEFAULT_TAG)
    r = puller.pull(ref)
    progress.line(f"Digest: {r.digest}")
    state = "Downloaded newer image" if r.updated else "Image is up to date"
    progress.line(f"Status: {state} for {ref.familiar}")
    if out is not None:
        out.write(f"{ref}\n")
        out.flush()
    return ref
