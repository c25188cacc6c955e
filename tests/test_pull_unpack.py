"""``pull`` with ``$LAMINA_PULL_UNPACK=1`` unpacks each layer while it streams: the tree it
installs as the snapshot is the one a lazy unpack at first run makes, nothing of it
survives a bad blob, and a pulled image's first ``run`` unpacks nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import stat
import tarfile
import time
import uuid

import pytest
from registry_util import DockerRegistry, Front


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    """Every lamina of these tests pulls eagerly, unless it sets LAMINA_PULL_UNPACK=0."""
    monkeypatch.setenv("LAMINA_PULL_UNPACK", "1")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-unpack")))
    yield r
    r.stop()


@pytest.fixture
def front(registry):
    f = Front(registry.port)
    yield f
    f.stop()


def _tar(entries) -> bytes:
    """A PAX tar from TarInfo-building callables (each returns (TarInfo, data or None))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(name: str, typ: bytes = tarfile.REGTYPE, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
        data: bytes | None = None, link: str = "", xattrs: dict | None = None, dev: tuple = (0, 0),
        mtime: int = 1700000000):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = typ, mode, uid, gid, mtime, link
    ti.devmajor, ti.devminor = dev
    if data is not None:
        ti.size = len(data)
    if xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return ti, data


def _layers() -> list[bytes]:
    """Two layers on top of busybox that exercise what an unpack must get right: owners,
    modes (setuid, sticky), xattrs, symlinks, hard links, devices, a fifo, PAX long names,
    and in the top layer a whiteout and an opaque directory over the layer below."""
    long = "deep/" + "d" * 120 + "/" + "n" * 150
    one = _tar([
        _ti("app", tarfile.DIRTYPE, mode=0o750, uid=1234, gid=5678),
        _ti("app/run.sh", mode=0o4755, uid=1234, gid=5678, data=b"#!/bin/sh\necho hi\n"),
        _ti("app/secret", mode=0o600, uid=42, gid=43, data=os.urandom(3000),
            xattrs={"user.origin": "lamina-test", "user.blob": "\x01\x02"}),
        _ti("app/big", data=os.urandom(3 << 20), mtime=1600000000),
        _ti("app/link", tarfile.SYMTYPE, link="run.sh", uid=7, gid=8),
        _ti("app/hard", tarfile.LNKTYPE, link="app/run.sh"),
        _ti("app/gone", data=b"removed by the next layer\n"),
        _ti("app/tmp", tarfile.DIRTYPE, mode=0o1777),
        _ti("app/fifo", tarfile.FIFOTYPE, mode=0o640),
        _ti("app/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        _ti("app/blk", tarfile.BLKTYPE, mode=0o660, dev=(7, 0)),
        _ti("opaque", tarfile.DIRTYPE),
        _ti("opaque/old", data=b"old\n"),
        _ti(long, data=b"long name\n"),
    ])
    two = _tar([
        _ti("app", tarfile.DIRTYPE, mode=0o755, uid=1234, gid=5678),
        _ti("app/.wh.gone", data=b""),
        _ti("opaque", tarfile.DIRTYPE, mode=0o700),
        _ti("opaque/.wh..wh..opq", data=b""),
        _ti("opaque/new", data=b"new\n", mode=0o444),
    ])
    return [one, two]


def _save_archive(path: str, layers: list[bytes], tag: str) -> None:
    """A ``docker save``-style archive of ``layers`` (plain tars), bottom-up."""
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    with tarfile.open(path, "w") as tf:
        files = [*zip(names, layers), ("config.json", config),
                 ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                                "Layers": names}]).encode())]
        for n, b in files:
            ti = tarfile.TarInfo(n)
            ti.size = len(b)
            tf.addfile(ti, io.BytesIO(b))


def _image(lamina, busybox_tar, tmp_path, name: str) -> dict:
    """``name`` in ``lamina``'s store: busybox plus the layers of :func:`_layers`, pushed;
    returns the manifest pushed."""
    with open(busybox_tar, "rb") as f:
        base = f.read()
    archive = str(tmp_path / "img.tar")
    _save_archive(archive, [base, *_layers()], name)
    lamina("load", "-i", archive)
    digest = lamina("push", name).out.strip().splitlines()[-1].split()[2]
    with open(os.path.join(lamina.root, "content", "blobs", "sha256", digest[7:]), "rb") as f:
        return json.loads(f.read())


def _snapshots(root: str) -> dict[str, str]:
    """chain ID -> fs dir of every recorded snapshot of a store."""
    db = sqlite3.connect(os.path.join(root, "lamina.db"))
    try:
        rows = db.execute("SELECT chain_id, dir FROM snapshots").fetchall()
    finally:
        db.close()
    return {c: os.path.join(root, "snapshots", d, "fs") for c, d in rows}


