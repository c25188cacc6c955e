"""Replay of a fully cached build without re-running the builder.

A build whose every step was a cache hit records a *memo* under the identity of its
invocation (:func:`memo_key`: the *resolved* context path, the Dockerfile path, tags, build
arg values, ...): the exact output it printed and everything its result depended on --

- the Dockerfile and every candidate .dockerignore, by content digest;
- ``SOURCE_DATE_EPOCH``;
- the base images' tags, the step images, and each cache row as (key, image) -- a
  ``--no-cache`` build or ``builder prune`` that re-points or drops a row voids the memo;
- ``seen``: the stat key (inode, size, mtime, ctime, mode, owner) of every path the build
  context showed the build: each path component met while resolving a source (symlink
  hops included), each directory a wildcard or a walk listed (excluded directories listed
  for a ``!`` exception too), each entry copied -- as the Context recorded them when it
  looked, never re-read at the end (a file edited during the build must not be vouched for).

The builder records a memo only when the context can vouch for what it saw (nothing changed
while it was read, nothing racily clean: lamina.builder.context), and deletes the memo of an
invocation whose build could not be replayed, so an older memo never outlives a newer
build. The next identical ``lamina build`` checks all of that with fstatat(2) calls relative
to directory descriptors opened one component at a time without following symlinks, and a
few SQL lookups; if everything matches it prints the same output and re-applies the tags:
the image the full builder would produce. Anything else (or anything the memo cannot vouch
for: ADD <url>, RUN bind mounts of the context, COPY --from an image, --no-cache) runs the
full builder.

Only cheap modules are imported here: this is the start-up path of a cached build.
"""

from __future__ import annotations

import json
import os
import sys
import time

try:  # the builtin sha256: the OpenSSL-backed hashlib costs ~7 ms to import
    from _sha256 import sha256 as _sha256
except ImportError:  # another Python: fall back
    from hashlib import sha256 as _sha256

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def memo_key(**inputs) -> str:
    """Identity of a build invocation (the raw CLI inputs that shape its result and output)."""
    data = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return _sha256(data.encode()).hexdigest()


def file_digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return _sha256(f.read()).hexdigest()
    except OSError:
        return None


def record(store, key: str, memo: dict) -> None:
    with store.db.tx() as c:
        c.execute("INSERT OR REPLACE INTO build_memo(key, data, created) VALUES(?,?,?)",
                  (key, json.dumps(memo, separators=(",", ":")), time.time()))


def forget(store, key: str | None = None) -> None:
    """Drop the memo of one invocation (or all of them)."""
    with store.db.tx() as c:
        if key is None:
            c.execute("DELETE FROM build_memo")
        else:
            c.execute("DELETE FROM build_memo WHERE key=?", (key,))


def ignore_candidates(context_dir: str, dockerfile_path: str | None) -> list[str]:
    """Every path a .dockerignore could be read from for this build (Docker's precedence:
    ``<Dockerfile>.dockerignore`` next to the Dockerfile, then ``<context>/.dockerignore``)."""
    out = []
    if dockerfile_path:
        out.append(dockerfile_path + ".dockerignore")
    out.append(os.path.join(context_dir, ".dockerignore"))
    return out


def _stat_key(s: os.stat_result) -> list:
    return [s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode, s.st_uid, s.st_gid]


def seen_unchanged(root: str, seen: dict) -> bool:
    """Does every physical path of ``seen`` (relative to ``root``) still have its stat key?
    Directories are opened one component at a time with O_NOFOLLOW, so a component that
    became a symlink fails the check instead of being followed."""
    try:
        rfd = os.open(root, _DIR_FLAGS)
    except OSError:
        return False
    fds = {"": rfd}

    def dir_fd(rel: str) -> int | None:
        fd = fds.get(rel)
        if fd is not None:
            return fd
        parent, _, name = rel.rpartition("/")
        pfd = dir_fd(parent)
        if pfd is None:
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except OSError:
            return None
        fds[rel] = fd
        return fd

    try:
        for rel in sorted(seen):
            want = seen[rel]
            if rel == "":
                s = os.stat(rfd)
            else:
                parent, _, name = rel.rpartition("/")
                pfd = dir_fd(parent)
                if pfd is None:
                    s = None
                else:
                    try:
                        s = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                    except (FileNotFoundError, NotADirectoryError):
                        s = None
            if (_stat_key(s) if s is not None else None) != want:
                return False
        return True
    except OSError:
        return False
    finally:
        for fd in fds.values():
            os.close(fd)


def replay(store, key: str, *, dockerfile_path: str | None, dockerfile_data: bytes | None) -> str | None:
    """If the memo for ``key`` still holds, print its output, apply its tags and return the
    final image ID; else None (the caller runs the full build)."""
    db = store.db
    row = db.one("SELECT data FROM build_memo WHERE key=?", (key,))
    if row is None:
        return None
    m = json.loads(row[0])
    if "seen" not in m:
        return None  # a memo of an older lamina
    df = (_sha256(dockerfile_data).hexdigest() if dockerfile_data is not None
          else file_digest(dockerfile_path))
    if df is None or df != m["dockerfile"]:
        return None
    for path, digest in m["ignore"].items():
        if file_digest(path) != digest:
            return None
    if os.environ.get("SOURCE_DATE_EPOCH", "") != m["epoch"]:
        return None
    for root, seen in m["seen"].items():
        if not seen_unchanged(root, seen):
            return None
    for name, manifest in m["bases"]:
        got = db.one("SELECT manifest FROM tags WHERE name=?", (name,)) if name else None
        if (got[0] if got else None) != manifest:
            if name or not db.one("SELECT 1 FROM images WHERE manifest=?", (manifest,)):
                return None
    images = m["images"]
    if images:
        n = db.one(f"SELECT COUNT(*) FROM images WHERE manifest IN ({','.join('?' * len(images))})", tuple(images))[0]
        if n != len(set(images)):
            return None
    pairs = {k: img for k, img in m["keys"]}
    if pairs:
        rows = db.query(f"SELECT key, image FROM build_cache WHERE key IN ({','.join('?' * len(pairs))})",
                        tuple(pairs))
        if dict((r[0], r[1]) for r in rows) != pairs:
            return None
    final = m["final"]
    changed = False
    for name in m["tags"]:
        got = db.one("SELECT manifest FROM tags WHERE name=?", (name,))
        if not got or got[0] != final:
            changed = True
    if changed:
        with db.tx() as c:
            for name in m["tags"]:
                c.execute("INSERT OR REPLACE INTO tags(name, manifest, added) VALUES(?,?,?)",
                          (name, final, time.time()))
        from lamina.image.service import Images
        Images(store).write_index()
    sys.stdout.write(m["output"])
    sys.stdout.flush()
    return m["final_id"]
