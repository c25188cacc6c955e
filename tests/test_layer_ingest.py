"""lamina.layer.ingest: one-pass digests, recompression, tar checks, truncation."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import threading

import pytest
import zstandard

from lamina.errors import InvalidArgument
from lamina.layer.ingest import MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD, ingest_layer


def make_tar(members, *, fmt=tarfile.PAX_FORMAT) -> bytes:
    """members: list of (name, type, data_or_linkname)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, typ, payload in members:
            ti = tarfile.TarInfo(name)
            ti.type = typ
            ti.mtime = 1_700_000_000
            if typ == tarfile.REGTYPE:
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
            else:
                if typ in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    ti.linkname = payload
                tf.addfile(ti)
    return buf.getvalue()


def sample_tar(n_files: int = 300) -> bytes:
    rnd = os.urandom(200_000)
    members = [("etc/", tarfile.DIRTYPE, None), ("usr/", tarfile.DIRTYPE, None),
               ("usr/bin/", tarfile.DIRTYPE, None)]
    for i in range(n_files):
        members.append((f"usr/bin/tool{i}", tarfile.REGTYPE, (b"#!/bin/sh\necho %d\n" % i) * (i % 50)))
    members.append(("usr/bin/random", tarfile.REGTYPE, rnd))
    members.append(("d" * 150 + "/", tarfile.DIRTYPE, None))
    members.append(("d" * 150 + "/" + "f" * 120, tarfile.REGTYPE, b"long name"))
    members.append(("usr/bin/sh", tarfile.SYMTYPE, "/bin/busybox"))
    members.append(("usr/bin/hl", tarfile.LNKTYPE, "usr/bin/tool3"))
    return make_tar(members)


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _tool_sha256(path) -> str:
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True)
    return "sha256:" + out.stdout.split()[0]


@pytest.mark.parametrize("compression,tool,media", [
    ("gzip", "gzip", MEDIA_TYPE_TAR_GZIP), ("zstd", "zstd", MEDIA_TYPE_TAR_ZSTD)])
def test_digests_match_tools_and_output_decompresses(tmp_path, compression, tool, media):
    tar = sample_tar()
    plain = tmp_path / "layer.tar"
    plain.write_bytes(tar)
    blob = tmp_path / "blob"
    with open(plain, "rb") as src, open(blob, "wb") as out:
        info = ingest_layer(src, out, compression=compression)
    assert str(info.diff_id) == _tool_sha256(plain)
    assert str(info.digest) == _tool_sha256(blob)
    assert info.size == blob.stat().st_size
    assert info.uncompressed_size == len(tar)
    assert info.media_type == media
    back = subprocess.run([tool, "-dc", str(blob)], check=True, capture_output=True).stdout
    assert back == tar
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
    assert info.entries == len(members)
    # Docker's layer size: regular files plus symlink targets (lstat sizes)
    assert info.content_size == sum(m.size if m.isreg() else len(m.linkname.encode()) if m.issym() else 0
                                    for m in members)


def test_plain_storage_digest_equals_diff_id():
    tar = sample_tar(20)
    out = io.BytesIO()
    info = ingest_layer(io.BytesIO(tar), out, compression=None)
    assert out.getvalue() == tar
    assert info.digest == info.diff_id
    assert str(info.diff_id) == sha256(tar)
    assert info.size == info.uncompressed_size == len(tar)
    assert info.media_type == MEDIA_TYPE_TAR


@pytest.mark.parametrize("wrap", ["gzip", "zstd", "bzip2", "xz"])
def test_compressed_input_is_sniffed(wrap):
    import bz2
    import lzma
    tar = sample_tar(50)
    data = {"gzip": lambda b: gzip.compress(b), "zstd": zstandard.ZstdCompressor().compress,
            "bzip2": bz2.compress, "xz": lzma.compress}[wrap](tar)
    out = io.BytesIO()
    info = ingest_layer(io.BytesIO(data), out, compression="gzip")
    assert str(info.diff_id) == sha256(tar)
    assert gzip.decompress(out.getvalue()) == tar
    assert str(info.digest) == sha256(out.getvalue())