def _tree(top: str, since: float) -> dict:
    """Everything an unpack decides about a tree: type, mode, owner, size, device, times,
    content, link target, xattrs (overlay's opaque mark included) and which paths are hard
    links of one another. What the tar gives no time (the root, implicit parents,
    whiteouts) has the time of the unpack (after ``since``): that time is left out."""
    out: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    paths = [top]
    for dirpath, dirnames, filenames in os.walk(top):
        paths += [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]
    for p in sorted(paths):
        if True:
            rel = os.path.relpath(p, top)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    what: object = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = None
            xattrs = {k: os.getxattr(p, k, follow_symlinks=False) for k in sorted(os.listxattr(p, follow_symlinks=False))}
            first = inodes.setdefault(st.st_ino, rel) if not stat.S_ISDIR(st.st_mode) else rel
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                        st.st_rdev, None if st.st_mtime > since else st.st_mtime_ns, what, tuple(xattrs.items()), first)
    return out


def test_pull_unpacks_layers_as_a_lazy_unpack_does(lamina, busybox_tar, registry, tmp_path):
    from conftest import Lamina
    name = f"{registry.host}/t{uuid.uuid4().hex[:10]}/tree:v1"
    since = time.time() - 1
    _image(lamina, busybox_tar, tmp_path, name)
    eager = Lamina(str(tmp_path / "eager"))
    eager("pull", name)
    chains = _snapshots(eager.root)
    # every layer is a snapshot before any run: the first run unpacks nothing
    assert len(chains) == 3
    lazy = Lamina(str(tmp_path / "lazy"))
    lazy.env["LAMINA_PULL_UNPACK"] = "0"
    lazy("pull", name)
    assert _snapshots(lazy.root) == {}
    lazy("run", "--rm", name, "true")  # unpacks lazily, as before pulls unpacked
    lazy_chains = _snapshots(lazy.root)
    assert set(lazy_chains) == set(chains)
    for chain, d in chains.items():
        assert _tree(d, since) == _tree(lazy_chains[chain], since), f"snapshot of {chain} differs"
    # what the comparison covers is really there (not two empty trees)
    trees = [_tree(d, since) for d in chains.values()]
    one = next(t for t in trees if "app/big" in t)
    two = next(t for t in trees if "opaque/new" in t)
    assert one["app/run.sh"][:3] == (stat.S_IFREG | 0o4755, 1234, 5678)
    assert dict(one["app/secret"][7]) == {"user.blob": b"\x01\x02", "user.origin": b"lamina-test"}
    assert one["app/run.sh"][8] == "app/hard"  # one inode
    assert one["app/link"][6] == "run.sh" and one["app/big"][5] == 1600000000 * 10**9
    assert stat.S_ISFIFO(one["app/fifo"][0]) and one["app/null"][4] == os.makedev(1, 3)
    assert stat.S_ISCHR(two["app/gone"][0]) and two["app/gone"][4] == 0  # overlay whiteout
    assert dict(two["opaque"][7]).get("trusted.overlay.opaque") == b"y" and "opaque/old" not in two
    # the run after the pull adds no snapshot and leaves nothing in ingest/
    eager("run", "--rm", name, "true")
    assert _snapshots(eager.root) == chains
    assert os.listdir(os.path.join(eager.root, "content", "ingest")) == []


def _store_clean(other, before: dict) -> None:
    assert other.snapshot_of_store() == before, "the failed pull left something in the store"
    assert _snapshots(other.root) == {}
    assert other("images", "-q").out == ""


def test_corrupt_layer_leaves_no_snapshot_and_no_blob(lamina, busybox_tar, front, tmp_path):
    """A byte of a layer flipped in flight: the pull fails and leaves no blob and no
    snapshot, not even of the good layers unpacked meanwhile, and no unpacked tree."""
    from conftest import Lamina
    name = f"{front.host}/t{uuid.uuid4().hex[:10]}/bad:v1"
    m = _image(lamina, busybox_tar, tmp_path, name)
    bad = m["layers"][1]["digest"]  # app/big: 3 MB, the flipped byte is far from its end
    other = Lamina(str(tmp_path / "other"))
    other("images")
    before = other.snapshot_of_store()
    front.corrupt.add(bad)
    r = other("pull", name, check=False)
    assert r.rc == 1, r.err
    assert r.err.strip() == f"Error: filesystem layer verification failed for digest {bad}"
    _store_clean(other, before)
    front.corrupt.clear()
    other("pull", name)
    assert len(_snapshots(other.root)) == 3


def _put(url: str, data: bytes, content_type: str) -> None:
    import urllib.request
    req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
    with urllib.request.urlopen(req) as r:
        assert r.status in (201, 202), r.status


