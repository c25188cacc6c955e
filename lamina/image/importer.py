"""``lamina import``: a root filesystem tarball becomes a one-layer image.

The tarball (plain, gzip, zstd, bzip2 or xz) is read once: the pass computes the diff ID,
compresses (gzip via ISA-L, threaded), hashes the blob and checks every tar header for
breakouts. Nothing is unpacked here: snapshots are made on first use (run, build).
"""

from __future__ import annotations

import os

from lamina import oci
from lamina.image.changes import apply_changes
from lamina.image.service import ImageRecord, Images, rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO


def import_tar(images: Images, src: BinaryIO, *, tags: list | tuple = (), changes: list[str] | tuple = (),
               message: str | None = None, platform: oci.Platform | None = None,
               compression: str = "gzip") -> ImageRecord:
    """Import ``src`` as an image; returns its record. On any error nothing is recorded
    and the partial blob is removed; bad ``changes`` are refused before anything is written."""
    from lamina.layer.ingest import ingest_layer
    store = images.store
    plat = platform or oci.host_platform()
    container_config = apply_changes({}, list(changes))
    with store.operation():
        ref = f"import-{os.getpid()}-{os.urandom(4).hex()}"
        with store.content.writer(ref, resume=False, hashing=False) as w:
            info = ingest_layer(src, w, compression=compression)
            w.commit(digest=info.digest)
        now = rfc3339()
        history = {"created": now, "comment": message or "Imported from -"}
        config = {"architecture": plat.architecture, "os": plat.os, "created": now,
                  "config": container_config, "history": [history]}
        if plat.variant:
            config["variant"] = plat.variant
        desc = oci.Descriptor(info.media_type, info.digest, info.size)
        rec = images.create(config=config, layers=[(desc, info.diff_id, info.content_size)], tags=list(tags))
    from lamina.events import image_event
    image_event(store.root, str(rec.id), "import")
    return rec
