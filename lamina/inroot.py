"""Paths resolved inside a root directory: nothing here ever follows a symlink on the host.

Two kinds of relative path are used with a descriptor of the root:

- a *physical* path names real entries only: every component must be a directory (or,
  for the last one, any entry) and none may be a symlink. :func:`open_physical` and
  :func:`lstat_physical` open it with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``,
  so if any component was swapped for a symlink the call fails (``ELOOP``) instead of
  following it. Walkers use these after they found the path themselves, one ``lstat`` at
  a time.
- an *in-root* path is resolved as if the root were ``/``: symlinks (absolute or relative)
  and ``..`` cannot leave it (``openat2(RESOLVE_IN_ROOT)``, the kernel's version of
  containerd's and runc's scoped path resolution). :func:`open_in_root` and
  :func:`resolve_in_root` use it.

The syscall itself lives in :mod:`lamina.layer.extract` (safe extraction was its first
user); this module is the one place the rest of lamina gets these primitives from.
"""

from __future__ import annotations

import errno
import os
import stat as st

from lamina.errors import InvalidArgument
from lamina.layer.extract import (RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS,
                                  RESOLVE_NO_SYMLINKS, openat2)

__all__ = ["PHYSICAL", "IN_ROOT", "open_root", "open_physical", "lstat_physical",
           "open_in_root", "resolve_in_root", "path_of", "readlink_physical"]

PHYSICAL = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


def open_root(path: str) -> int:
    """An ``O_PATH`` descriptor of the directory ``path`` (the caller closes it). ``path``
    comes from the user or the store and is opened as given (its last component is not
    followed if it is a symlink: resolve it first with :func:`os.path.realpath`)."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)


def open_physical(root_fd: int, rel: str, flags: int, mode: int = 0) -> int:
    """Open the physical path ``rel`` (no symlink anywhere, the last component included)
    below ``root_fd``; ``""`` opens the root itself. Raises OSError (``ELOOP`` when a
    component is a symlink, ``ENOENT``, ``ENOTDIR`` ...)."""
    if not rel:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=root_fd)
    return openat2(root_fd, rel, flags | os.O_NOFOLLOW, PHYSICAL, mode)


def lstat_physical(root_fd: int, rel: str) -> os.stat_result | None:
    """``lstat`` of the physical path ``rel`` below ``root_fd`` (its parent components must be
    real directories); None when it does not exist (or a parent is not a directory)."""
    try:
        if not rel:
            return os.stat(root_fd)
        parent, _, name = rel.rpartition("/")
        if not parent:
            return os.stat(name, dir_fd=root_fd, follow_symlinks=False)
        pfd = openat2(root_fd, parent, os.O_PATH | os.O_DIRECTORY, PHYSICAL)
        try:
            return os.stat(name, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:  # a parent is a symlink: no such physical path
            return None
        raise


def readlink_physical(root_fd: int, rel: str) -> str:
    """The target of the symlink at the physical path ``rel``."""
    parent, _, name = rel.rpartition("/")
    if not parent:
        return os.readlink(name, dir_fd=root_fd)
    pfd = openat2(root_fd, parent, os.O_PATH | os.O_DIRECTORY, PHYSICAL)
    try:
        return os.readlink(name, dir_fd=pfd)
    finally:
        os.close(pfd)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """Open ``path`` resolved inside the root (symlinks and ``..`` cannot leave it)."""
    rel = path.strip("/")
    if not rel:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=root_fd)
    return openat2(root_fd, rel, flags, IN_ROOT, mode)


def path_of(fd: int) -> str:
    """The absolute host path the kernel has for ``fd`` now."""
    return os.readlink(f"/proc/self/fd/{fd}")


def resolve_in_root(root: str, path: str) -> tuple[int, str]:
    """(``O_PATH`` fd, physical path relative to ``root``) of ``path`` resolved inside
    ``root``. Raises InvalidArgument when it does not exist or resolves outside (only
    possible when the root itself was moved meanwhile)."""
    rfd = open_root(root)
    try:
        try:
            fd = open_in_root(rfd, path, os.O_PATH)
        except OSError as e:
            raise InvalidArgument(f"{path}: {e.strerror}") from None
        real_root = path_of(rfd)
    finally:
        os.close(rfd)
    real = path_of(fd)
    if real == real_root:
        return fd, ""
    if not real.startswith(real_root.rstrip("/") + "/"):
        os.close(fd)
        raise InvalidArgument(f"{path} resolves outside {root}")
    return fd, real[len(real_root.rstrip("/")) + 1:]


def is_whiteout(s: os.stat_result) -> bool:
    """An overlay whiteout: a 0:0 character device."""
    return st.S_ISCHR(s.st_mode) and s.st_rdev == 0
