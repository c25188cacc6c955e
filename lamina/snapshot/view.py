"""The merged view of an image's snapshot dirs, read without mounting them.

``LayerView(dirs)`` (top-most layer first, as overlay's ``lowerdir``) answers what overlayfs
would show: :meth:`LayerView.lstat` of a path (a whiteout deletes it, an opaque directory
hides the layers below it, a non-directory hides everything under its path in lower
layers), :meth:`LayerView.readlink`, :meth:`LayerView.read`, and
:meth:`LayerView.resolve`, which follows symlinks *inside the image's root* (absolute
targets restart at the image's ``/``, ``..`` stops there), the way Docker resolves a COPY
destination or a WORKDIR (``/bin -> usr/bin``).

Every access is relative to an ``O_PATH`` descriptor of a layer dir and goes through
physical paths only (lamina.safepath): a path component is looked at in a layer only after
the same layer showed its parent as a real directory, and the kernel refuses any symlink
on the way, so nothing here follows a symlink on the host.
"""

from __future__ import annotations

import errno
import os
import stat as st

from lamina.errors import InvalidArgument

_MAX_SYMLINKS = 40
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


class LayerView:
    """A read-only merged view of ``dirs`` (top-most first). Close it (or use ``with``)."""

    def __init__(self, dirs: list[str]) -> None:
        from lamina.safepath import open_root
        self.dirs = list(dirs)
        self._fds: list[int] = []
        try:
            for d in self.dirs:
                self._fds.append(open_root(d))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> LayerView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lookups ----------------------------------------------------------------------------
    def _lstat_in(self, layer: int, rel: str) -> os.stat_result | None:
        from lamina.safepath import lstat_physical
        return lstat_physical(self._fds[layer], rel)

    def _opaque(self, layer: int, rel: str) -> bool:
        from lamina.safepath import PHYSICAL, openat2
        try:
            fd = openat2(self._fds[layer], rel, os.O_RDONLY | os.O_DIRECTORY, PHYSICAL) if rel else \
                os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fds[layer])
        except OSError:
            return False
        try:
            for name in OPAQUE_XATTRS:
                try:
                    if os.getxattr(fd, name) == b"y":
                        return True
                except OSError as e:
                    if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                        raise
            return False
        finally:
            os.close(fd)

    def locate(self, rel: str) -> tuple[os.stat_result, int] | None:
        """(lstat, index of the layer that provides it) of the physical view path ``rel``
        (no symlink among its parents in the view), or None if the view has nothing there."""
        rel = rel.strip("/")
        if not rel:
            return (os.stat(self._fds[0]), 0) if self._fds else None
        comps = rel.split("/")
        live = list(range(len(self._fds)))
        prefix = ""
        for i, comp in enumerate(comps):
            path = f"{prefix}/{comp}" if prefix else comp
            found: tuple[os.stat_result, int] | None = None
            nxt: list[int] = []
            for li in live:
                s = self._lstat_in(li, path)
                if s is None:
                    continue
                if st.S_ISCHR(s.st_mode) and s.st_rdev == 0:  # an overlay whiteout
                    if found is None:
                        return None
                    break  # deleted in this layer: nothing below it shows
                if found is None:
                    found = (s, li)
                if not st.S_ISDIR(s.st_mode):
                    break  # a non-directory hides this path in every lower layer
                if not st.S_ISDIR(found[0].st_mode):
                    break
                nxt.append(li)
                if self._opaque(li, path):
                    break
            if found is None:
                return None
            if i == len(comps) - 1:
                return found
            if not st.S_ISDIR(found[0].st_mode):
                return None
            live, prefix = nxt, path
        return None

    def lstat(self, rel: str) -> os.stat_result | None:
        got = self.locate(rel)
        return got[0] if got else None

    def readlink(self, rel: str) -> str:
        from lamina.safepath import readlink_physical
        got = self.locate(rel)
        if got is None or not st.S_ISLNK(got[0].st_mode):
            raise InvalidArgument(f"/{rel.strip('/')} is not a symlink in the image")
        return readlink_physical(self._fds[got[1]], rel.strip("/"))

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with every symlink resolved inside the image's root; a missing tail is
        kept as written. Returns a relative path ("" for the root). Raises InvalidArgument
        after 40 symlinks (a loop)."""
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            p = parts.pop(0)
            if p == ".":
                continue
            if p == "..":
                if done:
                    done.pop()
                continue
            cand = "/".join(done + [p])
            s = self.lstat(cand)
            if s is None:
                # the rest does not exist: kept lexically (it will be created)
                rest = done + [p]
                for q in parts:
                    if q == "..":
                        if len(rest) > len(done):
                            rest.pop()
                    elif q != ".":
                        rest.append(q)
                return "/".join(rest)
            if st.S_ISLNK(s.st_mode) and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links: {path}")
                target = self.readlink(cand)
                if target.startswith("/"):
                    done = []
                parts = [x for x in target.split("/") if x] + parts
                continue
            done.append(p)
        return "/".join(done)

    def read(self, path: str, *, limit: int = 1 << 22) -> bytes | None:
        """The content of ``path`` (symlinks resolved in the view), or None if it is not a
        regular file of the view."""
        from lamina.safepath import open_physical
        rel = self.resolve(path)
        got = self.locate(rel)
        if got is None or not st.S_ISREG(got[0].st_mode):
            return None
        try:
            fd = open_physical(self._fds[got[1]], rel, os.O_RDONLY)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)
