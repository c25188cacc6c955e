"""What changed in a container: ``docker diff`` from an overlayfs upper dir.

:func:`changes` compares the *new* view (the upper dir over the image's layers) with the
*old* view (the image's layers alone) the way Docker's ``archive.ChangesDirs`` does on
the two merged trees, but only looks at paths that exist in the upper dir (nothing else
can have changed), so it costs one walk of the upper dir plus a lookup per upper entry.

Rules (each checked against Docker 20.10 ``docker diff``, overlay2 driver, on this host):

* ``A`` a path that is not in the old view (every entry below an added directory too);
* ``C`` a path in both views whose metadata differs: type/permission bits, uid, gid, rdev,
  ``security.capability``, and for non-directories also size or mtime (a directory's size
  and mtime are ignored, so creating and deleting ``/tmp/q`` reports nothing);
* ``C`` also for every directory of the old view that has a reported change below it;
* ``D`` an old-view path hidden by a whiteout (0:0 character device) in the upper dir, and
  every old child hidden by an opaque upper directory (``trusted.overlay.opaque=y``) that
  the upper dir does not provide again; only the topmost deleted path is listed, never the
  contents of a deleted directory.

For example, ``rm -r /d1; mkdir /d1; echo n > /d1/new`` over an old ``/d1`` holding ``f``
and ``sub/g`` gives ``C /d1``, ``A /d1/new``, ``D /d1/f``, ``D /d1/sub``.

Docker prints the list in Go map order (it differs from run to run); :func:`changes`
sorts it by path bytes, as Docker's ``ExportChanges`` does.

The lower dirs are in overlay form (as :func:`lamina.layer.extract.apply_layer` in
``"overlay"`` mode unpacks them): "exists in the old view" honours the whiteouts and opaque
directories of higher lowers exactly as overlayfs does. Only ``trusted.overlay.opaque`` is
read; the other ``trusted.overlay.*`` bookkeeping xattrs the kernel writes are ignored. An
upper dir holding ``trusted.overlay.redirect`` or ``.metacopy`` (an overlay mounted with
those features on) raises :class:`~lamina.errors.Unsupported`.

Safety: the upper dir of a running container may change during the walk; directories are
opened relative to their parent's descriptor with ``O_NOFOLLOW``, and nothing is ever
followed, so the walk cannot be led outside the upper dir. Read-only: nothing is written.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence

from lamina.errors import InvalidArgument, NotFound, Unsupported
from lamina.values import value

__all__ = ["Change", "changes", "format_changes"]

OPAQUE_XATTR = "trusted.overlay.opaque"
_CAP_XATTR = "security.capability"
_KINDS = ("A", "C", "D")


@value
class Change:
    """One line of ``docker diff``: ``kind`` is "A" (added), "C" (changed) or "D" (deleted);
    ``path`` is absolute inside the container ("/etc/passwd")."""

    kind: str
    path: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidArgument(f"change kind must be one of A, C, D, not {self.kind!r}")
        if not self.path.startswith("/"):
            raise InvalidArgument(f"change path must be absolute: {self.path!r}")

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def format_changes(items: Iterable[Change]) -> str:
    """``docker diff`` output: one ``"<kind> <path>"`` line per change, each ending in a
    newline ("" for no changes)."""
    return "".join(f"{c.kind} {c.path}\n" for c in items)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _getxattr(path: str | int, name: str) -> bytes | None:
    try:
        if isinstance(path, int):
            return os.getxattr(path, name)
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT,
                         errno.ENOTDIR):
            return None
        raise


class _LowerView:
    """The merged, read-only view of overlay-form layer dirs (top-most first).

    A layer takes part in directory ``d`` only if every component of ``d`` is a real
    directory in that layer (never a symlink), so joining a name to a contributing layer's
    path never follows anything.
    """

    def __init__(self, lowers: Sequence[str]) -> None:
        self.lowers = [os.path.abspath(p) for p in lowers]
        # rel dir ("" for the root) -> indices of the layers that contribute to it
        self._dirs: dict[str, list[int]] = {"": list(range(len(self.lowers)))}

    def _path(self, i: int, rel: str) -> str:
        return self.lowers[i] + "/" + rel if rel else self.lowers[i]

    def _lookup_in(self, layers: list[int], rel: str) -> tuple[os.stat_result | None, str,
                                                                 list[int]]:
        """(stat of the visible entry, its path, layers contributing if it is a dir)."""
        first: os.stat_result | None = None
        first_path = ""
        contrib: list[int] = []
        for i in layers:
            p = self._path(i, rel)
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if first is None:
                if _is_whiteout(st):
                    return None, "", []
                first, first_path = st, p
                if not stat.S_ISDIR(st.st_mode):
                    return st, p, []
            elif _is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a non-directory ends the merge below a directory
            contrib.append(i)
            if _getxattr(p, OPAQUE_XATTR) == b"y":
                break
        return first, first_path, contrib

    def dir_layers(self, rel: str) -> list[int]:
        got = self._dirs.get(rel)
        if got is not None:
            return got
        parent = rel.rpartition("/")[0]
        layers = self.dir_layers(parent)
        res: list[int] = []
        if layers:
            st, _, contrib = self._lookup_in(layers, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                res = contrib
        self._dirs[rel] = res
        return res

    def lookup(self, rel: str) -> tuple[os.stat_result | None, str]:
        """(lstat of ``rel`` in the merged view or None, path of the visible entry)."""
        layers = self.dir_layers(rel.rpartition("/")[0])
        if not layers:
            return None, ""
        st, path, _ = self._lookup_in(layers, rel)
        return st, path

    def children(self, rel: str) -> list[str]:
        """Names visible in directory ``rel`` of the merged view."""
        seen: dict[str, bool] = {}
        for i in self.dir_layers(rel):
            p = self._path(i, rel)
            with os.scandir(p) as it:
                for e in it:
                    if e.name in seen:
                        continue
                    seen[e.name] = not _is_whiteout(e.stat(follow_symlinks=False))
        return [n for n, visible in seen.items() if visible]


def _same_time(a: int, b: int) -> bool:
    """Docker's sameFsTimeSpec: same second, and same nanoseconds unless either is 0
    (tar and Go's tar writer drop sub-second precision)."""
    sa, na = divmod(a, 1_000_000_000)
    sb, nb = divmod(b, 1_000_000_000)
    return sa == sb and (na == nb or na == 0 or nb == 0)


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid
            or old.st_rdev != new.st_rdev):
        return True
    if stat.S_ISDIR(old.st_mode):
        return False  # a directory's size and mtime say nothing (moby#9874)
    return old.st_size != new.st_size or not _same_time(old.st_mtime_ns, new.st_mtime_ns)


