"""COPY and ADD: the sources are staged into a fresh directory laid out as the layer will
be (only the destination paths), which is then written as the layer tar and adopted as
that layer's snapshot.

Docker's rules (the classic builder's, which lamina follows): several sources (or a
wildcard) need a destination ending in "/"; a directory source copies its *contents*; a
file goes *into* a destination that ends in "/" or is an existing directory, else it
becomes the destination; the destination path is resolved inside the image's root, symlinks
included (``COPY tool /bin/`` on a base where ``/bin -> usr/bin`` writes ``/usr/bin/tool``;
a dangling symlink is followed to the path it names); files are owned by 0:0 unless
--chown; --chmod applies to what is copied; parent directories that exist in the image keep
their metadata in the layer, new ones (and a new destination directory of a directory
copy) are 0755 and owned like the copied files.

Safety: the sources are read through their Context (physical paths below its root
descriptor, lamina.builder.context); the staging directory is written through descriptors,
one component at a time, never following a symlink -- a symlink copied by one source and a
directory of the same name from another source replaces it, as Docker's untar does.

The bytes that go into the layer are the bytes that are hashed: every regular file is read
once, hashed and written in the same pass, and :func:`stage_copy` returns the manifest of
what it copied, so the caller keys the cache on exactly that (a file edited between the
cache lookup and the copy cannot poison the cache).
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import shutil
import stat

from lamina.errors import InvalidArgument
from lamina.values import value

_CHUNK = 1 << 20


@value
class CopyItem:
    """One source to copy: ``name`` as written (decides the destination file name), the
    resolved ``source`` and the ``ctx`` (lamina.builder.context.Context) it is read from."""

    name: str
    source: object
    ctx: object
    remote: bool = False   # ADD <url>: never unpacked

    @property
    def is_dir(self) -> bool:
        return self.source.is_dir


class Staging:
    """The staging directory, written through descriptors (nothing is followed)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        self._cache: tuple[str, int] | None = None

    def close(self) -> None:
        self._drop()
        os.close(self.fd)

    def _drop(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def dir(self, rel: str) -> int:
        """A borrowed descriptor of the existing staged directory ``rel``."""
        if not rel:
            return self.fd
        if self._cache is not None and self._cache[0] == rel:
            return self._cache[1]
        from lamina.safepath import open_physical
        fd = open_physical(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY)
        self._drop()
        self._cache = (rel, fd)
        return fd

    def remove(self, pfd: int, name: str) -> None:
        self._drop_below(pfd)
        try:
            s = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(s.st_mode):
            shutil.rmtree(name, dir_fd=pfd)  # fd-based: never follows symlinks
        else:
            os.unlink(name, dir_fd=pfd)

    def _drop_below(self, pfd: int) -> None:
        if self._cache is not None and self._cache[1] != pfd:
            self._drop()

    def mkdir(self, rel: str) -> tuple[int, str, bool]:
        """Make ``rel`` a directory (replacing a non-directory). (parent fd, name, created)."""
        parent, _, name = rel.rpartition("/")
        pfd = self.dir(parent)
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
            return pfd, name, True
        except FileExistsError:
            s = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISDIR(s.st_mode):
                return pfd, name, False
            self.remove(pfd, name)
            pfd = self.dir(parent)
            os.mkdir(name, 0o700, dir_fd=pfd)
            return pfd, name, True

    def create_file(self, rel: str) -> int:
        parent, _, name = rel.rpartition("/")
        pfd = self.dir(parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(name, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, name)
            return os.open(name, flags, 0o600, dir_fd=self.dir(parent))

    def symlink(self, rel: str, target: str) -> tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        pfd = self.dir(parent)
        try:
            os.symlink(target, name, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, name)
            pfd = self.dir(parent)
            os.symlink(target, name, dir_fd=pfd)
        return pfd, name


def ensure_parents(staging: Staging, rel_dir: str, view, *, owner=None) -> None:
    """Create ``rel_dir`` (a path already resolved in the image) and its parents in
    staging, with the image's metadata where the image has them (else 0755, owned by
    ``owner`` or root). A parent that is not a directory in the image is an error."""
    parts = [p for p in rel_dir.split("/") if p]
    cur = ""
    for p in parts:
        cur = f"{cur}/{p}" if cur else p
        s = view.lstat(cur) if view is not None else None
        if s is not None and not stat.S_ISDIR(s.st_mode):
            raise InvalidArgument(f"cannot copy to /{rel_dir}: /{cur} is not a directory in the image")
        pfd, name, created = staging.mkdir(cur)
        if not created:
            continue
        if s is not None:
            os.chown(name, s.st_uid, s.st_gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(s.st_mode), dir_fd=pfd)
            os.utime(name, ns=(s.st_atime_ns, s.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
        else:
            uid, gid = owner if owner is not None else (0, 0)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(name, 0o755, dir_fd=pfd)


def resolve_dest(dest: str, workdir: str) -> tuple[str, bool]:
    """(absolute destination, names a directory) from a COPY/ADD destination argument."""
    is_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    return posixpath.normpath(dest), is_dir


def _copy_data(src_fd: int, dst_fd: int, on_bytes=None) -> str:
    """Copy ``src_fd`` to ``dst_fd`` and return the sha256 of exactly the bytes written
    (``on_bytes(n)``, if given, is told of every chunk: build progress)."""
    from lamina.builder.context import read_buffer
    h = hashlib.sha256()
    buf, view = read_buffer()
    while True:
        n = os.readv(src_fd, [buf])
        if not n:
            break
        h.update(view[:n])
        off = 0
        while off < n:
            off += os.write(dst_fd, view[off:n])
        if on_bytes is not None:
            on_bytes(n)
    return h.hexdigest()


class Reuse:
    """Files of an earlier result of the same COPY (same instruction, same parent image, one
    source): its snapshot dir and the manifest its layer was keyed on. A file whose entry
    (content digest and mode) is the same in ``expect`` (the manifest of this build, from the
    hash cache, as trusted as a cache hit) and in that manifest, and whose snapshot copy has
    exactly the metadata a fresh copy would get (mode, owner, mtime, size), is hard-linked
    from the snapshot instead of copied: the same bytes and metadata, without creating and
    writing a file (which costs ~10x a link on ext4). Snapshots are never written in place,
    so sharing inodes between them is safe; the layer is keyed on the reused entry, so it
    still holds exactly what its key says."""

    def __init__(self, snapshot_dir: str, old: dict, expect: dict) -> None:
        from lamina.safepath import open_root
        self.fd = open_root(snapshot_dir)
        self.old = old
        self.expect = expect
        self._dir: tuple[str, int] | None = None
        self.linked = 0

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._dir[1])
        os.close(self.fd)

    def _parent(self, rel: str) -> int | None:
        from lamina.safepath import PHYSICAL, openat2
        if not rel:
            return self.fd
        if self._dir is not None and self._dir[0] == rel:
            return self._dir[1]
        try:
            fd = openat2(self.fd, rel, os.O_PATH | os.O_DIRECTORY, PHYSICAL)
        except OSError:
            return None
        if self._dir is not None:
            os.close(self._dir[1])
        self._dir = (rel, fd)
        return fd

    def link(self, staging: Staging, src_rel: str, dst: str, s: os.stat_result, *, mode: int,
             uid: int, gid: int) -> str | None:
        """Link ``dst`` from the snapshot if provably identical; returns its manifest entry."""
        entry = self.expect.get(src_rel)
        if entry is None or self.old.get(src_rel) != entry:
            return None
        parent, _, name = dst.rpartition("/")
        sfd = self._parent(parent)
        if sfd is None:
            return None
        try:
            old = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        except OSError:
            return None
        if not (stat.S_ISREG(old.st_mode) and stat.S_IMODE(old.st_mode) == mode and old.st_uid == uid
                and old.st_gid == gid and old.st_mtime_ns == s.st_mtime_ns and old.st_size == s.st_size):
            return None
        pfd = staging.dir(parent)
        try:
            os.link(name, name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            staging.remove(pfd, name)
            os.link(name, name, src_dir_fd=sfd, dst_dir_fd=staging.dir(parent), follow_symlinks=False)
        self.linked += 1
        return entry


def stage_copy(staging_dir: str, items: list[CopyItem], dest_arg: str, *, workdir: str,
               view, owner, chmod: int | None, wildcard: bool, what: str = "COPY",
               reuse: Reuse | None = None, on_bytes=None) -> dict:
    """Lay out ``items`` under ``staging_dir`` as COPY/ADD would write them into the image
    whose merged view is ``view`` (lamina.snapshot.view.LayerView, or None for scratch).
    ``reuse`` (one item only): link unchanged files from an earlier result (:class:`Reuse`).
    ``on_bytes(n)`` (thread-safe, or None) is told of the bytes copied, chunk by chunk.

    Returns {context: manifest of what was copied from it} (manifests as
    Context.manifest makes them), for the caller to key the cache on.
    """
    if reuse is not None and len(items) != 1:
        reuse = None  # with several sources a destination path may come from any of them
    from lamina.builder.context import entry_text
    dest, dest_is_dir = resolve_dest(dest_arg, workdir)
    if len(items) > 1 and not dest_is_dir:
        raise InvalidArgument(f"When using {what} with more than one source file, the destination "
                              f"must be a directory and end with a /")
    rel_dest = view.resolve(dest) if view is not None else dest.strip("/")
    existing = view.lstat(rel_dest) if (view is not None and rel_dest) else None
    into_dir = dest_is_dir or rel_dest == "" or (existing is not None and stat.S_ISDIR(existing.st_mode))
    uid, gid = owner if owner is not None else (0, 0)
    copied: dict = {}
    staging = Staging(staging_dir)
    pool = None
    try:
        for item in items:
            ctx = item.ctx
            manifest = copied.setdefault(ctx, {})
            if item.is_dir:
                target_rel = rel_dest
            elif into_dir:
                base = posixpath.basename(item.name.rstrip("/")) or posixpath.basename(item.source.relpath)
                target_rel = posixpath.join(rel_dest, base) if rel_dest else base
            else:
                target_rel = rel_dest
            ensure_parents(staging, posixpath.dirname(target_rel) if not item.is_dir else target_rel,
                           view, owner=owner)
            if item.is_dir and target_rel and chmod is not None and (view is None or view.lstat(target_rel) is None):
                _chmod_in(staging, target_rel, chmod)  # BuildKit: --chmod covers a new destination dir
            jobs = []
            base_rel = item.source.relpath
            for rel, s, dfd, dname in ctx.walk_fds(item.source):
                sub = rel[len(base_rel):].lstrip("/") if base_rel else rel
                dst = posixpath.join(target_rel, sub) if sub else target_rel
                mode = s.st_mode
                if not sub and item.is_dir:
                    manifest.setdefault(rel, entry_text(s))
                    continue  # the destination directory: made by ensure_parents above
                if stat.S_ISDIR(mode):
                    pfd, name, _ = staging.mkdir(dst)
                    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
                    os.chmod(name, chmod if chmod is not None else stat.S_IMODE(mode), dir_fd=pfd)
                    os.utime(name, ns=(s.st_atime_ns, s.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
                    manifest.setdefault(rel, entry_text(s))
                elif stat.S_ISLNK(mode):
                    target = ctx.readlink(rel, dir_fd=dfd, name=dname)
                    pfd, name = staging.symlink(dst, target)
                    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
                    os.utime(name, ns=(s.st_atime_ns, s.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
                    manifest.setdefault(rel, entry_text(s, target=target))
                elif stat.S_ISREG(mode):
                    if reuse is not None:
                        entry = reuse.link(staging, rel, dst, s, uid=uid, gid=gid,
                                           mode=chmod if chmod is not None else stat.S_IMODE(mode))
                        if entry is not None:
                            manifest.setdefault(rel, entry)
                            continue
                    src_fd = ctx.open_file(rel, dir_fd=dfd, name=dname)
                    try:
                        dst_fd = staging.create_file(dst)
                    except BaseException:
                        os.close(src_fd)
                        raise
                    if s.st_size >= (1 << 20):  # big files: hash and copy in a thread
                        if pool is None:
                            from concurrent.futures import ThreadPoolExecutor
                            pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2))
                        jobs.append((rel, pool.submit(_copy_one, src_fd, dst_fd, uid, gid, chmod, on_bytes)))
                    else:
                        jobs.append((rel, _copy_one(src_fd, dst_fd, uid, gid, chmod, on_bytes)))
                # fifos, sockets and devices in a build context are not copied
            for rel, job in jobs:
                entry = job if isinstance(job, str) else job.result()
                manifest.setdefault(rel, entry)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        staging.close()
    _fix_dir_times(staging_dir)
    return copied


def _chmod_in(staging: Staging, rel: str, mode: int) -> None:
    parent, _, name = rel.rpartition("/")
    os.chmod(name, mode, dir_fd=staging.dir(parent))


def _copy_one(src_fd: int, dst_fd: int, uid: int, gid: int, chmod: int | None, on_bytes=None) -> str:
    """Copy one file (both descriptors are closed); returns its manifest entry."""
    from lamina.builder.context import entry_text
    try:
        s = os.fstat(src_fd)
        digest = _copy_data(src_fd, dst_fd, on_bytes)
        os.fchown(dst_fd, uid, gid)
        os.fchmod(dst_fd, chmod if chmod is not None else stat.S_IMODE(s.st_mode))
        os.utime(dst_fd, ns=(s.st_atime_ns, s.st_mtime_ns))
        return entry_text(s, digest=digest)
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _fix_dir_times(staging: str) -> None:
    """Copying into directories bumped their mtimes; nothing depends on them, but keep them
    stable so two identical builds write identical layers: clamp to the newest child."""
    for dirpath, dirnames, filenames in os.walk(staging, topdown=False):
        if dirpath == staging:
            continue
        newest = 0
        for n in dirnames + filenames:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, n)).st_mtime_ns)
            except OSError:
                pass
        if newest:
            try:
                os.utime(dirpath, ns=(newest, newest), follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
