"""Write a directory tree as a layer tar, the way Docker writes one.

Entries come in a deterministic order (depth first, siblings sorted by their byte
names, every directory before its children), with relative names ("bin/", "bin/sh"),
no entry for the root itself, directories ending in "/". Each entry keeps uid, gid,
mode (with setuid/setgid/sticky), mtime (whole seconds, like Docker), and its type:
regular file, directory, symlink, hardlink (a second name of an inode already written
becomes a link to the first name), fifo, character or block device. Sockets are skipped,
as Docker does. Extended attributes become PAX ``SCHILY.xattr.*`` records (including
``security.capability``); ``trusted.overlay.*`` ones never leave the host. User and
group names are left empty.

Headers are ustar; a PAX extended header is added only when needed (long names, large
numbers, xattrs). The archive ends with two zero blocks and no record padding, like Go's
archive/tar.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from lamina.errors import InvalidArgument, NotFound, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO

_NUL = b"\x00"
_ZERO = bytes(512)
_MAX_OCTAL7 = 0o7777777
_MAX_OCTAL11 = 0o77777777777
_EMPTY32 = bytes(32)
_EMPTY155_12 = bytes(155 + 12)

WHITEOUT_PREFIX = b".wh."
WHITEOUT_OPAQUE = b".wh..wh..opq"


def _pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    out = []
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        n = len(body) + 1
        while len(b"%d" % n) + len(body) != n:
            n = len(b"%d" % n) + len(body)
        out.append(b"%d" % n + body)
    return b"".join(out)


def _ustar(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
           linkname: bytes = b"", devmajor: int = 0, devminor: int = 0) -> bytearray:
    hdr = bytearray(b"".join((
        name[:100].ljust(100, _NUL),
        b"%07o\x00" % mode,
        b"%07o\x00" % uid,
        b"%07o\x00" % gid,
        b"%011o\x00" % size,
        b"%011o\x00" % mtime,
        b"        ",
        typ,
        linkname[:100].ljust(100, _NUL),
        b"ustar\x0000",
        _EMPTY32, _EMPTY32,
        b"%07o\x00" % devmajor,
        b"%07o\x00" % devminor,
        _EMPTY155_12,
    )))
    hdr[148:156] = b"%06o\x00 " % sum(hdr)
    return hdr


def tar_header(name: bytes, *, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
               linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
               xattrs: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """The header block(s) for one entry: a PAX 'x' header first when needed, then ustar."""
    records: list[tuple[bytes, bytes]] = []
    if len(name) > 100:
        records.append((b"path", name))
    if len(linkname) > 100:
        records.append((b"linkpath", linkname))
    if uid > _MAX_OCTAL7:
        records.append((b"uid", b"%d" % uid))
        uid = 0
    if gid > _MAX_OCTAL7:
        records.append((b"gid", b"%d" % gid))
        gid = 0
    if size > _MAX_OCTAL11:
        records.append((b"size", b"%d" % size))
    if not 0 <= mtime <= _MAX_OCTAL11:
        records.append((b"mtime", b"%d" % mtime))
    if xattrs:
        records.extend((b"SCHILY.xattr." + k, v) for k, v in xattrs)
    main = _ustar(name, mode, uid, gid, size if size <= _MAX_OCTAL11 else 0,
                  mtime if 0 <= mtime <= _MAX_OCTAL11 else 0, typ, linkname, devmajor, devminor)
    if not records:
        return bytes(main)
    data = _pax_records(records)
    pax = _ustar(b"././@PaxHeader", 0o644, 0, 0, len(data), 0, b"x")
    return b"".join((pax, data, _ZERO[:-len(data) % 512], main))


class _Out:
    """Coalesces small writes (headers, small files) into large ones."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buf = bytearray()

    def write(self, b) -> None:
        if len(b) >= 65536:
            self.flush()
            self._out.write(b)
            return
        self._buf += b
        if len(self._buf) >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self._out.write(self._buf)
            self._buf = bytearray()


