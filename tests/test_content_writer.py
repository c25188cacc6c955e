"""The content store's writer contract, tested directly (lamina.content.store.Writer):

- a blob appears under blobs/ only after its size and digest were verified, by rename;
- a wrong digest or size at commit raises DigestMismatch naming both, and leaves nothing:
  no blob under either digest, no partial data, no ingest directory;
- a resumed write re-hashes what is on disk, so bytes changed behind its back are caught;
- one writer per ref at a time (another process gets Unavailable); writers of the same
  content under different refs all succeed and leave one intact blob;
- a writer killed mid-write leaves a partial that is invisible, stale and resumable.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from lamina.content.store import ContentStore
from lamina.digest import Digest
from lamina.errors import DigestMismatch, InvalidArgument, NotFound, Unavailable


@pytest.fixture
def cs(tmp_path) -> ContentStore:
    c = ContentStore(str(tmp_path / "content"))
    old = os.umask(0o022)
    try:
        c.init()
    finally:
        os.umask(old)
    return c


def _files(cs: ContentStore) -> dict[str, list[str]]:
    """Every file under blobs/ and ingest/ (names relative to each)."""
    out = {}
    for top in (cs.blobs, cs.ingest_dir):
        names = []
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            names += [os.path.normpath(os.path.join(rel, n)) for n in dirnames + filenames]
        out[os.path.basename(top)] = sorted(names)
    return out


EMPTY = {"blobs": ["sha256"], "ingest": []}


def test_wrong_digest_at_commit_leaves_nothing(cs):
    data = b"the real bytes"
    wrong = Digest.of_bytes(b"other bytes")
    got = Digest.of_bytes(data)
    with cs.writer("r", expected=wrong, size=len(data)) as w:
        w.write(data)
        with pytest.raises(DigestMismatch) as ei:
            w.commit()
    assert str(ei.value) == f"blob digest mismatch: expected {wrong}, got {got}"
    assert not cs.exists(wrong) and not cs.exists(got)
    assert _files(cs) == EMPTY


def test_wrong_digest_given_by_a_caller_that_hashes_itself(cs):
    """hashing=False: the caller's digest is checked against ``expected``."""
    data = b"x" * 100
    expected = Digest.of_bytes(data)
    claimed = Digest.of_bytes(b"y" * 100)
    with cs.writer("r", expected=expected, size=100, hashing=False) as w:
        w.write(data)
        with pytest.raises(DigestMismatch, match=f"expected {expected}, got {claimed}"):
            w.commit(digest=claimed)
    assert _files(cs) == EMPTY
    # the digest argument is required exactly when the writer does not hash
    with cs.writer("r2", hashing=False) as w:
        w.write(data)
        with pytest.raises(ValueError, match="hashing=False"):
            w.commit()
    with cs.writer("r3") as w:
        w.write(data)
        with pytest.raises(ValueError, match="hashing=False"):
            w.commit(digest=expected)
    assert _files(cs) == EMPTY


@pytest.mark.parametrize("written,declared", [(1000, 999), (999, 1000), (0, 1), (5, 0)])
def test_size_mismatch_at_commit(cs, written, declared):
    data = os.urandom(written)
    d = Digest.of_bytes(data)
    with cs.writer("r", expected=d, size=declared) as w:
        w.write(data)
        with pytest.raises(DigestMismatch) as ei:
            w.commit()
    assert str(ei.value) == f"blob {d}: size mismatch: expected {declared} bytes, got {written}"
    assert _files(cs) == EMPTY


def test_a_failed_commit_of_a_kept_partial_leaves_no_ingest(cs):
    """keep_partial() is for an interrupted write; bytes that failed verification are never
    kept for a resume (they would fail again)."""
    data = b"abc"
    w = cs.writer("pull", expected=Digest.of_bytes(b"abd"), size=3)
    w.write(data)
    w.keep_partial()
    with pytest.raises(DigestMismatch):
        w.commit()
    w.close()
    assert _files(cs) == EMPTY


