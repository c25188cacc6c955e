"""Content store: an OCI image layout on disk, with atomic, verified, resumable ingest.

On-disk tree (owned by this module)::

    content/
      oci-layout                 {"imageLayoutVersion": "1.0.0"}
      index.json                 written by lamina.image (the images, with ref.name annotations)
      blobs/sha256/<hex>         immutable, verified blobs
      ingest/<ref>/data          a partial write; appended to on resume
      ingest/<ref>/lock          flock(2)-held by the writing process while it writes

Contracts:
- A blob becomes visible under blobs/ only after its size and digest were verified and its
  data fsync'ed; it appears by rename(2), so readers never see a partial blob.
- Ingest is idempotent: committing a digest that is already present discards the new copy.
- A partial write survives its writer's death; the next writer with the same ref resumes it
  (its bytes are re-hashed first). ``stale_ingests`` lists the refs no live process holds.
- Concurrent lamina processes may read and ingest at once; deletion is GC's (lamina.image.gc).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator

from lamina.digest import Digest, hexdigest, new_hash
from lamina.errors import DigestMismatch, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO  # names used in annotations only; importing them costs start-up time

_CHUNK = 1 << 20


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, mode: int = 0o600, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same dir, fsync, rename)."""
    d = os.path.dirname(path)
    tmp = os.path.join(d, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class ContentStore:
    """Blobs addressed by digest under ``root`` (an OCI image layout)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs = os.path.join(root, "blobs")
        self.ingest_dir = os.path.join(root, "ingest")

    # -- layout ---------------------------------------------------------------------
    def init(self) -> None:
        """Create the layout if missing (idempotent). Directories 0700, files 0600: only the
        store's owner reads blobs (lamina.perms)."""
        for d in (self.root, self.blobs, os.path.join(self.blobs, "sha256"), self.ingest_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)
        layout = os.path.join(self.root, "oci-layout")
        if not os.path.exists(layout):
            atomic_write(layout, b'{"imageLayoutVersion":"1.0.0"}')
        index = os.path.join(self.root, "index.json")
        if not os.path.exists(index):
            atomic_write(index, b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
                                b'"manifests":[]}')

    # -- reading --------------------------------------------------------------------
    def path(self, digest: Digest) -> str:
        return os.path.join(self.blobs, digest.algorithm, digest.hex)

    def exists(self, digest: Digest) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: Digest) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def read(self, digest: Digest, *, verify: bool = True, limit: int = 64 << 20) -> bytes:
        """The whole blob (meant for manifests and configs). Verifies the digest by default."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"blob {digest} is larger than {limit} bytes; not a manifest or config")
        if verify and hexdigest(data, digest.algorithm) != digest.hex:
            raise DigestMismatch(f"blob {digest} is corrupt: its content does not match its digest")
        return data

    def walk(self) -> Iterator[Digest]:
        for algo in os.listdir(self.blobs):
            d = os.path.join(self.blobs, algo)
            for name in os.listdir(d):
                try:
                    yield Digest(algo, name)
                except InvalidArgument:
                    continue

    # -- writing --------------------------------------------------------------------
    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store ``data``; returns its sha256 digest. Raises DigestMismatch if ``expected`` differs."""
        got = Digest("sha256", hexdigest(data))
        if expected is not None and expected != got:
            raise DigestMismatch(f"blob digest mismatch: expected {expected}, got {got}")
        if self.exists(got):
            return got
        with self.writer(f"put-{got.hex[:16]}-{os.getpid()}-{os.urandom(3).hex()}", expected=got,
                         size=len(data), resume=False) as w:
            w.write(data)
            w.commit()
        return got

    def writer(self, ref: str, *, expected: Digest | None = None, size: int | None = None,
               resume: bool = True, hashing: bool = True) -> Writer:
        """Open an ingest for ``ref`` (a name unique to the content being written).

        With ``resume`` an existing partial write under the same ref is continued; otherwise
        it is discarded. Raises Unavailable if another live process is writing ``ref``.
        With ``hashing=False`` the caller hashes what it writes (e.g. the layer pipeline
        does already) and must pass that digest to ``commit(digest=...)``.
        """
        return Writer(self, ref, expected=expected, size=size, resume=resume, hashing=hashing)

    def stale_ingests(self) -> list[str]:
        """Refs of partial writes that no live process holds (safe to delete)."""
        out: list[str] = []
        try:
            names = os.listdir(self.ingest_dir)
        except FileNotFoundError:
            return out
        for ref in names:
            lock = os.path.join(self.ingest_dir, ref, "lock")
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                out.append(ref)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                out.append(ref)
            except OSError:
                pass
            finally:
                os.close(fd)
        return out

    def remove_ingest(self, ref: str) -> None:
        import shutil
        shutil.rmtree(os.path.join(self.ingest_dir, ref), ignore_errors=True)

    def delete(self, digest: Digest) -> None:
        """Remove a blob (GC only). Missing blobs are ignored."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass


class Writer:
    """A write into the content store. Use as a context manager; call ``commit()`` to publish.

    Leaving the context without ``commit()`` deletes the partial data unless the writer
    was opened with ``resume=True`` and ``keep_partial()`` was called.
    """

    def __init__(self, store: ContentStore, ref: str, *, expected: Digest | None,
                 size: int | None, resume: bool, hashing: bool = True) -> None:
        if not ref or "/" in ref or ref.startswith("."):
            raise InvalidArgument(f"invalid ingest ref {ref!r}")
        self.store = store
        self.ref = ref
        self.expected = expected
        self.expected_size = size
        self.dir = os.path.join(store.ingest_dir, ref)
        for attempt in range(3):  # a finishing writer of the same ref may remove the dir under us
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            try:
                self._lockfd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lockfd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                from lamina.errors import Unavailable
                raise Unavailable(f"content {ref} is being written by another lamina process") from None
            raise
        self.data_path = os.path.join(self.dir, "data")
        self._h: Any = new_hash(expected.algorithm if expected else "sha256") if hashing else None
        self.offset = 0
        if resume and hashing and os.path.exists(self.data_path):
            assert self._h is not None
            with open(self.data_path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    self._h.update(chunk)
                    self.offset += len(chunk)
            self._f = open(self.data_path, "ab")
        else:
            self._f = os.fdopen(os.open(self.data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                        | os.O_CLOEXEC, 0o600), "wb")
        self._keep = False
        self._done = False
        self.digest: Digest | None = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def fileno(self) -> int:
        return self._f.fileno()

    def write(self, data) -> int:
        if self._h is not None:
            self._h.update(data)
        self.offset += len(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def copy_from_fd(self, fd: int, offset: int, count: int) -> None:
        """Append ``count`` bytes of ``fd`` starting at ``offset``, in the kernel where possible.

        The data is hashed from the written file afterwards (page cache), so it is read once.
        """
        self._f.flush()
        out = self._f.fileno()
        start = self.offset
        left = count
        pos = offset
        while left:
            try:
                n = os.copy_file_range(fd, out, min(left, 1 << 30), pos)
            except OSError:
                n = 0
            if n == 0:
                os.lseek(fd, pos, os.SEEK_SET)
                data = os.read(fd, min(left, _CHUNK))
                if not data:
                    raise InvalidArgument(f"unexpected end of input after {count - left} of {count} bytes")
                n = os.write(out, data)
            pos += n
            left -= n
        if self._h is not None:
            with open(self.data_path, "rb") as f:
                f.seek(start)
                left = count
                while left:
                    chunk = f.read(min(left, _CHUNK))
                    if not chunk:
                        break
                    self._h.update(chunk)
                    left -= len(chunk)
        self.offset += count
        self._f.seek(0, os.SEEK_END)

    def keep_partial(self) -> None:
        self._keep = True

    def verify(self) -> Digest:
        """Check size and digest now without publishing (``commit`` publishes later; a
        pull verifies each layer as it lands and publishes them all at the end). On a
        mismatch the partial data is discarded, never resumed, and DigestMismatch raised.
        Only for writers opened with hashing (the default)."""
        self._f.flush()
        got = Digest(self._h.name, self._h.hexdigest())
        if self.expected_size is not None and self.expected_size >= 0 and self.offset != self.expected_size:
            self._discard()
            raise DigestMismatch(f"blob {self.expected or got}: size mismatch: expected "
                                 f"{self.expected_size} bytes, got {self.offset}")
        if self.expected is not None and got != self.expected:
            self._discard()
            raise DigestMismatch(f"blob digest mismatch: expected {self.expected}, got {got}")
        return got

    def commit(self, *, sync: bool = True, digest: Digest | None = None) -> Digest:
        """Verify size and digest, fsync, and rename into blobs/. Returns the digest.

        ``digest`` is required (and only allowed) when the writer was opened with
        ``hashing=False``: the digest the caller computed over exactly the bytes written.
        """
        self._f.flush()
        if (digest is None) != (self._h is not None):
            raise ValueError("commit(digest=...) is required exactly when hashing=False")
        got = digest if digest is not None else Digest(self._h.name, self._h.hexdigest())
        if self.expected_size is not None and self.expected_size >= 0 and self.offset != self.expected_size:
            self._discard()
            raise DigestMismatch(f"blob {self.expected or got}: size mismatch: expected "
                                 f"{self.expected_size} bytes, got {self.offset}")
        if self.expected is not None and got != self.expected:
            self._discard()
            raise DigestMismatch(f"blob digest mismatch: expected {self.expected}, got {got}")
        dest = self.store.path(got)
        if os.path.exists(dest):
            self._discard()
        else:
            if sync:
                os.fsync(self._f.fileno())
            self._f.close()
            os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
            os.rename(self.data_path, dest)
            if sync:
                _fsync_dir(os.path.dirname(dest))  # the rename itself survives a power loss
        self.digest = got
        self._done = True
        return got

    def _discard(self) -> None:
        self._keep = False  # bytes that failed verification are never kept for a resume
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self.data_path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        if not self._done and not self._keep:
            self._discard()
        if self._done or not self._keep:
            try:
                os.unlink(os.path.join(self.dir, "lock"))
                os.rmdir(self.dir)
            except OSError:
                pass
        if self._lockfd >= 0:
            os.close(self._lockfd)
            self._lockfd = -1
