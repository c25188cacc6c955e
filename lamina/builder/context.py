"""A build context (or a stage's filesystem), read in place through a descriptor of its root,
with a persistent content-hash cache and a record of everything it looked at.

``Context(root, ignore=..., cache_path=...)`` answers the questions a COPY/ADD step asks:

- :meth:`Context.resolve` -- which paths do these sources name? Docker's rules: paths are
  relative to the root (a leading ``/`` too), ``..`` may not leave it, wildcards follow Go's
  ``filepath.Match`` (``*`` ``?`` ``[a-z]`` ``[^a]`` ``\\x``; ``*`` matches leading dots), a
  symlink named as a source (or met on the way) is followed *inside* the root, files
  excluded by .dockerignore are invisible. A source that names nothing raises
  ``InvalidArgument('failed to compute cache key: "/x" not found')``.
- :meth:`Context.checksum` -- a sha256 over what the sources would copy: sorted relative
  paths, file contents, permission bits, symlink targets and directory structure; *not*
  timestamps and *not* ownership (COPY and ADD reset both owner and group, so a ``chown``
  of a context file must not cost the cache, as with Docker). :meth:`Context.manifest`
  gives the per-path entries behind it and :meth:`Context.explain` names the paths that
  differ between two manifests (for "cache miss: a/b changed").
- :meth:`Context.walk`, :meth:`Context.open_file`, :meth:`Context.readlink` -- what a copy
  reads, by *physical* relative path (lamina.inroot): a component swapped for a symlink
  after it was looked at makes the call fail, it is never followed.

Everything the context looks at -- each path component met while resolving, each
directory listed by a wildcard or a walk (including excluded directories listed because
an exception could re-include something below), each entry a walk yields -- is recorded
in :attr:`Context.seen` (physical path -> stat key, the first observation), so the replay
of a fully cached build (builder/fastpath.py) can check all of it and nothing else.
:meth:`Context.trustworthy` says whether that record can vouch for the content: no path
was seen with two different stat keys, and none is *racily clean*.

Racily clean (git's rule): a file changed within the same timestamp tick as its last
recorded change keeps its stat key. An entry whose ctime is not older than
:attr:`Context.started_ns` minus the racy window could still change unseen, so it is neither
cached nor vouched for. The window follows the filesystem's timestamp granularity, read
from the entry itself: a ctime with no digit below 10 ms comes from a coarse filesystem
(ext4 with 128-byte inodes, FAT, many network filesystems: 1 or 2 seconds), which gets a
window of 2 s plus the base window; a fine-grained one gets the base window (50 ms, the
kernel's coarse clock lags by up to a tick).

File content digests are cached in ``cache_path`` (SQLite, WAL, one transaction per
checksum run) keyed on ``(path, inode, size, mtime_ns, ctime_ns)``, so a warm checksum of
an unchanged context stats every file but reads none. A file that changes while being
hashed is hashed again. ``Context.stats`` counts hashed files, bytes, and hits.

The cache file is owned by the caller (one per lamina root is fine: rows are keyed by
absolute path); it is safe to share between concurrent processes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import sqlite3
import stat as st
import threading
import time

from lamina.errors import InvalidArgument
from lamina.values import value

__all__ = ["Source", "Context", "Manifest", "contains_wildcards", "entry_text", "stat_key"]

_CHUNK = 1 << 20
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a fifo must not block
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_local = threading.local()


def read_buffer() -> tuple[bytearray, memoryview]:
    """A reusable 1 MiB buffer of the calling thread (allocating one per file costs more
    than reading a small file)."""
    got = getattr(_local, "buf", None)
    if got is None:
        buf = bytearray(_CHUNK)
        got = _local.buf = (buf, memoryview(buf))
    return got
_MAX_SYMLINKS = 40
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")
COARSE_WINDOW_NS = 2_000_000_000

#: Manifest: root-relative path ("" is the root) -> entry description.
Manifest = dict


@value
class Source:
    """One resolved source. ``relpath`` is the physical path relative to the root ("" = the
    root itself), after following a symlink that the source named; ``name`` is the path as
    written (cleaned), which decides the destination name."""

    name: str
    relpath: str
    abspath: str
    is_dir: bool


@value(frozen=False)
class Stats:
    files_hashed: int = 0
    bytes_hashed: int = 0
    cache_hits: int = 0
    entries: int = 0

    def reset(self) -> None:
        self.files_hashed = self.bytes_hashed = self.cache_hits = self.entries = 0


def contains_wildcards(name: str) -> bool:
    return bool(_WILDCARD.search(name))


def stat_key(s: os.stat_result) -> list:
    """What the replay compares: inode, size, mtime, ctime, mode, owner."""
    return [s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode, s.st_uid, s.st_gid]


def entry_text(s: os.stat_result, *, digest: str | None = None, target: str | None = None) -> str | None:
    """A manifest entry for what a copy of this entry produces (None: it is not copied).
    ``file <mode> sha256:<hex>``, ``dir <mode>``, ``symlink -> <target>``."""
    mode = s.st_mode
    if st.S_ISREG(mode):
        return f"file {st.S_IMODE(mode):o} sha256:{digest}"
    if st.S_ISDIR(mode):
        return f"dir {st.S_IMODE(mode):o}"
    if st.S_ISLNK(mode):
        return f"symlink -> {target}"
    return None  # fifos, sockets and devices are not copied


def _go_match_regex(comp: str) -> re.Pattern:
    """Go's filepath.Match for one path component, as a regex."""
    rx = []
    i = 0
    n = len(comp)
    while i < n:
        ch = comp[i]
        i += 1
        if ch == "*":
            rx.append("[^/]*")
        elif ch == "?":
            rx.append("[^/]")
        elif ch == "\\":
            if i >= n:
                raise InvalidArgument(f"syntax error in pattern {comp!r}")
            rx.append(re.escape(comp[i]))
            i += 1
        elif ch == "[":
            j = i
            if j < n and comp[j] == "^":
                j += 1
            if j < n and comp[j] == "]":
                j += 1
            while j < n and comp[j] != "]":
                j += 2 if comp[j] == "\\" else 1
            if j >= n:
                raise InvalidArgument(f"syntax error in pattern {comp!r}")
            body = comp[i:j]
            neg = body.startswith("^")
            if neg:
                body = body[1:]
            out = []
            k = 0
            while k < len(body):
                c = body[k]
                if c == "\\" and k + 1 < len(body):
                    out.append(re.escape(body[k + 1]))
                    k += 2
                    continue
                out.append("-" if c == "-" else re.escape(c))
                k += 1
            rx.append("[" + ("^" if neg else "") + "".join(out) + "]")
            i = j + 1
        else:
            rx.append(re.escape(ch))
    return re.compile("".join(rx) + r"\Z", re.S)


