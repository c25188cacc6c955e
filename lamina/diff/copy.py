"""``docker cp`` both ways and ``docker export``, against a container's root directory.

``root`` is the container's filesystem as the host sees it: a mounted merged overlay, or
``/proc/<pid>/root`` of a running container. Every path *inside the container* is resolved
with ``openat2(2)`` and ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` on a descriptor of
``root``, so ``..`` and symlinks (absolute or relative) resolve as if ``root`` were ``/``;
below the resolved start point every entry is opened relative to its parent's descriptor
with ``O_NOFOLLOW`` and created with ``O_EXCL``. A process in the container that swaps a
directory for a symlink mid-copy can make the copy fail, never make it read or write
outside ``root``. Host paths are the caller's own and resolved normally.

Docker's rules (``docker container cp`` reference; messages checked against Docker 20.10
with CLI 28.2 on this host). SRC ending in ``/`` or ``/.`` must be a directory; SRC ending
in ``/.`` (or SRC ``/``) means "the contents of SRC".

===========================  =================================================
SRC file, DEST missing       DEST is created as a file (its parent must exist)
SRC file, DEST missing + /   error ``no such directory``
SRC file, DEST a file        DEST is overwritten
SRC file, DEST a directory   copied into it as ``DEST/basename(SRC)``
SRC dir, DEST missing        DEST is created with SRC's contents
SRC dir, DEST a file         error ``cannot copy directory``
SRC dir, DEST a directory    copied into it as ``DEST/basename(SRC)``; with ``/.``
                             only SRC's contents are copied into DEST
===========================  =================================================

A DEST that is a symlink is followed (inside the container for :func:`copy_in`). SRC that
is a symlink is copied as a symlink unless ``follow_link`` (``-L``); a followed link keeps
the link's name. Inside a copied tree an existing directory is kept (and takes the
source's metadata); a directory never replaces a non-directory nor the other way round
(Docker's ``NoOverwriteDirNonDir``): that is an error naming the path. Hard links within
the copied tree stay hard links; sockets are skipped. Modes (with setuid/setgid/sticky),
mtimes and xattrs (except ``trusted.overlay.*``/``user.overlay.*``) are kept.

Ownership: :func:`copy_in` gives every file to the container's root, 0:0, unless
``archive`` (``-a``) keeps the source's uid/gid (Docker documents this; Docker 20.10 in
fact keeps the uid/gid in both cases). :func:`copy_out` gives the files to the calling user
unless ``archive`` keeps the container's uid/gid.

Not atomic: after an error the destination may hold part of the copy. Errors are
:mod:`lamina.errors` classes with one-line messages naming the path: NotFound
(``Could not find the file /x in container <name>``), InvalidArgument for a rule violation or an
unsafe tar, Unavailable for a full or read-only filesystem.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

from lamina.errors import InvalidArgument, LaminaError, NotFound, Unavailable
from lamina.layer import tarstream as ts
from lamina.layer.writer import tar_header, write_layer
from lamina.safepath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, clean_path, openat2
from lamina.values import field, value

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO

__all__ = ["copy_in", "copy_out", "copy_in_tar", "copy_out_tar", "export_tar"]

_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_AT_FDCWD = -100
_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_SKIP_XATTRS = ("trusted.overlay.", "user.overlay.")
_ENV_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EROFS, errno.EMFILE,
               errno.ENFILE)
_ZERO = bytes(512)


# -- entries ---------------------------------------------------------------------------------

@value(frozen=False)
class _Meta:
    kind: str  # dir, file, symlink, fifo, chr, blk
    mode: int  # permission bits with setuid/setgid/sticky
    uid: int
    gid: int
    mtime_ns: int
    rdev: int = 0
    size: int = 0
    linkname: str = ""
    xattrs: list[tuple[str, bytes]] = field(default_factory=list)


def _kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "chr"
    if stat.S_ISBLK(mode):
        return "blk"
    return None  # sockets (and anything stranger) are skipped, as Docker does


def _meta(st: os.stat_result, *, linkname: str = "", fd: int | None = None) -> _Meta:
    m = _Meta(_kind(st.st_mode) or "", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
              st.st_mtime_ns, st.st_rdev, st.st_size, linkname)
    if fd is not None:
        m.xattrs = _read_xattrs(fd)
    return m


def _read_xattrs(fd: int) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return []
    out = []
    for k in sorted(names):
        if k.startswith(_SKIP_XATTRS):
            continue
        try:
            out.append((k, os.getxattr(fd, k)))
        except OSError:
            continue
    return out


class _Data:
    """File content: an fd to copy from, or a stream of chunks (a tar entry)."""

    def __init__(self, fd: int | None = None, chunks: Callable[[], Iterator[bytes]] | None = None):
        self.fd = fd
        self.chunks = chunks

    def iter_chunks(self) -> Iterator[bytes]:
        if self.chunks is not None:
            yield from self.chunks()
            return
        assert self.fd is not None
        while True:
            b = os.read(self.fd, 1 << 20)
            if not b:
                return
            yield b


def _copy_fd(src: int, dst: int) -> None:
    """Copy all of ``src`` to ``dst`` in the kernel where possible."""
    for fn in (lambda: os.copy_file_range(src, dst, 1 << 30),
               lambda: os.sendfile(dst, src, None, 1 << 30)):
        try:
            while fn():
                pass
            return
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                 errno.ENOTSUP, errno.EBADF):
                raise
    while True:
        b = os.read(src, 1 << 20)
        if not b:
            return
        _write_all(dst, b)


def _write_all(fd: int, b) -> None:
    mv = memoryview(b)
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


# -- sinks -----------------------------------------------------------------------------------

class _FsSink:
    """Creates entries below the directory ``top`` (an O_PATH fd, borrowed).

    Entry paths are relative to ``top`` ("" is ``top`` itself) and resolved with
    RESOLVE_IN_ROOT on ``top``, so even a tree changed under our feet stays inside it.
    ``owner``: None (leave files to the caller), "keep" (the entry's uid/gid) or (uid, gid).
    ``display`` names ``top`` in messages.
    """

    def __init__(self, top: int, display: str, owner) -> None:
        self.top = top
        self.display = display.rstrip("/") or "/"
        self.owner = owner
        self.chown = os.geteuid() == 0 and owner is not None
        self._cpath: str | None = None
        self._cfd = -1

    def close(self) -> None:
        self._drop()

    def show(self, rel: str) -> str:
        if not rel:
            return self.display
        return ("" if self.display == "/" else self.display) + "/" + rel

    def _drop(self) -> None:
        if self._cfd >= 0:
            os.close(self._cfd)
        self._cfd, self._cpath = -1, None

    def _ids(self, m: _Meta) -> tuple[int, int] | None:
        if not self.chown:
            return None
        return (m.uid, m.gid) if self.owner == "keep" else self.owner

    def parent(self, rel: str) -> tuple[int, str]:
        """(borrowed O_PATH fd of the parent of ``rel``, last component); missing parents are
        created 0755 (a tar may omit them)."""
        dirname, _, base = rel.rpartition("/")
        if not dirname:
            return self.top, base
        if dirname != self._cpath:
            self._drop()
            try:
                fd = openat2(self.top, dirname, _DIR_PATH, _IN_ROOT)
            except FileNotFoundError:
                fd = self._make_parents(dirname)
            self._cpath, self._cfd = dirname, fd
        return self._cfd, base

    def _make_parents(self, dirname: str) -> int:
        parts = dirname.split("/")
        for i in range(len(parts)):
            prefix = "/".join(parts[:i + 1])
            try:
                fd = openat2(self.top, prefix, _DIR_PATH, _IN_ROOT)
            except FileNotFoundError:
                pfd = self.top if i == 0 else openat2(self.top, "/".join(parts[:i]),
                                                      _DIR_PATH, _IN_ROOT)
                try:
                    os.mkdir(parts[i], 0o755, dir_fd=pfd)
                except FileExistsError:
                    raise InvalidArgument(f"cannot create directory {self.show(prefix)}: "
                                          "a dangling symlink is in the way") from None
                finally:
                    if pfd != self.top:
                        os.close(pfd)
                continue
            if i == len(parts) - 1:
                return fd
            os.close(fd)
        return openat2(self.top, dirname, _DIR_PATH, _IN_ROOT)

    def _clear(self, pfd: int, base: str, rel: str) -> None:
        """Make room for a non-directory at ``rel``."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f'cannot overwrite directory "{self.show(rel)}" with '
                                  "non-directory")
        os.unlink(base, dir_fd=pfd)

    def _xattrs(self, fd: int, m: _Meta) -> None:
        for k, v in m.xattrs:
            if k.startswith(_SKIP_XATTRS):
                continue
            try:
                os.setxattr(fd, k, v)
            except OSError as err:
                if err.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
                    continue  # e.g. security.* as non-root, user.* on a fs without them
                raise

    def _fd_meta(self, fd: int, m: _Meta, *, chmod: bool = True) -> None:
        ids = self._ids(m)
        if ids is not None:
            os.fchown(fd, *ids)
        if chmod:
            os.fchmod(fd, m.mode)
        if m.xattrs:
            self._xattrs(fd, m)  # after chown/chmod, which would clear security.capability

    def dir_begin(self, rel: str, m: _Meta) -> None:
        if not rel:
            return  # the destination dir itself ("SRC/." or a tar's "./"): left as it is
        pfd, base = self.parent(rel)
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f'cannot overwrite non-directory "{self.show(rel)}" '
                                      "with directory") from None
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=pfd)
        try:
            # the mode comes in dir_end, so a read-only source dir can still be filled
            self._fd_meta(fd, m, chmod=False)
        finally:
            os.close(fd)

    def dir_end(self, rel: str, m: _Meta) -> None:
        if not rel:
            return
        pfd, base = self.parent(rel)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=pfd)
        try:
            os.fchmod(fd, m.mode)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def file(self, rel: str, m: _Meta, data: _Data) -> None:
        pfd, base = self.parent(rel)
        self._clear(pfd, base, rel)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            if data.fd is not None:
                _copy_fd(data.fd, fd)
            else:
                for chunk in data.iter_chunks():
                    _write_all(fd, chunk)
            self._fd_meta(fd, m)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def symlink(self, rel: str, m: _Meta) -> None:
        pfd, base = self.parent(rel)
        self._clear(pfd, base, rel)
        os.symlink(m.linkname, base, dir_fd=pfd)
        ids = self._ids(m)
        if ids is not None:
            os.chown(base, *ids, dir_fd=pfd, follow_symlinks=False)
        os.utime(base, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def node(self, rel: str, m: _Meta) -> None:
        pfd, base = self.parent(rel)
        self._clear(pfd, base, rel)
        if m.kind == "fifo":
            os.mkfifo(base, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if m.kind == "chr" else stat.S_IFBLK
            os.mknod(base, kind | 0o600, m.rdev, dir_fd=pfd)
        # Work on the node through an O_PATH fd: a name could be swapped for a symlink.
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise InvalidArgument(f"{self.show(rel)} changed while being created")
            proc = f"/proc/self/fd/{fd}"
            ids = self._ids(m)
            if ids is not None:
                os.chown(proc, *ids)
            os.chmod(proc, m.mode)
            os.utime(proc, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)

    def hardlink(self, rel: str, m: _Meta, target: str) -> None:
        tdir, _, tbase = target.rpartition("/")
        tfd = openat2(self.top, tdir, _DIR_PATH, _IN_ROOT) if tdir else os.dup(self.top)
        try:
            tst = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(tst.st_mode):
                raise InvalidArgument(f"hard link {self.show(rel)}: target "
                                      f"{self.show(target)} is a directory")
            pfd, base = self.parent(rel)
            try:
                if os.path.samestat(tst, os.stat(base, dir_fd=pfd, follow_symlinks=False)):
                    return
            except FileNotFoundError:
                pass
            self._clear(pfd, base, rel)
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def finish(self) -> None:
        self._drop()


class _TarSink:
    """Writes entries as a tar (names relative, directories ending in "/", uid/gid kept)."""

    def __init__(self, out: BinaryIO, prefix: str = "") -> None:
        self.out = out
        self.prefix = prefix  # "./" when the contents of a directory are copied

    def _name(self, rel: str, is_dir: bool = False) -> bytes:
        name = self.prefix + rel if rel else (self.prefix or ".")
        if is_dir and not name.endswith("/"):
            name += "/"
        return os.fsencode(name)

    def _hdr(self, rel: str, m: _Meta, typ: bytes, *, size: int = 0, linkname: str = "",
             is_dir: bool = False) -> None:
        xattrs = [(k.encode("utf-8", "surrogateescape"), v) for k, v in m.xattrs]
        self.out.write(tar_header(
            self._name(rel, is_dir), mode=m.mode, uid=m.uid, gid=m.gid, size=size,
            mtime=m.mtime_ns // 1_000_000_000, typ=typ, linkname=os.fsencode(linkname),
            devmajor=os.major(m.rdev) if typ in (b"3", b"4") else 0,
            devminor=os.minor(m.rdev) if typ in (b"3", b"4") else 0, xattrs=xattrs or None))

    def dir_begin(self, rel: str, m: _Meta) -> None:
        self._hdr(rel, m, b"5", is_dir=True)

    def dir_end(self, rel: str, m: _Meta) -> None:
        pass

    def file(self, rel: str, m: _Meta, data: _Data) -> None:
        size = m.size
        self._hdr(rel, m, b"0", size=size)
        left = size
        for chunk in data.iter_chunks():
            if left <= 0:
                break
            chunk = chunk[:left]
            self.out.write(chunk)
            left -= len(chunk)
        while left > 0:  # the file shrank while we read it: keep the tar well formed
            n = min(left, 1 << 20)
            self.out.write(bytes(n))
            left -= n
        if size % 512:
            self.out.write(_ZERO[:512 - size % 512])

    def symlink(self, rel: str, m: _Meta) -> None:
        self._hdr(rel, m, b"2", linkname=m.linkname)

    def node(self, rel: str, m: _Meta) -> None:
        self._hdr(rel, m, {"fifo": b"6", "chr": b"3", "blk": b"4"}[m.kind])

    def hardlink(self, rel: str, m: _Meta, target: str) -> None:
        self._hdr(rel, m, b"1", linkname=self.prefix + target)

    def finish(self) -> None:
        self.out.write(_ZERO + _ZERO)

    def close(self) -> None:
        pass


# -- source walk -----------------------------------------------------------------------------

@value(frozen=False)
class _Node:
    """A resolved source: its stat, and either (pfd, name) to open it without following,
    or ``fd`` (O_PATH) of an already resolved target (a followed link, a root dir)."""

    st: os.stat_result
    pfd: int = -1
    name: str = ""
    fd: int = -1

    def close(self) -> None:
        for fd in (self.pfd, self.fd):
            if fd >= 0 and fd != _AT_FDCWD:
                os.close(fd)
        self.pfd = self.fd = -1


class _Walker:
    def __init__(self, sink) -> None:
        self.sink = sink
        self.links: dict[tuple[int, int], str] = {}

    def top(self, node: _Node, rel: str) -> None:
        if node.fd < 0:
            self.entry(node.pfd, node.name, node.st, rel)
            return
        kind = _kind(node.st.st_mode)
        if kind == "dir":
            fd = os.open(f"/proc/self/fd/{node.fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self.directory(fd, rel)
        elif kind == "file":
            fd = os.open(f"/proc/self/fd/{node.fd}",
                         os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            self.regular(fd, rel)
        elif kind is not None:
            self.sink.node(rel, _meta(node.st))

    def entry(self, pfd: int, name: str, st: os.stat_result, rel: str) -> None:
        kind = _kind(st.st_mode)
        if kind == "dir":
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=pfd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return  # changed under us (a running container): skip it
                raise
            self.directory(fd, rel)
        elif kind == "file":
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                             | os.O_CLOEXEC, dir_fd=pfd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ELOOP):
                    return
                raise
            self.regular(fd, rel)
        elif kind == "symlink":
            try:
                target = os.readlink(name, dir_fd=pfd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.EINVAL):
                    return
                raise
            self.sink.symlink(rel, _meta(st, linkname=target))
        elif kind is not None:
            if st.st_nlink > 1 and self._linked(st, rel):
                return
            self.sink.node(rel, _meta(st))

    def _linked(self, st: os.stat_result, rel: str) -> bool:
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = rel
            return False
        self.sink.hardlink(rel, _meta(st), first)
        return True

    def directory(self, fd: int, rel: str) -> None:
        try:
            st = os.fstat(fd)
            m = _meta(st, fd=fd)
            self.sink.dir_begin(rel, m)
            with os.scandir(fd) as it:
                names = sorted((e.name for e in it), key=os.fsencode)
            for name in names:
                try:
                    cst = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                self.entry(fd, name, cst, f"{rel}/{name}" if rel else name)
            self.sink.dir_end(rel, m)
        finally:
            os.close(fd)

    def regular(self, fd: int, rel: str) -> None:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return  # swapped for something else under us
            if st.st_nlink > 1 and self._linked(st, rel):
                return
            self.sink.file(rel, _meta(st, fd=fd), _Data(fd=fd))
        finally:
            os.close(fd)


# -- path rules ------------------------------------------------------------------------------

@value(frozen=False)
class _Spec:
    """A path as the user typed it, split for Docker's rules."""

    given: str
    parent: str          # what to open as the parent dir ("." for none)
    base: str            # last component ("" for the root itself)
    asserts_dir: bool    # ends in "/" or "/." (or is ".")
    contents: bool       # ends in "/." (or is "." or the root): copy what is inside


def _container_spec(path: str) -> _Spec:
    if not path:
        raise InvalidArgument("container path must not be empty")
    if "\0" in path:
        raise InvalidArgument(f"container path {path!r} contains a NUL byte")
    trail = path.endswith("/") or path.endswith("/.") or path == "."
    contents = path.endswith("/.") or path == "."
    parts: list[str] = []
    for c in path.split("/"):  # lexical, like Docker's filepath.Clean; ".." stops at "/"
        if c in ("", "."):
            continue
        if c == "..":
            if parts:
                parts.pop()
        else:
            parts.append(c)
    if not parts:
        return _Spec(path, ".", "", True, True)
    return _Spec(path, "/".join(parts[:-1]) or ".", parts[-1], trail, contents)


def _host_spec(path: str) -> _Spec:
    if not path:
        raise InvalidArgument("host path must not be empty")
    contents = path.endswith("/.") or path == "."
    trail = contents or path.endswith("/")
    p = path[:-2] if path.endswith("/.") else path
    p = p.rstrip("/") or ("/" if path.startswith("/") else ".")
    base = os.path.basename(p)
    if p == "/" or base in (".", ".."):
        return _Spec(path, p, "", True, contents or p == "/")
    return _Spec(path, os.path.dirname(p) or ".", base, trail, contents)


def _resolve(base_fd: int, resolve: int, spec: _Spec, *, follow: bool,
             missing: Callable[[str], LaminaError]) -> _Node:
    """Resolve ``spec`` relative to ``base_fd`` (container root or AT_FDCWD)."""
    if not spec.base:
        try:
            fd = openat2(base_fd, spec.parent, os.O_PATH | os.O_CLOEXEC, resolve)
        except (FileNotFoundError, NotADirectoryError):
            raise missing(spec.given) from None
        return _Node(os.fstat(fd), fd=fd)
    try:
        pfd = openat2(base_fd, spec.parent, _DIR_PATH, resolve)
    except (FileNotFoundError, NotADirectoryError):
        raise missing(spec.given) from None
    try:
        st = os.stat(spec.base, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode) and (follow or spec.asserts_dir):
            path = spec.base if spec.parent == "." else spec.parent + "/" + spec.base
            fd = openat2(base_fd, path, os.O_PATH | os.O_CLOEXEC, resolve)
            return _Node(os.fstat(fd), pfd=pfd, name=spec.base, fd=fd)
    except (FileNotFoundError, NotADirectoryError):
        os.close(pfd)
        raise missing(spec.given) from None
    except BaseException:
        os.close(pfd)
        raise
    return _Node(st, pfd=pfd, name=spec.base)


@value(frozen=False)
class _Dest:
    exists: bool
    is_dir: bool
    pfd: int = -1     # parent dir (O_PATH) and name, for a missing or non-dir destination
    base: str = ""
    dfd: int = -1     # the directory (O_PATH), for an existing directory
    shown: str = ""

    def close(self) -> None:
        for fd in (self.pfd, self.dfd):
            if fd >= 0:
                os.close(fd)
        self.pfd = self.dfd = -1


def _container_dest(root_fd: int, dest: str, container: str = "") -> _Dest:
    """Resolve a destination in the container; a symlink at the end is followed (resolved
    inside the container, like everything else)."""
    spec = _container_spec(dest)
    for _ in range(40):
        if not spec.base:
            return _Dest(True, True, dfd=openat2(root_fd, ".", _DIR_PATH, _IN_ROOT),
                         shown=dest)
        try:
            pfd = openat2(root_fd, spec.parent, _DIR_PATH, _IN_ROOT)
        except (FileNotFoundError, NotADirectoryError):
            shown = "/" if spec.parent == "." else "/" + spec.parent
            raise _not_in_container(shown, container) from None
        try:
            st = os.stat(spec.base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return _Dest(False, False, pfd=pfd, base=spec.base, shown=dest)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(spec.base, dir_fd=pfd)
            os.close(pfd)
            joined = target if target.startswith("/") else \
                ("" if spec.parent == "." else spec.parent) + "/" + target
            spec = _container_spec(joined + ("/" if spec.asserts_dir else ""))
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                dfd = os.open(spec.base, _DIR_PATH | os.O_NOFOLLOW, dir_fd=pfd)
            finally:
                os.close(pfd)
            return _Dest(True, True, dfd=dfd, shown=dest)
        return _Dest(True, False, pfd=pfd, base=spec.base, shown=dest)
    raise InvalidArgument(f"destination {dest}: too many levels of symbolic links")


def _host_dest(dest: str) -> _Dest:
    p = dest
    if os.path.islink(p.rstrip("/") or "/"):
        p = os.path.realpath(p) + ("/" if dest.endswith("/") else "")
    spec = _host_spec(p)
    whole = spec.parent if not spec.base else os.path.join(spec.parent, spec.base)
    try:
        st = os.stat(whole)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return _Dest(True, True, dfd=os.open(whole, _DIR_PATH), shown=dest)
    if not spec.base:
        raise NotFound(f'invalid output path: directory "{os.path.abspath(whole)}" does not exist')
    try:
        pfd = os.open(spec.parent, _DIR_PATH)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f'invalid output path: directory "{os.path.abspath(spec.parent)}" '
                       "does not exist") from None
    return _Dest(st is not None, False, pfd=pfd, base=spec.base, shown=dest)


def _no_such_dir(dest: str, container: str = "") -> InvalidArgument:
    """Docker's ``no such directory`` (a destination ending in "/" that is not a directory)."""
    return InvalidArgument(f"no such directory: {dest}" + (f" in container {container}" if container else ""))


def _plan(src: str, src_spec: _Spec, node: _Node, name: str, dest: str, d: _Dest,
          dest_asserts_dir: bool, container: str = "") -> tuple[int, str]:
    """Docker's rules: (fd of the sink's top dir, relative name of the copy's top entry)."""
    is_dir = stat.S_ISDIR(node.st.st_mode)
    if src_spec.asserts_dir and not is_dir:
        raise InvalidArgument(f"cannot copy {src}: not a directory")
    if d.exists and d.is_dir:
        if is_dir and src_spec.contents:
            return d.dfd, ""
        return d.dfd, name
    if d.exists:
        if is_dir:
            raise InvalidArgument(f"cannot copy directory {src} to {dest}: "
                                  "the destination is not a directory")
        if dest_asserts_dir:
            raise _no_such_dir(dest, container)
        return d.pfd, d.base
    if not is_dir and dest_asserts_dir:
        raise _no_such_dir(dest, container)
    return d.pfd, d.base


def _wrap(what: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except LaminaError:
        raise
    except OSError as err:
        where = f" {err.filename}" if isinstance(err.filename, str) else ""
        msg = f"{what}:{where} {err.strerror or err}"
        if err.errno in _ENV_ERRNOS:
            raise Unavailable(msg) from None
        raise InvalidArgument(msg) from None


def _open_root(root: str) -> int:
    try:
        return os.open(root, _DIR_PATH)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"container root {root!r} does not exist or is not a directory") from None


def _not_in_container(path: str, container: str = "") -> NotFound:
    """Docker's words, the container as the user named it."""
    return NotFound(f"Could not find the file {path} in container {container}".rstrip())


def _not_on_host(path: str) -> NotFound:
    return NotFound(f"lstat {path}: no such file or directory")


# -- API -------------------------------------------------------------------------------------

def copy_in(root: str, src: str, dest: str, *, archive: bool = False,
            follow_link: bool = False, container: str = "") -> None:
    """``docker cp SRC CONTAINER:DEST``: copy host path ``src`` to ``dest`` in the container
    whose root directory is ``root``, by Docker's rules (module docstring).

    Files become 0:0 unless ``archive`` keeps their uid/gid. ``follow_link`` copies what a
    symlink ``src`` points to (under the link's name) instead of the link.
    """
    spec = _host_spec(src)
    node = _resolve(_AT_FDCWD, 0, spec, follow=follow_link, missing=_not_on_host)
    root_fd = -1
    d = None
    try:
        root_fd = _open_root(root)
        d = _container_dest(root_fd, dest, container)
        name = spec.base or os.path.basename(os.path.realpath(spec.parent)) or "root"
        top, rel = _plan(src, spec, node, name, dest, d, _container_spec(dest).asserts_dir, container)
        sink = _FsSink(top, dest if (d.exists and d.is_dir) else
                       os.path.dirname(dest.rstrip("/")) or "/", "keep" if archive else (0, 0))
        try:
            _wrap(f"copy {src} to container {dest}", lambda: _Walker(sink).top(node, rel))
        finally:
            sink.close()
    finally:
        node.close()
        if d is not None:
            d.close()
        if root_fd >= 0:
            os.close(root_fd)


def copy_out(root: str, src: str, dest: str, *, follow_link: bool = False,
             archive: bool = False, container: str = "") -> None:
    """``docker cp CONTAINER:SRC DEST``: copy ``src`` in the container whose root directory is
    ``root`` to host path ``dest``, by Docker's rules (module docstring).

    The copies belong to the calling user unless ``archive`` keeps the container's uid/gid.
    For ``DEST`` ``-`` use :func:`copy_out_tar`.
    """
    root_fd = _open_root(root)
    node = d = None
    try:
        spec = _container_spec(src)
        node = _resolve(root_fd, _IN_ROOT, spec, follow=follow_link, missing=lambda p: _not_in_container(p, container))
        d = _host_dest(dest)
        name = spec.base or "root"
        top, rel = _plan(src, spec, node, name, dest, d, _host_spec(dest).asserts_dir)
        shown = dest if (d.exists and d.is_dir) else (os.path.dirname(dest.rstrip("/")) or ".")
        sink = _FsSink(top, shown, "keep" if archive else None)
        try:
            _wrap(f"copy {src} from container to {dest}", lambda: _Walker(sink).top(node, rel))
        finally:
            sink.close()
    finally:
        if node is not None:
            node.close()
        if d is not None:
            d.close()
        os.close(root_fd)


def copy_out_tar(root: str, src: str, out: BinaryIO, *, follow_link: bool = False,
                 container: str = "") -> None:
    """``docker cp CONTAINER:SRC -``: write ``src`` as a tar to the binary stream ``out``
    (not closed). Entries are named ``basename(SRC)``, ``basename(SRC)/...``; for ``SRC/.``
    (or ``/``) ``./`` and ``./...``. With ``follow_link`` a symlink ``src`` is written as what
    it points to, named by the target's base name (as Docker does). uid/gid are kept."""
    root_fd = _open_root(root)
    node = None
    try:
        spec = _container_spec(src)
        node = _resolve(root_fd, _IN_ROOT, spec, follow=follow_link, missing=lambda p: _not_in_container(p, container))
        if spec.asserts_dir and not stat.S_ISDIR(node.st.st_mode):
            raise InvalidArgument(f"cannot copy {src}: not a directory")
        if spec.contents and stat.S_ISDIR(node.st.st_mode):
            sink, rel = _TarSink(out, "./"), ""
        else:
            name = spec.base
            if node.fd >= 0 and spec.base:
                target = os.path.basename(os.readlink(f"/proc/self/fd/{node.fd}"))
                if target not in ("", ".", ".."):
                    name = target
            sink, rel = _TarSink(out), name

        def run() -> None:
            _Walker(sink).top(node, rel)
            sink.finish()
        _wrap(f"copy {src} from container", run)
    finally:
        if node is not None:
            node.close()
        os.close(root_fd)


def copy_in_tar(root: str, src: BinaryIO, dest: str, *, archive: bool = False,
                container: str = "") -> None:
    """``docker cp - CONTAINER:DEST``: extract the (uncompressed) tar stream ``src`` into the
    existing directory ``dest`` of the container whose root directory is ``root``.

    Entries are resolved inside ``dest`` (as Docker's chrooted extraction does): names that
    climb out with ``..`` are rejected, symlinks (also ones the tar just made) resolve inside
    ``dest``, hard link targets must be inside it. ``.wh.*`` names are ordinary files here.
    Files become 0:0 unless ``archive`` keeps the tar's uid/gid. The ``./`` entry does not
    change ``dest`` itself. Directory mtimes are set after all entries.
    """
    root_fd = _open_root(root)
    d = None
    try:
        d = _container_dest(root_fd, dest, container)
        if not (d.exists and d.is_dir):
            raise InvalidArgument(f'destination "{dest}" must be a directory')
        sink = _FsSink(d.dfd, dest, "keep" if archive else (0, 0))
        reader = ts.TarReader(lambda: src.read(1 << 20))
        dirs: list[tuple[str, _Meta]] = []

        def run() -> None:
            for e in reader:
                rel = _tar_member(e)
                if rel is None:
                    continue
                m = _Meta("", e.mode & 0o7777, e.uid, e.gid, e.mtime_ns,
                          os.makedev(e.devmajor, e.devminor), e.size, e.linkname,
                          sorted(e.xattrs.items()))
                typ = e.type
                if typ == ts.DIR:
                    m.kind = "dir"
                    sink.dir_begin(rel, m)
                    dirs.append((rel, m))
                elif typ in ts.REGULAR_TYPES:
                    if e.sparse:
                        raise InvalidArgument(f"tar entry {e.name!r}: sparse files are not "
                                              "supported")
                    m.kind = "file"
                    sink.file(rel, m, _Data(chunks=lambda: _tar_chunks(reader)))
                elif typ == ts.SYM:
                    m.kind = "symlink"
                    sink.symlink(rel, m)
                elif typ == ts.LNK:
                    target = clean_path(e.linkname)
                    if target is None or target == "." or not e.linkname:
                        raise InvalidArgument(f"tar entry {e.name!r}: hard link target "
                                              f"{e.linkname!r} is outside the destination")
                    try:
                        sink.hardlink(rel, m, target)
                    except (FileNotFoundError, NotADirectoryError):
                        raise InvalidArgument(f"tar entry {e.name!r}: hard link target "
                                              f"{e.linkname!r} does not exist") from None
                elif typ in (ts.CHR, ts.BLK, ts.FIFO):
                    m.kind = {ts.CHR: "chr", ts.BLK: "blk", ts.FIFO: "fifo"}[typ]
                    sink.node(rel, m)
                else:
                    raise InvalidArgument(f"tar entry {e.name!r}: unsupported type {typ!r}")
            reader.drain()
            for rel, m in reversed(dirs):
                try:
                    sink.dir_end(rel, m)
                except (FileNotFoundError, NotADirectoryError):
                    pass  # replaced by a later entry
        try:
            _wrap(f"copy to container {dest}", run)
        finally:
            sink.close()
    finally:
        if d is not None:
            d.close()
        os.close(root_fd)


def _tar_member(e: ts.TarEntry) -> str | None:
    """The cleaned relative path of a tar entry ("" for the destination itself)."""
    if not e.name or "\0" in e.name or "\0" in e.linkname:
        raise InvalidArgument(f"tar entry {e.name!r}: empty name or NUL byte")
    rel = clean_path(e.name)
    if rel is None:
        raise InvalidArgument(f"tar entry {e.name!r} escapes the destination directory")
    if rel == ".":
        if e.type != ts.DIR:
            raise InvalidArgument(f"tar entry {e.name!r} names the destination directory "
                                  "but is not a directory")
        return ""
    if e.type == ts.SYM and not e.linkname:
        raise InvalidArgument(f"tar entry {e.name!r}: symlink with an empty target")
    return rel


def _tar_chunks(reader: ts.TarReader) -> Iterator[bytes]:
    while True:
        piece = reader.read_data()
        if not piece:
            return
        yield piece  # type: ignore[misc]  # a memoryview: written like bytes, never kept


def export_tar(root: str, out: BinaryIO, *, progress=None) -> int:
    """``docker export``: the whole filesystem under ``root`` (a container's merged view) as
    a tar on ``out`` (not closed); returns the number of entries. Deterministic order,
    uid/gid/mode/mtime/xattrs kept (see :func:`lamina.layer.writer.write_layer`).
    ``progress`` (a lamina.progress.Progress, or None) counts the bytes written on one line
    (its module must be imported before a chroot: the caller made it)."""
    if progress is None:
        return write_layer(root, out)
    from lamina.progress import Writer
    try:
        counted = Writer(out, lambda n: progress.counter("Exporting", n))
        return write_layer(root, counted)  # type: ignore[arg-type]  # a file-like object
    finally:
        progress.done()
