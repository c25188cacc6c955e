"""Mount destinations resolved inside the rootfs (``openat2(RESOLVE_IN_ROOT)`` through
:mod:`lamina.safepath`): a symlink in the image cannot point a mount outside the rootfs.
"""

from __future__ import annotations

import errno as _errno
import os

from lamina.errors import InvalidArgument, LaminaError, Unavailable

# ---------------------------------------------------------------------------------------------
# Paths inside the rootfs

def _in_root(rootfs: str, dest: str, *, make: str | None) -> str:
    """The host path of ``dest`` resolved inside ``rootfs`` (symlinks stay inside).

    ``make`` = ``"dir"`` or ``"file"`` creates a missing destination (and its parents).
    """
    from lamina.safepath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

    how = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    rfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rel = dest.strip("/")
        if not rel:
            return rootfs
        try:
            fd = openat2(rfd, rel, os.O_PATH, how)
        except OSError as e:
            if e.errno != _errno.ENOENT or make is None:
                raise
            parts = rel.split("/")
            pfd = os.dup(rfd)
            try:
                for i, part in enumerate(parts):
                    last = i == len(parts) - 1
                    try:
                        nfd = openat2(pfd, part, os.O_PATH, how)
                    except FileNotFoundError:
                        if last and make == "file":
                            os.close(os.open(part, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC
                                             | os.O_NOFOLLOW, 0o755, dir_fd=pfd))
                        else:
                            try:
                                os.mkdir(part, 0o755, dir_fd=pfd)
                            except FileExistsError:
                                pass
                        nfd = openat2(pfd, part, os.O_PATH, how)
                    os.close(pfd)
                    pfd = nfd
            except BaseException:
                os.close(pfd)
                raise
            fd = pfd
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(rfd)
    if real != rootfs and not real.startswith(rootfs.rstrip("/") + "/"):
        raise InvalidArgument(f"mount destination {dest} resolves outside the rootfs ({real})")
    return real


def _mount_at(rootfs: str, dest: str, mounts, *, what: str, make: str | None = "dir") -> str:
    from lamina.mount import mount_all

    try:
        target = _in_root(rootfs, dest, make=make)
    except OSError as e:
        raise Unavailable(f"mount {what} on {rootfs.rstrip('/')}{dest} failed: cannot create "
                          f"the mount point: {e.strerror}") from e
    try:
        mount_all(mounts, target)
    except LaminaError as e:
        reason = str(e).split(" failed: ", 1)[-1]
        raise type(e)(f"mount {what} on {target} failed: {reason}") from e
    return target
