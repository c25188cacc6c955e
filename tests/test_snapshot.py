"""Snapshots: layers unpacked once per chain ID and shared; overlay mounts of deep chains
(beyond a page of lowerdir string); the copy-based fallback gives the same tree."""

from __future__ import annotations

import io
import os

from conftest import tar_bytes

from lamina import mount, oci
from lamina.image.service import Images
from lamina.layer.ingest import ingest_layer
from lamina.snapshot import Snapshotter, image_layers
from lamina.store import Store


def _add_layer(store: Store, tar: bytes):
    with store.content.writer(f"t-{os.urandom(4).hex()}", resume=False) as w:
        info = ingest_layer(io.BytesIO(tar), w, compression="gzip")
        w.commit()
    return (oci.Descriptor(info.media_type, info.digest, info.size), info.diff_id, info.content_size)


def _image(store: Store, layers: list[bytes], tag: str):
    images = Images(store)
    descs = [_add_layer(store, t) for t in layers]
    cfg = {"architecture": "amd64", "os": "linux", "config": {},
           "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
    from lamina import reference
    return images, images.create(config=cfg, layers=descs, tags=[reference.parse(tag)])


def _tree(root: str) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                out[rel] = ("f", open(p, "rb").read(), st.st_mode & 0o7777)
    return out


BASE = tar_bytes([("etc/", "dir", None), ("etc/keep", "file", "base"), ("etc/gone", "file", "x"),
                  ("opt/", "dir", None), ("opt/old", "file", "old"), ("bin/", "dir", None),
                  ("bin/sh", "symlink", "busybox")])
TOP = tar_bytes([("etc/", "dir", None), ("etc/.wh.gone", "file", ""), ("etc/keep", "file", "changed"),
                 ("opt/", "dir", None), ("opt/.wh..wh..opq", "file", ""), ("opt/new", "file", "new")])


def test_unpacked_once_and_shared(tmp_path):
    store = Store(str(tmp_path / "root"))
    images, a = _image(store, [BASE], "a")
    _, b = _image(store, [BASE, TOP], "b")
    snap = Snapshotter(store)
    with store.operation():
        da = snap.prepare(image_layers(images, a))
        db_ = snap.prepare(image_layers(images, b))
    assert db_[0] == da[0]  # the shared base is one directory
    assert len(os.listdir(store.snapshots_dir)) == 2
    # in overlay form: whiteout is a 0:0 char device, opaque dir carries the xattr
    st = os.lstat(os.path.join(db_[1], "etc", "gone"))
    import stat
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(db_[1], "opt"), "trusted.overlay.opaque") == b"y"
    # preparing again does no work
    mtimes = [os.stat(d).st_mtime_ns for d in db_]
    with store.operation():
        assert snap.prepare(image_layers(images, b)) == db_
    assert [os.stat(d).st_mtime_ns for d in db_] == mtimes


def test_overlay_and_copy_fallback_agree(tmp_path):
    store = Store(str(tmp_path / "root"))
    images, b = _image(store, [BASE, TOP], "b")
    snap = Snapshotter(store)
    target = tmp_path / "merged"
    target.mkdir()
    with store.operation():
        mounts = snap.mounts(image_layers(images, b), readonly=True)
        mount.mount_all(mounts, str(target))
        try:
            merged = _tree(str(target))
        finally:
            mount.unmount_all(str(target))
        copy = tmp_path / "copy"
        snap.copy_rootfs(image_layers(images, b), str(copy))
    assert merged == _tree(str(copy))
    assert merged["etc/keep"][1] == b"changed"
    assert "etc/gone" not in merged and "opt/old" not in merged
    assert merged["opt/new"][1] == b"new" and merged["bin/sh"] == ("l", "busybox")


def test_deep_chain_mounts(tmp_path):
    """160 layers: far beyond what one page of 'lowerdir=' holds with absolute paths."""
    deep = tmp_path / ("d" * 60)
    store = Store(str(deep / "root"))
    layers = [tar_bytes([("layers/", "dir", None), (f"layers/f{i:03d}", "file", str(i))]) for i in range(160)]
    images, rec = _image(store, layers, "deep")
    snap = Snapshotter(store)
    target = tmp_path / "m"
    target.mkdir()
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    with store.operation():
        mounts = snap.mounts(image_layers(images, rec), upper=str(upper), work=str(work))
        assert len(",".join(mounts[0].options)) > 4096
        mount.mount_all(mounts, str(target))
        try:
            names = sorted(os.listdir(target / "layers"))
            assert names == [f"f{i:03d}" for i in range(160)]
            assert (target / "layers" / "f123").read_text() == "123"
            os.unlink(target / "layers" / "f000")
            (target / "new").write_text("x")
        finally:
            mount.unmount_all(str(target))
    # the container's changes landed in its upper dir only
    assert (upper / "new").read_text() == "x"
    assert os.lstat(upper / "layers" / "f000").st_rdev == 0


def test_gc_removes_snapshots_of_removed_images(tmp_path):
    from lamina.image import gc
    store = Store(str(tmp_path / "root"))
    images, a = _image(store, [BASE], "a")
    _, b = _image(store, [BASE, TOP], "b")
    snap = Snapshotter(store)
    with store.operation():
        snap.prepare(image_layers(images, b))
    out = images.remove("b")
    assert "Untagged: b:latest" in out and any(l.startswith("Deleted: sha256:") for l in out)
    assert len(os.listdir(store.snapshots_dir)) == 1   # the base, still used by a
    # a leftover from a crashed unpack is collected
    os.makedirs(os.path.join(store.snapshots_dir, "tmp-99", "fs"))
    gc.collect(store)
    assert sorted(os.listdir(store.snapshots_dir)) == [os.path.basename(os.path.dirname(snap.dir_of(image_layers(images, a)[0].chain_id)))]
