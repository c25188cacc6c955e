"""Docker-shaped views of an image: ``inspect`` JSON and ``history`` rows."""

from __future__ import annotations

from lamina.image.service import ImageRecord, Images, parse_time

# Docker's container Config, in Docker's field order; None prints as null like Go's nil.
_CONFIG_SHAPE = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", "omit"), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", "omit"), ("ArgsEscaped", "omit"), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", "omit"), ("MacAddress", "omit"),
    ("OnBuild", None), ("Labels", None), ("StopSignal", "omit"), ("StopTimeout", "omit"),
    ("Shell", "omit"),
)


_HEALTHCHECK_ORDER = ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def docker_config(cfg: dict) -> dict:
    """An image's container config in Docker's full shape (absent fields as Docker shows them;
    a Healthcheck's keys in Go's field order)."""
    out = {}
    for key, default in _CONFIG_SHAPE:
        if key in cfg and cfg[key] not in (None, [], {}) or (key in cfg and default == "omit" and cfg[key]):
            out[key] = cfg[key]
            if key == "Healthcheck" and isinstance(cfg[key], dict):
                hc = cfg[key]
                out[key] = {**{k: hc[k] for k in _HEALTHCHECK_ORDER if k in hc},
                            **{k: v for k, v in hc.items() if k not in _HEALTHCHECK_ORDER}}
        elif default != "omit":
            out[key] = default
    for k, v in cfg.items():
        if k not in out and v not in (None, "", [], {}):
            out[k] = v
    return out


def inspect_image(images: Images, rec: ImageRecord) -> dict:
    from lamina import reference
    cfg = images.config(rec)
    raw = cfg.raw
    tags = [reference.parse(t).familiar for t in images.tags_of(rec.manifest)]
    comment = ""
    if cfg.history:
        comment = cfg.history[-1].comment or ""
    container_config = raw.get("container_config")
    graph = {"Data": _graph_data(images, images.chain(rec)), "Name": "overlay2"}
    out = {
        "Id": str(rec.id),
        "RepoTags": tags,
        "RepoDigests": images.repo_digests_of(rec.manifest),
        "Parent": rec.parent or "",
        "Comment": comment,
        "Created": cfg.created or "0001-01-01T00:00:00Z",
        "Container": raw.get("container", ""),
        "ContainerConfig": docker_config(container_config or {}),
        "DockerVersion": raw.get("docker_version", ""),
        "Author": cfg.author or "",
        "Config": docker_config(cfg.config),
        "Architecture": cfg.architecture,
        "Os": cfg.os,
        "Size": rec.size,
        "VirtualSize": rec.size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in cfg.diff_ids]},
        "Metadata": {"LastTagTime": _last_tag_time(images, rec)},
        "Descriptor": {"mediaType": rec.media_type, "digest": str(rec.manifest), "size": rec.manifest_size},
    }
    if cfg.variant:
        out["Variant"] = cfg.variant
    return out


def _graph_data(images: Images, chain) -> dict | None:
    """Docker's overlay2 GraphDriver.Data for an image whose layers are unpacked: LowerDir
    (the parents' layer dirs, nearest first; absent for one layer), MergedDir, UpperDir (the
    top layer's dir) and WorkDir, in Docker's key order. None while a layer is not unpacked
    (lamina unpacks on first use)."""
    import os
    dirs = []
    for chain_id, *_ in chain:
        row = images.db.one("SELECT dir FROM snapshots WHERE chain_id=?", (str(chain_id),))
        if not row:
            return None
        dirs.append(os.path.join(images.store.snapshots_dir, row[0]))
    if not dirs:
        return None
    top = dirs[-1]
    data = {}
    if len(dirs) > 1:
        data["LowerDir"] = ":".join(os.path.join(d, "fs") for d in reversed(dirs[:-1]))
    data.update(MergedDir=os.path.join(top, "merged"), UpperDir=os.path.join(top, "fs"),
                WorkDir=os.path.join(top, "work"))
    return data


def _last_tag_time(images: Images, rec: ImageRecord) -> str:
    from lamina.timefmt import rfc3339
    row = images.db.one("SELECT MAX(added) FROM tags WHERE manifest=?", (str(rec.manifest),))
    return rfc3339(row[0]) if row and row[0] else "0001-01-01T00:00:00Z"


def history_rows(images: Images, rec: ImageRecord) -> list[dict]:
    """Newest first: id (or None for <missing>), created (epoch), created_by, size, comment.

    A row gets an image ID when a local image (this one or a parent recorded by a build)
    ends at that history entry, as Docker shows for images built locally.
    """
    cfg = images.config(rec)
    chain = images.chain(rec)
    sizes = []
    for _, diff_id, desc in chain:
        row = images.db.one("SELECT content_size FROM layers WHERE diff_id=?", (str(diff_id),))
        sizes.append(row[0] if row else desc.size)
    # which local images end at which history index
    ends: dict[int, str] = {}
    cur: ImageRecord | None = rec
    seen = set()
    while cur is not None and str(cur.id) not in seen:
        seen.add(str(cur.id))
        try:
            n = len(images.config(cur).history)
        except Exception:
            break
        ends.setdefault(n - 1, str(cur.id))
        cur = images._by_manifest_or_config(images._parse(cur.parent)) if cur.parent else None
    history = list(cfg.history)
    if not history:  # an image without history: one row per layer
        from lamina.oci import HistoryEntry
        history = [HistoryEntry(created=cfg.created) for _ in chain]
    rows = []
    layer = 0
    for i, h in enumerate(history):
        size = 0
        if not h.empty_layer:
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        rows.append({"id": ends.get(i), "created": parse_time(h.created), "created_by": h.created_by or "",
                     "size": size, "comment": h.comment or ""})
    rows.reverse()
    if rows and rows[0]["id"] is None:
        rows[0]["id"] = str(rec.id)
    return rows
