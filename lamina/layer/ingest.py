"""Ingest a layer in one pass: sniff, decompress, hash, check, recompress, hash again.

::

    src (plain/gzip/zstd/bzip2/xz tar)
      -> decompress (ISA-L in a background thread for gzip)
      -> 1 MiB chunks of the plain tar --+--> sha256 .......................... diff ID
                                         +--> tar header parser + check_member . entries
                                         +--> compressor (worker threads) -> sha256 -> out
                                                                                 layer digest

hashlib, ISA-L and zstd release the GIL on large buffers, so on two cores hashing,
decompression and compression overlap with the Python header parser.
"""

from __future__ import annotations

import hashlib
import os

from lamina.digest import Digest, HashingWriter
from lamina.errors import InvalidArgument
from lamina.layer import tarstream as ts
from lamina.layer.compress import open_compressor, open_decompressed
from lamina.layer.extract import check_member
from lamina.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from typing import BinaryIO

MEDIA_TYPE_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPES = {None: MEDIA_TYPE_TAR, "gzip": MEDIA_TYPE_TAR_GZIP, "zstd": MEDIA_TYPE_TAR_ZSTD}

CHUNK = 1 << 20


@value
class LayerInfo:
    """The result of :func:`ingest_layer`.

    ``diff_id``: sha256 of the uncompressed tar; ``digest``/``size``: sha256 and length of
    the bytes written to ``out`` (the blob); ``uncompressed_size``: length of the plain tar;
    ``media_type``: OCI layer media type for the chosen compression; ``content_size``: sum of
    the sizes of regular files and of symlink targets (Docker's layer size: the unpacked
    entries' lstat sizes, what ``images`` shows as SIZE); ``entries``: tar entries
    (PAX/GNU meta headers not counted). ``content_size`` and ``entries`` are -1 when the
    tar was not parsed (``check=False``).
    """

    diff_id: Digest
    digest: Digest
    size: int
    uncompressed_size: int
    media_type: str
    content_size: int
    entries: int


def ingest_layer(src: BinaryIO, out: BinaryIO, *, compression: str | None = "gzip",
                 check: bool = True, level: int | None = None, threads: int = 2) -> LayerInfo:
    """Read a layer tar from ``src`` (plain or compressed; sniffed) and write the blob to ``out``.

    In one pass over the input: computes the diff ID, compresses with ``compression``
    ("gzip", "zstd", or None to store the plain tar, then ``digest == diff_id``) into
    ``out`` while hashing what is written, and, when ``check``, parses every tar header
    (ustar, GNU long names, PAX) and applies :func:`lamina.layer.extract.check_member`, so
    a tar that would break out of its root, or is truncated or corrupt, raises
    InvalidArgument naming the entry. ``src`` may be a pipe; ``out`` is written
    sequentially and not closed. On error ``out`` holds partial data that the caller
    must discard (the content store writes to a temporary ingest file).
    ``level``/``threads`` tune the compressor (see :func:`open_compressor`).
    """
    if compression not in MEDIA_TYPES:
        raise InvalidArgument(f"unsupported layer compression {compression!r}: "
                              "want gzip, zstd or none")
    reader, _kind = open_decompressed(src)
    diff = hashlib.sha256()
    hashed_out = HashingWriter(out)
    comp = None
    entries = content = -1
    total = 0
    ok = False
    try:
        if compression is None:
            sink = out
        else:
            comp = open_compressor(hashed_out, compression, level=level, threads=threads)  # type: ignore[arg-type]  # a file-like object
            sink = comp
        read = reader.read
        update = diff.update
        write = sink.write

        def read_chunk() -> bytes:
            nonlocal total
            chunk = read(CHUNK)
            if chunk:
                update(chunk)
                write(chunk)
                total += len(chunk)
            return chunk

        if check:
            entries = content = 0
            tr = ts.TarReader(read_chunk)
            for e in tr:
                check_member(e.name, e.linkname, e.type)
                entries += 1
                if e.type in ts.REGULAR_TYPES:
                    content += e.size
                elif e.type == ts.SYM:  # Docker's layer size counts a symlink's lstat size
                    content += len(os.fsencode(e.linkname))
            tr.drain()
        else:
            while read_chunk():
                pass
        if comp is not None:
            comp.close()
        ok = True
    finally:
        if comp is not None and not ok:
            try:
                comp.close()  # stops the worker threads; the output is garbage anyway
            except Exception:
                pass
        reader.close()
    diff_id = Digest("sha256", diff.hexdigest())
    if compression is None:
        digest, size = diff_id, total
    else:
        digest, size = hashed_out.digest(), hashed_out.size
    return LayerInfo(diff_id=diff_id, digest=digest, size=size, uncompressed_size=total,
                     media_type=MEDIA_TYPES[compression], content_size=content, entries=entries)


class LayerSink:
    """Push-side twin of :func:`ingest_layer` for tars lamina writes itself (commit, build
    steps): ``write()`` the plain tar into it; it hashes the diff ID in the caller's thread
    while ISA-L compresses in its own threads and the blob is hashed as it is written to
    ``out``. No pipe, no extra copy. ``close()`` returns the LayerInfo (``entries`` is -1;
    ``content_size`` is what the caller reports via ``add_content``).

    The tar is trusted (lamina produced it), so its headers are not re-checked.
    """

    def __init__(self, out, *, compression: str | None = "gzip", level: int | None = None,
                 threads: int = 2) -> None:
        if compression not in MEDIA_TYPES:
            raise InvalidArgument(f"unsupported layer compression {compression!r}: want gzip, zstd or none")
        self.compression = compression
        self._diff = hashlib.sha256()
        self._hashed_out = HashingWriter(out)
        self._comp = (open_compressor(self._hashed_out, compression, level=level, threads=threads)  # type: ignore[arg-type]
                      if compression else None)
        self._sink = self._comp if self._comp is not None else out
        self.total = 0
        self.content_size = 0

    def write(self, data) -> int:
        self._diff.update(data)
        self.total += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def add_content(self, n: int) -> None:
        self.content_size += n

    def close(self) -> LayerInfo:
        if self._comp is not None:
            self._comp.close()
        diff_id = Digest("sha256", self._diff.hexdigest())
        if self._comp is None:
            digest, size = diff_id, self.total
        else:
            digest, size = self._hashed_out.digest(), self._hashed_out.size
        return LayerInfo(diff_id=diff_id, digest=digest, size=size, uncompressed_size=self.total,
                         media_type=MEDIA_TYPES[self.compression], content_size=self.content_size,
                         entries=-1)
