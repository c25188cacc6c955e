"""COPY and ADD: the sources are staged into a fresh directory laid out as the layer will
be (only the destination paths), which is then written as the layer tar and adopted as
that layer's snapshot. File data is copied in the kernel (copy_file_range).

Docker's rules: several sources (or a wildcard) need a destination ending in "/"; a
directory source copies its *contents*; a file goes *into* a destination that ends in "/"
or is an existing directory, else it becomes the destination; files are owned by 0:0
unless --chown; --chmod applies to what is copied; parent directories that exist in the
image keep their metadata in the layer, new ones are root:root 0755.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from lamina._dcache import dataclass

from lamina.errors import InvalidArgument


@dataclass(frozen=True)
class CopyItem:
    """One source to copy: ``root`` + ``rel`` on the host, ``name`` as written (decides the
    destination file name), ``walk`` yields (rel, stat) of what it copies."""

    name: str
    abspath: str
    is_dir: bool


def lower_stat(lowers: list[str], rel: str):
    """lstat of ``rel`` in the image below (top-most layer first), honouring whiteouts."""
    for d in lowers:
        p = os.path.join(d, rel)
        try:
            s = os.lstat(p)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            return None
        if stat.S_ISCHR(s.st_mode) and s.st_rdev == 0:
            return None
        return s
    return None


def _ensure_parents(staging: str, rel_dir: str, lowers: list[str]) -> None:
    """Create ``rel_dir`` and its parents in staging, with the image's metadata where the
    image has them (else root:root 0755)."""
    parts = [p for p in rel_dir.split("/") if p]
    cur = ""
    for p in parts:
        cur = f"{cur}/{p}" if cur else p
        path = os.path.join(staging, cur)
        if os.path.isdir(path):
            continue
        os.mkdir(path)
        s = lower_stat(lowers, cur)
        if s is not None and stat.S_ISDIR(s.st_mode):
            os.chown(path, s.st_uid, s.st_gid)
            os.chmod(path, stat.S_IMODE(s.st_mode))
            os.utime(path, ns=(s.st_atime_ns, s.st_mtime_ns))
        else:
            os.chmod(path, 0o755)


def _copy_entry(src: str, dst: str, s: os.stat_result, *, owner, chmod: int | None) -> None:
    mode = s.st_mode
    if stat.S_ISDIR(mode):
        if not os.path.isdir(dst):
            if os.path.lexists(dst):
                os.unlink(dst)
            os.mkdir(dst)
    elif stat.S_ISLNK(mode):
        if os.path.lexists(dst):
            _remove(dst)
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(mode):
        if os.path.lexists(dst):
            _remove(dst)
        _copy_file(src, dst, s.st_size)
    else:
        return  # sockets, fifos and devices in a build context are skipped
    uid, gid = owner if owner is not None else (0, 0)
    os.chown(dst, uid, gid, follow_symlinks=False)
    if not stat.S_ISLNK(mode):
        os.chmod(dst, chmod if chmod is not None else stat.S_IMODE(mode))
    os.utime(dst, ns=(s.st_atime_ns, s.st_mtime_ns), follow_symlinks=False)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _copy_file(src: str, dst: str, size: int) -> None:
    fi = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            left = size
            while left > 0:
                try:
                    n = os.copy_file_range(fi, fo, min(left, 1 << 30))
                except OSError:
                    n = 0
                if n == 0:
                    data = os.read(fi, min(left, 1 << 20))
                    if not data:
                        break
                    n = os.write(fo, data)
                left -= n
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def resolve_dest(dest: str, workdir: str) -> tuple[str, bool]:
    """(absolute destination, names a directory) from a COPY/ADD destination argument."""
    is_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    return posixpath.normpath(dest), is_dir


def stage_copy(staging: str, items: list[tuple[CopyItem, object]], dest_arg: str, *, workdir: str,
               lowers: list[str], owner, chmod: int | None, wildcard: bool, what: str = "COPY") -> None:
    """Lay out ``items`` under ``staging`` as COPY/ADD would write them into the image.

    ``items`` pairs each CopyItem with its walker: an iterable factory yielding
    (path relative to the item, host path, stat) for everything it copies.
    """
    dest, dest_is_dir = resolve_dest(dest_arg, workdir)
    if (len(items) > 1 or wildcard) and not dest_is_dir:
        if len(items) > 1:
            raise InvalidArgument(f"When using {what} with more than one source file, the destination "
                                  f"must be a directory and end with a /")
    rel_dest = dest.lstrip("/")
    existing = lower_stat(lowers, rel_dest) if rel_dest else None
    into_dir = dest_is_dir or rel_dest == "" or (existing is not None and stat.S_ISDIR(existing.st_mode))
    for item, walker in items:
        if item.is_dir:
            target_rel = rel_dest
            _ensure_parents(staging, target_rel, lowers)
        else:
            if into_dir:
                target_rel = posixpath.join(rel_dest, posixpath.basename(item.name.rstrip("/")) or
                                            os.path.basename(item.abspath))
            else:
                target_rel = rel_dest
            _ensure_parents(staging, posixpath.dirname(target_rel), lowers)
        for sub, host, s in walker():
            dst = os.path.join(staging, target_rel, sub) if sub else os.path.join(staging, target_rel)
            if not sub and item.is_dir:
                # the destination directory itself: new ones take the source dir's mode and the owner
                if not os.path.isdir(dst):
                    os.makedirs(dst, exist_ok=True)
                if existing is None or not stat.S_ISDIR(existing.st_mode):
                    uid, gid = owner if owner is not None else (0, 0)
                    os.chown(dst, uid, gid)
                    os.chmod(dst, chmod if chmod is not None else stat.S_IMODE(s.st_mode))
                continue
            _copy_entry(host, dst, s, owner=owner, chmod=chmod)
    _fix_dir_times(staging)


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
            os.utime(dirpath, ns=(newest, newest))


def host_walker(abspath: str, is_dir: bool):
    """Walk a host path (a stage's filesystem for COPY --from) yielding (sub, host, stat)."""
    def walk():
        s = os.stat(abspath)
        yield "", abspath, s
        if is_dir:
            for dirpath, dirnames, filenames in os.walk(abspath):
                dirnames.sort()
                for n in sorted(dirnames + filenames):
                    full = os.path.join(dirpath, n)
                    yield os.path.relpath(full, abspath), full, os.lstat(full)
    return walk
