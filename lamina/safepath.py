"""Paths resolved inside a root directory: nothing here ever follows a symlink on the host.

This is lamina's one safe-path primitive (what ``filepath-securejoin`` is beside runc, done
by the kernel): layer extraction, the runtime's mount targets and user lookup, ``docker
cp``/export, the builder, an image's merged view and the registry server's store all
resolve untrusted paths through it, and nothing else in lamina calls ``openat2(2)``.

Three kinds of path are used with a descriptor of a root:

- a *lexical* path (a tar member name, a link target): :func:`clean_path` drops ``.``,
  empty components and leading slashes and refuses a ``..`` that would climb above the
  root. No file system is touched.
- a *physical* path names real entries only: every component must be a directory (or,
  for the last one, any entry) and none may be a symlink. :func:`open_physical`,
  :func:`lstat_physical` and :func:`readlink_physical` open it with
  ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``, so if any component was swapped for
  a symlink the call fails (``ELOOP``) instead of following it. Walkers use these after
  they found the path themselves, one ``lstat`` at a time.
- an *in-root* path is resolved as if the root were ``/``: symlinks (absolute or relative)
  and ``..`` cannot leave it (``openat2(RESOLVE_IN_ROOT)``, the kernel's version of
  containerd's and runc's scoped path resolution). :func:`open_in_root` and
  :func:`resolve_in_root` use it.

Magic links (``/proc/self/fd/N``, ``/proc/<pid>/root``) are never followed by either flag
set (``RESOLVE_NO_MAGICLINKS``). Importing this module costs no ``ctypes``: the syscall's
binding is made on the first call.
"""

from __future__ import annotations

import errno
import os

from lamina.errors import InvalidArgument, Unsupported

__all__ = ["prepare", "SYS_OPENAT2", "RESOLVE_NO_XDEV", "RESOLVE_NO_MAGICLINKS", "RESOLVE_NO_SYMLINKS",
           "RESOLVE_BENEATH", "RESOLVE_IN_ROOT", "PHYSICAL", "IN_ROOT", "openat2", "clean_path",
           "open_root", "open_physical", "lstat_physical", "readlink_physical", "open_in_root",
           "path_of", "resolve_in_root", "remove_tree"]

# openat2(2)
SYS_OPENAT2 = 437  # the same number on x86_64, aarch64 and every other modern arch
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

PHYSICAL = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


# -- lexical ---------------------------------------------------------------------------------

def clean_path(name: str) -> str | None:
    """Lexically clean a path to a relative one ("." for the root).

    Leading slashes are dropped (absolute names are relative to the root, like Docker).
    Returns None when ``..`` would climb above the root.
    """
    parts: list[str] = []
    for c in name.split("/"):
        if c == "" or c == ".":
            continue
        if c == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(c)
    return "/".join(parts) if parts else "."


# -- the syscall -----------------------------------------------------------------------------

_call = None  # (syscall function, open_how structure class), bound on first use


def _binding():
    global _call
    if _call is None:
        import ctypes

        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                        ("resolve", ctypes.c_uint64)]

        fn = ctypes.CDLL(None, use_errno=True).syscall
        fn.restype = ctypes.c_long
        _call = (fn, OpenHow, ctypes)
    return _call


def prepare() -> None:
    """Bind the syscall now: a process about to fork (or clone) a child that resolves paths
    does this first, so the child loads no library."""
    _binding()


def openat2(dirfd: int, path: str | bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): a new descriptor (``O_CLOEXEC`` always) or OSError. Retries ``EAGAIN``
    (the kernel's answer to a concurrent rename) and ``EINTR``; raises Unsupported when the
    kernel has no openat2 (Linux < 5.6)."""
    fn, OpenHow, ctypes = _binding()
    how = OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    bpath = os.fsencode(path)
    for _ in range(64):
        fd = fn(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(bpath),
                ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return fd
        e = ctypes.get_errno()
        if e == errno.ENOSYS:
            raise Unsupported("openat2(2) is not available (Linux >= 5.6 is required for "
                              "safe path resolution)")
        if e not in (errno.EAGAIN, errno.EINTR):
            raise OSError(e, os.strerror(e), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


# -- physical and in-root paths below a root descriptor --------------------------------------

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


# -- removal ---------------------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str) -> None:
    """Remove the directory ``path`` and everything in it, through directory descriptors:
    a symlink inside is removed, never followed. What cannot be removed stays, silently;
    a ``path`` that is not a directory (a symlink to one included) is left alone. This is
    ``shutil.rmtree(path, ignore_errors=True)`` without importing shutil (with bz2, lzma and
    fnmatch), which ``run --rm`` would import only for this."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return
    try:
        _remove_entries(fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _remove_entries(dir_fd: int) -> None:
    try:
        with os.scandir(dir_fd) as it:
            entries = list(it)
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                fd = os.open(e.name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    _remove_entries(fd)
                finally:
                    os.close(fd)
                os.rmdir(e.name, dir_fd=dir_fd)
            else:
                os.unlink(e.name, dir_fd=dir_fd)
        except OSError:
            pass
