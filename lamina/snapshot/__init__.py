"""Snapshots: each image layer unpacked once, keyed by its chain ID, shared by every image
built on it.

On-disk tree (owned by this package)::

    snapshots/<n>/fs        layer n unpacked in overlay form (whiteouts = 0:0 char devices,
                            opaque dirs = trusted.overlay.opaque=y); n is a short integer so
                            lowerdir strings stay short
    snapshots/tmp-<n>/      an unpack in progress (renamed to <n> when complete)
    snapshots/.lock-<hex>   flock(2) taken while a chain ID is being unpacked

Contracts:
- ``prepare`` is idempotent and safe across processes: two processes asking for the same
  chain unpack it once (the second waits on the chain's lock and then finds it).
- A snapshot dir appears by rename only when complete, and its DB row is written after it;
  a crash leaves a tmp- dir or an unnamed dir that GC removes.
- The snapshotter *returns* mounts (lamina.mount.Mount values); it never mounts.
- Callers hold ``store.operation()`` while they prepare and use snapshots, so GC waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from lamina import perms
from lamina.digest import Digest
from lamina.errors import LaminaError, Unavailable
from lamina.values import value


@value
class Layer:
    """One layer of an image chain, bottom-up."""

    chain_id: Digest
    diff_id: Digest
    blob: Digest


_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def make_unpack_root(path: str) -> None:
    """Create ``path``, the directory a layer is unpacked into (mode 0755: the layer's
    "./" may change it), marked as the top of a directory hierarchy for ext4's Orlov
    allocator (``chattr +T``): its subdirectories, and so the files in them, are placed
    in block groups with free inodes rather than next to the store's own directories.
    On a store that has seen mass deletions (a CI machine, a pruned store) ext4 otherwise
    spends most of an unpack scanning recently freed inodes in those groups (measured
    here: ~600 us per file created, ~40 us with the mark). A placement hint only: the
    tree is the same; filesystems without the flag ignore it."""
    perms.mkdir(path, perms.VISIBLE_DIR)
    try:
        import struct
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            buf = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))
            flags = struct.unpack("=i", buf[:4])[0]
            if not flags & _FS_TOPDIR_FL:
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("=i", flags | _FS_TOPDIR_FL) + bytes(4))
        finally:
            os.close(fd)
    except OSError:  # tmpfs, overlayfs, xfs...: no such flag, nothing to gain
        pass


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


class Snapshotter:
    def __init__(self, store) -> None:
        self.store = store
        self.root = store.snapshots_dir

    def dir_of(self, chain_id: Digest) -> str | None:
        row = self.store.db.one("SELECT dir FROM snapshots WHERE chain_id=?", (str(chain_id),))
        if row and os.path.isdir(os.path.join(self.root, row[0], "fs")):
            return os.path.join(self.root, row[0], "fs")
        return None

    def prepare(self, layers: list[Layer]) -> list[str]:
        """Make sure every layer is unpacked; returns their fs dirs bottom-up."""
        out = []
        parent = None
        for layer in layers:
            d = self.dir_of(layer.chain_id) or self._unpack(layer, parent)
            out.append(d)
            parent = layer.chain_id
        return out

    @contextlib.contextmanager
    def _chain_lock(self, chain_id: Digest):
        """Held while a chain is unpacked or installed: one process at a time per chain."""
        lock = os.path.join(self.root, f".lock-{chain_id.hex[:32]}")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
            try:
                os.unlink(lock)
            except OSError:
                pass

    def _unpack(self, layer: Layer, parent: Digest | None) -> str:
        with self._chain_lock(layer.chain_id):
            found = self.dir_of(layer.chain_id)
            if found:
                return found
            import shutil  # only to unpack: ``run`` of an unpacked image does not import it
            n = self._reserve()
            tmp = os.path.join(self.root, f"tmp-{n}")
            shutil.rmtree(tmp, ignore_errors=True)
            perms.mkdir(tmp)
            make_unpack_root(os.path.join(tmp, "fs"))
            try:
                size = self._apply(layer, os.path.join(tmp, "fs"), mode="overlay")
                final = os.path.join(self.root, str(n))
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._record(layer, parent, n, size)
            return os.path.join(final, "fs")

    def install(self, layer: Layer, parent: Digest | None, src_dir: str, size: int) -> str | None:
        """Make ``src_dir`` (this layer unpacked in overlay form by :func:`apply_layer` and
        verified against its diff ID, e.g. during a pull) the snapshot of ``layer``, by
        rename, under the chain's lock (a concurrent lazy unpack of the same chain waits,
        then finds it). Returns the fs dir, or None when the chain was unpacked already
        (``src_dir`` is then left for the caller to remove). ``src_dir`` must be on the
        snapshots' filesystem (OSError EXDEV otherwise, nothing recorded)."""
        with self._chain_lock(layer.chain_id):
            if self.dir_of(layer.chain_id):
                return None
            n = self._reserve()
            final = os.path.join(self.root, str(n))
            perms.mkdir(final)
            try:
                os.rename(src_dir, os.path.join(final, "fs"))
            except BaseException:
                os.rmdir(final)
                raise
            self._record(layer, parent, n, size)
            return os.path.join(final, "fs")

    def adopt(self, layer: Layer, parent: Digest | None, src_dir: str, size: int) -> str:
        """Make ``src_dir`` (a directory holding exactly this layer's diff in overlay form,
        e.g. a build step's upper dir) the snapshot of ``layer``, by rename; returns its fs
        dir. If the chain is already unpacked, ``src_dir`` is left alone."""
        found = self.dir_of(layer.chain_id)
        if found:
            return found
        n = self._reserve()
        final = os.path.join(self.root, str(n))
        perms.mkdir(final)
        os.rename(src_dir, os.path.join(final, "fs"))
        self._record(layer, parent, n, size)
        return os.path.join(final, "fs")

    def _reserve(self) -> int:
        """A fresh snapshot directory number (short, so lowerdir strings stay short)."""
        with self.store.db.tx() as c:
            row = c.execute("SELECT value FROM meta WHERE key='snapshot_seq'").fetchone()
            n = int(row[0]) + 1 if row else 1
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('snapshot_seq', ?)", (str(n),))
        return n

    def _record(self, layer: Layer, parent: Digest | None, n: int, size: int) -> None:
        """The snapshot row, written after its directory is complete."""
        with self.store.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO snapshots(chain_id, parent, dir, diff_id, size, created) "
                      "VALUES(?,?,?,?,?,?)", (str(layer.chain_id), str(parent) if parent else None,
                                             str(n), str(layer.diff_id), size, time.time()))

    def _apply(self, layer: Layer, dest: str, *, mode: str) -> int:
        """Unpack one layer blob into ``dest``, verifying it against its diff ID as it goes."""
        from lamina.digest import HashingReader
        from lamina.layer.compress import open_decompressed
        from lamina.layer.extract import apply_layer
        with self.store.content.open(layer.blob) as f:
            stream, _ = open_decompressed(f)
            h = HashingReader(stream)
            try:
                res = apply_layer(h, dest, mode=mode)  # type: ignore[arg-type]  # a file-like object
            except LaminaError as e:
                raise type(e)(f"layer {layer.blob}: {e}") from None
            while h.read(1 << 20):
                pass
        if h.digest() != layer.diff_id:
            raise Unavailable(f"layer {layer.blob} is corrupt: it unpacks to {h.digest()}, "
                              f"expected diff ID {layer.diff_id}; remove the image and pull/load it again")
        return res.content_size

    def mounts(self, layers: list[Layer], *, upper: str | None = None, work: str | None = None,
               readonly: bool = False, init: str | None = None, volatile: bool = False):
        """The mounts that show ``layers`` (prepared first) with an optional writable upper.

        ``init`` is a directory put on top of the image's layers (a container's init layer:
        the mount points and /etc files the runtime binds over, so they never land in the
        container's upper dir).

        ``volatile`` (for a container whose filesystem goes with it, ``run --rm``, as Podman
        does) mounts the overlay with ``volatile``: no sync of the upper dir's filesystem,
        which otherwise runs when the overlay is unmounted (1-20 ms of every container's exit
        on a busy disk). Such an overlay leaves ``<work>/work/incompat/volatile`` behind, and
        the kernel refuses to mount that upper again while it exists. Any later mount of the
        same upper (a ``start`` after the runner was killed, ``cp`` into a stopped container)
        removes it when the host has not rebooted since the volatile mount (the kernel's rule:
        only a crash makes such an upper untrustworthy); after a reboot it raises
        Unavailable, as the container's files may be incomplete."""
        from lamina import mount
        dirs = self.prepare(layers)
        if init is not None:
            dirs = dirs + [init]
        if not dirs:
            if upper is None:
                raise Unavailable("an image with no layers has no filesystem to mount read-only")
            return [mount.Mount("bind", upper, ("rbind",))]
        options: tuple[str, ...] = ()
        if work is not None:
            _volatile_marker(work, stamp=volatile)
            if volatile:
                options = ("volatile",)
        return [mount.overlay(list(reversed(dirs)), upper=upper, work=work, readonly=readonly,
                              options=options)]

    def copy_rootfs(self, layers: list[Layer], dest: str) -> None:
        """Copy-based fallback where overlay is unavailable: apply every layer, bottom-up,
        onto ``dest`` in merge mode (whiteouts delete)."""
        os.makedirs(dest, exist_ok=True)
        for layer in layers:
            self._apply(layer, dest, mode="merge")


