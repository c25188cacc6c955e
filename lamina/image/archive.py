"""``save`` and ``load``: image archives.

``save`` writes one tar that is at once
  * a Docker archive (manifest.json + repositories, read by every ``docker load``), and
  * an OCI image layout (oci-layout, index.json, blobs/sha256/...), as Docker 25+ writes it,
    so ``skopeo``/``podman`` read it as ``oci-archive:`` too.
Blobs are written verbatim, so manifest digests survive a save/load round trip.

``load`` reads Docker archives (legacy ``<id>/layer.tar`` + ``<id>.json``, and 25+), plain
OCI archives (index.json only), plain or gzip/zstd-compressed, from a file or a pipe. Every
blob is verified (a ``blobs/sha256/<hex>`` name must match its content; each layer must
decompress to the diff ID its config lists; each layer's tar headers are checked for
breakouts; every descriptor's size must be the size of what it points at). On error
nothing is recorded; the blobs this load added are removed when no other lamina operation
runs (one might be using them), else left to GC, which collects them as unreferenced.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile

from lamina import oci
from lamina.digest import Digest
from lamina.errors import InvalidArgument, LaminaError, NotFound
from lamina.image.service import ImageRecord, Images

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO

_SMALL = 4 << 20


# -- save ----------------------------------------------------------------------------
class _TarOut:
    """Minimal streaming tar writer: headers from tarfile, file data copied in the kernel."""

    def __init__(self, out: BinaryIO, progress=None) -> None:
        self.out = out
        self.names: set[str] = set()
        self.progress = progress  # a lamina.progress.Progress for "<id>: Saving layer" bars, or None

    def _header(self, name: str, size: int, *, dir: bool = False) -> None:
        ti = tarfile.TarInfo(name)
        ti.size = 0 if dir else size
        ti.type = tarfile.DIRTYPE if dir else tarfile.REGTYPE
        ti.mode = 0o755 if dir else 0o644
        ti.mtime = 0
        self.out.write(ti.tobuf(tarfile.PAX_FORMAT))

    def add_dir(self, name: str) -> None:
        if name not in self.names:
            self.names.add(name)
            self._header(name, 0, dir=True)

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self.out.write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: str, *, layer: bool = False) -> None:
        if name in self.names:
            return
        self.names.add(name)
        size = os.stat(path).st_size
        self._header(name, size)
        self.out.flush()
        report = None
        if self.progress is not None and layer:
            ident, progress = name.rsplit("/", 1)[-1][:12], self.progress

            def report(n: int) -> None:
                progress.bytes(ident, "Saving layer", n, size)
        step = size if report is None else 16 << 20  # in the kernel, in steps to report
        with open(path, "rb") as f:
            left, off = size, 0
            try:
                outfd = self.out.fileno()
                while left:
                    n = os.sendfile(outfd, f.fileno(), off, min(left, step))
                    if n == 0:
                        raise InvalidArgument(f"blob {path} shrank while saving")
                    off += n
                    left -= n
                    if report is not None:
                        report(off)
            except (OSError, io.UnsupportedOperation, AttributeError):
                f.seek(off)  # continue after what sendfile already wrote
                while chunk := f.read(min(left, 1 << 20)):
                    self.out.write(chunk)
                    left -= len(chunk)
                    off += len(chunk)
                    if report is not None:
                        report(off)
        self._pad(size)

    def _pad(self, size: int) -> None:
        if size % 512:
            self.out.write(b"\0" * (512 - size % 512))

    def close(self) -> None:
        self.out.write(b"\0" * 1024)
        self.out.flush()


def save(images: Images, names: list[str], out: BinaryIO, *, progress=None) -> None:
    """Write the images named (references or IDs) to ``out`` as one archive. ``progress``
    (a lamina.progress.Progress, or None) gets a ``<id>: Saving layer`` bar per layer."""
    from lamina import reference
    picked: list[tuple[ImageRecord, list[str]]] = []
    for name in names:
        rec = images.resolve(name)
        tags: list[str] = []
        try:
            ref = reference.parse(name)
            if ref.digest is None and str(ref) in images.tags_of(rec.manifest):
                tags = [str(ref)]
        except InvalidArgument:
            pass
        for prev in picked:
            if prev[0].manifest == rec.manifest:
                prev[1].extend(t for t in tags if t not in prev[1])
                break
        else:
            picked.append((rec, tags))
    t = _TarOut(out, progress)
    t.add_dir("blobs/")
    t.add_dir("blobs/sha256/")
    manifest_json: list = []
    index_entries: list = []
    repositories: dict = {}
    content = images.content
    for rec, tags in picked:
        m = images.manifest(rec)
        for d in m.layers:
            t.add_file(f"blobs/sha256/{d.digest.hex}", content.path(d.digest), layer=True)
        t.add_file(f"blobs/sha256/{m.config.digest.hex}", content.path(m.config.digest))
        t.add_file(f"blobs/sha256/{rec.manifest.hex}", content.path(rec.manifest))
        familiar = [reference.parse(x).familiar for x in tags]
        manifest_json.append({"Config": f"blobs/sha256/{m.config.digest.hex}",
                              "RepoTags": familiar or None,
                              "Layers": [f"blobs/sha256/{d.digest.hex}" for d in m.layers]})
        base = {"mediaType": rec.media_type, "digest": str(rec.manifest), "size": rec.manifest_size}
        for x in tags:
            r = reference.parse(x)
            index_entries.append({**base, "annotations": {oci.ANNOTATION_IMAGE_NAME: str(r),
                                                          oci.ANNOTATION_REF_NAME: r.tag}})
            if m.layers:
                top = images.chain(rec)[-1][0]
                repositories.setdefault(r.familiar_name, {})[r.tag] = top.hex
        if not tags:
            index_entries.append(base)
    t.add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": oci.MT_OCI_INDEX,
                                          "manifests": index_entries}).encode())
    t.add_bytes("manifest.json", json.dumps(manifest_json).encode())
    t.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        t.add_bytes("repositories", json.dumps(repositories).encode())
    t.close()
    from lamina.events import image_event
    for rec, _ in picked:
        image_event(images.store.root, str(rec.id), "save")


# -- load ----------------------------------------------------------------------------
class _Chain:
    """A reader that returns ``head`` and then the rest of ``f``."""

    def __init__(self, head: bytes, f) -> None:
        self.head, self.f = head, f

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.f.read(n)
        if n < 0:
            data, self.head = self.head + self.f.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]  # a short read is allowed
        return data


class _Loaded:
    """What a pass over an archive found: small files in memory, big ones as blobs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.blobs: dict[str, Digest] = {}     # archive path -> digest of its content
        self.links: dict[str, str] = {}        # symlink path -> target path
        self.added: set[Digest] = set()        # blobs this load created
        self.facts: dict[Digest, tuple[str, int]] = {}  # plain layer blob -> (media type, content size)

    def resolve(self, path: str) -> str:
        path = os.path.normpath(path).lstrip("/")
        for _ in range(16):
            if path not in self.links:
                return path
            path = self.links[path]
        raise InvalidArgument(f"archive: symlink loop at {path}")

    def get_bytes(self, path: str, content) -> bytes:
        p = self.resolve(path)
        if p in self.files:
            return self.files[p]
        if p in self.blobs:
            return content.read(self.blobs[p])
        raise NotFound(f"archive: file {path} is referenced but not in the archive")

    def get_blob(self, path: str, content) -> Digest:
        p = self.resolve(path)
        if p in self.blobs:
            return self.blobs[p]
        if p in self.files:
            d = self.put(content, self.files[p])
            self.blobs[p] = d
            return d
        raise NotFound(f"archive: file {path} is referenced but not in the archive")

    def put(self, content, data: bytes) -> Digest:
        """Store ``data`` as a blob, remembering it among the blobs this load added."""
        d = Digest.of_bytes(data)
        if not content.exists(d):
            content.put_bytes(data, d)
            self.added.add(d)
        return d