def test_blob_invisible_until_commit_and_published_by_rename(cs):
    data = os.urandom(2 << 20)
    d = Digest.of_bytes(data)
    w = cs.writer("r", expected=d, size=len(data))
    w.write(data[:1 << 20])
    w.flush()
    assert not cs.exists(d) and _files(cs)["blobs"] == ["sha256"]
    w.write(data[1 << 20:])
    w.flush()
    assert not cs.exists(d)
    ino = os.stat(w.data_path).st_ino
    assert w.commit() == d
    w.close()
    assert os.stat(cs.path(d)).st_ino == ino  # renamed, not copied
    with open(cs.path(d), "rb") as f:
        assert f.read() == data
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_commit_of_a_present_blob_keeps_the_stored_one(cs):
    data = b"same"
    d = cs.put_bytes(data)
    before = os.stat(cs.path(d))
    with cs.writer("again", expected=d, size=4) as w:
        w.write(data)
        assert w.commit() == d
    after = os.stat(cs.path(d))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_resume_rehashes_the_partial_on_disk(cs):
    data = os.urandom(3 << 20)
    d = Digest.of_bytes(data)
    w = cs.writer("pull", expected=d, size=len(data))
    w.write(data[:1 << 20])
    w.keep_partial()
    w.close()
    # the partial is changed behind the store's back (disk error, another tool)
    part = os.path.join(cs.ingest_dir, "pull", "data")
    with open(part, "r+b") as f:
        f.seek(12345)
        f.write(bytes([data[12345] ^ 0xFF]))
    w = cs.writer("pull", expected=d, size=len(data))
    assert w.offset == 1 << 20
    w.write(data[1 << 20:])
    with pytest.raises(DigestMismatch, match=f"expected {d}, got sha256:"):
        w.commit()
    w.close()
    assert _files(cs) == EMPTY
    # resume=False starts over whatever a partial holds
    w = cs.writer("pull", expected=d, size=len(data))
    w.write(data[:100])
    w.keep_partial()
    w.close()
    w = cs.writer("pull", expected=d, size=len(data), resume=False)
    assert w.offset == 0
    w.write(data)
    assert w.commit() == d
    w.close()
    assert cs.read(d, limit=len(data)) == data


def test_resume_without_hashing_starts_over(cs):
    """A caller that hashes itself cannot hash bytes it did not write: no resume for it."""
    w = cs.writer("r")
    w.write(b"partial")
    w.keep_partial()
    w.close()
    w = cs.writer("r", hashing=False)
    assert w.offset == 0
    w.write(b"whole")
    assert w.commit(digest=Digest.of_bytes(b"whole")) == Digest.of_bytes(b"whole")
    w.close()
    assert cs.read(Digest.of_bytes(b"whole")) == b"whole"


def test_copy_from_fd_is_hashed_and_verified(cs, tmp_path):
    src = tmp_path / "src"
    payload = os.urandom(3 << 20)
    src.write_bytes(b"HEAD" + payload + b"TAIL")
    d = Digest.of_bytes(payload)
    fd = os.open(src, os.O_RDONLY)
    try:
        with cs.writer("cp", expected=d, size=len(payload)) as w:
            w.copy_from_fd(fd, 4, len(payload))
            assert w.commit() == d
        with cs.writer("cp2", expected=d, size=len(payload)) as w:
            w.copy_from_fd(fd, 3, len(payload))  # off by one: other bytes
            with pytest.raises(DigestMismatch):
                w.commit()
        with cs.writer("cp3", size=len(payload)) as w:
            with pytest.raises(InvalidArgument, match="unexpected end of input"):
                w.copy_from_fd(fd, len(payload), len(payload))
    finally:
        os.close(fd)
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_sha512_expected_digest(cs):
    data = b"sha512 content"
    d = Digest("sha512", hashlib.sha512(data).hexdigest())
    with cs.writer("r", expected=d, size=len(data)) as w:
        w.write(data)
        assert w.commit() == d
    assert cs.read(d) == data
    assert cs.path(d).endswith(f"blobs/sha512/{d.hex}")