def _xattrs(path: bytes, *, overlay_upper: bool) -> tuple[list[tuple[bytes, bytes]], bool]:
    """(xattrs to store, is an opaque overlay dir)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return [], False
    if not names:
        return [], False
    out = []
    opaque = False
    for k in sorted(names):
        if k.startswith(("trusted.overlay.", "user.overlay.")):
            if k.startswith("user.overlay.") and not overlay_upper:
                pass  # an ordinary user xattr outside an overlay upper
            else:
                if overlay_upper:
                    suffix = k.split(".", 2)[2]
                    if suffix == "opaque":
                        opaque = os.getxattr(path, k, follow_symlinks=False) == b"y"
                    elif suffix in ("redirect", "metacopy"):
                        raise Unsupported(
                            f"write layer: {os.fsdecode(path)!r} carries {k}: the overlay was "
                            "mounted with redirect_dir/metacopy on; mount it with "
                            "redirect_dir=off,metacopy=off to diff its upper dir")
                continue
        try:
            v = os.getxattr(path, k, follow_symlinks=False)
        except OSError:
            continue
        out.append((k.encode("utf-8", "surrogateescape"), v))
    return out, opaque


def _walk(root: bytes) -> Iterable[tuple[bytes, bytes, os.stat_result]]:
    """(relative name, absolute path, lstat) depth first, siblings sorted, parents first."""
    stack = [(b"", root)]
    pending: list = []
    while stack or pending:
        if pending:
            it = pending.pop()
            try:
                rel, path, st = next(it)
            except StopIteration:
                continue
            pending.append(it)
            yield rel, path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((rel + b"/", path + b"/"))
        if stack:
            rel, path = stack.pop()
            with os.scandir(path) as it2:
                ents = sorted(it2, key=lambda d: d.name)
            pending.append(iter([(rel + d.name, d.path, d.stat(follow_symlinks=False))
                                 for d in ents]))


def _selected(root: bytes, paths: Iterable[str]) -> Iterable[tuple[bytes, bytes, os.stat_result]]:
    keys: dict = {}
    for p in paths:
        parts = tuple(c for c in os.fsencode(p).split(b"/") if c and c != b".")
        if not parts or b".." in parts:
            raise InvalidArgument(f"write layer: path {p!r} must be relative to the root, "
                                  "without '..'")
        keys[parts] = None
    for parts in sorted(keys):
        rel = b"/".join(parts)
        path = root + b"/" + rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"write layer: {os.fsdecode(path)!r} does not exist") from None
        yield rel, path, st


def write_layer(root: str, out: BinaryIO, *, overlay_upper: bool = False,
                source_date_epoch: int | None = None,
                paths: Iterable[str] | None = None, content=None) -> int:
    """Write the tree under ``root`` as a layer tar to ``out``; returns the number of entries.

    ``overlay_upper``: ``root`` is an overlayfs upper dir (mounted with redirect_dir=off,
    metacopy=off): a 0:0 character device becomes an empty regular file ``.wh.<name>`` and
    a directory with ``trusted.overlay.opaque=y`` is followed by ``<dir>/.wh..wh..opq``.
    ``source_date_epoch``: clamp every mtime to it (reproducible builds).
    ``paths``: write only these paths (relative to ``root``, each must exist; directories
    are not recursed), in the same canonical order.
    ``content``: called with each regular file's size and each symlink's target length
    (lets the caller total the layer's content size, Docker's lstat sum, without a second
    walk).
    The output is deterministic for the same tree. ``out`` is written sequentially and not
    closed. Files that change while being read are cut or zero-padded to their size at
    stat time, so the tar stays well formed.
    """
    broot = os.fsencode(root).rstrip(b"/") or b"/"
    if not os.path.isdir(broot):
        raise NotFound(f"write layer: {root!r} is not a directory")
    w = _Out(out)
    seen: dict[tuple[int, int], bytes] = {}
    entries = 0
    clamp = source_date_epoch
    it = _walk(broot) if paths is None else _selected(broot, paths)
    for rel, path, st in it:
        mode = st.st_mode
        perm = stat.S_IMODE(mode)
        mtime = st.st_mtime_ns // 1_000_000_000
        if clamp is not None and mtime > clamp:
            mtime = clamp
        uid, gid = st.st_uid, st.st_gid
        dirname, _, base = rel.rpartition(b"/")
        prefix = dirname + b"/" if dirname else b""

        if stat.S_ISCHR(mode) and overlay_upper and st.st_rdev == 0:
            w.write(tar_header(prefix + WHITEOUT_PREFIX + base, mode=perm, uid=uid, gid=gid,
                               size=0, mtime=mtime, typ=b"0"))
            entries += 1
            continue
        if stat.S_ISSOCK(mode):
            continue
        xattrs, opaque = _xattrs(path, overlay_upper=overlay_upper)

        if stat.S_ISDIR(mode):
            w.write(tar_header(rel + b"/", mode=perm, uid=uid, gid=gid, size=0, mtime=mtime,
                               typ=b"5", xattrs=xattrs))
            entries += 1
            if opaque:
                w.write(tar_header(rel + b"/" + WHITEOUT_OPAQUE, mode=perm, uid=uid, gid=gid,
                                   size=0, mtime=mtime, typ=b"0"))
                entries += 1
            continue
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = seen.get(key)
            if first is not None:
                w.write(tar_header(rel, mode=perm, uid=uid, gid=gid, size=0, mtime=mtime,
                                   typ=b"1", linkname=first, xattrs=xattrs))
                entries += 1
                continue
            seen[key] = rel
        entries += 1
        if stat.S_ISREG(mode):
            size = st.st_size
            w.write(tar_header(rel, mode=perm, uid=uid, gid=gid, size=size, mtime=mtime,
                               typ=b"0", xattrs=xattrs))
            if size:
                _copy_data(path, size, w)
            if content is not None:
                content(size)
        elif stat.S_ISLNK(mode):
            target = os.readlink(path)
            w.write(tar_header(rel, mode=perm, uid=uid, gid=gid, size=0, mtime=mtime,
                               typ=b"2", linkname=target, xattrs=xattrs))
            if content is not None:
                content(len(target))
        elif stat.S_ISFIFO(mode):
            w.write(tar_header(rel, mode=perm, uid=uid, gid=gid, size=0, mtime=mtime,
                               typ=b"6", xattrs=xattrs))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            w.write(tar_header(rel, mode=perm, uid=uid, gid=gid, size=0, mtime=mtime,
                               typ=b"3" if stat.S_ISCHR(mode) else b"4",
                               devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev),
                               xattrs=xattrs))
        else:
            entries -= 1
    w.write(_ZERO + _ZERO)
    w.flush()
    return entries


def _copy_data(path: bytes, size: int, w: _Out) -> None:
    """Append exactly ``size`` bytes of the file (cut or zero-padded) plus tar padding."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        left = size
        while left:
            data = os.read(fd, min(left, 1 << 20))
            if not data:  # the file shrank: keep the tar consistent with its header
                data = bytes(min(left, 1 << 20))
            w.write(data)
            left -= len(data)
        pad = -size % 512
        if pad:
            w.write(_ZERO[:pad])
    finally:
        os.close(fd)
