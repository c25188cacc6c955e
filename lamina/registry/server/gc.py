"""Garbage collection of a registry store: mark from every repository's manifests, sweep
the blobs nothing marks. Safe to run while servers use the store (online GC).

Roots: every manifest a repository holds; with ``delete_untagged``, only the tagged ones,
the manifests pushed within the grace period, and (transitively) the manifests whose
``subject`` is kept, so signatures and SBOMs live as long as their image. From each root
the walk marks the manifest, its config and layers (non-distributable ones too, if
present) and, for an index, its child manifests.

Concurrency with pushes, without stopping the servers:

- Nothing younger than ``grace`` seconds (by mtime or ctime: a completed upload is
  renamed into blobs/ with a fresh mtime) is removed, so blobs uploaded for a manifest that
  is not pushed yet survive; uploads in progress live under ``uploads/`` and are never
  candidates.
- The sweep holds ``gc.lock`` exclusively; a manifest push holds it shared while it
  checks its references and links itself. Under the exclusive lock GC first marks again
  from every manifest link changed since the mark began, so a manifest pushed during the
  mark keeps its blobs, and a push that comes after the sweep finds a deleted blob missing
  (MANIFEST_BLOB_UNKNOWN) instead of linking to it.

Also removed: repository blob links whose blob is gone, upload sessions untouched for
``upload_expiry`` seconds (registry:2 purges after a week too) and stray temporary files.
"""

from __future__ import annotations

import fcntl
import os
import stat as _stat
import time
from typing import NamedTuple

from lamina.registry.server import manifests as mf
from lamina.registry.server import names, uploads
from lamina.registry.server.storage import Storage, blob_rel

RESCAN_SLACK = 0.1
"""File times come from the kernel's coarse clock, which lags the real one by up to a
tick: a link changed just after the mark began may carry a time slightly before it."""


class Result(NamedTuple):
    marked: int
    blobs_removed: list[str]
    bytes_freed: int
    manifests_removed: list[str]     # "name@digest"
    links_removed: int
    uploads_removed: int


def _age(st: os.stat_result) -> float:
    return max(st.st_mtime, st.st_ctime)


class _Repo:
    def __init__(self, store: Storage, name: str) -> None:
        self.name = name
        self.manifests: dict[str, float] = {}      # digest -> newest of mtime/ctime
        for alg in names.ALGORITHMS:
            for h, st in store.scandir(f"repositories/{name}/_manifests/{alg}") or ():
                if _stat.S_ISREG(st.st_mode) and names.parse_digest(f"{alg}:{h}"):
                    self.manifests[f"{alg}:{h}"] = _age(st)
        self.tags: dict[str, str] = {}
        for t in store.listdir(f"repositories/{name}/_tags") or ():
            d = store.tag_digest(name, t)
            if d:
                self.tags[t] = d


def collect(store: Storage, *, grace: float = 600.0, delete_untagged: bool = False,
            dry_run: bool = False, upload_expiry: float = 7 * 86400.0, log=None) -> Result:
    """Run one collection; ``log(line)`` reports each removal."""
    log = log or (lambda s: None)
    t0 = time.time()
    marked: set[str] = set()
    parsed: dict[str, tuple[list, str | None]] = {}

    def refs_of(dg: str):
        if dg not in parsed:
            alg, hexd = dg.split(":", 1)
            data = store.read_all(blob_rel(alg, hexd))
            parsed[dg] = mf.references(data) if data is not None else ([], None)
        return parsed[dg]

    def mark_from(dg: str, repo: _Repo, kept: set[str]) -> None:
        stack = [dg]
        while stack:
            d = stack.pop()
            if d in kept:
                continue
            kept.add(d)
            marked.add(d)
            refs, _ = refs_of(d)
            for r in refs:
                if r.kind == "manifest":
                    if r.digest in repo.manifests:
                        stack.append(r.digest)
                    else:
                        marked.add(r.digest)
                else:
                    marked.add(r.digest)

    repos = [_Repo(store, n) for n in store.repositories()]
    untagged: list[tuple[_Repo, str]] = []
    for repo in repos:
        kept: set[str] = set()
        if delete_untagged:
            roots = set(repo.tags.values()) | {d for d, age in repo.manifests.items() if age > t0 - grace}
        else:
            roots = set(repo.manifests)
        for d in roots:
            if d in repo.manifests:
                mark_from(d, repo, kept)
        if delete_untagged:
            changed = True
            while changed:        # referrers of kept manifests are kept
                changed = False
                for d in repo.manifests:
                    if d not in kept and refs_of(d)[1] in kept:
                        mark_from(d, repo, kept)
                        changed = True
            untagged.extend((repo, d) for d in repo.manifests if d not in kept)

    lockfd = store.open("gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    removed: list[str] = []
    freed = 0
    mans_removed: list[str] = []
    links_removed = 0
    ups_removed = 0
    try:
        fcntl.flock(lockfd, fcntl.LOCK_EX)
        # what changed while marking: mark from it too
        now_repos = {}
        for n in store.repositories():
            r = _Repo(store, n)
            now_repos[n] = r
            for d, age in r.manifests.items():
                if age >= t0 - RESCAN_SLACK:
                    mark_from(d, r, set())
        for repo, d in untagged:
            cur = now_repos.get(repo.name)
            if cur is None or d not in cur.manifests or d in cur.tags.values() or d in marked:
                continue
            alg, hexd = d.split(":", 1)
            mans_removed.append(f"{repo.name}@{d}")
            log(f"manifest eligible for deletion: {repo.name}@{d}")
            if not dry_run:
                _, subject = refs_of(d)
                if subject:
                    store.remove_referrer(repo.name, subject, d)
                store.delete_manifest_link(repo.name, alg, hexd)
        # sweep blobs
        cutoff = time.time() - grace
        for alg in names.ALGORITHMS:
            for pre in store.listdir(f"blobs/{alg}") or ():
                for h, st in store.scandir(f"blobs/{alg}/{pre}") or ():
                    d = f"{alg}:{h}"
                    if d in marked or _age(st) > cutoff or not _stat.S_ISREG(st.st_mode):
                        continue
                    log(f"blob eligible for deletion: {d}")
                    removed.append(d)
                    freed += st.st_size
                    if not dry_run:
                        store.unlink(f"blobs/{alg}/{pre}/{h}")
                if not dry_run:
                    store.rmdir_empty_up(f"blobs/{alg}/{pre}", f"blobs/{alg}")
        # repository links to blobs that are gone
        for name in now_repos:
            for alg in names.ALGORITHMS:
                for h in store.listdir(f"repositories/{name}/_blobs/{alg}") or ():
                    if store.blob_size(alg, h) is None or (dry_run and f"{alg}:{h}" in removed):
                        links_removed += 1
                        if not dry_run:
                            store.unlink(f"repositories/{name}/_blobs/{alg}/{h}")
        # abandoned uploads and temporary files
        for uid in store.listdir("uploads") or ():
            ust = store.stat(f"uploads/{uid}/data") or store.stat(f"uploads/{uid}")
            if ust is not None and _age(ust) < time.time() - upload_expiry:
                ups_removed += 1
                log(f"upload session expired: {uid}")
                if not dry_run:
                    uploads.remove_session(store, uid)
        for n, st in store.scandir("tmp") or ():
            if _age(st) < time.time() - 3600 and not dry_run:
                store.unlink(f"tmp/{n}")
    finally:
        os.close(lockfd)
    return Result(len(marked), removed, freed, mans_removed, links_removed, ups_removed)