@pytest.mark.parametrize("ref", ["", "a/b", ".hidden", "..", "/abs"])
def test_bad_ingest_refs(cs, ref):
    with pytest.raises(InvalidArgument, match="invalid ingest ref"):
        cs.writer(ref)
    assert _files(cs) == EMPTY


def test_leaving_without_commit_discards(cs):
    with cs.writer("r") as w:
        w.write(b"abandoned")
    assert _files(cs) == EMPTY


def _write_same(root: str, ref: str, data: bytes, start, q) -> None:
    c = ContentStore(root)
    start.wait(10)
    try:
        with c.writer(ref, expected=Digest.of_bytes(data), size=len(data)) as w:
            for i in range(0, len(data), 1 << 16):
                w.write(data[i:i + (1 << 16)])
            q.put(("ok", str(w.commit())))
    except Unavailable as e:
        q.put(("busy", str(e)))
    except BaseException as e:  # noqa: BLE001 - reported to the test
        q.put(("error", repr(e)))


def _race(cs, refs: list[str], data: bytes) -> list[tuple[str, str]]:
    ctx = multiprocessing.get_context("fork")
    start, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_write_same, args=(cs.root, ref, data, start, q)) for ref in refs]
    for p in procs:
        p.start()
    start.set()
    res = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return res


def test_concurrent_writers_of_the_same_content_under_different_refs(cs):
    data = os.urandom(4 << 20)
    d = Digest.of_bytes(data)
    res = _race(cs, [f"w{i}" for i in range(6)], data)
    assert res == [("ok", str(d))] * 6
    assert cs.read(d, limit=len(data)) == data
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_concurrent_writers_of_one_ref_never_share_it(cs):
    """Each process either owns the ref or is told it is busy; the blob ends up whole."""
    data = os.urandom(4 << 20)
    d = Digest.of_bytes(data)
    res = _race(cs, ["one"] * 6, data)
    kinds = sorted(k for k, _ in res)
    assert set(kinds) <= {"ok", "busy"} and "ok" in kinds, res
    assert all(v == str(d) for k, v in res if k == "ok")
    assert all(v == "content one is being written by another lamina process" for k, v in res if k == "busy")
    assert cs.read(d, limit=len(data)) == data
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_writer_killed_mid_write_leaves_a_stale_resumable_partial(cs, tmp_path):
    data = os.urandom(2 << 20)
    d = Digest.of_bytes(data)
    src = tmp_path / "data"
    src.write_bytes(data)
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {REPO!r})
        from lamina.content.store import ContentStore
        from lamina.digest import Digest
        w = ContentStore({cs.root!r}).writer("pull", expected=Digest.parse({str(d)!r}),
                                              size={len(data)})
        w.keep_partial()
        w.write(open({str(src)!r}, "rb").read()[:{1 << 20}])
        w.flush()
        print("half", flush=True)
        sys.stdin.read()  # hold the ingest until killed
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"half\n"
        assert cs.stale_ingests() == []  # a live writer holds it
        with pytest.raises(Unavailable):
            cs.writer("pull")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()
    assert not cs.exists(d)
    assert cs.stale_ingests() == ["pull"]
    w = cs.writer("pull", expected=d, size=len(data))
    assert w.offset == 1 << 20
    w.write(data[1 << 20:])
    assert w.commit() == d
    w.close()
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{d.hex}"], "ingest": []}


def test_layout_files_and_reads(cs):
    """The layout's files are the store owner's alone (0600, whatever the umask: the store
    is private); size() and read() of a missing blob say NotFound; read() refuses what is
    too big for a manifest and checks the digest unless told not to."""
    for name in ("oci-layout", "index.json"):  # (made under umask 022 by the fixture)
        assert os.stat(os.path.join(cs.root, name)).st_mode & 0o7777 == 0o600
    missing = Digest("sha256", "2" * 64)
    with pytest.raises(NotFound, match=f"blob {missing} not found in the content store"):
        cs.size(missing)
    with pytest.raises(NotFound, match=f"blob {missing} not found in the content store"):
        cs.read(missing)
    d = cs.put_bytes(b"0123456789")
    assert cs.read(d, limit=10) == b"0123456789"
    with pytest.raises(InvalidArgument, match=f"blob {d} is larger than 9 bytes; not a manifest or config"):
        cs.read(d, limit=9)
    with open(cs.path(d), "wb") as f:
        f.write(b"9876543210")
    assert cs.read(d, verify=False) == b"9876543210"
    with pytest.raises(DigestMismatch, match=f"blob {d} is corrupt"):
        cs.read(d)
    assert list(cs.walk()) == [d]


