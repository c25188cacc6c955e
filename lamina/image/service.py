"""Images: records, tags, lookup, creation, removal.

An *image* is a manifest we hold (row in ``images``) whose config and layer blobs are in
the content store. Its ID is the config digest (what ``images`` shows). Tags map a
canonical reference (``docker.io/library/busybox:latest``) to a manifest.

Contracts:
- ``add_image`` writes blobs first (inside the caller's ``store.operation()``), then the DB rows in one
  transaction, then content/index.json; a crash in between leaves unreferenced blobs that
  GC collects, never a record pointing at a missing blob.
- Moving a tag leaves the previous image in place, untagged ("dangling"), like Docker.
"""

from __future__ import annotations

import json
import time

from lamina import oci
from lamina.digest import Digest, chain_ids
from lamina.errors import Conflict, InvalidArgument, LaminaError, NotFound
from lamina.store import Store
from lamina.timefmt import parse_time, rfc3339  # noqa: F401 - re-exported
from lamina.values import value


@value
class ImageRecord:
    manifest: Digest          # manifest digest
    id: Digest                # config digest: the image ID
    media_type: str
    manifest_size: int
    size: int                 # sum of the layers' content sizes (what `images` shows)
    created: float | None
    added: float
    parent: str | None
    intermediate: bool

    @classmethod
    def from_row(cls, row: tuple) -> ImageRecord:
        m, c, mt, ms, size, created, added, parent, inter = row
        return cls(Digest.parse(m), Digest.parse(c), mt, ms, size, created, added, parent, bool(inter))


_COLS = "manifest, config, media_type, manifest_size, size, created, added, parent, intermediate"