def _blob_name(path: str) -> Digest | None:
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest(parts[1], parts[2])
        except InvalidArgument:
            raise InvalidArgument(f"archive: {path} is not a valid blob name") from None
    return None


def _progress_id(name: str) -> str:
    """What a blob's progress line is called: its digest's first 12 hex digits (a legacy
    ``<id>/layer.tar``: the directory's), like Docker's ``Loading layer`` lines."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return parts[2][:12]
    if len(parts) == 2 and parts[1] == "layer.tar":
        return parts[0][:12]
    return name


def _read_archive(images: Images, src: BinaryIO, found: _Loaded, progress=None) -> None:
    """One pass over the archive into ``found`` (which records each blob as it is added, so
    a failure half-way still knows what it wrote). ``progress`` (a lamina.progress.Progress,
    or None) gets Docker's ``<id>: Loading layer`` bars for the blobs it stores."""
    from lamina.layer.compress import open_decompressed
    content = images.content
    seekable_fd = None
    try:
        if src.seekable() and stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            head = src.read(6)
            src.seek(0)
            from lamina.layer.compress import sniff
            if sniff(head) is None:
                seekable_fd = src.fileno()
    except (OSError, io.UnsupportedOperation, AttributeError):
        seekable_fd = None
    try:
        if seekable_fd is not None:
            tf = tarfile.open(fileobj=src, mode="r:")
        else:
            stream, _ = open_decompressed(src)
            tf = tarfile.open(fileobj=stream, mode="r|")
        for member in tf:
            name = os.path.normpath(member.name).lstrip("/")
            if name.startswith("../"):
                raise InvalidArgument(f"archive: entry {member.name!r} points outside the archive")
            if member.issym() or member.islnk():
                target = member.linkname
                if member.issym():
                    target = os.path.normpath(os.path.join(os.path.dirname(name), target))
                found.links[name] = target.lstrip("/")
                continue
            if not member.isfile():
                continue
            expect = _blob_name(name)
            if expect is None and member.size <= _SMALL:
                found.files[name] = tf.extractfile(member).read()  # type: ignore[union-attr]  # a file
                continue
            if expect is not None and content.exists(expect):
                found.blobs[name] = expect  # already have it (verified when it was stored)
                continue
            ref = f"load-{os.getpid()}-{os.urandom(4).hex()}"
            f = tf.extractfile(member)
            assert f is not None  # a regular file
            head = f.read(512)
            report = None
            is_layer = (len(head) == 512 and head[257:262] == b"ustar") or head[:2] == b"\x1f\x8b" or \
                head[:4] == b"\x28\xb5\x2f\xfd"  # a tar, or gzip / zstd: not a config or manifest
            if progress is not None and is_layer:
                ident, total = _progress_id(name), member.size

                def report(n: int, ident=ident, total=total) -> None:
                    progress.bytes(ident, "Loading layer", n, total)
            if len(head) == 512 and head[257:262] == b"ustar":
                # an uncompressed layer: one pass hashes it, checks its headers and sizes it
                from lamina.layer.ingest import ingest_layer
                with content.writer(ref, expected=expect, size=member.size, resume=False, hashing=False) as w:
                    reader: BinaryIO = _Chain(head, f)  # type: ignore[assignment]  # a file-like object
                    if report is not None:
                        from lamina.progress import Reader
                        reader = Reader(reader, report)  # type: ignore[assignment]  # a file-like object
                    try:
                        info = ingest_layer(reader, w, compression=None)
                        d = w.commit(digest=info.digest)
                    except LaminaError as e:
                        raise type(e)(f"archive entry {name}: {e}") from None
                found.blobs[name] = d
                found.added.add(d)
                found.facts[d] = (oci.MT_OCI_LAYER, info.content_size)
                if report is not None:
                    report(member.size)
                continue
            with content.writer(ref, expected=expect, size=member.size, resume=False) as w:
                if seekable_fd is not None:
                    step = member.size if report is None else 16 << 20  # in the kernel, in steps to report
                    for off in range(0, member.size, step):
                        w.copy_from_fd(seekable_fd, member.offset_data + off, min(step, member.size - off))
                        if report is not None:
                            report(min(off + step, member.size))
                else:
                    w.write(head)
                    n = len(head)
                    while chunk := f.read(1 << 20):
                        w.write(chunk)
                        n += len(chunk)
                        if report is not None:
                            report(n)
                try:
                    d = w.commit()
                except LaminaError as e:
                    raise type(e)(f"archive entry {name}: {e}") from None
            if report is not None:
                report(member.size)
            found.blobs[name] = d
            found.added.add(d)
    except tarfile.TarError as e:
        raise InvalidArgument(f"archive is not a valid tar file: {e}") from None
    except EOFError:
        raise InvalidArgument("archive is truncated: unexpected end of data") from None


