"""Garbage collection of blobs, snapshots and partial ingests.

``reachable(...)`` is a pure function: roots (image manifests, container chains)
-> the sets of blob digests and snapshot chain IDs that must be kept. ``collect``
reads the roots from the store, sweeps the rest, and reports what it freed.

Contract: nothing reachable from an image record or a container is ever removed. Safe to
run concurrently with other lamina processes: ``collect`` takes the store's gc lock
exclusively, and every operation that adds content holds it shared until its records are
written, so in-flight blobs and snapshots are never swept. A killed process releases it.
"""

from __future__ import annotations

import json
import os
import shutil

from lamina.digest import Digest, chain_ids
from lamina.errors import LaminaError
from lamina.values import field, value


@value
class Keep:
    blobs: frozenset[str]
    chains: frozenset[str]


@value(frozen=False)
class Report:
    blobs_removed: list[str] = field(default_factory=list)
    chains_removed: list[str] = field(default_factory=list)
    ingests_removed: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    kept_chains: frozenset[str] = frozenset()


def reachable(manifests: dict[str, tuple[str, list[str], list[str]]], extra_chains: set[str]) -> Keep:
    """Pure: ``manifests`` maps manifest digest -> (config digest, layer blob digests, diff IDs)."""
    blobs: set[str] = set()
    chains: set[str] = set(extra_chains)
    for m, (cfg, layers, diffs) in manifests.items():
        blobs.add(m)
        blobs.add(cfg)
        blobs.update(layers)
        chains.update(str(c) for c in chain_ids([Digest.parse(d) for d in diffs]))
    return Keep(frozenset(blobs), frozenset(chains))


def _image_graph(store) -> dict[str, tuple[str, list[str], list[str]]]:
    """Roots: every image record, and every image a container was made from (``rmi -f``
    may delete the record under a stopped container, which still needs the image's blobs
    and all its snapshots, as Docker keeps a container's layers)."""
    out = {}
    content = store.content
    roots = dict(store.db.query("SELECT manifest, config FROM images"))
    for (manifest,) in store.db.query("SELECT DISTINCT image FROM containers"):
        roots.setdefault(manifest, None)
    for manifest, config in roots.items():
        try:
            m = json.loads(content.read(Digest.parse(manifest), verify=False))
            if config is None:
                config = m["config"]["digest"]
            c = json.loads(content.read(Digest.parse(config), verify=False))
            layers = [x["digest"] for x in m.get("layers") or ()]
            diffs = list((c.get("rootfs") or {}).get("diff_ids") or ())
        except (LaminaError, ValueError, KeyError, TypeError):
            layers, diffs = [], []  # a damaged image keeps what it can; never fail GC on it
        out[manifest] = (config or manifest, layers, diffs)
    return out


def _registry_blobs(store, kept: frozenset[str]) -> set[str]:
    """What the registry client keeps beside the images: the document each repo digest
    names (an index a multi-platform pull resolved, or the manifest a push sent, with that
    manifest's config and layers), and the compressed copies push made of kept layers."""
    out: set[str] = set()
    content = store.content
    for (digest,) in store.db.query("SELECT DISTINCT digest FROM repo_digests"):
        out.add(digest)
        try:
            doc = json.loads(content.read(Digest.parse(digest), verify=False))
            if isinstance(doc.get("config"), dict):
                out.add(doc["config"]["digest"])
                out.update(x["digest"] for x in doc.get("layers") or ())
        except (LaminaError, ValueError, KeyError, TypeError, AttributeError):
            pass  # a missing or damaged document keeps only its own name
    for source, blob in store.db.query("SELECT source, blob FROM layer_copies"):
        if source in kept:
            out.add(blob)
    return out


def collect(store, *, dry_run: bool = False) -> Report:
    """Sweep everything unreachable. Returns what was (or, with dry_run, would be) freed.

    Must not be called while this process holds ``store.operation()`` (it would deadlock).
    """
    with store.gc_lock():
        return _collect(store, dry_run=dry_run)


def _collect(store, *, dry_run: bool) -> Report:
    db = store.db
    content = store.content
    graph = _image_graph(store)
    container_chains = {r[0] for r in db.query("SELECT chain_id FROM containers WHERE chain_id IS NOT NULL")}
    keep = reachable(graph, container_chains)
    keep = Keep(keep.blobs | _registry_blobs(store, keep.blobs), keep.chains)
    rep = Report(kept_chains=keep.chains)
    # blobs
    for d in list(content.walk()):
        s = str(d)
        if s in keep.blobs:
            continue
        try:
            rep.bytes_freed += os.stat(content.path(d)).st_size
        except FileNotFoundError:
            continue
        rep.blobs_removed.append(s)
        if not dry_run:
            content.delete(d)
    # snapshots: rows not kept, plus directories no row names
    rows = db.query("SELECT chain_id, dir, size FROM snapshots")
    known_dirs = set()
    for chain, dirname, size in rows:
        known_dirs.add(dirname)
        if chain in keep.chains:
            continue
        rep.chains_removed.append(chain)
        rep.bytes_freed += size or 0
        if not dry_run:
            with db.tx() as c:
                c.execute("DELETE FROM snapshots WHERE chain_id=?", (chain,))
            _rmtree(os.path.join(store.snapshots_dir, dirname))
    if not dry_run:
        try:
            names = os.listdir(store.snapshots_dir)
        except FileNotFoundError:
            names = []
        for name in names:
            if name not in known_dirs and not name.startswith(".lock-"):
                _rmtree(os.path.join(store.snapshots_dir, name))
    # facts about blobs that are gone
    if not dry_run and rep.blobs_removed:
        with db.tx() as c:
            c.executemany("DELETE FROM layer_blobs WHERE blob=?", [(b,) for b in rep.blobs_removed])
            c.executemany("DELETE FROM blob_sources WHERE blob=?", [(b,) for b in rep.blobs_removed])
            c.executemany("DELETE FROM layer_copies WHERE blob=? OR source=?",
                          [(b, b) for b in rep.blobs_removed])
            c.execute("DELETE FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM layer_blobs)")
    # partial ingests nobody holds
    for ref in content.stale_ingests():
        rep.ingests_removed.append(ref)
        if not dry_run:
            content.remove_ingest(ref)
    return rep


def _rmtree(path: str) -> None:
    """Remove a tree even if a (crashed) run left it mounted or immutable."""
    if not os.path.lexists(path):
        return
    try:
        from lamina import mount
        for mp in sorted(mount.mounts_under(path), reverse=True):
            mount.unmount(mp, detach=True)
    except (ImportError, AttributeError, LaminaError, OSError):
        pass
    shutil.rmtree(path, ignore_errors=True)
