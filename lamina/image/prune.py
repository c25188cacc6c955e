"""``image prune``: remove dangling (or, with ``all_unused``, all unused) images, then GC."""

from __future__ import annotations

import time

from lamina.errors import InvalidArgument
from lamina.image.service import Images, parse_time


def _until(values: list[str]) -> float | None:
    if not values:
        return None
    v = values[-1]
    import re
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", v)
    if m:
        return time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]
    if v.replace(".", "", 1).isdigit():
        return float(v)
    t = parse_time(v)
    if t is None:
        raise InvalidArgument(f'failed to parse value as time or duration: "{v}"')  # dockerd's words
    return t


def prune_images(images: Images, *, all_unused: bool, filters: dict[str, list[str]],
                 intermediate_only: bool = False) -> tuple[list[str], int]:
    """Docker's ``image prune``: returns Docker's lines (``untagged: x`` / ``deleted:
    sha256:...``) and bytes freed.

    Candidates are *dangling* images -- untagged and without children -- or, with
    ``all_unused``, every image but the intermediate ones (untagged with children); images a
    container uses, newer than ``until`` or without the wanted labels stay. Each candidate
    goes like ``rmi`` without ``--no-prune``: its tags, the image, then each untagged parent
    left without children and unused (a build's intermediate steps), so the parents of an
    image that stays are never removed. ``intermediate_only``: only build-step images
    (``builder prune``)."""
    from lamina import reference
    from lamina.image import gc
    until = _until(filters.get("until", []))
    db = images.db
    used = {r[0] for r in db.query("SELECT image FROM containers")}
    recs = images.all()
    by_id = {str(r.id): r for r in recs}
    children: dict[str, set[str]] = {}
    for r in recs:
        if r.parent:
            children.setdefault(r.parent, set()).add(str(r.id))
    tags = images.all_tags()
    # named: tagged, or pulled by digest (name@digest), which is not dangling either
    named = set(tags) | {m for (m,) in db.query("SELECT DISTINCT manifest FROM repo_digests")}

    def keep(rec) -> bool:
        return str(rec.manifest) in used or (intermediate_only and not rec.intermediate)

    victims = []
    for rec in recs:
        rid = str(rec.id)
        untagged = str(rec.manifest) not in named
        if untagged and children.get(rid):
            continue  # intermediate: goes only with the image it leads to
        if not untagged and not all_unused:
            continue
        if keep(rec):
            continue
        if until is not None and (rec.created or rec.added) >= until:
            continue
        if "label" in filters:
            labels = images.config(rec).config.get("Labels") or {}
            if not all(_label_match(f, labels) for f in filters["label"]):
                continue
        victims.append(rec)
    gone: list = []
    gone_ids: set[str] = set()
    untag_only: list = []   # -a: a tagged image with children loses its tags, stays as intermediate
    for rec in victims:
        stack = [rec]
        while stack:
            cur = stack.pop()
            cid = str(cur.id)
            if cid in gone_ids:
                continue
            if children.get(cid, set()) - gone_ids:
                if cur is rec and tags.get(str(rec.manifest)):
                    untag_only.append(rec)
                continue
            gone.append(cur)
            gone_ids.add(cid)
            parent = by_id.get(cur.parent) if cur.parent else None
            if parent is not None and str(parent.manifest) not in named and not keep(parent):
                stack.append(parent)
    lines: list[str] = []
    with db.tx() as c:
        for rec in untag_only + gone:
            for t in sorted(tags.get(str(rec.manifest), [])):
                lines.append(f"untagged: {reference.parse(t).familiar}")
            c.execute("DELETE FROM tags WHERE manifest=?", (str(rec.manifest),))
            if rec in untag_only:
                continue
            c.execute("DELETE FROM repo_digests WHERE manifest=?", (str(rec.manifest),))
            c.execute("DELETE FROM images WHERE manifest=?", (str(rec.manifest),))
            lines.append(f"deleted: {rec.id}")
    images.write_index()
    report = gc.collect(images.store)
    lines.extend(f"deleted: {c}" for c in report.chains_removed)
    return lines, report.bytes_freed


def _label_match(f: str, labels: dict) -> bool:
    k, sep, v = f.partition("=")
    if k.startswith("!"):
        return not _label_match(f[1:], labels)
    return k in labels and (not sep or labels[k] == v)
