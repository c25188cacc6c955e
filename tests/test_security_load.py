"""Archive loads (issue 7, item 14): a refused load leaves nothing behind (its config blob
included), never deletes blobs while another lamina operation runs (they are left for GC),
and a descriptor's size must be the size of what it points at."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import tarfile

import pytest
from conftest import tar_bytes


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def seeded(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    return lamina


def _refused(lamina, data: bytes) -> str:
    before = lamina.snapshot_of_store()
    r = lamina("load", input=data, check=False)
    assert r.rc == 125, (r.rc, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert lamina.snapshot_of_store() == before
    return r.err


def _legacy_mismatch() -> tuple[bytes, str, str]:
    """A docker save archive of the legacy shape (<id>.json config, <id>/layer.tar) whose
    layer does not decompress to the diff ID its config lists."""
    layer = tar_bytes([("f", "file", "the layer")])
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}}).encode()
    cd = _sha(cfg)
    arch = _archive({f"{cd}.json": cfg, "abc/layer.tar": layer,
                     "manifest.json": json.dumps([{"Config": f"{cd}.json", "RepoTags": ["x:1"],
                                                   "Layers": ["abc/layer.tar"]}]).encode()})
    return arch, cd, _sha(layer)


def test_diff_id_mismatch_leaves_nothing_not_even_the_config(seeded):
    arch, cd, ld = _legacy_mismatch()
    err = _refused(seeded, arch)
    assert ld in err and "diff ID" in err
    assert not os.path.exists(os.path.join(seeded.root, "content", "blobs", "sha256", cd))


def test_a_failed_load_leaves_its_blobs_to_gc_while_another_operation_runs(seeded):
    layer = tar_bytes([("f", "file", "x")])
    arch, cd, md = _oci(layer, diff_id="sha256:" + "e" * 64)
    mine = [cd, md, _sha(layer)]
    blobs = os.path.join(seeded.root, "content", "blobs", "sha256")
    fd = os.open(os.path.join(seeded.root, "gc.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # what every lamina operation adding content holds
        r = seeded("load", input=arch, check=False)
        assert r.rc == 125 and "diff ID" in r.err
        # another operation could have found these present and be about to use them
        assert all(os.path.exists(os.path.join(blobs, d)) for d in mine)
    finally:
        os.close(fd)
    seeded("image", "prune", "-f")  # GC: unreferenced, so collected now
    assert not any(os.path.exists(os.path.join(blobs, d)) for d in mine)
    assert seeded("images", "-q", "busybox").out.strip()  # what was there is untouched


def _oci(layer: bytes, *, layer_size: int | None = None, config_size: int | None = None,
         manifest_size: int | None = None, diff_id: str | None = None) -> tuple[bytes, str, str]:
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id or "sha256:" + _sha(layer)]}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + _sha(cfg),
                                 "size": len(cfg) if config_size is None else config_size},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                  "digest": "sha256:" + _sha(layer),
                                  "size": len(layer) if layer_size is None else layer_size}]}).encode()
    idx = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + _sha(man),
         "size": len(man) if manifest_size is None else manifest_size,
         "annotations": {"io.containerd.image.name": "docker.io/library/o:1"}}]}).encode()
    arch = _archive({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": idx,
                     f"blobs/sha256/{_sha(layer)}": layer, f"blobs/sha256/{_sha(cfg)}": cfg,
                     f"blobs/sha256/{_sha(man)}": man})
    return arch, _sha(cfg), _sha(man)


@pytest.mark.parametrize("field", ["layer_size", "config_size", "manifest_size"])
@pytest.mark.parametrize("size", [10 ** 18, 1])
def test_descriptor_sizes_are_checked_against_the_blob(seeded, field, size):
    layer = tar_bytes([("f", "file", "sized")])
    arch, cd, md = _oci(layer, **{field: size})
    err = _refused(seeded, arch)
    shown = {"layer_size": _sha(layer), "config_size": cd, "manifest_size": md}[field]
    assert f"sha256:{shown}" in err and f"says {size}" in err, err


def test_a_good_oci_archive_still_loads(seeded):
    layer = tar_bytes([("f", "file", "sized")])
    arch, cd, _ = _oci(layer)
    assert seeded("load", input=arch).out == "Loaded image: o:1\n"
    assert seeded("images", "-q", "o:1").out.strip() == cd[:12]


def test_oci_diff_id_mismatch_leaves_nothing(seeded):
    layer = tar_bytes([("f", "file", "x")])
    arch, _, _ = _oci(layer, diff_id="sha256:" + "e" * 64)
    assert "diff ID" in _refused(seeded, arch)


def test_import_with_a_bad_change_writes_nothing(lamina, busybox_tar):
    lamina("images")  # a store with nothing in it
    before = lamina.snapshot_of_store()
    r = lamina("import", "-c", "BOGUS x", busybox_tar, "bad", check=False)
    assert (r.rc, r.err) == (125, "Error: --change 'BOGUS x': BOGUS is not a valid change command\n")
    assert lamina.snapshot_of_store() == before