def _analyse_layer(images: Images, blob: Digest, diff_id: Digest, cache: dict,
                   facts: dict) -> tuple[str, int]:
    """Check that ``blob`` decompresses to ``diff_id`` with safe headers; (media type, content size).

    ``facts`` holds what the archive pass already learned of uncompressed layers.
    """
    if blob in cache:
        return cache[blob]
    if blob in facts:
        mt, size = facts[blob]
        if blob != diff_id:
            raise InvalidArgument(f"layer {blob} does not match its config: it is an uncompressed "
                                  f"layer, so its diff ID must equal its digest, but the config lists {diff_id}")
        cache[blob] = (mt, size)
        return cache[blob]
    from lamina.layer.compress import sniff
    from lamina.layer.ingest import ingest_layer

    class _Null:
        def write(self, b):
            return len(b)

    with images.content.open(blob) as f:
        kind = sniff(f.read(6))
        f.seek(0)
        try:
            info = ingest_layer(f, _Null(), compression=None)  # type: ignore[arg-type]  # a file-like object
        except LaminaError as e:
            raise type(e)(f"layer {blob}: {e}") from None
    if info.diff_id != diff_id:
        raise InvalidArgument(f"layer {blob} does not match its config: it decompresses to "
                              f"{info.diff_id}, the config lists diff ID {diff_id}")
    mt = {"gzip": oci.MT_OCI_LAYER_GZIP, "zstd": oci.MT_OCI_LAYER_ZSTD, None: oci.MT_OCI_LAYER}.get(kind)
    if mt is None:
        raise InvalidArgument(f"layer {blob}: {kind} compression is not allowed in images")
    cache[blob] = (mt, info.content_size)
    return cache[blob]


