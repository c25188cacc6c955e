"""Content store: verified atomic ingest, resumable partial writes, concurrent writers, and
the OCI layout it keeps."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import pytest

from lamina.content.store import ContentStore
from lamina.digest import Digest, chain_ids
from lamina.errors import DigestMismatch, NotFound, Unavailable


@pytest.fixture
def cs(tmp_path) -> ContentStore:
    c = ContentStore(str(tmp_path / "content"))
    c.init()
    return c


def test_layout(cs):
    assert json.load(open(os.path.join(cs.root, "oci-layout"))) == {"imageLayoutVersion": "1.0.0"}
    idx = json.load(open(os.path.join(cs.root, "index.json")))
    assert idx["schemaVersion"] == 2 and idx["manifests"] == []


def test_put_read_verify(cs):
    d = cs.put_bytes(b"hello")
    assert d == Digest("sha256", hashlib.sha256(b"hello").hexdigest())
    assert cs.read(d) == b"hello" and cs.size(d) == 5
    assert cs.put_bytes(b"hello") == d  # idempotent
    with pytest.raises(DigestMismatch, match="expected sha256:0+, got"):
        cs.put_bytes(b"x", expected=Digest("sha256", "0" * 64))
    # a blob corrupted on disk is detected on read
    with open(cs.path(d), "wb") as f:
        f.write(b"HELLO")
    with pytest.raises(DigestMismatch, match=str(d)):
        cs.read(d)
    with pytest.raises(NotFound, match="sha256:" + "1" * 64):
        cs.open(Digest("sha256", "1" * 64))


def test_size_and_digest_checked_before_visible(cs):
    data = b"a" * 1000
    good = Digest.of_bytes(data)
    with cs.writer("r1", expected=good, size=999) as w:
        w.write(data)
        with pytest.raises(DigestMismatch, match="size mismatch: expected 999 bytes, got 1000"):
            w.commit()
    assert not cs.exists(good)
    assert os.listdir(cs.ingest_dir) == []


def test_resume_partial_write(cs):
    data = os.urandom(3 << 20)
    d = Digest.of_bytes(data)
    w = cs.writer("pull-layer", expected=d, size=len(data))
    w.write(data[:1 << 20])
    w.keep_partial()
    w.close()  # e.g. the connection dropped
    assert not cs.exists(d)
    w2 = cs.writer("pull-layer", expected=d, size=len(data))
    assert w2.offset == 1 << 20  # resumes where it stopped, re-hashing what is there
    w2.write(data[1 << 20:])
    assert w2.commit() == d
    w2.close()
    assert cs.read(d) == data
    assert os.listdir(cs.ingest_dir) == []


def _hold(root, ready, release):
    c = ContentStore(root)
    w = c.writer("busy", resume=True)
    w.write(b"x")
    w.flush()
    ready.set()
    release.wait(10)


def test_concurrent_writer_refused_and_stale_ingest_found(cs):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(cs.root, ready, release))
    p.start()
    try:
        assert ready.wait(10)
        with pytest.raises(Unavailable, match="busy is being written by another lamina process"):
            cs.writer("busy")
        assert cs.stale_ingests() == []  # held by a live process
    finally:
        release.set()
        p.join()
    # the holder exited mid-write: its partial data stays, resumable, and is now stale
    assert cs.stale_ingests() == ["busy"]
    w = cs.writer("busy", resume=True)
    assert w.offset == 1
    w.close()


def test_chain_ids():
    a, b, c = (Digest.of_bytes(x) for x in (b"a", b"b", b"c"))
    ids = chain_ids([a, b, c])
    assert ids[0] == a
    assert ids[1] == Digest.of_bytes(f"{a} {b}".encode())
    assert ids[2] == Digest.of_bytes(f"{ids[1]} {c}".encode())


def test_many_first_commands_on_a_new_store_at_once(tmp_path):
    """Several lamina processes creating the same store at the same moment all succeed."""
    import subprocess
    import sys
    root = str(tmp_path / "fresh")
    env = {**os.environ, "LAMINA_ROOT": root, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    procs = [subprocess.Popen([sys.executable, "-m", "lamina", "images", "-q"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
