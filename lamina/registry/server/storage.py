"""The registry's store on disk (the format is drawn in the package docstring).

Every path is built from components that passed :mod:`.names` (so none is ``.``, ``..``,
empty, or holds a ``/``), and every one is resolved with ``openat2(2)`` under
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` from a descriptor of the
root: a symlink planted anywhere in the store is refused, never followed. Directories are
created one component at a time under such a descriptor; files are renamed and unlinked
by name inside a directory descriptor.

Writes are atomic: small files (tags, links, referrer entries) are written under
``tmp/`` and renamed into place; blobs become visible by a rename of a verified upload.
A process killed at any moment leaves at worst a stray file under ``tmp/`` or an upload,
both of which GC removes. Nothing here holds state between calls except the root
descriptor, so any number of processes (workers, instances behind a load balancer) share
one store.

Cost per call is fixed: no call walks a directory except the ones whose answer is that
directory (tag list, referrers of one subject, the catalog, a manifest's tags on delete).
"""

from __future__ import annotations

import errno
import json
import os
import stat as _stat

from lamina.safepath import PHYSICAL, openat2

_RESOLVE = PHYSICAL
_RD = os.O_RDONLY | os.O_CLOEXEC
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC

FORMAT_FILE = "lamina-registry"
FORMAT_LINE = b"lamina-registry 1\n"


_REFUSED = (errno.ELOOP, errno.EXDEV)   # a symlink, or a path that would leave the root


def _absent(e: OSError) -> bool:
    """An open that failed because the entry is not there, or is something the store
    refuses to follow (a symlink planted in it): both read as "not stored"."""
    return isinstance(e, (FileNotFoundError, NotADirectoryError)) or e.errno in _REFUSED


class StoreError(Exception):
    """The store holds something it should not (a symlink, a malformed link file)."""


def blob_rel(alg: str, hexd: str) -> str:
    return f"blobs/{alg}/{hexd[:2]}/{hexd}"


def repo_rel(name: str) -> str:
    return f"repositories/{name}"