def _unescape(comp: str) -> str:
    return re.sub(r"\\(.)", r"\1", comp)


class ContextChanged(InvalidArgument):
    """A path of the context changed type while the build read it."""


class Context:
    """A build context directory (or any root read with the context's rules). Not
    thread-safe (its hashing threads are its own); cheap to create; close it."""

    racy_window_ns = 50_000_000

    def __init__(self, root: str, *, ignore=None, cache_path: str | None = None,
                 racy_window_ns: int | None = None, workers: int | None = None) -> None:
        from lamina.safepath import open_root, path_of
        self.started_ns = time.time_ns()
        real = os.path.realpath(root)
        try:
            self.root_fd = open_root(real)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise InvalidArgument(f"unable to prepare context: path {root!r} not found") from None
            raise InvalidArgument(f"unable to prepare context: {root}: {e.strerror}") from None
        self.root = path_of(self.root_fd)
        self.ignore = ignore if ignore else None
        self.cache_path = cache_path
        if racy_window_ns is not None:
            self.racy_window_ns = racy_window_ns
        self.workers = workers or min(8, (os.cpu_count() or 2) * 2)
        self.stats = Stats()
        self.seen: dict[str, list] = {}
        self.changed: set[str] = set()   # paths seen with two different stat keys
        self._db: sqlite3.Connection | None = None
        self._cache: dict[str, tuple[int, int, int, int, str]] | None = None
        self.on_read = None  # on_read(nbytes), thread-safe: told of every chunk hashed (build progress)
        self._observe("", os.stat(self.root_fd))

    # --- what was looked at -------------------------------------------------------------

    def _observe(self, rel: str, s: os.stat_result | None) -> None:
        key = stat_key(s) if s is not None else None
        old = self.seen.setdefault(rel, key)
        if old != key:
            self.changed.add(rel)

    def racy(self, s: os.stat_result) -> bool:
        """Could this entry change without changing its stat key (see the module doc)?"""
        window = self.racy_window_ns
        if s.st_ctime_ns % 10_000_000 == 0:
            window += COARSE_WINDOW_NS
        return s.st_ctime_ns > self.started_ns - window

    def trustworthy(self) -> bool:
        """True when :attr:`seen` vouches for what was read: nothing changed under the
        build's eyes and nothing is racily clean."""
        if self.changed:
            return False
        for key in self.seen.values():
            if key is not None and self.racy_key(key):
                return False
        return True

    def racy_key(self, key: list) -> bool:
        ctime = key[3]
        window = self.racy_window_ns + (COARSE_WINDOW_NS if ctime % 10_000_000 == 0 else 0)
        return ctime > self.started_ns - window

    # --- visibility ----------------------------------------------------------------------

    def _excluded(self, rel: str, is_dir: bool) -> bool:
        return bool(self.ignore) and rel != "" and self.ignore.excluded(rel, is_dir)

    def _skip_dir(self, rel: str) -> bool:
        return bool(self.ignore) and rel != "" and self.ignore.can_skip_dir(rel)

    def _visible(self, rel: str, is_dir: bool) -> bool:
        if not self._excluded(rel, is_dir):
            return True
        return is_dir and not self._skip_dir(rel)

    # --- physical access -------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """lstat of the physical path ``rel`` (recorded in :attr:`seen`)."""
        from lamina.safepath import lstat_physical
        s = lstat_physical(self.root_fd, rel)
        self._observe(rel, s)
        return s

    def open_file(self, rel: str, *, dir_fd: int | None = None, name: str | None = None) -> int:
        """A read-only descriptor of the regular file at the physical path ``rel`` (or of
        ``name`` in the directory descriptor ``dir_fd`` that :meth:`walk_fds` handed out)."""
        from lamina.safepath import open_physical
        try:
            if dir_fd is not None:
                fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
            else:
                fd = open_physical(self.root_fd, rel, _OPEN_FILE)
        except OSError as e:
            raise self._changed(rel, e) from None
        if not st.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ContextChanged(f"build context changed while it was read: /{rel} is no longer a file")
        return fd

    def open_dir(self, rel: str) -> int:
        from lamina.safepath import open_physical
        try:
            return open_physical(self.root_fd, rel, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise self._changed(rel, e) from None

    def readlink(self, rel: str, *, dir_fd: int | None = None, name: str | None = None) -> str:
        from lamina.safepath import readlink_physical
        try:
            if dir_fd is not None:
                return os.readlink(name, dir_fd=dir_fd)
            return readlink_physical(self.root_fd, rel)
        except OSError as e:
            raise self._changed(rel, e) from None

    @staticmethod
    def _changed(rel: str, e: OSError) -> InvalidArgument:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EINVAL, errno.EXDEV):
            return ContextChanged(f"build context changed while it was read: /{rel}: {e.strerror}")
        return InvalidArgument(f"cannot read build context path /{rel}: {e.strerror}")

    # --- resolution ----------------------------------------------------------------------

    def _clean(self, src: str) -> str:
        if src.startswith("/"):
            return posixpath.normpath(src).lstrip("/")
        c = posixpath.normpath(src)
        if c == ".." or c.startswith("../"):
            raise InvalidArgument(f"forbidden path outside the build context: {src}")
        return "" if c == "." else c

    def _follow(self, rel: str, *, follow_last: bool = True) -> tuple[str, os.stat_result] | None:
        """Resolve ``rel`` inside the root as if the root were ``/`` (symlinks that point
        outside are clamped to the root), one lstat per component. Returns the physical
        path and its lstat, or None if it does not exist."""
        parts = [p for p in rel.split("/") if p]
        done: list[str] = []
        hops = 0
        s = self.lstat("")
        while parts:
            p = parts.pop(0)
            if p == ".":
                continue
            if p == "..":
                if done:
                    done.pop()
                continue
            if done and not st.S_ISDIR(s.st_mode):
                return None  # a file used as a directory
            cand = "/".join(done + [p])
            s = self.lstat(cand)
            if s is None:
                return None
            if st.S_ISLNK(s.st_mode) and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links: /{rel}")
                target = self.readlink(cand)
                if target.startswith("/"):
                    done = []
                parts = [x for x in target.split("/") if x] + parts
                s = self.lstat("/".join(done))
                continue
            done.append(p)
        return "/".join(done), s

    def _list(self, rel: str, fd: int | None = None) -> list[tuple[str, os.stat_result]]:
        """(name, lstat) of the entries of the physical directory ``rel`` (or of the open
        directory ``fd``), sorted by name."""
        own = fd is None
        if own:
            fd = self.open_dir(rel)
        try:
            with os.scandir(fd) as it:
                out = [(e.name, e.stat(follow_symlinks=False)) for e in it]
        finally:
            if own:
                os.close(fd)
        out.sort(key=lambda x: x[0])
        return out

    def _glob(self, pattern: str) -> list[str]:
        comps = [c for c in pattern.split("/") if c]
        results = [""]
        for comp in comps:
            nxt: list[str] = []
            wild = contains_wildcards(comp)
            rx = _go_match_regex(comp) if wild else None
            lit = None if wild else _unescape(comp)
            for base in results:
                got = self._follow(base)
                if got is None or not st.S_ISDIR(got[1].st_mode):
                    continue
                phys = got[0]
                if lit is not None:
                    cand = f"{phys}/{lit}" if phys else lit
                    if self.lstat(cand) is not None:
                        nxt.append(f"{base}/{lit}" if base else lit)
                    continue
                for name, s in self._list(phys):
                    if rx.match(name):
                        self._observe(f"{phys}/{name}" if phys else name, s)
                        nxt.append(f"{base}/{name}" if base else name)
            results = nxt
        return results

    def resolve(self, srcs: list[str], *, allow_wildcards: bool = True,
                allow_empty: bool = False) -> list[Source]:
        """Resolve COPY/ADD source paths. Raises InvalidArgument naming the bad source;
        with ``allow_empty`` a wildcard that matches nothing is not an error (Docker accepts
        ``COPY package.json package-lock.json* ./`` without a lock file)."""
        out: list[Source] = []
        for src in srcs:
            name = self._clean(src)
            wild = allow_wildcards and contains_wildcards(name)
            if wild:
                matches = self._glob(name)
            else:
                matches = [_unescape(name) if allow_wildcards else name]
            found = False
            for m in matches:
                got = self._follow(m)
                if got is None:
                    continue
                resolved, s = got
                is_dir = st.S_ISDIR(s.st_mode)
                if resolved and not self._visible(resolved, is_dir):
                    continue
                if m and m != resolved and self._excluded(m, is_dir):
                    continue
                full = os.path.join(self.root, resolved) if resolved else self.root
                out.append(Source(name=m, relpath=resolved, abspath=full, is_dir=is_dir))
                found = True
            if not found and not (wild and allow_empty):
                raise InvalidArgument(
                    f'failed to compute cache key: "/{name}" not found: '
                    "not found in the build context or excluded by .dockerignore")
        return out

    # --- walking -------------------------------------------------------------------------

    def walk(self, source: Source):
        """Yield ``(relpath, os.stat_result)`` for every visible entry a source copies, in
        sorted order, the source itself first (relpaths are physical, root-relative).
        Symlinks inside directories are not followed."""
        for rel, s, _, _ in self.walk_fds(source):
            yield rel, s

    def walk_fds(self, source: Source):
        """:meth:`walk`, yielding ``(relpath, stat, dir_fd, name)``: ``dir_fd`` is an open
        descriptor of the entry's directory, valid until the next item is asked for (read the
        entry with ``open_file``/``readlink(dir_fd=..., name=...)``, no path lookup)."""
        rel = source.relpath
        parent, _, name = rel.rpartition("/")
        s = self.lstat(rel)
        if s is None or st.S_ISLNK(s.st_mode) or st.S_ISDIR(s.st_mode) != source.is_dir:
            raise ContextChanged(f"build context changed while it was read: /{rel}")
        if not rel:  # the root itself
            dfd = self.open_dir("")
            try:
                yield rel, s, None, None
                yield from self._walk_dir("", dfd)
            finally:
                os.close(dfd)
            return
        pfd = self.open_dir(parent)
        try:
            yield rel, s, pfd, name
            if source.is_dir:
                try:
                    dfd = os.open(name, _OPEN_DIR, dir_fd=pfd)
                except OSError as e:
                    raise self._changed(rel, e) from None
                try:
                    yield from self._walk_dir(rel, dfd)
                finally:
                    os.close(dfd)
        finally:
            os.close(pfd)

    def _walk_dir(self, rel: str, dfd: int):
        try:
            entries = self._list(rel, dfd)
        except OSError as e:
            raise InvalidArgument(f"cannot read build context directory /{rel}: {e.strerror}") from None
        ign = self.ignore
        for name, s in entries:
            child = f"{rel}/{name}" if rel else name
            is_dir = st.S_ISDIR(s.st_mode)
            if ign and ign.excluded(child, is_dir):
                if not is_dir or ign.can_skip_dir(child):
                    continue
                # an exception may re-include something below: the dir shows only if so,
                # but it was listed, so a new entry in it is noticed by the replay
                self._observe(child, s)
                first = True
                cfd = self._open_child(child, dfd, name)
                try:
                    for item in self._walk_dir(child, cfd):
                        if first:
                            yield child, s, dfd, name
                            first = False
                        yield item
                finally:
                    os.close(cfd)
                continue
            self._observe(child, s)
            yield child, s, dfd, name
            if is_dir:
                cfd = self._open_child(child, dfd, name)
                try:
                    yield from self._walk_dir(child, cfd)
                finally:
                    os.close(cfd)

    def _open_child(self, rel: str, dfd: int, name: str) -> int:
        try:
            return os.open(name, _OPEN_DIR, dir_fd=dfd)
        except OSError as e:
            raise self._changed(rel, e) from None

    # --- hashing -------------------------------------------------------------------------

    def _open_cache(self) -> None:
        if self._cache is not None:
            return
        self._cache = {}
        if not self.cache_path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.cache_path)), mode=0o700, exist_ok=True)
        # 0600 from the start (paths of the user's context); SQLite gives -wal/-shm the same mode
        os.close(os.open(self.cache_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.cache_path, timeout=30, isolation_level=None)
        for attempt in range(100):  # a journal-mode switch is not retried by SQLite's busy handler
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:  # another process (a concurrent stage) switches it
                if attempt == 99:
                    raise
                time.sleep(0.02)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS filehash (path TEXT PRIMARY KEY, ino INTEGER,"
                   " size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT)")
        self._db = db
        lo = self.root + "/"
        hi = self.root + "0"  # '0' sorts right after '/'
        for path, ino, size, mt, ct, dg in db.execute(
                "SELECT path, ino, size, mtime_ns, ctime_ns, digest FROM filehash"
                " WHERE path >= ? AND path < ?", (lo, hi)):
            self._cache[path] = (ino, size, mt, ct, dg)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._cache = None
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _key(s: os.stat_result) -> tuple[int, int, int, int]:
        return (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)

    def _hash_file(self, rel: str) -> tuple[str, os.stat_result, bool]:
        """(hex digest, stat at read time, stable) for one regular file."""
        for _attempt in range(3):
            h = hashlib.sha256()
            fd = self.open_file(rel)
            try:
                before = os.fstat(fd)
                buf, view = read_buffer()
                on_read = self.on_read
                while True:
                    n = os.readv(fd, [buf])
                    if not n:
                        break
                    h.update(view[:n])
                    if on_read is not None:
                        on_read(n)
                after = os.fstat(fd)
            finally:
                os.close(fd)
            if self._key(before) == self._key(after):
                return h.hexdigest(), after, True
        return h.hexdigest(), after, False

    def manifest(self, sources: list[Source]) -> Manifest:
        """Root-relative path -> entry description (:func:`entry_text`) for everything
        ``sources`` copy."""
        self._open_cache()
        entries: dict[str, os.stat_result] = {}
        for src in sources:
            for rel, s in self.walk(src):
                if rel not in entries:
                    entries[rel] = s
        self.stats.entries += len(entries)
        out: dict[str, str] = {}
        todo: list[tuple[str, str, os.stat_result]] = []
        cache = self._cache
        for rel, s in entries.items():
            mode = s.st_mode
            if st.S_ISREG(mode):
                full = os.path.join(self.root, rel)
                c = cache.get(full)
                if c is not None and c[:4] == self._key(s) and not self.racy(s):
                    out[rel] = entry_text(s, digest=c[4])
                    self.stats.cache_hits += 1
                else:
                    todo.append((rel, full, s))
            elif st.S_ISLNK(mode):
                out[rel] = entry_text(s, target=self.readlink(rel))
            else:
                e = entry_text(s)
                if e is not None:
                    out[rel] = e
        if todo:
            self._hash_many(todo, out)
        return dict(sorted(out.items()))

    def _hash_many(self, todo, out) -> None:
        rows = []

        def one(item):
            rel, full, s = item
            return item, self._hash_file(rel)

        if len(todo) > 1 and self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor  # costs ~10 ms: only when needed
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(one, todo))
        else:
            results = [one(t) for t in todo]
        for (rel, full, s), (hexd, s2, stable) in results:
            self.stats.files_hashed += 1
            self.stats.bytes_hashed += s2.st_size
            out[rel] = entry_text(s2, digest=hexd)
            if self._key(s2) != self._key(s) or not stable:
                self.changed.add(rel)  # it changed after the walk looked at it
                continue
            if not self.racy(s2):
                self._cache[full] = self._key(s2) + (hexd,)
                rows.append((full,) + self._key(s2) + (hexd,))
        if rows and self._db is not None:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO filehash VALUES (?,?,?,?,?,?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def digest_manifest(manifest: Manifest) -> str:
        h = hashlib.sha256()
        for rel in sorted(manifest):
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0"
                     + manifest[rel].encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()

    def checksum_with_manifest(self, sources: list[Source]) -> tuple[str, Manifest]:
        m = self.manifest(sources)
        return self.digest_manifest(m), m

    def checksum(self, sources: list[Source]) -> str:
        """sha256 hex over the sources' paths, contents and modes (no timestamps, no owners)."""
        return self.checksum_with_manifest(sources)[0]

    @staticmethod
    def explain(old: Manifest, new: Manifest, *, limit: int = 20) -> list[str]:
        """Human-readable differences, e.g. ``["changed: src/app.py (content)",
        "added: README", "removed: old.txt"]`` (at most ``limit``, then a count)."""
        out: list[str] = []
        for rel in sorted(set(old) | set(new)):
            a, b = old.get(rel), new.get(rel)
            if a == b:
                continue
            shown = rel or "."
            if a is None:
                out.append(f"added: {shown}")
            elif b is None:
                out.append(f"removed: {shown}")
            else:
                ka, kb = a.split(" ", 2), b.split(" ", 2)
                what = ("type" if ka[0] != kb[0] else "target" if ka[0] == "symlink"
                        else "mode" if ka[1] != kb[1] else "content")
                out.append(f"changed: {shown} ({what})")
        if len(out) > limit:
            out = out[:limit] + [f"... and {len(out) - limit} more"]
        return out
