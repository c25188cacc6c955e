"""Digest value type and hashing helpers.

A digest is ``<algorithm>:<hex>`` as in the OCI image spec. lamina writes sha256 only and
reads sha256 and sha512.
"""

from __future__ import annotations

import re

from lamina.errors import DigestMismatch, InvalidArgument
from lamina.values import value

_HEX_LEN = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


def new_hash(algorithm: str = "sha256"):
    """A hashlib object (OpenSSL: fast on big data; imported on first use, ~2-7 ms)."""
    import hashlib
    return hashlib.new(algorithm)


def hexdigest(data: bytes, algorithm: str = "sha256") -> str:
    """Hex digest of small data (manifests, configs, chain IDs) without importing OpenSSL:
    the builtin sha256 is slower per byte but free to load; big data goes to hashlib."""
    if algorithm == "sha256" and len(data) < (1 << 20):
        try:
            from _sha256 import sha256
            return sha256(data).hexdigest()
        except ImportError:
            pass
    h = new_hash(algorithm)
    h.update(data)
    return h.hexdigest()


@value(order=True)
class Digest:
    """An immutable, validated content digest. ``str(d)`` gives ``sha256:<hex>``."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX_LEN.get(self.algorithm)
        if want is None:
            raise InvalidArgument(f"unsupported digest algorithm {self.algorithm!r}")
        if len(self.hex) != want or not all(c in "0123456789abcdef" for c in self.hex):
            raise InvalidArgument(f"invalid digest {self.algorithm}:{self.hex!r}: "
                                  f"want {want} lower-case hex characters")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algo:hex``; raises InvalidArgument naming the text on any error."""
        m = _DIGEST_RE.match(text)
        if not m:
            raise InvalidArgument(f"invalid digest {text!r}: want sha256:<64 hex characters>")
        return cls(m.group(1), m.group(2))

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hexdigest(data, algorithm))

    @classmethod
    def sha256(cls, hexstr: str) -> Digest:
        return cls("sha256", hexstr)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The 12-hex-character form Docker shows for IDs."""
        return self.hex[:12]

    def new_hasher(self):
        return new_hash(self.algorithm)


class HashingWriter:
    """Wraps a binary file: every byte written is hashed and counted.

    ``verify(expected, size)`` raises DigestMismatch (naming both digests) if the bytes
    written do not match. The wrapped file is not closed by this object.
    """

    def __init__(self, f, algorithm: str = "sha256") -> None:
        self._f = f
        self._h = new_hash(algorithm)
        self._algorithm = algorithm
        self.size = 0

    def write(self, data) -> int:
        self._h.update(data)
        self.size += len(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def digest(self) -> Digest:
        return Digest(self._algorithm, self._h.hexdigest())

    def verify(self, expected: Digest | None, size: int | None = None, *, what: str = "blob") -> Digest:
        got = self.digest()
        if size is not None and size >= 0 and size != self.size:
            raise DigestMismatch(f"{what} {expected or got}: size mismatch: "
                                 f"expected {size} bytes, got {self.size}")
        if expected is not None and expected != got:
            raise DigestMismatch(f"{what} digest mismatch: expected {expected}, got {got}")
        return got


class HashingReader:
    """Wraps a binary reader: every byte read is hashed and counted."""

    def __init__(self, f, algorithm: str = "sha256") -> None:
        self._f = f
        self._h = new_hash(algorithm)
        self._algorithm = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        self.size += len(data)
        return data

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._h.update(memoryview(b)[:n])
            self.size += n
        return n

    def digest(self) -> Digest:
        return Digest(self._algorithm, self._h.hexdigest())


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """ChainID(L0)=DiffID(L0); ChainID(L0..Ln)=sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(Digest.of_bytes(f"{out[-1]} {d}".encode()))
    return out