class Storage:
    """One registry store. ``root`` is created (with its format marker) if missing.

    Methods take validated names, tags, algorithms and hex digests; they never raise for
    "not there" (they return None/False), and raise OSError for real I/O failures.
    """

    def __init__(self, root: str, *, create: bool = True) -> None:
        self.root = os.path.abspath(root)
        if create:
            os.makedirs(self.root, exist_ok=True)
        self.rootfd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        marker = os.path.join(self.root, FORMAT_FILE)
        if create and not os.path.exists(marker):
            for d in ("blobs", "repositories", "uploads", "tmp"):
                os.makedirs(os.path.join(self.root, d), exist_ok=True)
            self.write_atomic(FORMAT_FILE, FORMAT_LINE)

    def close(self) -> None:
        if self.rootfd >= 0:
            os.close(self.rootfd)
            self.rootfd = -1

    # -- primitives ------------------------------------------------------------------------
    def open(self, rel: str, flags: int = _RD, mode: int = 0o644) -> int:
        """A descriptor of ``rel`` under the root (symlinks refused); OSError if missing."""
        return openat2(self.rootfd, rel, flags, _RESOLVE, mode if flags & os.O_CREAT else 0)

    def _try(self, rel: str, flags: int) -> int | None:
        try:
            return openat2(self.rootfd, rel, flags, _RESOLVE)
        except OSError as e:
            if _absent(e):
                return None
            raise

    def read(self, rel: str, limit: int = 1 << 16) -> bytes | None:
        """The bytes of a small file, or None if it does not exist."""
        fd = self._try(rel, _RD)
        if fd is None:
            return None
        try:
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def read_all(self, rel: str) -> bytes | None:
        fd = self._try(rel, _RD)
        if fd is None:
            return None
        try:
            size = os.fstat(fd).st_size
            chunks = []
            off = 0
            while off < size:
                b = os.pread(fd, size - off, off)
                if not b:
                    break
                chunks.append(b)
                off += len(b)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def stat(self, rel: str) -> os.stat_result | None:
        fd = self._try(rel, os.O_PATH | os.O_CLOEXEC)
        if fd is None:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        return self.stat(rel) is not None

    def opendir(self, rel: str, *, create: bool = False) -> int:
        """An O_PATH descriptor of directory ``rel`` (made, component by component, if
        ``create``)."""
        try:
            return openat2(self.rootfd, rel, _DIR, _RESOLVE)
        except FileNotFoundError:
            if not create:
                raise
        fd = os.dup(self.rootfd)
        try:
            for part in rel.split("/"):
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = openat2(fd, part, _DIR, _RESOLVE)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def listdir(self, rel: str) -> list[str] | None:
        """Names in directory ``rel`` (unsorted), or None if it does not exist."""
        fd = self._try(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd is None:
            return None
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def scandir(self, rel: str) -> list[tuple[str, os.stat_result]] | None:
        """(name, lstat) of each entry of ``rel``, or None if it does not exist."""
        fd = self._try(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fd is None:
            return None
        try:
            out = []
            for n in os.listdir(fd):
                try:
                    out.append((n, os.stat(n, dir_fd=fd, follow_symlinks=False)))
                except FileNotFoundError:
                    pass
            return out
        finally:
            os.close(fd)

    def _split(self, rel: str) -> tuple[str, str]:
        d, _, leaf = rel.rpartition("/")
        return d, leaf

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Replace ``rel`` with ``data`` in one rename (its directory is made if needed)."""
        d, leaf = self._split(rel)
        tmpname = "w-" + os.urandom(8).hex()
        tfd = self.opendir("tmp", create=True)
        try:
            fd = os.open(tmpname, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o644, dir_fd=tfd)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
            self.rename_into(tfd, tmpname, rel)
        except BaseException:
            try:
                os.unlink(tmpname, dir_fd=tfd)
            except OSError:
                pass
            raise
        finally:
            os.close(tfd)

    def rename_into(self, srcdirfd: int, srcname: str, rel: str) -> None:
        """Rename ``srcname`` (in directory ``srcdirfd``) onto ``rel``, replacing it."""
        d, leaf = self._split(rel)
        dfd = self.opendir(d, create=True) if d else os.dup(self.rootfd)
        try:
            os.rename(srcname, leaf, src_dir_fd=srcdirfd, dst_dir_fd=dfd)
        finally:
            os.close(dfd)

    def create_empty(self, rel: str) -> None:
        """Make ``rel`` exist as an empty file (a link); idempotent."""
        d, leaf = self._split(rel)
        try:
            dfd = self.opendir(d, create=True)
        except NotADirectoryError:
            raise StoreError(f"{d} is not a directory") from None
        try:
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=dfd)
            os.close(fd)
        finally:
            os.close(dfd)

    def unlink(self, rel: str) -> bool:
        d, leaf = self._split(rel)
        try:
            dfd = openat2(self.rootfd, d, _DIR, _RESOLVE)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            os.unlink(leaf, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(dfd)

    def rmdir_empty_up(self, rel: str, stop: str) -> None:
        """Remove ``rel`` and its parents up to (not including) ``stop`` while empty."""
        while rel and rel != stop and rel.startswith(stop + "/"):
            d, leaf = self._split(rel)
            try:
                dfd = openat2(self.rootfd, d, _DIR, _RESOLVE)
            except OSError:
                return
            try:
                os.rmdir(leaf, dir_fd=dfd)
            except OSError:
                return
            finally:
                os.close(dfd)
            rel = d

    # -- blobs -----------------------------------------------------------------------------
    def open_blob(self, alg: str, hexd: str) -> tuple[int, int] | None:
        """(descriptor, size) of a stored blob, or None."""
        fd = self._try(blob_rel(alg, hexd), _RD)
        if fd is None:
            return None
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st.st_size

    def blob_size(self, alg: str, hexd: str) -> int | None:
        st = self.stat(blob_rel(alg, hexd))
        return st.st_size if st is not None and _stat.S_ISREG(st.st_mode) else None

    def repo_blob_rel(self, name: str, alg: str, hexd: str) -> str:
        return f"repositories/{name}/_blobs/{alg}/{hexd}"

    def repo_has_blob(self, name: str, alg: str, hexd: str) -> int | None:
        """Size of the blob if repository ``name`` holds it (a link and the data), else None."""
        if self.stat(self.repo_blob_rel(name, alg, hexd)) is None:
            return None
        return self.blob_size(alg, hexd)

    def open_repo_blob(self, name: str, alg: str, hexd: str) -> tuple[int, int] | None:
        if self.stat(self.repo_blob_rel(name, alg, hexd)) is None:
            return None
        return self.open_blob(alg, hexd)

    def link_blob(self, name: str, alg: str, hexd: str) -> None:
        self.create_empty(self.repo_blob_rel(name, alg, hexd))

    def unlink_blob(self, name: str, alg: str, hexd: str) -> bool:
        return self.unlink(self.repo_blob_rel(name, alg, hexd))

    def put_blob_bytes(self, alg: str, hexd: str, data: bytes) -> None:
        """Store small verified content (a manifest) under its digest, if not there yet."""
        rel = blob_rel(alg, hexd)
        if self.stat(rel) is None:
            self.write_atomic(rel, data)

    # -- manifests and tags ----------------------------------------------------------------
    def manifest_link_rel(self, name: str, alg: str, hexd: str) -> str:
        return f"repositories/{name}/_manifests/{alg}/{hexd}"

    def manifest_media_type(self, name: str, alg: str, hexd: str) -> str | None:
        """The media type the manifest was pushed with, if repository ``name`` holds it."""
        b = self.read(self.manifest_link_rel(name, alg, hexd), 512)
        return None if b is None else b.decode("ascii", "replace").strip()

    def tag_digest(self, name: str, tag: str) -> str | None:
        b = self.read(f"repositories/{name}/_tags/{tag}", 256)
        return None if b is None else b.decode("ascii", "replace").strip()

    def set_tag(self, name: str, tag: str, digest: str) -> None:
        self.write_atomic(f"repositories/{name}/_tags/{tag}", digest.encode() + b"\n")

    def delete_tag(self, name: str, tag: str) -> bool:
        return self.unlink(f"repositories/{name}/_tags/{tag}")

    def link_manifest(self, name: str, alg: str, hexd: str, media_type: str) -> None:
        self.write_atomic(self.manifest_link_rel(name, alg, hexd), media_type.encode() + b"\n")

    def tags(self, name: str) -> list[str] | None:
        """Sorted tags of ``name``; None if the repository does not exist."""
        t = self.listdir(f"repositories/{name}/_tags")
        if t is None:
            return [] if self.repo_exists(name) else None
        return sorted(t)

    def repo_exists(self, name: str) -> bool:
        base = f"repositories/{name}/"
        return any(self.stat(base + d) is not None for d in ("_manifests", "_tags", "_blobs"))

    def tags_of(self, name: str, digest: str) -> list[str]:
        out = []
        for t in self.listdir(f"repositories/{name}/_tags") or ():
            if self.tag_digest(name, t) == digest:
                out.append(t)
        return out

    def delete_manifest_link(self, name: str, alg: str, hexd: str) -> bool:
        return self.unlink(self.manifest_link_rel(name, alg, hexd))

    # -- referrers -------------------------------------------------------------------------
    def referrer_rel(self, name: str, subject: str, digest: str) -> str:
        return f"repositories/{name}/_referrers/{subject.replace(':', '-')}/{digest.replace(':', '-')}"

    def add_referrer(self, name: str, subject: str, digest: str, descriptor: dict) -> None:
        data = json.dumps(descriptor, separators=(",", ":"), ensure_ascii=False).encode()
        self.write_atomic(self.referrer_rel(name, subject, digest), data)

    def remove_referrer(self, name: str, subject: str, digest: str) -> None:
        self.unlink(self.referrer_rel(name, subject, digest))

    def referrers(self, name: str, subject: str, *, after: str | None = None, limit: int = 1000,
                  artifact_type: str | None = None) -> tuple[list[dict], str | None]:
        """One page of the descriptors of the manifests of ``name`` whose subject is
        ``subject`` (those still in the repository), ordered by digest: at most ``limit``
        of them after digest ``after``, of ``artifact_type`` if given. Returns the page and
        the digest to continue after (None on the last page)."""
        d = f"repositories/{name}/_referrers/{subject.replace(':', '-')}"
        names = sorted(self.listdir(d) or ())
        if after:
            import bisect
            names = names[bisect.bisect_right(names, after.replace(":", "-")):]
        out: list = []
        for i, n in enumerate(names):
            if len(out) == limit:
                return out, names[i - 1].replace("-", ":", 1)
            alg, _, hexd = n.partition("-")
            if self.stat(self.manifest_link_rel(name, alg, hexd)) is None:
                continue
            b = self.read(f"{d}/{n}", 1 << 22)
            try:
                desc = json.loads(b) if b else None
            except ValueError:
                desc = None
            if isinstance(desc, dict) and (artifact_type is None or desc.get("artifactType") == artifact_type):
                out.append(desc)
        return out, None

    # -- catalog ---------------------------------------------------------------------------
    def repositories(self) -> list[str]:
        """Every repository name, sorted."""
        out: list[str] = []
        self._walk_repos("repositories", "", out)
        out.sort()
        return out

    def _walk_repos(self, rel: str, prefix: str, out: list[str]) -> None:
        entries = self.scandir(rel)
        if not entries:
            return
        is_repo = False
        for n, st in entries:
            if not _stat.S_ISDIR(st.st_mode):
                continue
            if n.startswith("_"):
                if n in ("_manifests", "_tags", "_blobs"):
                    is_repo = True
                continue
            self._walk_repos(f"{rel}/{n}", f"{prefix}{n}/", out)
        if is_repo and prefix:
            out.append(prefix[:-1])
