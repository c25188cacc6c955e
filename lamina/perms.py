"""Who may read what lamina keeps on disk: the owner and mode of everything it creates.

The model is Docker's after CVE-2021-41091: only the store's owner (root, for
/var/lib/lamina) may enter the store at all, so no other local user can read a container's
config.json (``-e`` secrets), its log, the metadata DB, or reach a setuid-root file in an
unpacked layer or a container's upper dir. Docker keeps /var/lib/docker 0710 with the group
of its remapped root; lamina remaps no user, so the root is 0700. Below it, what lamina
writes for itself is private again (directories 0700, files 0600), so a store root that
someone loosened still exposes nothing; what a container sees keeps the mode a container
expects, set explicitly (never left to the caller's umask, which would leave a container's
``/`` 0700 under ``umask 077``)::

    <root>/                        0700 (tightened when an older store is opened)
      lock gc.lock                 0600
      lamina.db{,-wal,-shm}        0600 (SQLite gives the WAL and SHM the DB file's mode)
      content/ **                  directories 0700, files 0600 (blobs, ingest, index.json)
      snapshots/                   0700
        <n>/ tmp-*/                0700
          fs/                      the layer's root: 0755 unless the layer sets "./"
      containers/                  0700
        <id>/                      0700
          upper/                   0755: it is the container's "/"
          init/                    0755, with mount points 0755 and empty /etc files 0644
          work/ rootfs/            0700
          hostname hosts resolv.conf   0644: bound into the container, read by any user there
          config.json              0600 (the environment, secrets included)
          <id>-json.log monitor.log attach.sock   0600
      volumes/                     0700
        <name>/                    0700
          volume.json              0600 (labels, options of ``volume create``)
          _data/                   0755, then the image's mode at the mount point (copy-up)
      networks/ **                 directories 0700, files 0600 (records, leases, DNS entries)
      events/                      0700
        journal journal.1 rotate.lock   0600 (lamina.events)
      build-cache/                 0700
        context-hashes.db{,-wal,-shm}   0600
        mounts/                    0700
          <id>/                    0755 or the mount's mode=: bound into RUN steps
    /run/lamina/ /run/lamina/seccomp/   0700, compiled filters 0600
    /run/lamina/net/ **                 0700/0600: the default bridge's record and leases

Files lamina writes for the user outside the store (``save -o``, ``export -o``) are 0600,
as Docker 20.10's client writes them.
"""

from __future__ import annotations

import os
import stat

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
#: a directory a container sees as a directory of its own filesystem
VISIBLE_DIR = 0o755
#: a file bound into a container that every user in it must read
VISIBLE_FILE = 0o644

#: names lamina may have put at a store's root (anything else: not a store of ours)
STORE_ENTRIES = frozenset({
    "content", "snapshots", "containers", "volumes", "networks", "build-cache", "events", "lock", "gc.lock",
    "lamina.db", "lamina.db-wal", "lamina.db-shm", "lamina.db-journal",
})
#: files of a container dir that are bound into the container
_SHARED_FILES = frozenset({"hostname", "hosts", "resolv.conf"})
#: directories of a container dir whose mode the container sees (not lamina's to tighten)
_VISIBLE_DIRS = frozenset({"upper", "init"})


