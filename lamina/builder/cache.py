"""The build cache: a step's result image, keyed by its parent image and what the step does.

Key = sha256 over (parent image ID, instruction kind, the step's inputs): for RUN the
command and the build args it sees; for COPY/ADD the sources' content checksum (contents,
modes, ownership, symlink targets; not mtimes), flags and destination; for metadata steps
the expanded instruction. Rows live in the ``build_cache`` table and survive across builds
and processes; ``lamina builder prune`` empties it. ``explain_miss`` says why a step missed
(the instruction changed, which source files changed, or the parent changed).
"""

from __future__ import annotations

import hashlib
import json
import time


def cache_key(parent: str, kind: str, payload) -> str:
    data = json.dumps([parent, kind, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


class BuildCache:
    def __init__(self, store) -> None:
        self.store = store

    def lookup(self, key: str) -> str | None:
        """The manifest digest of the cached result, if its image still exists."""
        row = self.store.db.one(
            "SELECT b.image FROM build_cache b JOIN images i ON i.manifest = b.image WHERE b.key=?", (key,))
        return row[0] if row else None

    def record(self, key: str, *, parent: str, instr: str, image: str, sources: dict | None) -> None:
        with self.store.db.tx() as c:
            c.execute("INSERT OR REPLACE INTO build_cache(key, parent, instr, image, sources, created) "
                      "VALUES(?,?,?,?,?,?)", (key, parent, instr, image,
                                             json.dumps(sources) if sources is not None else None, time.time()))

    def previous(self, *, parent: str, instr: str) -> tuple[str, dict] | None:
        """(image manifest, sources manifest) of the latest row of this instruction on this
        parent whose image still exists (a COPY that missed may reuse its unchanged files)."""
        row = self.store.db.one(
            "SELECT b.image, b.sources FROM build_cache b JOIN images i ON i.manifest = b.image "
            "WHERE b.parent=? AND b.instr=? AND b.sources IS NOT NULL ORDER BY b.created DESC LIMIT 1",
            (parent, instr))
        return (row[0], json.loads(row[1])) if row else None

    def explain_miss(self, *, parent: str, instr: str, sources: dict | None) -> str:
        rows = self.store.db.query(
            "SELECT instr, sources FROM build_cache WHERE parent=? ORDER BY created DESC LIMIT 20", (parent,))
        if not rows:
            return "no earlier build ran a step on this parent image (first build, or an earlier step changed)"
        same = [r for r in rows if r[0] == instr]
        if not same:
            return f"the instruction changed (last time after this parent: {rows[0][0]!r})"
        if sources is not None and same[0][1]:
            old = json.loads(same[0][1])
            changed = sorted(k for k in set(old) | set(sources) if old.get(k) != sources.get(k))
            if changed:
                shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                return f"source files changed: {shown}"
        return "the build arguments or flags it sees changed"

    def prune(self) -> int:
        with self.store.db.tx() as c:
            n = c.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0]
            c.execute("DELETE FROM build_cache")
        return n