def load(images: Images, src: BinaryIO, *, progress=None) -> list[str]:
    """Load every image in the archive; returns Docker's output lines. ``progress``: see
    :func:`_read_archive`."""
    store = images.store
    found = _Loaded()
    try:
        with store.operation():
            _read_archive(images, src, found, progress)
            return _register(images, found)
    except BaseException:
        _discard(images, found.added)
        raise


def _discard(images: Images, added: set[Digest]) -> None:
    """Remove the blobs a failed load added, if no lamina operation runs now (GC's lock is
    free): another one may have found a blob present and be about to record an image that
    uses it. Otherwise they stay for GC, which collects unreferenced blobs."""
    if not added:
        return
    with images.store.gc_lock(wait=False) as held:
        if not held:
            return
        keep = {r[0] for r in images.db.query("SELECT manifest FROM images")} | \
               {r[0] for r in images.db.query("SELECT config FROM images")} | \
               {r[0] for r in images.db.query("SELECT blob FROM layer_blobs")}
        for d in added:
            if str(d) not in keep:
                images.content.delete(d)


def _tags_from_index_entry(desc: oci.Descriptor) -> list[str]:
    from lamina import reference
    name = desc.annotation(oci.ANNOTATION_IMAGE_NAME)
    if not name:
        ref_name = desc.annotation(oci.ANNOTATION_REF_NAME)
        if ref_name and ("/" in ref_name or ":" in ref_name):
            name = ref_name
    if not name:
        return []
    return [str(reference.parse(name))]