def _boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def _volatile_marker(work: str, *, stamp: bool) -> None:
    """Before an overlay with work dir ``work`` is mounted: remove the ``volatile`` marker an
    earlier volatile mount left if this boot made it (``<work>.boot`` holds the boot ID of
    the last volatile mount), and with ``stamp`` record this boot for the mount to come."""
    marker = os.path.join(work, "work", "incompat", "volatile")
    record = work + ".boot"
    if os.path.lexists(marker):
        try:
            with open(record) as f:
                made = f.read().strip()
        except FileNotFoundError:
            made = ""
        if made != _boot_id():
            raise Unavailable(f"{os.path.dirname(work)}: the container's filesystem was mounted volatile "
                              f"(--rm) before the host restarted and may be incomplete: remove the container")
        for name in os.listdir(marker):  # the kernel's "dirty" file
            os.unlink(os.path.join(marker, name))
        os.rmdir(marker)
    if stamp:
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _boot_id().encode())
        finally:
            os.close(fd)


def image_layers(images, rec) -> list[Layer]:
    """The chain of an image record as Layer values, bottom-up."""
    return [Layer(c, d, desc.digest) for c, d, desc in images.chain(rec)]


INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
INIT_DIRS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "etc")


def make_init_layer(path: str) -> str:
    """Create a container's init layer at ``path`` (idempotent), like Docker's ``<id>-init``:
    empty /etc/hosts, /etc/hostname, /etc/resolv.conf and the /proc, /sys, /dev mount points.
    Directories 0755 and files 0644 whatever the umask: they show in the container (an init
    /etc 0700 would hide the image's /etc from a non-root user)."""
    perms.mkdir(path, perms.VISIBLE_DIR, exist_ok=True)
    for d in INIT_DIRS:
        perms.mkdir(os.path.join(path, d), perms.VISIBLE_DIR, exist_ok=True)
    for f in INIT_FILES:
        perms.create_file(os.path.join(path, f), perms.VISIBLE_FILE)
    mtab = os.path.join(path, "etc", "mtab")
    if not os.path.lexists(mtab):
        os.symlink("/proc/mounts", mtab)
    return path