def mkdir(path: str, mode: int = PRIVATE_DIR, *, exist_ok: bool = False) -> None:
    """Create ``path`` (its parent must exist) with exactly ``mode``, whatever the umask.

    With ``exist_ok`` an existing directory is left as it is."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if exist_ok and os.path.isdir(path):
            return
        raise
    if mode & 0o077:  # the umask may have taken bits a container needs
        os.chmod(path, mode)


def makedirs(path: str, mode: int = PRIVATE_DIR) -> None:
    """``mkdir -p``: every directory created gets ``mode``; existing ones are left alone."""
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        makedirs(parent, mode)
    mkdir(path, mode, exist_ok=True)


def create_file(path: str, mode: int = PRIVATE_FILE) -> None:
    """Create ``path`` empty with ``mode`` if it does not exist (an existing file is kept)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        if mode & 0o077 and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes | str, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` atomically (a temp file beside it, then rename) with ``data``;
    the new file has exactly ``mode``."""
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


def check_output_path(path: str) -> None:
    """docker/cli's ValidateOutputPath: the directory of ``path`` must exist, and ``path``, if
    it exists, must be a regular file (a device, a directory, a FIFO or a socket is refused:
    the output is renamed over it). Raises InvalidArgument with the client's words."""
    from lamina.errors import InvalidArgument
    d = os.path.dirname(os.path.normpath(path))
    if d and d != ".":
        try:
            os.stat(d)
        except OSError as e:
            raise InvalidArgument(f"invalid output path: stat {d}: {(e.strerror or str(e)).lower()}") from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise InvalidArgument(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device file"),
                       (stat.S_ISBLK, "a block device file"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket file")):
        if test(st.st_mode):
            raise InvalidArgument(f"cannot write to {what}")


def open_output(path: str):
    """A new file for a user's output (``save -o``, ``export -o``) as Docker's client
    makes it: mode 0600, created beside ``path`` under a fresh name (never through a
    symlink someone planted) and renamed over ``path`` by ``finish_output``. Returns
    (binary file object, temp path). ``path`` is checked first (:func:`check_output_path`):
    nothing is ever renamed over a device, a directory or a FIFO."""
    check_output_path(path)
    d = os.path.dirname(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(d, f".lamina-tmp-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         PRIVATE_FILE)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp
    raise FileExistsError(f"cannot create a temporary file in {d}")


# -- an older store --------------------------------------------------------------------------

def _chmod(path: str, mode: int, st: os.stat_result) -> None:
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(path, mode)
        except FileNotFoundError:  # removed meanwhile by a concurrent lamina
            pass


def _tighten_tree(path: str) -> None:
    """Every directory under ``path`` (itself included) 0700, every file 0600 (lamina's own
    files only: never call this on a tree a container or an image owns)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        _chmod(path, PRIVATE_DIR, st)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            _tighten_tree(os.path.join(path, name))
    elif stat.S_ISREG(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        _chmod(path, PRIVATE_FILE, st)


def _entries(path: str):
    """(name, full path, lstat) of each entry of a directory; nothing if it is gone."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        p = os.path.join(path, name)
        try:
            yield name, p, os.lstat(p)
        except FileNotFoundError:
            continue


def tighten(root: str) -> None:
    """Give a store written by an older lamina (root 0711, the rest 0755/0644) the modes
    above. Idempotent and safe next to other lamina processes; symlinks are never followed.
    The root is tightened last, so an interrupted run is redone by the next open."""
    for name, p, st in _entries(root):
        if name in ("content", "build-cache", "networks", "events"):
            if name == "build-cache":
                _chmod(p, PRIVATE_DIR, st)
                for sub, sp, sst in _entries(p):
                    if sub == "mounts" and stat.S_ISDIR(sst.st_mode):
                        _chmod(sp, PRIVATE_DIR, sst)  # the mounts in it are a RUN step's to see
                    else:
                        _tighten_tree(sp)
            else:
                _tighten_tree(p)
        elif name in ("snapshots", "volumes"):
            if stat.S_ISDIR(st.st_mode):
                _chmod(p, PRIVATE_DIR, st)
                for _, sp, sst in _entries(p):  # the layer (fs/) or volume (_data/) below is not ours
                    _chmod(sp, PRIVATE_DIR if stat.S_ISDIR(sst.st_mode) else PRIVATE_FILE, sst)
        elif name == "containers":
            if stat.S_ISDIR(st.st_mode):
                _chmod(p, PRIVATE_DIR, st)
                for _, cp, cst in _entries(p):
                    if not stat.S_ISDIR(cst.st_mode):
                        continue
                    _chmod(cp, PRIVATE_DIR, cst)
                    for fname, fp, fst in _entries(cp):
                        if stat.S_ISDIR(fst.st_mode):
                            if fname not in _VISIBLE_DIRS:
                                _chmod(fp, PRIVATE_DIR, fst)
                        elif fname in _SHARED_FILES:
                            _chmod(fp, VISIBLE_FILE, fst)
                        elif stat.S_ISREG(fst.st_mode) or stat.S_ISSOCK(fst.st_mode):
                            _chmod(fp, PRIVATE_FILE, fst)
        elif stat.S_ISREG(st.st_mode):
            _chmod(p, PRIVATE_FILE, st)
    st = os.lstat(root)
    _chmod(root, PRIVATE_DIR, st)