class Images:
    """Image operations over a Store. Create one per command."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.content = store.content

    @property
    def db(self):
        return self.store.db

    # -- lookup -------------------------------------------------------------------
    def all(self) -> list[ImageRecord]:
        return [ImageRecord.from_row(r) for r in self.db.query(f"SELECT {_COLS} FROM images")]

    def get(self, manifest: Digest | str) -> ImageRecord:
        row = self.db.one(f"SELECT {_COLS} FROM images WHERE manifest=?", (str(manifest),))
        if not row:
            raise NotFound(f"No such image: {manifest}")
        return ImageRecord.from_row(row)

    def of_container(self, manifest: Digest | str) -> ImageRecord:
        """The image a container was made from: its record, or, when ``rmi -f`` deleted it
        under the (stopped) container, a record rebuilt from the manifest and config blobs,
        which GC keeps for as long as a container names the manifest (see image.gc)."""
        row = self.db.one(f"SELECT {_COLS} FROM images WHERE manifest=?", (str(manifest),))
        if row:
            return ImageRecord.from_row(row)
        d = Digest.parse(str(manifest))
        raw = self.content.read(d)
        m = oci.Manifest.from_json(raw, what=f"manifest {d}")
        return ImageRecord(d, m.config.digest, m.media_type, len(raw), sum(x.size for x in m.layers),
                           None, 0.0, None, False)

    def tags_of(self, manifest: Digest) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM tags WHERE manifest=? ORDER BY name", (str(manifest),))]

    def all_tags(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, m in self.db.query("SELECT name, manifest FROM tags ORDER BY name"):
            out.setdefault(m, []).append(name)
        return out

    def repo_digests_of(self, manifest: Digest) -> list[str]:
        return [f"{n}@{d}" for n, d in self.db.query(
            "SELECT name, digest FROM repo_digests WHERE manifest=? ORDER BY name, digest", (str(manifest),))]

    def resolve(self, text: str) -> ImageRecord:
        """Find an image by reference, full or short ID, or digest (``name@sha256:...``).

        Names are tried first, then IDs, like Docker. Raises NotFound naming what was looked
        up, as dockerd does: ``No such image: busybox:latest`` for a name without a tag.
        """
        from lamina import reference
        text = text.strip()
        if not text:
            raise InvalidArgument("image reference must not be empty")
        hexpart = text[7:] if text.startswith("sha256:") else text
        is_hex = 0 < len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart)
        ref = None
        try:
            ref = reference.parse(text)
        except InvalidArgument:
            if not is_hex:
                raise
        if ref is not None:
            if ref.digest is not None:
                rec = self._by_manifest_or_config(ref.digest)
                if rec:
                    return rec
                row = self.db.one("SELECT manifest FROM repo_digests WHERE name=? AND digest=?",
                                  (ref.name, str(ref.digest)))
                if row:  # an index (multi-platform pull) or the manifest a push sent
                    return self.get(row[0])
            else:
                row = self.db.one("SELECT manifest FROM tags WHERE name=?", (str(ref),))
                if row:
                    return self.get(row[0])
        if is_hex:
            like = f"sha256:{hexpart}%"
            rows = self.db.query(f"SELECT {_COLS} FROM images WHERE config LIKE ? ORDER BY added DESC", (like,))
            ids = {r[1] for r in rows}
            if len(ids) == 1:
                # several manifests may share a config; prefer a tagged one
                recs = [ImageRecord.from_row(r) for r in rows]
                tagged = [r for r in recs if self.tags_of(r.manifest)]
                return (tagged or recs)[0]
            if len(ids) > 1:
                raise InvalidArgument(f"ambiguous image ID {text!r}: it matches {len(ids)} images; "
                                      "give more characters")
            rows = self.db.query(f"SELECT {_COLS} FROM images WHERE manifest LIKE ?", (like,))
            if len(rows) == 1:
                return ImageRecord.from_row(rows[0])
        if ref is not None and ref.digest is None:  # dockerd names what it looked up: busybox:latest
            raise NotFound(f"No such image: {ref.familiar}")
        raise NotFound(f"No such image: {text}")

    @staticmethod
    def _parse(text: str) -> Digest:
        return Digest.parse(text)

    def _by_manifest_or_config(self, d: Digest) -> ImageRecord | None:
        row = self.db.one(f"SELECT {_COLS} FROM images WHERE manifest=?", (str(d),)) or \
            self.db.one(f"SELECT {_COLS} FROM images WHERE config=?", (str(d),))
        return ImageRecord.from_row(row) if row else None

    def manifest(self, rec: ImageRecord) -> oci.Manifest:
        return oci.Manifest.from_json(self.content.read(rec.manifest), what=f"manifest {rec.manifest}")

    def config(self, rec: ImageRecord) -> oci.ImageConfig:
        return oci.ImageConfig.from_json(self.content.read(rec.id), what=f"image config {rec.id}")

    def config_raw(self, rec: ImageRecord) -> bytes:
        return self.content.read(rec.id, verify=False)

    # -- creation -----------------------------------------------------------------
    def add_image(self, manifest_bytes: bytes, *, tags: list | tuple = (), parent: str | None = None,
                  intermediate: bool = False, layer_facts: dict | None = None,
                  repo_digest_names: list | tuple = (), write_index: bool = True) -> ImageRecord:
        """Record an image whose manifest, config and layer blobs are all in the content store.

        ``manifest_bytes`` is stored verbatim (its digest is the manifest digest).
        ``layer_facts`` maps layer blob digest -> (diff_id, content_size, media_type) learned
        at ingest. ``repo_digest_names`` are repository names (``name@<manifest>``) or
        (name, digest) pairs: ``name@digest`` then names this image on its registry. Verifies every
        referenced blob exists (NotFound names the missing digest)
        and that the config's diff_ids count matches the layers.
        """
        mdigest = Digest.of_bytes(manifest_bytes)
        m = oci.Manifest.from_json(manifest_bytes, what=f"manifest {mdigest}")
        for d in (m.config, *m.layers):
            if not self.content.exists(d.digest):
                raise NotFound(f"manifest {mdigest} refers to blob {d.digest}, which is missing")
        cfg = oci.ImageConfig.from_json(self.content.read(m.config.digest), what=f"image config {m.config.digest}")
        if len(cfg.diff_ids) != len(m.layers):
            raise InvalidArgument(f"image config {m.config.digest} lists {len(cfg.diff_ids)} diff IDs "
                                  f"but manifest {mdigest} has {len(m.layers)} layers")
        facts = layer_facts or {}
        size = 0
        with self.db.tx() as c:
            for desc, diff_id in zip(m.layers, cfg.diff_ids):
                fact = facts.get(desc.digest)
                if fact:
                    c.execute("INSERT OR REPLACE INTO layers(diff_id, content_size) VALUES(?,?)",
                              (str(diff_id), int(fact[1])))
                    c.execute("INSERT OR REPLACE INTO layer_blobs(blob, diff_id, media_type) VALUES(?,?,?)",
                              (str(desc.digest), str(diff_id), desc.media_type))
                row = c.execute("SELECT content_size FROM layers WHERE diff_id=?", (str(diff_id),)).fetchone()
                size += row[0] if row else desc.size
                if not fact:
                    c.execute("INSERT OR IGNORE INTO layer_blobs(blob, diff_id, media_type) VALUES(?,?,?)",
                              (str(desc.digest), str(diff_id), desc.media_type))
            # re-adding an image we hold (load of a saved copy) keeps what we knew of it
            c.execute(f"INSERT INTO images({_COLS}) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(manifest) DO UPDATE SET "
                      "size=excluded.size, parent=COALESCE(excluded.parent, images.parent), "
                      "intermediate=MIN(images.intermediate, excluded.intermediate)",
                      (str(mdigest), str(m.config.digest), m.media_type, len(manifest_bytes), size,
                       parse_time(cfg.created), time.time(), parent, int(intermediate)))
            for ref in tags:
                _move_tag(c, str(ref), str(mdigest))
            for item in repo_digest_names:
                name, digest = (item, mdigest) if isinstance(item, str) else item
                c.execute("INSERT OR REPLACE INTO repo_digests(name, digest, manifest) VALUES(?,?,?)",
                          (name, str(digest), str(mdigest)))
        if write_index:
            self.write_index()
        return self.get(mdigest)

    def create(self, *, config: dict, layers: list[tuple[oci.Descriptor, Digest, int]],
               tags: list | tuple = (), parent: str | None = None, intermediate: bool = False,
               write_index: bool = True) -> ImageRecord:
        """Write config + OCI manifest for ``layers`` [(descriptor, diff_id, content_size)].

        ``write_index=False`` skips rewriting content/index.json (a build does it once at
        the end for all its step images)."""
        config = dict(config)
        config["rootfs"] = {"type": "layers", "diff_ids": [str(x[1]) for x in layers]}
        cfg_bytes = oci.canonical_json(config)
        cfg_digest = self.content.put_bytes(cfg_bytes)
        manifest = {"schemaVersion": 2, "mediaType": oci.MT_OCI_MANIFEST,
                    "config": {"mediaType": oci.MT_OCI_CONFIG, "digest": str(cfg_digest), "size": len(cfg_bytes)},
                    "layers": [d.to_json() for d, _, _ in layers]}
        mbytes = oci.canonical_json(manifest)
        self.content.put_bytes(mbytes)
        facts = {d.digest: (diff, size, d.media_type) for d, diff, size in layers}
        rec = self.add_image(mbytes, tags=tags, parent=parent, intermediate=intermediate, layer_facts=facts,
                             write_index=write_index)
        for ref in tags:
            self._event(rec, "tag", _familiar(ref))
        return rec

    def _event(self, rec: ImageRecord, action: str, name: str | None = None) -> None:
        from lamina.events import image_event
        image_event(self.store.root, str(rec.id), action, name)

    # -- tags ---------------------------------------------------------------------
    def tag(self, rec: ImageRecord, ref) -> None:
        """Point ``ref`` at ``rec`` (journals Docker's ``tag`` event)."""
        with self.db.tx() as c:
            _move_tag(c, str(ref), str(rec.manifest))
        self.write_index()
        self._event(rec, "tag", _familiar(ref))

    def untag(self, name: str) -> None:
        """Remove the tag ``name`` (journals ``untag`` of the image it named)."""
        with self.db.tx() as c:
            row = c.execute("SELECT images.config FROM tags JOIN images ON images.manifest = tags.manifest "
                            "WHERE tags.name=?", (name,)).fetchone()
            c.execute("DELETE FROM tags WHERE name=?", (name,))
        self.write_index()
        if row is not None:
            from lamina.events import image_event
            image_event(self.store.root, row[0], "untag")

    def write_index(self) -> None:
        """Rewrite content/index.json from the DB: every image, once per tag (ref.name = full
        reference) and once untagged if it has no tag. Atomic; the DB is read and the file
        written under the store lock, so concurrent writers cannot leave an older view last."""
        import os

        from lamina.content.store import atomic_write
        with self.store.lock():
            tags = self.all_tags()
            entries = []
            rows = self.db.query("SELECT manifest, media_type, manifest_size FROM images ORDER BY added")
            for manifest, mt, msize in rows:
                base = {"mediaType": mt, "digest": manifest, "size": msize}
                names = tags.get(manifest)
                if names:
                    for n in names:
                        entries.append({**base, "annotations": {oci.ANNOTATION_IMAGE_NAME: n,
                                                                oci.ANNOTATION_REF_NAME: n}})
                else:
                    entries.append(base)
            data = json.dumps({"schemaVersion": 2, "mediaType": oci.MT_OCI_INDEX, "manifests": entries},
                              indent=None, separators=(",", ":")).encode()
            atomic_write(os.path.join(self.content.root, "index.json"), data, sync=False)

    # -- chains -------------------------------------------------------------------
    def chain(self, rec: ImageRecord) -> list[tuple[Digest, Digest, oci.Descriptor]]:
        """[(chain_id, diff_id, layer descriptor)] bottom-up for an image."""
        m = self.manifest(rec)
        cfg = self.config(rec)
        return list(zip(chain_ids(list(cfg.diff_ids)), cfg.diff_ids, m.layers))

    def containers_using(self, rec: ImageRecord) -> list[tuple[str, bool]]:
        """(container ID, running) of every container made from ``rec``, oldest first;
        running as Docker's ``IsRunning``: running, paused or restarting (a record whose
        process died reads as stopped)."""
        from lamina.runtime.containers import Containers
        cs = Containers(self.store)
        out = []
        for cid, data in self.db.query("SELECT id, data FROM containers WHERE image=? ORDER BY created",
                                       (str(rec.manifest),)):
            st = cs.refresh(json.loads(data))["State"]
            out.append((cid, bool(st.get("Running") or st.get("Status") in ("running", "paused",
                                                                              "restarting"))))
        return out

    def children(self, rec: ImageRecord) -> list[str]:
        return [r[0] for r in self.db.query("SELECT manifest FROM images WHERE parent=?", (str(rec.id),))]

    # -- removal ------------------------------------------------------------------
    def remove(self, text: str, *, force: bool = False, prune_children: bool = True) -> list[str]:
        """``rmi``: returns Docker's lines (``Untagged: x``, ``Deleted: sha256:...``).

        Docker's rules (moby daemon/images/image_delete.go), conflicts raised as Conflict:
        by name, the name goes (refused without ``force`` when it is the image's only tag and
        a container uses the image); the image is then deleted if nothing else holds it,
        silently kept otherwise. By ID, the image is deleted with all its tags, refused while
        a running container uses it or it has children (even with ``force``), and without
        ``force`` while a stopped container uses it or tags in several repositories name it.
        An image deleted under a stopped container (``force``) leaves that container whole:
        GC keeps its manifest, config, layers and snapshots until the container is removed.
        """
        from lamina import reference
        rec = self.resolve(text)
        tags = self.tags_of(rec.manifest)
        try:
            ref = reference.parse(text)
            by_name = str(ref) in tags
        except InvalidArgument:
            ref, by_name = None, False
        users = self.containers_using(rec)
        if by_name:
            assert ref is not None  # by_name: the text parsed
            if not force and len(tags) == 1 and users:
                raise Conflict(f'conflict: unable to remove repository reference "{text}" (must force) - '
                               f"container {users[0][0][:12]} is using its referenced image {rec.id.short}")
            self.untag(str(ref))
            out = [f"Untagged: {ref.familiar}"]
            if len(tags) > 1:
                return out
            return out + self._delete(rec, users, force=force, prune=prune_children, quiet=True)
        out = []
        if len(tags) == 1:  # its one tag goes with an ID unless a conflict -f cannot lift stands
            conflict = self._conflict(rec, users, soft=not force, tags=False)
            if conflict:
                raise conflict[0]
            self.untag(tags[0])
            out.append(f"Untagged: {reference.parse(tags[0]).familiar}")
        return out + self._delete(rec, users, force=force, prune=prune_children, quiet=False)

    def _conflict(self, rec: ImageRecord, users: list[tuple[str, bool]], *, soft: bool,
                  tags: bool = True) -> tuple[Conflict, bool] | None:
        """Docker's delete conflicts in its order: children and running containers (hard:
        never forced), then, when ``soft``, remaining tags (if ``tags``) and stopped
        containers. Returns (the error, whether a container uses the image) or None."""
        def err(hard: bool, why: str) -> Conflict:
            how = "cannot be forced" if hard else "must be forced"
            return Conflict(f"conflict: unable to delete {rec.id.short} ({how}) - {why}")
        if self.children(rec):
            return err(True, "image has dependent child images"), False
        running = [cid for cid, up in users if up]
        if running:
            return err(True, f"image is being used by running container {running[0][:12]}"), True
        if soft and tags and self.tags_of(rec.manifest):
            return err(False, "image is referenced in multiple repositories"), False
        stopped = [cid for cid, up in users if not up]
        if soft and stopped:
            return err(False, f"image is being used by stopped container {stopped[0][:12]}"), True
        return None

    def _delete(self, rec: ImageRecord, users: list[tuple[str, bool]], *, force: bool, prune: bool,
                quiet: bool) -> list[str]:
        """Delete the image, its remaining tags and repo digests, and (``prune``) its untagged
        intermediate parent. A conflict raises; with ``quiet`` (after an untag) the image is
        kept silently instead, unless it is left dangling and unused, as Docker does."""
        from lamina import reference
        from lamina.image import gc
        conflict = self._conflict(rec, users, soft=not force)
        if conflict:
            dangling = not self.tags_of(rec.manifest) and not self.children(rec)
            if quiet and (not dangling or conflict[1]):
                return []
            raise conflict[0]
        try:
            mine = [str(c) for c, _, _ in self.chain(rec)]
        except LaminaError:
            mine = []
        out = []
        for t in self.tags_of(rec.manifest):
            out.append(f"Untagged: {reference.parse(t).familiar}")
            self._event(rec, "untag")
        out += [f"Untagged: {rd}" for rd in self.repo_digests_of(rec.manifest)]
        # only this manifest goes: another manifest of the same config (same image ID, e.g. a
        # differently compressed copy) keeps its own tags and users
        with self.db.tx() as c:
            c.execute("DELETE FROM tags WHERE manifest=?", (str(rec.manifest),))
            c.execute("DELETE FROM repo_digests WHERE manifest=?", (str(rec.manifest),))
            c.execute("DELETE FROM images WHERE manifest=?", (str(rec.manifest),))
            still = c.execute("SELECT 1 FROM images WHERE config=?", (str(rec.id),)).fetchone()
        self.write_index()
        if still:
            return out
        out.append(f"Deleted: {rec.id}")
        self._event(rec, "delete")
        report = gc.collect(self.store)
        out.extend(f"Deleted: {c}" for c in reversed(mine) if c not in report.kept_chains)
        if prune and rec.parent:
            # an untagged intermediate parent goes with it, quietly kept if anything holds it
            parent = self._by_manifest_or_config(Digest.parse(rec.parent))
            if parent and parent.intermediate and not self.tags_of(parent.manifest):
                out.extend(self._delete(parent, self.containers_using(parent), force=False,
                                        prune=True, quiet=True))
        return out


def _familiar(ref) -> str:
    """A stored or parsed reference as Docker shows it (``busybox:latest``)."""
    from lamina import reference
    return (ref if hasattr(ref, "familiar") else reference.parse(str(ref))).familiar


def _move_tag(c, name: str, manifest: str) -> None:
    """Point tag ``name`` at ``manifest`` (in transaction ``c``). Docker has one image per
    ID: when the tag leaves another manifest of the *same* config (the same image loaded
    again as another manifest, e.g. a podman oci-archive of an image saved before as a
    docker-archive) and that record is left with no tag, no repo digest and no container,
    it is dropped instead of lingering as a second, untagged row of the same image."""
    if name.startswith("docker.io/library/sha256:") or "@" in name:  # parse_tag refuses these
        from lamina import reference
        reference.check_tag(reference.parse(name))
    row = c.execute("SELECT manifest FROM tags WHERE name=?", (name,)).fetchone()
    c.execute("INSERT OR REPLACE INTO tags(name, manifest, added) VALUES(?,?,?)", (name, manifest, time.time()))
    old = row[0] if row else None
    if old is None or old == manifest:
        return
    same = c.execute("SELECT 1 FROM images a JOIN images b ON a.config = b.config "
                     "WHERE a.manifest=? AND b.manifest=?", (old, manifest)).fetchone()
    if not same:
        return
    for q in ("SELECT 1 FROM tags WHERE manifest=?", "SELECT 1 FROM repo_digests WHERE manifest=?",
              "SELECT 1 FROM containers WHERE image=?"):
        if c.execute(q, (old,)).fetchone():
            return
    c.execute("DELETE FROM images WHERE manifest=?", (old,))
