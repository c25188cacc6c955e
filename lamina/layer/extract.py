"""Safe extraction of a layer tar into a directory.

Every path operation resolves *inside* ``root``: parent directories are opened with
``openat2(2)`` and ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` (:mod:`lamina.safepath`) on a
descriptor of ``root`` (so ``..`` and symlinks — absolute or relative, including ones this very tar
created a moment ago — are resolved as if ``root`` were ``/``), and the last component
is then created with an ``*at()`` call that never follows it. Nothing outside ``root``
can be written, whatever the tar contains.

Two modes:

``overlay``
    Unpack one layer into its own (empty) snapshot directory that overlayfs will use as a
    lower dir: ``.wh.<name>`` becomes a 0:0 character device ``<name>`` and
    ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory.
``merge``
    Copy-based fallback: apply a layer on top of the already unpacked lower layers:
    ``.wh.<name>`` removes ``<name>``; ``.wh..wh..opq`` removes every child of its directory
    that did not come from this same layer.

Whiteouts never hide paths of their own layer (OCI image spec). A non-directory entry
replaces whatever exists at its path; a directory entry over an existing directory keeps
the directory and updates its metadata. Directory mtimes are set after all entries.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from lamina.errors import InvalidArgument, Unavailable
from lamina.layer import tarstream as ts
from lamina.safepath import IN_ROOT, clean_path, openat2
from lamina.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"

_ENV_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EROFS, errno.EMFILE,
               errno.ENFILE)


@value
class ApplyResult:
    """What :func:`apply_layer` did: ``entries`` tar entries (meta headers not counted),
    ``content_size`` the sum of the sizes of regular files and symlink targets."""

    entries: int
    content_size: int


# -- name checks (shared with ingest; clean_path is lamina.safepath's) ----------------------

def check_member(name: str, linkname: str, type: bytes) -> str:
    """Validate one tar entry and return its cleaned relative path ("." for the root).

    Raises InvalidArgument (one line, naming the entry) for: empty names, NUL bytes,
    names that escape the root after cleaning (``../x``, ``a/../../x``), hardlink targets
    that escape or are empty, ``.wh..wh.*`` names other than ``.wh..wh..opq``, whiteouts
    of ``.``/``..``/nothing, ``.wh.`` used as a parent directory, non-directories at the
    root, and empty symlink targets. Absolute names and hardlink targets are made relative.
    Symlink targets are not restricted: extraction resolves everything inside the root.
    """
    if not name:
        raise InvalidArgument("invalid layer tar: entry with an empty name")
    if "\x00" in name or "\x00" in linkname:
        raise InvalidArgument(f"invalid layer tar: entry {name!r} contains a NUL byte")
    clean = clean_path(name)
    if clean is None:
        raise InvalidArgument(f"invalid layer tar: entry {name!r} escapes the root directory")
    if clean == ".":
        if type != ts.DIR:
            raise InvalidArgument(f"invalid layer tar: entry {name!r} names the root directory "
                                  "but is not a directory")
        return clean
    parent, _, base = clean.rpartition("/")
    if base.startswith(WHITEOUT_PREFIX):
        if base.startswith(WHITEOUT_META_PREFIX):
            if base != WHITEOUT_OPAQUE:
                raise InvalidArgument(f"invalid layer tar: entry {name!r}: unknown whiteout "
                                      f"meta name {base!r} (only {WHITEOUT_OPAQUE} is defined)")
        elif base[len(WHITEOUT_PREFIX):] in ("", ".", ".."):
            raise InvalidArgument(f"invalid layer tar: entry {name!r} is a whiteout of "
                                  f"{base[len(WHITEOUT_PREFIX):] or 'nothing'!r}")
    if parent and any(c.startswith(WHITEOUT_PREFIX) for c in parent.split("/")):
        raise InvalidArgument(f"invalid layer tar: entry {name!r}: a whiteout name "
                              f"({WHITEOUT_PREFIX}*) cannot be a directory")
    if type == ts.LNK:
        if not linkname:
            raise InvalidArgument(f"invalid layer tar: hardlink {name!r} has an empty target")
        target = clean_path(linkname)
        if target is None:
            raise InvalidArgument(f"invalid layer tar: hardlink {name!r} -> {linkname!r} "
                                  "escapes the root directory")
        if target == ".":
            raise InvalidArgument(f"invalid layer tar: hardlink {name!r} -> {linkname!r} "
                                  "points at the root directory")
    elif type == ts.SYM and not linkname:
        raise InvalidArgument(f"invalid layer tar: symlink {name!r} has an empty target")
    return clean


_DIR_PATH = os.O_PATH | os.O_DIRECTORY


class _EntryError(Exception):
    """An entry-level problem already phrased for the user."""


class _Applier:
    def __init__(self, root: str, mode: str) -> None:
        self.mode = mode
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.unpacked: set[str] = set()
        self.dir_times: dict[str, int] = {}
        self._cache_path: str | None = None
        self._cache_fd = -1
        self.chown = os.geteuid() == 0

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    # -- path resolution ---------------------------------------------------------------------
    def _drop_cache(self) -> None:
        if self._cache_fd >= 0:
            os.close(self._cache_fd)
        self._cache_fd = -1
        self._cache_path = None

    def _open_dir(self, path: str) -> int:
        return openat2(self.root_fd, path, _DIR_PATH, IN_ROOT)

    def parent(self, path: str, *, create: bool = True) -> tuple[int, str]:
        """(O_PATH fd of the parent directory resolved in root, last component).

        The fd is borrowed (owned by the cache or the root). Missing parents are created
        with mode 0755 when ``create``; a parent that is not a directory is an error.
        """
        dirname, _, base = path.rpartition("/")
        if not dirname:
            return self.root_fd, base
        if dirname == self._cache_path:
            return self._cache_fd, base
        try:
            fd = self._open_dir(dirname)
        except FileNotFoundError:
            if not create:
                raise
            fd = self._make_parents(dirname)
        self._drop_cache()
        self._cache_path, self._cache_fd = dirname, fd
        return fd, base

    def _make_parents(self, dirname: str) -> int:
        parts = dirname.split("/")
        fd = self.root_fd
        try:
            for i, comp in enumerate(parts):
                prefix = "/".join(parts[:i + 1])
                try:
                    nfd = self._open_dir(prefix)
                except FileNotFoundError:
                    try:
                        os.mkdir(comp, 0o755, dir_fd=fd)
                    except FileExistsError:  # a dangling symlink, most likely
                        raise _EntryError(f"parent {prefix!r} is a dangling symlink") from None
                    self._mark(prefix)
                    nfd = self._open_dir(prefix)
                if fd != self.root_fd:
                    os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            if fd != self.root_fd:
                os.close(fd)
            raise

    def _mark(self, path: str) -> None:
        """Record that ``path`` (and so its ancestors) comes from this layer."""
        unpacked = self.unpacked
        while path not in unpacked:
            unpacked.add(path)
            path = path.rpartition("/")[0]
            if not path:
                break

    def remove(self, pfd: int, base: str) -> bool:
        """Remove ``base`` in ``pfd`` (a whole tree for a directory). False if absent."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if pfd != self._cache_fd:
            # The cached directory may have been resolved through (or lie inside) what is
            # about to go. When pfd *is* the cached directory, only a child of it goes.
            self._drop_cache()
        if stat.S_ISDIR(st.st_mode):
            # shutil.rmtree with dir_fd walks with file descriptors and never follows symlinks
            shutil.rmtree(base, dir_fd=pfd)
        else:
            os.unlink(base, dir_fd=pfd)
        return True

    # -- metadata -----------------------------------------------------------------------------
    def _xattrs(self, target, e: ts.TarEntry, *, follow: bool = True) -> None:
        for k, v in e.xattrs.items():
            if k.startswith(("trusted.overlay.", "user.overlay.")):
                continue  # only lamina decides what overlayfs sees
            try:
                os.setxattr(target, k, v, follow_symlinks=follow)
            except OSError as err:
                if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and not k.startswith("security.capability"):
                    continue  # e.g. user.* on a filesystem without them; Docker ignores too
                raise

    def _meta_fd(self, fd: int, e: ts.TarEntry) -> None:
        if self.chown:
            os.fchown(fd, e.uid, e.gid)
        os.fchmod(fd, e.mode)
        if e.xattrs:
            self._xattrs(fd, e)

    # -- entries ------------------------------------------------------------------------------
    def apply(self, e: ts.TarEntry, path: str, reader: ts.TarReader) -> None:
        if path == ".":
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root_fd)
            try:
                self._meta_fd(fd, e)
            finally:
                os.close(fd)
            self.dir_times["."] = e.mtime_ns
            return
        base = path.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(path, base, e)
            return
        typ = e.type
        if typ == ts.DIR:
            self._dir(path, e)
        elif typ in ts.REGULAR_TYPES:
            self._file(path, e, reader)
        elif typ == ts.SYM:
            self._symlink(path, e)
        elif typ == ts.LNK:
            self._hardlink(path, e)
        elif typ in (ts.CHR, ts.BLK, ts.FIFO):
            self._node(path, e)
        else:
            raise _EntryError(f"unsupported tar entry type {typ!r}")
        self._mark(path)

    def _file(self, path: str, e: ts.TarEntry, reader: ts.TarReader) -> None:
        if e.sparse:
            raise _EntryError("sparse files are not supported")
        pfd, base = self.parent(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, base)
            pfd, base = self.parent(path)
            fd = os.open(base, flags, 0o600, dir_fd=pfd)
        try:
            write = os.write
            while True:
                piece = reader.read_data()
                if not piece:
                    break
                n = write(fd, piece)
                while n < len(piece):
                    piece = piece[n:]
                    n = write(fd, piece)
            self._meta_fd(fd, e)
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        finally:
            os.close(fd)

    def _dir(self, path: str, e: ts.TarEntry) -> None:
        pfd, base = self.parent(path)
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self.remove(pfd, base)
                pfd, base = self.parent(path)
                os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=pfd)
        try:
            self._meta_fd(fd, e)
        finally:
            os.close(fd)
        self.dir_times[path] = e.mtime_ns

    def _replace(self, pfd: int, base: str, path: str, create) -> int:
        """Run ``create(pfd, base)``; if the path exists, remove it and retry. Returns pfd."""
        try:
            create(pfd, base)
        except FileExistsError:
            self.remove(pfd, base)
            pfd, base = self.parent(path)
            create(pfd, base)
        return pfd

    def _symlink(self, path: str, e: ts.TarEntry) -> None:
        pfd, base = self.parent(path)
        target = e.linkname
        pfd = self._replace(pfd, base, path, lambda d, b: os.symlink(target, b, dir_fd=d))
        if self.chown:
            os.chown(base, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)
        if e.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", e, follow=False)
        os.utime(base, ns=(e.mtime_ns, e.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, path: str, e: ts.TarEntry) -> None:
        target = clean_path(e.linkname)
        assert target is not None and target != "."  # check_member guarantees it
        if target == path:
            raise _EntryError("hardlink to itself")
        try:
            tfd, tbase = self.parent(target, create=False)
            tst = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise _EntryError(f"hardlink target {e.linkname!r} does not exist") from None
        if stat.S_ISDIR(tst.st_mode):
            raise _EntryError(f"hardlink target {e.linkname!r} is a directory")
        # Keep our own O_PATH fd of the target's directory: resolving the link's parent
        # may evict the cached one.
        tdir = target.rpartition("/")[0]
        tfd = os.dup(tfd) if tdir else self.root_fd
        try:
            pfd, base = self.parent(path)

            def link(d: int, b: str) -> None:
                # no AT_SYMLINK_FOLLOW: a symlink target is linked itself, never followed
                os.link(tbase, b, src_dir_fd=tfd, dst_dir_fd=d, follow_symlinks=False)

            try:
                link(pfd, base)
            except FileExistsError:
                if os.path.samestat(tst, os.stat(base, dir_fd=pfd, follow_symlinks=False)):
                    return  # already that very inode
                self.remove(pfd, base)
                pfd, base = self.parent(path)
                link(pfd, base)
        except FileNotFoundError:
            raise _EntryError(f"hardlink target {e.linkname!r} does not exist") from None
        finally:
            if tfd != self.root_fd:
                os.close(tfd)

    def _node(self, path: str, e: ts.TarEntry) -> None:
        pfd, base = self.parent(path)
        if e.type == ts.FIFO:
            pfd = self._replace(pfd, base, path, lambda d, b: os.mkfifo(b, 0o600, dir_fd=d))
        else:
            kind = stat.S_IFCHR if e.type == ts.CHR else stat.S_IFBLK
            dev = os.makedev(e.devmajor, e.devminor)
            pfd = self._replace(pfd, base, path,
                                lambda d, b: os.mknod(b, kind | 0o600, dev, dir_fd=d))
        # We just created a node (not a symlink) under pfd, nothing else writes here:
        # chmod by name is safe.
        if self.chown:
            os.chown(base, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(base, e.mode, dir_fd=pfd)
        if e.xattrs:
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", e, follow=False)
        os.utime(base, ns=(e.mtime_ns, e.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, path: str, base: str, e: ts.TarEntry) -> None:
        dirname = path.rpartition("/")[0]
        if base == WHITEOUT_OPAQUE:
            if self.mode == "overlay":
                pfd, _ = self.parent(path)
                fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
                try:
                    os.setxattr(fd, OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
                if dirname:
                    self._mark(dirname)
            else:
                try:
                    pfd, _ = self.parent(path, create=False)
                except FileNotFoundError:
                    return
                self._clear_opaque(pfd, dirname)
            return
        victim = (dirname + "/" if dirname else "") + base[len(WHITEOUT_PREFIX):]
        if victim in self.unpacked:
            return  # a whiteout never hides a path of its own layer
        if self.mode == "overlay":
            pfd, _ = self.parent(path)
            name = base[len(WHITEOUT_PREFIX):]
            self._replace(pfd, name, victim,
                          lambda d, b: os.mknod(b, stat.S_IFCHR, os.makedev(0, 0), dir_fd=d))
            pfd, name = self.parent(victim)
            if self.chown:
                os.chown(name, e.uid, e.gid, dir_fd=pfd, follow_symlinks=False)
        else:
            try:
                pfd, name = self.parent(victim, create=False)
            except (FileNotFoundError, NotADirectoryError):
                return
            self.remove(pfd, name)

    def _clear_opaque(self, dfd: int, dirname: str) -> None:
        """Remove the children of ``dirname`` (fd ``dfd``) that this layer did not write."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dfd)
        try:
            for name in os.listdir(fd):
                child = f"{dirname}/{name}" if dirname else name
                if child not in self.unpacked:
                    self.remove(fd, name)
                    continue
                try:
                    cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=fd)
                except (NotADirectoryError, OSError) as err:
                    if isinstance(err, NotADirectoryError) or err.errno == errno.ELOOP:
                        continue
                    raise
                try:
                    self._clear_opaque(cfd, child)
                finally:
                    os.close(cfd)
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Set directory mtimes now that their children exist."""
        self._drop_cache()
        for path, ns in self.dir_times.items():
            try:
                if path == ".":
                    os.utime(f"/proc/self/fd/{self.root_fd}", ns=(ns, ns))
                    continue
                pfd, base = self.parent(path, create=False)
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue  # replaced or removed by a later entry
        self._drop_cache()


def apply_layer(src: BinaryIO, root: str, *, mode: str, check_only: bool = False) -> ApplyResult:
    """Unpack the (decompressed) layer tar ``src`` into the existing directory ``root``.

    ``mode`` is "overlay" (one layer into its own snapshot dir; whiteouts become overlayfs
    whiteouts) or "merge" (apply on top of lower layers; whiteouts delete). Every entry is
    validated with :func:`check_member` first; any malformed or unsafe entry raises
    InvalidArgument naming it. Not atomic: after an error ``root`` holds a partial layer
    and the caller should discard it. With ``check_only`` the whole tar is read and
    validated and ``root`` is not touched (it need not exist).
    Ownership is applied only when running as root; xattrs (incl. security.capability) are
    applied after chown/chmod so the kernel does not clear them.
    """
    if mode not in ("overlay", "merge"):
        raise InvalidArgument(f"apply layer: unknown mode {mode!r}: want 'overlay' or 'merge'")
    reader = ts.TarReader(lambda: src.read(1 << 20))
    entries = 0
    content = 0
    applier = None if check_only else _Applier(root, mode)
    try:
        for e in reader:
            path = check_member(e.name, e.linkname, e.type)
            entries += 1
            if e.type in ts.REGULAR_TYPES:
                content += e.size
            elif e.type == ts.SYM:  # counted as Docker counts it: the symlink's lstat size
                content += len(os.fsencode(e.linkname))
            if applier is None:
                continue
            try:
                applier.apply(e, path, reader)
            except _EntryError as err:
                raise InvalidArgument(f"apply layer: entry {e.name!r}: {err}") from None
            except OSError as err:
                msg = f"apply layer: entry {e.name!r}: {err.strerror or err}"
                if err.errno in _ENV_ERRNOS:
                    raise Unavailable(msg) from None
                raise InvalidArgument(msg) from None
        reader.drain()
        if applier is not None:
            applier.finish()
    finally:
        if applier is not None:
            applier.close()
    return ApplyResult(entries, content)
