"""Replay of a fully cached build without re-running the builder.

A build whose every step was a cache hit records a *memo*: the exact output it printed and
everything its result depended on — the Dockerfile and .dockerignore bytes, the base images'
tags, the step images and cache rows, and the stat keys (inode, size, mtime, ctime, mode)
of every context path its COPY/ADD steps read plus the directories above them. The next
identical ``lamina build`` checks all of that with stat(2) and a few SQL lookups and, if
nothing changed, prints the same output and re-applies the tags: the same result the full
builder would reach, without importing it. Any difference (or anything the memo cannot
vouch for: ADD <url>, RUN bind mounts of the context, --no-cache) runs the full builder.

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


def memo_key(**inputs) -> str:
    """Identity of a build invocation (the raw CLI inputs that shape its result and output)."""
    data = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return _sha256(data.encode()).hexdigest()


def stat_key(path: str) -> list | None:
    try:
        s = os.lstat(path)
    except OSError:
        return None
    return [s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_mode, s.st_uid, s.st_gid]


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


def ignore_candidates(context_dir: str, dockerfile_path: str | None) -> list[str]:
    """Every path a .dockerignore could be read from for this build (Docker's precedence:
    ``<Dockerfile>.dockerignore`` next to the Dockerfile, then ``<context>/.dockerignore``)."""
    out = []
    if dockerfile_path:
        out.append(dockerfile_path + ".dockerignore")
    out.append(os.path.join(context_dir, ".dockerignore"))
    return out


def replay(store, key: str, *, dockerfile_path: str | None, dockerfile_data: bytes | None) -> str | None:
    """If the memo for ``key`` still holds, print its output, apply its tags and return the
    final image ID; else None (the caller runs the full build)."""
    db = store.db
    row = db.one("SELECT data FROM build_memo WHERE key=?", (key,))
    if row is None:
        return None
    m = json.loads(row[0])
    df = (_sha256(dockerfile_data).hexdigest() if dockerfile_data is not None
          else file_digest(dockerfile_path))
    if df is None or df != m["dockerfile"]:
        return None
    for path, digest in m["ignore"].items():
        if file_digest(path) != digest:
            return None
    if os.environ.get("SOURCE_DATE_EPOCH", "") != m["epoch"]:
        return None
    for path, want in m["files"].items():
        if stat_key(path) != want:
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
    keys = m["keys"]
    if keys:
        n = db.one(f"SELECT COUNT(*) FROM build_cache WHERE key IN ({','.join('?' * len(keys))})", tuple(keys))[0]
        if n != len(set(keys)):
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
                c.execute("INSERT OR REPLACE INTO tags(name, manifest, added) VALUES(?,?,?)", (name, final, time.time()))
        from lamina.image.service import Images
        Images(store).write_index()
    sys.stdout.write(m["output"])
    sys.stdout.flush()
    return m["final_id"]