class _Walker:
    def __init__(self, view: _LowerView) -> None:
        self.view = view
        self.out: list[Change] = []

    def walk(self, dfd: int, rel: str, lower_is_dir: bool, hide_lower: bool) -> bool:
        """Report changes below upper directory ``rel`` (fd ``dfd``); True if any."""
        before = len(self.out)
        proc = f"/proc/self/fd/{dfd}/"
        present: set[str] = set()
        with os.scandir(dfd) as it:
            names = sorted(e.name for e in it)
        for name in names:
            crel = f"{rel}/{name}" if rel else name
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk (a running container)
            present.add(name)
            if _is_whiteout(st):
                if lower_is_dir and self.view.lookup(crel)[0] is not None:
                    self.out.append(Change("D", "/" + crel))
                continue
            self._check_overlay_xattrs(proc + name, crel)
            old, old_path = self.view.lookup(crel) if lower_is_dir else (None, "")
            reported = True
            if old is None:
                self.out.append(Change("A", "/" + crel))
            elif _differs(old, st) or (not stat.S_ISLNK(st.st_mode) and
                                       _getxattr(old_path, _CAP_XATTR)
                                       != _getxattr(proc + name, _CAP_XATTR)):
                self.out.append(Change("C", "/" + crel))
            else:
                reported = False
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                cfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dfd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as err:
                if err.errno == errno.ELOOP:
                    continue  # replaced by a symlink while we walk
                raise
            mark = len(self.out)
            try:
                old_dir = old is not None and stat.S_ISDIR(old.st_mode)
                opaque = _getxattr(cfd, OPAQUE_XATTR) == b"y"
                inner = self.walk(cfd, crel, old_dir, old_dir and opaque)
            finally:
                os.close(cfd)
            if inner and not reported:
                # a directory with changes below it is listed as changed (Docker does this
                # so the layer tar restores its permissions)
                self.out.insert(mark, Change("C", "/" + crel))
        if hide_lower:
            for name in self.view.children(rel):
                if name not in present:
                    self.out.append(Change("D", f"/{rel}/{name}"))
        return len(self.out) > before

    @staticmethod
    def _check_overlay_xattrs(path: str, rel: str) -> None:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return
        for k in names:
            if k in ("trusted.overlay.redirect", "trusted.overlay.metacopy"):
                raise Unsupported(
                    f"diff: /{rel} in the upper dir carries {k}: the overlay was mounted with "
                    "redirect_dir/metacopy on; mount it with redirect_dir=off,metacopy=off")


def changes(upper: str, lowers: Sequence[str]) -> list[Change]:
    """The changes of the overlay upper dir ``upper`` against the layer dirs ``lowers``
    (top-most first, overlay form), as ``docker diff`` reports them, sorted by path.

    Read-only and safe to run while the container runs (entries that vanish meanwhile are
    skipped). Raises NotFound if ``upper`` is not a directory, Unsupported for an upper dir
    made with redirect_dir or metacopy on.
    """
    if isinstance(lowers, str):
        raise InvalidArgument("diff: lowers must be a sequence of layer dirs, not one string")
    try:
        fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"diff: upper dir {upper!r} does not exist or is not a directory") \
            from None
    try:
        w = _Walker(_LowerView(lowers))
        w.walk(fd, "", True, False)
    finally:
        os.close(fd)
    return sorted(w.out, key=lambda c: os.fsencode(c.path))
