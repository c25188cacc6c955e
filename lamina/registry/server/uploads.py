"""Blob upload sessions: bytes land in ``uploads/<id>/data`` and become a blob only after
their digest is verified.

A session is two files: ``info`` (JSON: repository, start time, the digest algorithm the
client announced) and ``data`` (every byte received so far; its size is the session's
offset). All state is on disk, so any worker or instance sharing the store continues any
session, and a server killed in the middle of a chunk leaves a session whose offset is
exactly what reached the file: the client asks (GET, 204 + ``Range``) and resumes.

While a request appends, it holds ``flock(LOCK_EX | LOCK_NB)`` on ``data``: a second
writer of the same session (another connection, another process) is refused rather than
interleaved. The lock dies with its process.

Hashing: this process keeps the running hash of each session it appended to, keyed by
the session and the offset it covers; completion uses it only when that offset is the
file's size (so it provably covers every byte), and otherwise hashes the file again.
The client names the algorithm only at completion (``?digest=sha512:...``): if it is not
the one being hashed, the file is hashed again with it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid as _uuid
from collections import OrderedDict

from lamina.registry.server.storage import Storage, blob_rel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HASHERS: OrderedDict[str, tuple[str, int, object]] = OrderedDict()
_HASHERS_MAX = 4096


class Busy(Exception):
    """Another request is appending to this session right now."""


def _new_hasher(alg: str):
    import hashlib
    return hashlib.new(alg)


class Session:
    """An open upload session, locked for this request. Close it (``with``)."""

    def __init__(self, store: Storage, uid: str, name: str, fd: int, info: dict) -> None:
        self.store = store
        self.uid = uid
        self.name = name
        self.fd = fd
        self.info = info
        self.size = os.fstat(fd).st_size
        self.start = self.size
        h = _HASHERS.get(uid)
        alg = info.get("algorithm") or "sha256"
        self._hasher: Any
        if h is not None and h[1] == self.size:
            self._alg, self._hasher = h[0], h[2]
        elif self.size == 0:
            self._alg, self._hasher = alg, _new_hasher(alg)
        else:
            self._alg, self._hasher = alg, None   # unknown: rehash at completion

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            if self._hasher is not None:
                _HASHERS[self.uid] = (self._alg, self.size, self._hasher)
                _HASHERS.move_to_end(self.uid)
                while len(_HASHERS) > _HASHERS_MAX:
                    _HASHERS.popitem(last=False)
            os.close(self.fd)   # drops the flock
            self.fd = -1

    def write(self, chunk) -> None:
        """Append ``chunk`` (bytes-like) at the end of the data."""
        view = memoryview(chunk)
        if self._hasher is not None:
            self._hasher.update(view)
        while view:
            n = os.pwrite(self.fd, view, self.size)
            self.size += n
            view = view[n:]

    def truncate(self, size: int) -> None:
        """Forget bytes past ``size`` (a chunk that turned out invalid)."""
        os.ftruncate(self.fd, size)
        self.size = size
        self._hasher = None if size else _new_hasher(self._alg)
        _HASHERS.pop(self.uid, None)

    def digest_hex(self, alg: str) -> str:
        """The digest of the whole data under ``alg`` (may read the file: call it off the
        event loop when ``needs_rehash(alg)``)."""
        if self._hasher is not None and self._alg == alg:
            return self._hasher.hexdigest()
        h = _new_hasher(alg)
        off = 0
        while off < self.size:
            b = os.pread(self.fd, min(1 << 20, self.size - off), off)
            if not b:
                break
            h.update(b)
            off += len(b)
        if off != self.size:
            raise OSError(errno.EIO, "upload data shrank while hashing")
        self._alg, self._hasher = alg, h
        return h.hexdigest()

    def needs_rehash(self, alg: str) -> bool:
        return not (self._hasher is not None and self._alg == alg)

    def commit(self, alg: str, hexd: str) -> None:
        """Make the (verified) data the blob ``alg:hexd``, link it into the repository and
        end the session. The blob appears by one rename; if it existed, it is replaced by
        identical bytes."""
        os.utime(self.fd)  # a fresh mtime: GC's grace period protects a blob this new
        dfd = self.store.opendir(f"uploads/{self.uid}")
        try:
            self.store.rename_into(dfd, "data", blob_rel(alg, hexd))
        finally:
            os.close(dfd)
        self.store.link_blob(self.name, alg, hexd)
        _HASHERS.pop(self.uid, None)
        self.close()
        remove_session(self.store, self.uid)


def remove_session(store: Storage, uid: str) -> bool:
    """Delete a session's files; False if there was none."""
    try:
        dfd = store.opendir(f"uploads/{uid}")
    except (FileNotFoundError, NotADirectoryError):
        return False
    found = False
    try:
        for n in ("data", "info"):
            try:
                os.unlink(n, dir_fd=dfd)
                found = True
            except FileNotFoundError:
                pass
    finally:
        os.close(dfd)
    udfd = store.opendir("uploads")
    try:
        os.rmdir(uid, dir_fd=udfd)
    except OSError:
        pass
    finally:
        os.close(udfd)
    _HASHERS.pop(uid, None)
    return found


def create(store: Storage, name: str, algorithm: str = "sha256") -> str:
    """Start a session for repository ``name``; returns its id."""
    uid = str(_uuid.uuid4())
    dfd = store.opendir(f"uploads/{uid}", create=True)
    try:
        info = json.dumps({"repository": name, "started": time.time(), "algorithm": algorithm}).encode()
        fd = os.open("info", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
        try:
            os.write(fd, info)
        finally:
            os.close(fd)
        fd = os.open("data", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
        os.close(fd)
    finally:
        os.close(dfd)
    _HASHERS[uid] = (algorithm, 0, _new_hasher(algorithm))
    _HASHERS.move_to_end(uid)
    return uid


def _info(store: Storage, name: str, uid: str) -> dict | None:
    b = store.read(f"uploads/{uid}/info", 4096)
    if b is None:
        return None
    try:
        info = json.loads(b)
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("repository") != name:
        return None
    return info


def open_session(store: Storage, name: str, uid: str) -> Session | None:
    """Lock and open session ``uid`` of repository ``name``; None if unknown (or another
    repository's). Raises Busy if another request is appending to it."""
    info = _info(store, name, uid)
    if info is None:
        return None
    try:
        fd = store.open(f"uploads/{uid}/data", os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(uid) from None
    # the session may have completed (its data renamed into blobs/) or been cancelled
    # between opening and locking: then this descriptor is no longer the session's data
    st, now = os.fstat(fd), store.stat(f"uploads/{uid}/data")
    if now is None or (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        os.close(fd)
        return None
    return Session(store, uid, name, fd, info)


def status(store: Storage, name: str, uid: str) -> int | None:
    """Bytes received by session ``uid`` of ``name`` so far; None if unknown."""
    if _info(store, name, uid) is None:
        return None
    st = store.stat(f"uploads/{uid}/data")
    return None if st is None else st.st_size


def cancel(store: Storage, name: str, uid: str) -> bool:
    if _info(store, name, uid) is None:
        return False
    return remove_session(store, uid)


def in_progress(store: Storage) -> int:
    """How many sessions exist (started, neither completed nor cancelled)."""
    return len(store.listdir("uploads") or ())
