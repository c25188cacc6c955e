"""The store: one root directory holding content, metadata, snapshots and containers.

Root: ``--root``, else ``$LAMINA_ROOT``, else /var/lib/lamina for root, else
``$XDG_DATA_HOME/lamina`` (default ~/.local/share/lamina)::

    <root>/content/       OCI image layout (lamina.content.store)
    <root>/snapshots/     unpacked layers (lamina.snapshot)
    <root>/containers/    container bundles (runtime)
    <root>/lamina.db      metadata (lamina.metadata)
    <root>/lock           flock(2) serialising writers of content/index.json
    <root>/gc.lock        flock(2): shared by every operation that adds content, exclusive for GC

Opening a store is cheap and creates whatever is missing; it never needs repair after a
crash (leftovers are found and collected by GC). Only its owner may enter it: the root is
0700, and a store an older lamina left readable is tightened when opened (lamina.perms).
"""

from __future__ import annotations

import fcntl
import os


class _cached:
    """functools.cached_property without importing functools (and with it collections):
    ``ps`` opens a store too. The value is kept in the instance's __dict__."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        v = obj.__dict__[self.name] = self.fn(obj)
        return v


class _Flock:
    """flock(2) on a file of the store for a ``with`` block (see ``Store._flock``)."""

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.mode = mode
        self.fd = -1

    def __enter__(self) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, self.mode)
            return True
        except BlockingIOError:
            return False
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


def default_root() -> str:
    env = os.environ.get("LAMINA_ROOT")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/lib/lamina"
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(xdg, "lamina")


class Store:
    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or default_root())
        self.content_dir = os.path.join(self.root, "content")
        self.snapshots_dir = os.path.join(self.root, "snapshots")
        self.containers_dir = os.path.join(self.root, "containers")
        try:
            try:
                st = os.stat(self.root)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_uid != os.geteuid():
                self._refuse(st)  # before reading it: another user's store is not ours to probe
            if st is None or not os.path.exists(os.path.join(self.content_dir, "oci-layout")):
                self._create(st is not None)
            elif st.st_mode & 0o7777 != 0o700:
                self._tighten(st)
            for d in (self.snapshots_dir, self.containers_dir):
                if not os.path.isdir(d):
                    os.makedirs(d, mode=0o700, exist_ok=True)
        except PermissionError as e:
            from lamina.errors import InvalidArgument, describe
            raise InvalidArgument(f"cannot use {self.root} as the store: {describe(e)}; point --root or "
                                  f"$LAMINA_ROOT at a directory you own") from None

    def _create(self, existed: bool) -> None:
        """A new store: the root 0700 from its first moment (see lamina.perms)."""
        from lamina import perms
        if not existed:
            parent = os.path.dirname(self.root)
            if not os.path.isdir(parent):
                os.makedirs(parent, exist_ok=True)
            perms.mkdir(self.root, exist_ok=True)
        else:
            stray = sorted(set(os.listdir(self.root)) - perms.STORE_ENTRIES)
            if stray:
                from lamina.errors import InvalidArgument
                raise InvalidArgument(f"{self.root} is not a lamina store and is not empty (it holds "
                                      f"{stray[0]!r}): choose a new or empty directory for --root")
        self._tighten(os.stat(self.root))
        self.content.init()

    def _refuse(self, st) -> None:
        from lamina.errors import InvalidArgument
        raise InvalidArgument(f"store {self.root} belongs to uid {st.st_uid}, not to the current "
                              f"user (uid {os.geteuid()}): lamina uses only a store its user owns")

    def _tighten(self, st) -> None:
        if st.st_uid != os.geteuid():
            self._refuse(st)
        if st.st_mode & 0o7777 != 0o700:
            from lamina import perms
            perms.tighten(self.root)

    @_cached
    def content(self):
        """The ContentStore (imported on first use: listing commands never need it)."""
        from lamina.content.store import ContentStore
        return ContentStore(self.content_dir)

    @_cached
    def db(self):
        from lamina.metadata import Metadata
        return Metadata(os.path.join(self.root, "lamina.db"))

    def close_db(self) -> None:
        """Close the metadata connection (reopened on next use). Call before fork(2) when the
        child will use the database: SQLite's per-process lock bookkeeping must not be
        inherited (a child that did would corrupt the WAL's view of who holds what)."""
        db = self.__dict__.pop("db", None)
        if db is not None:
            db.close()

    def _flock(self, name: str, mode: int) -> _Flock:
        """flock(2) ``<root>/<name>`` for the block; a killed process drops it with its fds.
        With ``LOCK_NB`` in ``mode`` the block runs either way and gets whether it holds it."""
        return _Flock(os.path.join(self.root, name), mode)

    def lock(self):
        """Exclusive store lock for writers of shared files (index.json)."""
        return self._flock("lock", fcntl.LOCK_EX)

    def operation(self):
        """Pin everything this process writes until the block ends: GC waits for it.

        Held shared by every command that adds blobs or snapshots; GC holds it exclusive.
        A killed process drops it with its file descriptors, so nothing stays pinned.
        """
        return self._flock("gc.lock", fcntl.LOCK_SH)

    def gc_lock(self, *, wait: bool = True):
        """Exclusive: GC runs only when no operation is adding content. With ``wait=False``
        the block runs at once and gets True only if it holds the lock."""
        return self._flock("gc.lock", fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
