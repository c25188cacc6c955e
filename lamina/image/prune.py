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
        raise InvalidArgument(f"invalid filter 'until={v}': want a duration (10m, 2h) or a timestamp")
    return t


def prune_images(images: Images, *, all_unused: bool, filters: dict[str, list[str]],
                 intermediate_only: bool = False) -> tuple[list[str], int]:
    """Returns Docker's lines (``untagged: x`` / ``deleted: sha256:...``) and bytes freed.

    ``intermediate_only``: only build-step images (``builder prune``)."""
    from lamina import reference
    from lamina.image import gc
    until = _until(filters.get("until", []))
    db = images.db
    used = {r[0] for r in db.query("SELECT image FROM containers")}
    lines: list[str] = []
    victims = []
    for rec in images.all():
        if str(rec.manifest) in used:
            continue
        tags = images.tags_of(rec.manifest)
        if (tags or images.repo_digests_of(rec.manifest)) and not all_unused:
            continue  # an image pulled by digest is named (name@digest), not dangling
        if intermediate_only and not rec.intermediate:
            continue
        if until is not None and (rec.created or rec.added) >= until:
            continue
        if "label" in filters:
            labels = images.config(rec).config.get("Labels") or {}
            if not all(_label_match(f, labels) for f in filters["label"]):
                continue
        victims.append((rec, tags))
    # an untagged parent of an image that stays (a build's intermediate step) stays too
    while True:
        gone = {str(r.id) for r, _ in victims}
        kept_parents = {r.parent for r in images.all() if str(r.id) not in gone and r.parent}
        keep = [v for v in victims if str(v[0].id) in kept_parents]
        if not keep:
            break
        victims = [v for v in victims if str(v[0].id) not in kept_parents]
    with db.tx() as c:
        for rec, tags in victims:
            for t in tags:
                lines.append(f"untagged: {reference.parse(t).familiar}")
            c.execute("DELETE FROM tags WHERE manifest=?", (str(rec.manifest),))
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
