"""lamina.digest directly: the Digest value, the hashing reader and writer and their checks,
chain IDs. (Written to kill the mutants scripts/mutants.sh found surviving here.)"""

from __future__ import annotations

import hashlib
import io

import pytest

from lamina.digest import Digest, HashingReader, HashingWriter, chain_ids, hexdigest, new_hash
from lamina.errors import DigestMismatch, InvalidArgument

DATA = b"layer bytes " * 1000
SHA = hashlib.sha256(DATA).hexdigest()


def test_digest_value():
    d = Digest.parse(f"sha256:{SHA}")
    assert (d.algorithm, d.hex, str(d)) == ("sha256", SHA, f"sha256:{SHA}")
    assert d.short == SHA[:12] and len(d.short) == 12
    assert Digest.sha256(SHA) == d == Digest.of_bytes(DATA)
    assert d.new_hasher().name == "sha256"
    assert new_hash().name == "sha256" and new_hash("sha512").name == "sha512"
    s512 = hashlib.sha512(DATA).hexdigest()
    assert Digest.of_bytes(DATA, "sha512") == Digest("sha512", s512)
    assert sorted([Digest.sha256("b" * 64), Digest.sha256("a" * 64)])[0].hex == "a" * 64


@pytest.mark.parametrize("text,needle", [
    ("sha256:" + "A" * 64, "want 64 lower-case hex"),
    ("sha256:" + "a" * 63, "want 64 lower-case hex"),
    ("sha256:" + "a" * 65, "want 64 lower-case hex"),
    ("sha256:" + "g" * 64, "want 64 lower-case hex"),
    ("sha512:" + "a" * 64, "want 128 lower-case hex"),
    ("md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
    ("sha256" + "a" * 64, "want sha256:<64 hex characters>"),
    ("", "want sha256:<64 hex characters>"),
])
def test_bad_digests(text, needle):
    with pytest.raises(InvalidArgument, match=needle):
        Digest.parse(text)


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1])
def test_hexdigest_small_and_large(size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert hexdigest(data) == hashlib.sha256(data).hexdigest()
    assert hexdigest(data, "sha512") == hashlib.sha512(data).hexdigest()


def test_hashing_writer_counts_hashes_and_verifies():
    out = io.BytesIO()
    w = HashingWriter(out)
    assert w.write(DATA[:100]) == 100
    w.write(DATA[100:])
    w.flush()
    assert out.getvalue() == DATA and w.size == len(DATA)
    d = Digest.sha256(SHA)
    assert w.digest() == d
    assert w.verify(d, len(DATA)) == d
    assert w.verify(None) == d and w.verify(d, None) == d and w.verify(d, -1) == d
    wrong = Digest.sha256("0" * 64)
    with pytest.raises(DigestMismatch) as ei:
        w.verify(wrong, len(DATA), what="layer")
    assert str(ei.value) == f"layer digest mismatch: expected {wrong}, got {d}"
    with pytest.raises(DigestMismatch) as ei:
        w.verify(d, len(DATA) + 1)
    assert str(ei.value) == f"blob {d}: size mismatch: expected {len(DATA) + 1} bytes, got {len(DATA)}"
    with pytest.raises(DigestMismatch) as ei:
        w.verify(None, 0)
    assert str(ei.value) == f"blob {d}: size mismatch: expected 0 bytes, got {len(DATA)}"
    w512 = HashingWriter(io.BytesIO(), "sha512")
    w512.write(DATA)
    assert w512.digest() == Digest.of_bytes(DATA, "sha512")


def test_hashing_reader_read_and_readinto():
    r = HashingReader(io.BytesIO(DATA))
    assert r.read(10) == DATA[:10]
    buf = bytearray(100)
    assert r.readinto(buf) == 100 and bytes(buf) == DATA[10:110]
    assert r.read() == DATA[110:]
    assert r.readinto(bytearray(10)) == 0 and r.read() == b""
    assert r.size == len(DATA) and r.digest() == Digest.sha256(SHA)
    # readinto hashes only the bytes it got
    r = HashingReader(io.BytesIO(b"abc"))
    big = bytearray(b"zzzzzz")
    assert r.readinto(big) == 3 and r.size == 3 and r.digest() == Digest.of_bytes(b"abc")
    assert HashingReader(io.BytesIO(DATA), "sha512").read() == DATA


def test_chain_ids_single_and_empty():
    a = Digest.of_bytes(b"a")
    assert chain_ids([]) == [] and chain_ids([a]) == [a]
    b = Digest.of_bytes(b"b")
    assert chain_ids([a, b])[1] == Digest.of_bytes(f"{a} {b}".encode())
