"""The build context, read in place (never copied), with a persistent content-hash cache.

``Context(root, ignore=..., cache_path=...)`` answers the two questions a COPY/ADD step
asks of the context:

- :meth:`Context.resolve` -- which context paths do these sources name? Docker's rules:
  paths are relative to the context root (a leading ``/`` too), ``..`` may not leave it,
  wildcards follow Go's ``filepath.Match`` (``*`` ``?`` ``[a-z]`` ``[^a]`` ``\\x``; ``*``
  matches leading dots), a symlink named as a source is followed *inside* the context,
  files excluded by .dockerignore are invisible. A source that names nothing raises
  ``InvalidArgument('failed to compute cache key: "/x" not found')``.
- :meth:`Context.checksum` -- a sha256 over what the sources would copy: sorted relative
  paths, file contents, permission bits, uid/gid, symlink targets and directory structure;
  *not* timestamps, so ``touch`` keeps the checksum and a one-byte edit changes it.
  :meth:`Context.manifest` gives the per-path entries behind it and :meth:`Context.explain`
  names the paths that differ between two manifests (for "cache miss: a/b changed").

File content digests are cached in ``cache_path`` (SQLite, WAL, one transaction per
checksum run) keyed on ``(path, inode, size, mtime_ns, ctime_ns)``, so a warm checksum
of an unchanged context stats every file but reads none. A file whose mtime/ctime is
within ``racy_window_ns`` of the moment it was hashed is not cached (it could change again
within the same timestamp tick, like git's "racily clean" entries); a file that changes
while being hashed is hashed again. ``Context.stats`` counts hashed files, bytes, and hits.

The cache file is owned by the caller (one per lamina root is fine: rows are keyed by
absolute path); it is safe to share between concurrent processes.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import sqlite3
import stat as st
import time
from lamina._dcache import dataclass

from lamina.errors import InvalidArgument

__all__ = ["Source", "Context", "Manifest", "contains_wildcards"]

_CHUNK = 1 << 20
_MAX_SYMLINKS = 40
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")

#: Manifest: context-relative path ("" is the context root) -> entry description.
Manifest = dict


@dataclass(frozen=True)
class Source:
    """One resolved source. ``relpath`` is relative to the context root ("" = the root
    itself), after following a symlink that the source named; ``name`` is the path as
    written (cleaned), which decides the destination name."""

    name: str
    relpath: str
    abspath: str
    is_dir: bool


@dataclass
class Stats:
    files_hashed: int = 0
    bytes_hashed: int = 0
    cache_hits: int = 0
    entries: int = 0

    def reset(self) -> None:
        self.files_hashed = self.bytes_hashed = self.cache_hits = self.entries = 0


def contains_wildcards(name: str) -> bool:
    return bool(_WILDCARD.search(name))


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


class Context:
    """A build context directory. Not thread-safe; cheap to create."""

    racy_window_ns = 50_000_000

    def __init__(self, root: str, *, ignore=None, cache_path: str | None = None,
                 racy_window_ns: int | None = None, workers: int | None = None) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise InvalidArgument(f"unable to prepare context: path {root!r} not found")
        self.ignore = ignore if ignore else None
        self.cache_path = cache_path
        if racy_window_ns is not None:
            self.racy_window_ns = racy_window_ns
        self.workers = workers or min(8, (os.cpu_count() or 2) * 2)
        self.stats = Stats()
        self._db: sqlite3.Connection | None = None
        self._cache: dict[str, tuple[int, int, int, int, str]] | None = None

    # --- visibility ----------------------------------------------------------------------

    def _excluded(self, rel: str, is_dir: bool) -> bool:
        return bool(self.ignore) and rel != "" and self.ignore.excluded(rel, is_dir)

    def _skip_dir(self, rel: str) -> bool:
        return bool(self.ignore) and rel != "" and self.ignore.can_skip_dir(rel)

    def _visible(self, rel: str, is_dir: bool) -> bool:
        if not self._excluded(rel, is_dir):
            return True
        return is_dir and not self._skip_dir(rel)

    # --- resolution ----------------------------------------------------------------------

    def _clean(self, src: str) -> str:
        if src.startswith("/"):
            return posixpath.normpath(src).lstrip("/")
        c = posixpath.normpath(src)
        if c == ".." or c.startswith("../"):
            raise InvalidArgument(f"forbidden path outside the build context: {src}")
        return "" if c == "." else c

    def _follow(self, rel: str, *, follow_last: bool = True) -> str | None:
        """Resolve ``rel`` inside the root as if the root were ``/`` (symlinks that point
        outside are clamped to the root). Returns the resolved relative path, or None."""
        parts = [p for p in rel.split("/") if p]
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
            full = os.path.join(self.root, cand)
            try:
                s = os.lstat(full)
            except FileNotFoundError:
                return None
            except NotADirectoryError:
                return None
            if st.S_ISLNK(s.st_mode) and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"too many levels of symbolic links: /{rel}")
                target = os.readlink(full)
                if target.startswith("/"):
                    done = []
                parts = [x for x in target.split("/") if x] + parts
                continue
            done.append(p)
        return "/".join(done)

    def _glob(self, pattern: str) -> list[str]:
        comps = [c for c in pattern.split("/") if c]
        results = [""]
        for ci, comp in enumerate(comps):
            nxt: list[str] = []
            if not contains_wildcards(comp):
                lit = _unescape(comp)
                for base in results:
                    cand = f"{base}/{lit}" if base else lit
                    if os.path.lexists(os.path.join(self.root, cand)):
                        nxt.append(cand)
            else:
                rx = _go_match_regex(comp)
                for base in results:
                    d = os.path.join(self.root, base) if base else self.root
                    try:
                        with os.scandir(d) as it:
                            names = sorted(e.name for e in it if rx.match(e.name))
                    except (NotADirectoryError, FileNotFoundError):
                        continue
                    nxt += [f"{base}/{nm}" if base else nm for nm in names]
            results = nxt
        return results

    def resolve(self, srcs: list[str], *, allow_wildcards: bool = True) -> list[Source]:
        """Resolve COPY/ADD source paths. Raises InvalidArgument naming the bad source."""
        out: list[Source] = []
        for src in srcs:
            name = self._clean(src)
            if allow_wildcards and contains_wildcards(name):
                matches = self._glob(name)
            else:
                matches = [_unescape(name) if allow_wildcards else name]
            found = False
            for m in matches:
                resolved = self._follow(m)
                if resolved is None:
                    continue
                full = os.path.join(self.root, resolved) if resolved else self.root
                try:
                    s = os.stat(full)
                except OSError:
                    continue
                is_dir = st.S_ISDIR(s.st_mode)
                if resolved and not self._visible(resolved, is_dir):
                    continue
                if m and m != resolved and self._excluded(m, is_dir):
                    continue
                out.append(Source(name=m, relpath=resolved, abspath=full, is_dir=is_dir))
                found = True
            if not found:
                raise InvalidArgument(
                    f'failed to compute cache key: "/{name}" not found: '
                    "not found in the build context or excluded by .dockerignore")
        return out

    # --- walking -------------------------------------------------------------------------

    def walk(self, source: Source):
        """Yield ``(relpath, os.stat_result)`` for every visible entry a source copies, in
        sorted order, the source itself first (relpaths are context-relative). Symlinks
        inside directories are not followed."""
        s = os.stat(source.abspath)
        yield source.relpath, s
        if source.is_dir:
            yield from self._walk_dir(source.relpath)

    def _walk_dir(self, rel: str):
        d = os.path.join(self.root, rel) if rel else self.root
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise InvalidArgument(f"cannot read build context directory /{rel}: {e.strerror}") from None
        ign = self.ignore
        for e in entries:
            child = f"{rel}/{e.name}" if rel else e.name
            s = e.stat(follow_symlinks=False)
            is_dir = st.S_ISDIR(s.st_mode)
            if ign and ign.excluded(child, is_dir):
                if not is_dir or ign.can_skip_dir(child):
                    continue
                # an exception may re-include something below: keep the dir only if so
                below = list(self._walk_dir(child))
                if below:
                    yield child, s
                    yield from below
                continue
            yield child, s
            if is_dir:
                yield from self._walk_dir(child)

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

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _key(s: os.stat_result) -> tuple[int, int, int, int]:
        return (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)

    def _hash_file(self, full: str, s0: os.stat_result) -> tuple[str, os.stat_result, bool]:
        """(hex digest, stat at read time, stable) for one regular file."""
        for _attempt in range(3):
            h = hashlib.sha256()
            with open(full, "rb", buffering=0) as f:
                before = os.fstat(f.fileno())
                buf = bytearray(_CHUNK)
                view = memoryview(buf)
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
                after = os.fstat(f.fileno())
            if self._key(before) == self._key(after):
                return h.hexdigest(), after, True
        return h.hexdigest(), after, False

    def manifest(self, sources: list[Source]) -> Manifest:
        """Context-relative path -> entry description for everything ``sources`` copy.
        Entries: ``dir <mode> <uid>:<gid>``, ``file <mode> <uid>:<gid> sha256:<hex>``,
        ``symlink <mode> <uid>:<gid> -> <target>``, ``<type> <mode> <uid>:<gid>``."""
        self._open_cache()
        entries: dict[str, tuple[os.stat_result, str]] = {}
        for src in sources:
            for rel, s in self.walk(src):
                if rel not in entries:
                    entries[rel] = (s, os.path.join(self.root, rel) if rel else self.root)
        self.stats.entries += len(entries)
        out: dict[str, str] = {}
        todo: list[tuple[str, str, os.stat_result]] = []
        cache = self._cache
        for rel, (s, full) in entries.items():
            mode = s.st_mode
            meta = f"{st.S_IMODE(mode):o} {s.st_uid}:{s.st_gid}"
            if st.S_ISREG(mode):
                c = cache.get(full)
                if c is not None and c[:4] == self._key(s):
                    out[rel] = f"file {meta} sha256:{c[4]}"
                    self.stats.cache_hits += 1
                else:
                    out[rel] = meta  # filled below
                    todo.append((rel, full, s))
            elif st.S_ISDIR(mode):
                out[rel] = f"dir {meta}"
            elif st.S_ISLNK(mode):
                out[rel] = f"symlink {meta} -> {os.readlink(full)}"
            else:
                kind = ("fifo" if st.S_ISFIFO(mode) else "socket" if st.S_ISSOCK(mode)
                        else "chardev" if st.S_ISCHR(mode) else "blockdev")
                rdev = f" {os.major(s.st_rdev)}:{os.minor(s.st_rdev)}" if kind.endswith("dev") else ""
                out[rel] = f"{kind} {meta}{rdev}"
        if todo:
            self._hash_many(todo, out)
        return dict(sorted(out.items()))

    def _hash_many(self, todo, out) -> None:
        rows = []

        def one(item):
            rel, full, s = item
            return item, self._hash_file(full, s)

        if len(todo) > 1 and self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor  # costs ~10 ms: only when needed
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = list(pool.map(one, todo))
        else:
            results = [one(t) for t in todo]
        now = time.time_ns()
        for (rel, full, s), (hexd, s2, stable) in results:
            self.stats.files_hashed += 1
            self.stats.bytes_hashed += s2.st_size
            out[rel] = f"file {st.S_IMODE(s2.st_mode):o} {s2.st_uid}:{s2.st_gid} sha256:{hexd}"
            racy = now - max(s2.st_mtime_ns, s2.st_ctime_ns) < self.racy_window_ns
            if stable and not racy and self._key(s2) == self._key(s):
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
        """sha256 hex over the sources' paths, contents and metadata (no timestamps)."""
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
                ka, kb = a.split(" ", 3), b.split(" ", 3)
                what = ("type" if ka[0] != kb[0] else "mode" if ka[1] != kb[1]
                        else "owner" if ka[2:3] != kb[2:3] else
                        "target" if ka[0] == "symlink" else "content")
                out.append(f"changed: {shown} ({what})")
        if len(out) > limit:
            out = out[:limit] + [f"... and {len(out) - limit} more"]
        return out
