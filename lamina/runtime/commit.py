"""``commit``: a container's changes (its overlay upper dir) become a new image layer.

The upper dir is streamed as a layer tar (overlay whiteouts and opaque dirs converted to OCI
ones by lamina.layer.writer) straight into the one-pass ingest (diff ID, ISA-L gzip, blob
digest): nothing is staged on disk but the blob itself.
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.digest import Digest
from lamina.image.changes import apply_changes
from lamina.image.service import ImageRecord, Images, rfc3339

_IMAGE_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
               "StopSignal", "OnBuild", "Healthcheck", "Shell", "ArgsEscaped")


def layer_from_dir(store, root: str, *, overlay_upper: bool = False,
                   source_date_epoch: int | None = None, progress=None,
                   progress_text: str = "Committing layer") -> tuple[oci.Descriptor, Digest, int]:
    """Write the tree ``root`` (an overlay upper dir with ``overlay_upper``) as a gzip layer
    blob; returns (descriptor, diff ID, content size). The caller holds ``store.operation()``.

    The tar is written straight into a LayerSink (diff ID hashed here, ISA-L compressing in
    its threads, the blob hashed as it lands in the content store): one pass, no pipe.
    ``progress`` (a lamina.progress.Progress, or None) counts the tar's bytes on one line.
    """
    from lamina.layer.ingest import LayerSink
    from lamina.layer.writer import write_layer
    with store.content.writer(f"commit-{os.getpid()}-{os.urandom(4).hex()}", resume=False, hashing=False) as cw:
        sink = LayerSink(cw, compression="gzip")
        out = sink
        if progress is not None:
            from lamina.progress import Writer
            out = Writer(sink, lambda n: progress.counter(progress_text, n))
        try:
            write_layer(root, out, overlay_upper=overlay_upper, source_date_epoch=source_date_epoch,
                        content=sink.add_content)
        except BaseException:
            try:
                sink.close()
            except Exception:
                pass
            raise
        info = sink.close()
        cw.commit(digest=info.digest)
    return oci.Descriptor(info.media_type, info.digest, info.size), info.diff_id, info.content_size


def base_layers(images: Images, rec: ImageRecord) -> list[tuple[oci.Descriptor, Digest, int]]:
    out = []
    for _, diff_id, desc in images.chain(rec):
        row = images.db.one("SELECT content_size FROM layers WHERE diff_id=?", (str(diff_id),))
        out.append((desc, diff_id, row[0] if row else desc.size))
    return out


def commit(containers, doc: dict, *, tag=None, author: str | None = None, message: str | None = None,
           changes: list[str] = (), pause: bool = True, progress=None) -> ImageRecord:
    """The container's changes as a new image (``docker commit``); ``progress``: see
    :func:`layer_from_dir`."""
    from lamina.runtime import lifecycle
    store = containers.store
    images = Images(store)
    base = images.of_container(doc["ImageManifest"])
    bcfg = images.config(base)
    paused = False
    if pause and doc["State"]["Running"] and not doc["State"].get("Paused"):
        lifecycle.pause(containers, doc)
        paused = True
    try:
        with store.operation():
            layer = layer_from_dir(store, os.path.join(containers.dir(doc["Id"]), "upper"), overlay_upper=True,
                                   progress=progress)
            if progress is not None:
                progress.done()
            ccfg = {k: v for k, v in doc["Config"].items() if k in _IMAGE_KEYS and v not in (None, "", [], {})}
            ccfg = apply_changes(ccfg, list(changes))
            now = rfc3339()
            history = [h for h in bcfg.raw.get("history") or []]
            entry = {"created": now, "created_by": " ".join([doc["Path"], *doc["Args"]])}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            history.append(entry)
            config = {k: v for k, v in bcfg.raw.items() if k not in ("rootfs", "history", "config", "container_config")}
            config.update({"created": now, "config": ccfg, "history": history, "container": doc["Id"],
                           "architecture": bcfg.architecture, "os": bcfg.os})
            if author:
                config["author"] = author
            else:
                config.pop("author", None)
            rec = images.create(config=config, layers=base_layers(images, base) + [layer],
                                tags=[tag] if tag else [], parent=None)
        containers.event(doc, "commit", comment=message or "", imageID=str(rec.id),
                         imageRef=tag.familiar if tag else "")
        return rec
    finally:
        if paused:
            lifecycle.unpause(containers, containers.get(doc["Id"]))