def _register(images: Images, found: _Loaded) -> list[str]:
    from lamina import reference
    content = images.content
    plans: list[tuple[bytes, list[str]]] = []   # (manifest bytes, canonical tags)
    cache: dict = {}
    index_by_config: dict[Digest, tuple[bytes, list[str]]] = {}
    index_bytes = found.files.get("index.json")
    if index_bytes is not None and "oci-layout" in found.files:
        idx = oci.Index.from_json(index_bytes, what="archive index.json")
        for desc in idx.manifests:
            for mbytes in _manifests_for(images, found, desc):
                m = oci.Manifest.from_json(mbytes, what=f"manifest {Digest.of_bytes(mbytes)}")
                prev = index_by_config.get(m.config.digest)
                tags = _tags_from_index_entry(desc)
                if prev and Digest.of_bytes(prev[0]) == Digest.of_bytes(mbytes):
                    prev[1].extend(t for t in tags if t not in prev[1])
                else:
                    index_by_config[m.config.digest] = (mbytes, tags)
    manifest_json = found.files.get("manifest.json")
    if manifest_json is not None:
        from lamina.jsonsafe import loads
        entries = loads(manifest_json, what="archive manifest.json")
        if not isinstance(entries, list):
            raise InvalidArgument("archive manifest.json is not a JSON list of images")
        for n, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or \
                    not isinstance(e.get("Layers") or [], list) or \
                    not all(isinstance(x, str) for x in e.get("Layers") or []) or \
                    not isinstance(e.get("RepoTags") or [], list) or \
                    not all(isinstance(x, str) for x in e.get("RepoTags") or []):
                raise InvalidArgument(f"archive manifest.json entry {n}: needs Config (a path), "
                                      f"Layers (paths) and RepoTags (references)")
            cfg_bytes = found.get_bytes(e["Config"], content)
            cfg_digest = Digest.of_bytes(cfg_bytes)
            tags = [str(reference.parse(t)) for t in (e.get("RepoTags") or [])]
            if cfg_digest in index_by_config:
                mbytes, itags = index_by_config.pop(cfg_digest)
                plans.append((mbytes, tags or itags))
                continue
            cfg = oci.ImageConfig.from_json(cfg_bytes, what=f"image config {e['Config']}")
            found.put(content, cfg_bytes)
            layers = e.get("Layers") or []
            if len(layers) != len(cfg.diff_ids):
                raise InvalidArgument(f"archive manifest.json entry {n}: {len(layers)} layers but config "
                                      f"{cfg_digest} lists {len(cfg.diff_ids)} diff IDs")
            descs = []
            for path, diff_id in zip(layers, cfg.diff_ids):
                blob = found.get_blob(path, content)
                mt, _ = _analyse_layer(images, blob, diff_id, cache, found.facts)
                descs.append({"mediaType": mt, "digest": str(blob), "size": content.size(blob)})
            manifest = {"schemaVersion": 2, "mediaType": oci.MT_OCI_MANIFEST,
                        "config": {"mediaType": oci.MT_OCI_CONFIG, "digest": str(cfg_digest),
                                   "size": len(cfg_bytes)}, "layers": descs}
            plans.append((oci.canonical_json(manifest), tags))
    plans.extend(index_by_config.values())
    if not plans:
        raise InvalidArgument("archive holds no image: no manifest.json and no index.json with manifests")
    # validate every image before recording any, so a bad archive records nothing
    checked = []
    for mbytes, tags in plans:
        mdigest = Digest.of_bytes(mbytes)
        m = oci.Manifest.from_json(mbytes, what=f"manifest {mdigest}")
        for d in (m.config, *m.layers):
            if not content.exists(d.digest):
                raise NotFound(f"manifest {mdigest} refers to blob {d.digest}, which is not in the archive")
            if content.size(d.digest) != d.size:
                raise InvalidArgument(f"manifest {mdigest}: blob {d.digest} has {content.size(d.digest)} "
                                      f"bytes, its descriptor says {d.size}")
        cfg = oci.ImageConfig.from_json(content.read(m.config.digest), what=f"image config {m.config.digest}")
        if len(cfg.diff_ids) != len(m.layers):
            raise InvalidArgument(f"image config {m.config.digest} lists {len(cfg.diff_ids)} diff IDs "
                                  f"but manifest {mdigest} has {len(m.layers)} layers")
        facts = {}
        for d, diff_id in zip(m.layers, cfg.diff_ids):
            _, size = _analyse_layer(images, d.digest, diff_id, cache, found.facts)
            facts[d.digest] = (diff_id, size, d.media_type)
        checked.append((mbytes, mdigest, m, tags, facts))
    lines = []
    for mbytes, mdigest, m, tags, facts in checked:
        found.put(content, mbytes)
        for t in tags:
            row = images.db.one("SELECT manifest FROM tags WHERE name=?", (t,))
            if row and row[0] != str(mdigest):
                old = images.get(row[0])
                if old.id != m.config.digest:
                    lines.append(f"The image {reference.parse(t).familiar} already exists, renaming the old one "
                                 f"with ID {old.id} to empty string")
        images.add_image(mbytes, tags=tags, layer_facts=facts)
        from lamina.events import image_event
        image_event(images.store.root, str(m.config.digest), "load")
        if tags:
            lines.extend(f"Loaded image: {reference.parse(t).familiar}" for t in tags)
        else:
            lines.append(f"Loaded image ID: {m.config.digest}")
    return lines


def _manifests_for(images: Images, found: _Loaded, desc: oci.Descriptor, depth: int = 0) -> list[bytes]:
    """The image manifest(s) an index entry names: itself, or the host-platform entry of a
    nested index (nested at most 8 deep)."""
    if depth > 8:
        raise InvalidArgument(f"archive: index {desc.digest} is nested more than 8 indexes deep")
    content = images.content
    data = content.read(desc.digest) if content.exists(desc.digest) else found.get_bytes(
        f"blobs/{desc.digest.algorithm}/{desc.digest.hex}", content)
    if Digest.of_bytes(data, desc.digest.algorithm) != desc.digest:
        raise InvalidArgument(f"archive: blob {desc.digest} does not match its digest")
    if len(data) != desc.size:
        raise InvalidArgument(f"archive: blob {desc.digest} has {len(data)} bytes, its descriptor "
                              f"says {desc.size}")
    mt = desc.media_type or oci.sniff_media_type(data)
    if mt in oci.INDEX_TYPES:
        idx = oci.Index.from_json(data, what=f"index {desc.digest}")
        host = oci.host_platform()
        for d in idx.manifests:
            if d.platform and d.platform.os == host.os and d.platform.architecture == host.architecture:
                return _manifests_for(images, found, d, depth + 1)
        if len(idx.manifests) == 1:
            return _manifests_for(images, found, idx.manifests[0], depth + 1)
        raise NotFound(f"index {desc.digest} has no image for platform {host}")
    if mt in oci.MANIFEST_TYPES:
        return [data]
    return []