def test_read_limit_default_is_64_mib(cs):
    """read() is for manifests and configs: anything over 64 MiB is refused by default."""
    big = b"\0" * (64 << 20)
    d = cs.put_bytes(big)
    assert cs.read(d) == big
    d2 = cs.put_bytes(big + b"\0")
    with pytest.raises(InvalidArgument, match=f"blob {d2} is larger than {64 << 20} bytes"):
        cs.read(d2)


def test_kept_partial_then_committed_leaves_no_ingest(cs):
    w = cs.writer("pull", expected=Digest.of_bytes(b"abc"), size=3)
    w.keep_partial()
    w.write(b"abc")
    w.commit()
    w.close()
    assert _files(cs) == {"blobs": ["sha256", f"sha256/{Digest.of_bytes(b'abc').hex}"], "ingest": []}


def test_write_after_copy_from_fd_appends(cs, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"0123456789")
    want = b"2345" + b"tail"
    fd = os.open(src, os.O_RDONLY)
    try:
        with cs.writer("mix", expected=Digest.of_bytes(want), size=len(want)) as w:
            w.copy_from_fd(fd, 2, 4)
            w.write(b"tail")
            assert w.offset == 8
            assert os.fstat(w.fileno).st_ino == os.stat(w.data_path).st_ino
            assert w.commit() == Digest.of_bytes(want)
    finally:
        os.close(fd)
    assert cs.read(Digest.of_bytes(want)) == want


def test_ingest_housekeeping(cs):
    """Refs without a lock file (a writer killed before it made one) are all stale; a held
    lock file is private (0600); removing a missing ingest is fine; no ingest dir, no refs."""
    for ref in ("a", "b", "c"):
        os.makedirs(os.path.join(cs.ingest_dir, ref))
    w = cs.writer("held")
    assert os.stat(os.path.join(cs.ingest_dir, "held", "lock")).st_mode & 0o7777 == 0o600
    assert sorted(cs.stale_ingests()) == ["a", "b", "c"]
    w.close()
    for ref in ("a", "b", "c", "never-was"):
        cs.remove_ingest(ref)
    assert _files(cs) == EMPTY
    os.rmdir(cs.ingest_dir)
    assert cs.stale_ingests() == []


def test_walk_skips_what_is_not_a_blob(cs):
    good = [cs.put_bytes(str(i).encode()) for i in range(3)]
    for junk in ("notahash", "0" * 63, ".tmp-1-x", "Z" * 64):
        open(os.path.join(cs.blobs, "sha256", junk), "w").close()
    assert sorted(cs.walk()) == sorted(good)


def test_store_permissions_are_private(cs):
    """Directories 0700, files 0600 (the store's owner alone reads blobs), under umask 022,
    for the layout, an ingest in progress, and blobs of a new algorithm's directory."""
    old = os.umask(0o022)
    try:
        cs.init()  # idempotent
        for d in (cs.root, cs.blobs, os.path.join(cs.blobs, "sha256"), cs.ingest_dir):
            assert os.stat(d).st_mode & 0o7777 == 0o700, d
        data = b"private"
        d512 = Digest("sha512", hashlib.sha512(data).hexdigest())
        w = cs.writer("p", expected=d512, size=len(data))
        w.write(data)
        assert os.stat(w.dir).st_mode & 0o7777 == 0o700
        assert os.stat(w.data_path).st_mode & 0o7777 == 0o600
        w.commit()
        w.close()
        assert os.stat(os.path.join(cs.blobs, "sha512")).st_mode & 0o7777 == 0o700
        assert os.stat(cs.path(d512)).st_mode & 0o7777 == 0o600
    finally:
        os.umask(old)
