"""lamina.layer.compress: sniffing, streaming decompression (also from pipes), compressors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import threading

import pytest
import zstandard

from lamina.errors import InvalidArgument
from lamina.layer.compress import open_compressor, open_decompressed, sniff

PAYLOAD = b"".join(b"line %d of a layer-ish payload\n" % i for i in range(200_000)) + os.urandom(300_000)


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, 6)
    if kind == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if kind == "bzip2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    return data


def _pipe_reader(data: bytes):
    """A non-seekable reader fed by a thread, like stdin."""
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as f:
            f.write(data)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return os.fdopen(r, "rb", buffering=0), t


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz", None])
def test_sniff(kind):
    assert sniff(_compress(kind, b"x" * 100)[:6]) == kind


def test_sniff_plain_tar_and_short_input():
    assert sniff(b"") is None
    assert sniff(b"\x1f") is None
    assert sniff(b"bin/\x00\x00") is None


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz", None])
def test_open_decompressed_file(kind):
    reader, got = open_decompressed(io.BytesIO(_compress(kind, PAYLOAD)))
    assert got == kind
    assert reader.read() == PAYLOAD


@pytest.mark.parametrize("kind", ["gzip", "zstd", None])
def test_open_decompressed_pipe(kind):
    f, t = _pipe_reader(_compress(kind, PAYLOAD))
    reader, got = open_decompressed(f)
    assert got == kind
    out = bytearray()
    while chunk := reader.read(65536):
        out += chunk
    assert bytes(out) == PAYLOAD
    t.join()


def test_multi_member_gzip():
    data = gzip.compress(b"abc") + gzip.compress(b"def")
    reader, _ = open_decompressed(io.BytesIO(data))
    assert reader.read() == b"abcdef"


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz"])
def test_corrupt_input_is_invalid_argument(kind):
    good = _compress(kind, PAYLOAD)
    bad = good[:10] + bytes(b ^ 0x5A for b in good[10:4000]) + good[4000:]
    reader, _ = open_decompressed(io.BytesIO(bad))
    with pytest.raises(InvalidArgument, match=f"^{kind} data is corrupt"):
        while reader.read(1 << 20):
            pass


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz"])
def test_truncated_input_is_invalid_argument(kind):
    good = _compress(kind, PAYLOAD)
    reader, _ = open_decompressed(io.BytesIO(good[: len(good) // 2]))
    with pytest.raises(InvalidArgument, match=f"^{kind} data is corrupt"):
        while reader.read(1 << 20):
            pass


def test_gzip_magic_then_garbage():
    reader, kind = open_decompressed(io.BytesIO(b"\x1f\x8bthis is not gzip at all" * 10))
    assert kind == "gzip"
    with pytest.raises(InvalidArgument, match="gzip data is corrupt"):
        reader.read()


@pytest.mark.parametrize("kind,tool", [("gzip", "gzip"), ("zstd", "zstd")])
@pytest.mark.parametrize("threads", [1, 2])
def test_compressor_output_is_standard(tmp_path, kind, tool, threads):
    blob = tmp_path / "blob"
    with open(blob, "wb") as out:
        w = open_compressor(out, kind, threads=threads)
        for i in range(0, len(PAYLOAD), 100_000):
            w.write(PAYLOAD[i:i + 100_000])
        w.close()
        assert not out.closed  # the compressor does not own its output
    plain = subprocess.run([tool, "-dc", str(blob)], check=True, capture_output=True).stdout
    assert plain == PAYLOAD


def test_compressor_rejects_bad_kind_and_level():
    with pytest.raises(InvalidArgument):
        open_compressor(io.BytesIO(), "lz4")
    with pytest.raises(InvalidArgument):
        open_compressor(io.BytesIO(), "gzip", level=9)