def test_pipe_input(tmp_path):
    tar = sample_tar(100)
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as f:
            f.write(gzip.compress(tar))

    t = threading.Thread(target=feed)
    t.start()
    out = io.BytesIO()
    with os.fdopen(r, "rb", buffering=0) as src:
        info = ingest_layer(src, out, compression="zstd")
    t.join()
    assert str(info.diff_id) == sha256(tar)
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(out.getvalue())).read() == tar


def test_gnu_format_and_trailing_padding():
    tar = make_tar([("a/", tarfile.DIRTYPE, None), ("a/" + "x" * 200, tarfile.REGTYPE, b"hi"),
                    ("a/l", tarfile.SYMTYPE, "y" * 300)], fmt=tarfile.GNU_FORMAT)
    # tarfile pads to a 10 KiB record: the padding must be hashed and kept too
    assert len(tar) % 10240 == 0
    info = ingest_layer(io.BytesIO(tar), io.BytesIO(), compression=None)
    assert info.entries == 3 and info.uncompressed_size == len(tar)


def test_empty_tar_is_fine():
    tar = bytes(1024)
    info = ingest_layer(io.BytesIO(tar), io.BytesIO())
    assert info.entries == 0 and str(info.diff_id) == sha256(tar)


def _ingest(data: bytes, **kw):
    return ingest_layer(io.BytesIO(data), io.BytesIO(), **kw)


def test_truncated_tars_are_rejected_naming_the_entry():
    tar = make_tar([("a.txt", tarfile.REGTYPE, b"A" * 5000), ("b.txt", tarfile.REGTYPE, b"B" * 3000)])
    # data of b.txt cut short
    cut = tar.index(b"B" * 3000) + 1000
    with pytest.raises(InvalidArgument, match="b.txt"):
        _ingest(tar[:cut])
    # header of b.txt cut mid-way
    hdr = tar.index(b"b.txt")
    with pytest.raises(InvalidArgument, match="header cut short after entry 'a.txt'"):
        _ingest(tar[:hdr + 100])
    # no end-of-archive marker
    end = tar.index(b"B" * 3000) + 3072
    with pytest.raises(InvalidArgument, match="no end-of-archive marker after entry 'b.txt'"):
        _ingest(tar[:end])
    # the same truncations inside gzip
    with pytest.raises(InvalidArgument, match="b.txt"):
        _ingest(gzip.compress(tar[:cut]))


def test_empty_input_and_garbage():
    with pytest.raises(InvalidArgument, match="empty"):
        _ingest(b"")
    with pytest.raises(InvalidArgument, match="checksum"):
        _ingest(os.urandom(4096).replace(b"\x1f\x8b", b"xx"))
    with pytest.raises(InvalidArgument, match="gzip data is corrupt"):
        _ingest(b"\x1f\x8b\x08\x00" + os.urandom(5000))
    with pytest.raises(InvalidArgument, match="zstd data is corrupt"):
        _ingest(b"\x28\xb5\x2f\xfd" + os.urandom(5000))
    good = gzip.compress(sample_tar(30))
    with pytest.raises(InvalidArgument, match="gzip data is corrupt"):
        _ingest(good[: len(good) // 2])


@pytest.mark.parametrize("members,needle", [
    ([("../evil", tarfile.REGTYPE, b"x")], "escapes"),
    ([("a/../../evil", tarfile.REGTYPE, b"x")], "escapes"),
    ([("hl", tarfile.LNKTYPE, "../../etc/passwd")], "escapes"),
    ([("a/.wh..wh.foo", tarfile.REGTYPE, b"")], "whiteout"),
    ([("a/.wh..", tarfile.REGTYPE, b"")], "whiteout"),
])
def test_breakout_tar_rejected_during_ingest(members, needle):
    with pytest.raises(InvalidArgument, match=needle):
        _ingest(make_tar(members))


def test_check_false_skips_parsing():
    data = b"not a tar at all" * 100
    info = _ingest(data, check=False, compression=None)
    assert str(info.diff_id) == sha256(data) and info.entries == -1


def test_worker_threads_end_after_an_error():
    before = threading.active_count()
    for _ in range(3):
        with pytest.raises(InvalidArgument):
            _ingest(make_tar([("../x", tarfile.REGTYPE, b"x" * 3_000_000)]))
    assert threading.active_count() <= before


def test_rejects_unknown_compression():
    with pytest.raises(InvalidArgument, match="compression"):
        _ingest(bytes(1024), compression="lz4")