def test_diff_id_mismatch_after_a_full_unpack_leaves_nothing(lamina, busybox_tar, registry, tmp_path):
    """The blobs are intact but the config lists another diff ID for the top layer: it is
    unpacked completely, then the mismatch aborts the pull and nothing stays."""
    import urllib.request

    from conftest import Lamina
    path = f"t{uuid.uuid4().hex[:10]}/lie"
    m = _image(lamina, busybox_tar, tmp_path, f"{registry.host}/{path}:v1")
    with open(os.path.join(lamina.root, "content", "blobs", "sha256", m["config"]["digest"][7:]), "rb") as f:
        cfg = json.loads(f.read())
    cfg["rootfs"]["diff_ids"][2] = "sha256:" + "ab" * 32
    cfg_bytes = json.dumps(cfg).encode()
    cfg_digest = "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
    base = f"http://{registry.host}/v2/{path}"
    req = urllib.request.Request(f"{base}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(req) as r:
        loc = r.headers["Location"]
    loc = loc if loc.startswith("http") else f"http://{registry.host}{loc}"
    _put(f"{loc}{'&' if '?' in loc else '?'}digest={cfg_digest}", cfg_bytes, "application/octet-stream")
    m = {**m, "config": {**m["config"], "digest": cfg_digest, "size": len(cfg_bytes)}}
    _put(f"{base}/manifests/v2", json.dumps(m).encode(), m["mediaType"])
    other = Lamina(str(tmp_path / "other"))
    other("images")
    before = other.snapshot_of_store()
    r = other("pull", f"{registry.host}/{path}:v2", check=False)
    assert r.rc == 1, r.err
    top = m["layers"][2]["digest"]
    assert r.err.startswith(f"Error: layer {top} does not match its image config: it decompresses to diff ID "
                            "sha256:"), r.err
    assert r.err.strip().endswith(f", the config lists sha256:{'ab' * 32}"), r.err
    _store_clean(other, before)


def test_pull_killed_mid_unpack_then_pulled_again(lamina, busybox_tar, front, tmp_path):
    """kill -9 while a layer is half downloaded and half unpacked: the store opens cleanly,
    the next pull resumes the blob, unpacks it afresh, and installs every snapshot."""
    import signal
    import subprocess

    from conftest import Lamina
    name = f"{front.host}/t{uuid.uuid4().hex[:10]}/killed:v1"
    m = _image(lamina, busybox_tar, tmp_path, name)
    layer = m["layers"][1]  # the one with app/big (3 MB of random bytes)
    other = Lamina(str(tmp_path / "other"))
    front.hold_after[layer["digest"]] = layer["size"] // 2
    p = other.popen("pull", name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert front.held.wait(120), "the download never reached the hold point"
        # the layer is being unpacked from the bytes that arrived, while it downloads
        fs = os.path.join(other.root, "content", "ingest", f"pull-sha256-{layer['digest'][7:]}", "unpack", "fs")
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(fs, "app", "secret")):
            assert time.monotonic() < deadline, "nothing was unpacked while the layer downloaded"
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        del front.hold_after[layer["digest"]]
        front.release.set()
    assert other("images", "-q").out == ""
    assert _snapshots(other.root) == {}
    other("pull", name)
    assert len(_snapshots(other.root)) == 3
    assert os.listdir(os.path.join(other.root, "content", "ingest")) == []
    assert other("run", "--rm", name, "cat", "/opaque/new").out == "new\n"


def _topdir_flag(path: str) -> bool | None:
    """Whether ``path`` carries ext4's TOPDIR mark (``chattr +T``); None where the
    filesystem has no such flags."""
    import fcntl
    import struct
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = fcntl.ioctl(fd, 0x80086601, bytes(8))  # FS_IOC_GETFLAGS
    except OSError:
        return None
    finally:
        os.close(fd)
    return bool(struct.unpack("=i", buf[:4])[0] & 0x00020000)


def test_unpack_roots_are_marked_top_of_hierarchy(lamina, busybox_tar, registry, tmp_path):
    """Every snapshot root, unpacked during a pull or lazily at first run, carries the
    Orlov TOPDIR mark where the filesystem has inode flags (ext4: its subdirectories go to
    block groups with free inodes, not the ones a mass deletion left to scan)."""
    import subprocess

    from conftest import Lamina
    name = f"{registry.host}/t{uuid.uuid4().hex[:10]}/topdir:v1"
    _image(lamina, busybox_tar, tmp_path, name)
    eager = Lamina(str(tmp_path / "eager"))
    eager("pull", name)
    lazy = Lamina(str(tmp_path / "lazy"))
    lazy.env["LAMINA_PULL_UNPACK"] = "0"
    lazy("pull", name)
    lazy("run", "--rm", name, "true")
    probe = tmp_path / "probe"
    probe.mkdir()
    has_flags = _topdir_flag(str(probe)) is not None
    if has_flags:  # the mark is settable here: what chattr +T does, so the check can fail
        subprocess.run(["chattr", "+T", str(probe)], check=True)
        assert _topdir_flag(str(probe)) is True
    for store in (eager, lazy):
        roots = list(_snapshots(store.root).values())
        assert len(roots) == 3
        for d in roots:
            assert _topdir_flag(d) is (True if has_flags else None), d
