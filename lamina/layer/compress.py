"""Layer compression: sniff, stream-decompress and stream-compress layer blobs.

Readers work on non-seekable streams (pipes, HTTP bodies): the first bytes are read once
to sniff the format and then replayed, nothing is ever seeked. Corrupt or truncated
compressed input surfaces as :class:`lamina.errors.InvalidArgument`
(``gzip data is corrupt: ...``), never as a raw zlib/OSError traceback.

Writers produce standard single-stream gzip (RFC 1952, one member made of independently
compressed deflate blocks like pigz, readable by Go's compress/gzip, Docker and containerd)
and standard zstd frames. gzip goes through ISA-L (``isal.igzip_threaded``), zstd through
``zstandard``; both are imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import io

from lamina.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, NoReturn  # names used in annotations only; importing them costs start-up time

GZIP = "gzip"
ZSTD = "zstd"
BZIP2 = "bzip2"
XZ = "xz"

#: ISA-L offers levels 0-3. Level 1 and 2 cost the same with 2 threads on a rootfs tar
#: (~0.26 s for 204 MB, see DESIGN.md); 1 is cheaper in CPU when the cores are shared.
DEFAULT_GZIP_LEVEL = 1
#: zstd's own default, what containerd and Docker use.
DEFAULT_ZSTD_LEVEL = 3

_MAGICS = (
    (b"\x1f\x8b", GZIP),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
)
_HEAD = 6  # longest magic


def sniff(head: bytes) -> str | None:
    """Return "gzip", "zstd", "bzip2" or "xz" from the first bytes of a blob, else None.

    None means "not a known compression": the caller treats the bytes as a plain tar.
    Six bytes are enough to tell every format apart; fewer work for short blobs.
    """
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    return None


class _Prepend(io.RawIOBase):
    """A raw reader that replays ``head`` and then reads from ``f`` (never seeks)."""

    def __init__(self, head: bytes, f) -> None:
        self._head = memoryview(head)
        self._f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._f, "readinto", None)
        if readinto is not None:
            return readinto(b) or 0
        data = self._f.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data = bytes(self._head) + self._f.read()
                self._head = memoryview(b"")
                return data
            data = bytes(self._head[:n])
            self._head = self._head[len(data):]
            return data
        return self._f.read(n)


class _Guarded(io.RawIOBase):
    """Wraps a decompressing reader: decoder errors become InvalidArgument."""

    def __init__(self, inner, kind: str, errors: tuple) -> None:
        self._inner = inner
        self._kind = kind
        self._errors = errors

    def readable(self) -> bool:
        return True

    def _fail(self, e: BaseException) -> NoReturn:
        msg = str(e) or type(e).__name__
        if isinstance(e, EOFError):
            msg = f"truncated ({msg})"
        raise InvalidArgument(f"{self._kind} data is corrupt: {msg}") from None

    def readinto(self, b) -> int:
        try:
            return self._inner.readinto(b) or 0
        except InvalidArgument:
            raise
        except self._errors as e:
            self._fail(e)

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except InvalidArgument:
            raise
        except self._errors as e:
            self._fail(e)

    def close(self) -> None:
        try:
            self._inner.close()
        except Exception:  # closing a reader that failed must not mask the first error
            pass
        super().close()


class _ZstdReader(io.RawIOBase):
    """Decompress concatenated zstd frames; a stream that ends inside a frame is an error
    (zstandard's stream_reader silently returns what it has)."""

    def __init__(self, src, dctx) -> None:
        self._src = src
        self._dctx = dctx
        self._obj = dctx.decompressobj()
        self._pending = memoryview(b"")  # decompressed, not yet returned
        self._in_frame = False
        self._eof = False

    def readable(self) -> bool:
        return True

    def _more(self) -> None:
        data = self._src.read(1 << 20)
        if not data:
            self._eof = True
            if self._in_frame:
                raise EOFError("stream ends inside a zstd frame")
            return
        out = []
        while data:
            self._in_frame = True
            out.append(self._obj.decompress(data))
            if self._obj.eof:
                data = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._in_frame = False
            else:
                data = b""
        self._pending = memoryview(b"".join(out))

    def readinto(self, b) -> int:
        while not self._pending:
            if self._eof:
                return 0
            self._more()
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _read_head(f, n: int) -> bytes:
    head = b""
    while len(head) < n:
        data = f.read(n - len(head))
        if not data:
            break
        head += data
    return head


def open_decompressed(f: BinaryIO, *, threaded: bool = True) -> tuple[BinaryIO, str | None]:
    """Return ``(reader, kind)``: a streaming reader of the decompressed bytes of ``f``.

    ``kind`` is what :func:`sniff` found (None for a plain tar, then ``reader`` returns
    ``f``'s bytes unchanged). ``f`` may be a pipe; it is read from its current position
    and never seeked. The returned reader does not close ``f``. gzip is decompressed with
    ISA-L, in a background thread when ``threaded`` (so decompression overlaps with the
    caller's work). Corrupt or truncated input raises InvalidArgument from ``read``.
    """
    head = _read_head(f, _HEAD)
    kind = sniff(head)
    src = _Prepend(head, f)
    if kind is None:
        return io.BufferedReader(src, 1 << 20), None
    if kind == GZIP:
        import zlib

        from isal import igzip, igzip_threaded, isal_zlib

        inner = (igzip_threaded.open(src, "rb", threads=1) if threaded
                 else igzip.IGzipFile(fileobj=src, mode="rb"))
        isal_error: type[BaseException] = isal_zlib.error  # type: ignore[assignment]  # a class; isal's stub says instance
        errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, isal_error, ValueError)
    elif kind == ZSTD:
        import zstandard

        inner = _ZstdReader(src, zstandard.ZstdDecompressor())
        errors = (zstandard.ZstdError, OSError, EOFError, ValueError)
    elif kind == BZIP2:
        import bz2

        inner = bz2.BZ2File(src, "rb")
        errors = (OSError, EOFError, ValueError)
    else:
        import lzma

        inner = lzma.LZMAFile(src, "rb")  # type: ignore[arg-type]  # a readable file object
        errors = (lzma.LZMAError, OSError, EOFError, ValueError)
    return io.BufferedReader(_Guarded(inner, kind, errors), 1 << 20), kind


def open_compressor(out: BinaryIO, kind: str, *, level: int | None = None,
                    threads: int = 2) -> BinaryIO:
    """Return a writer that compresses into ``out`` (which it does not close).

    ``kind`` is "gzip" (ISA-L, ``level`` 0-3, default 1) or "zstd" (``level`` 1-22,
    default 3). ``threads`` worker threads compress blocks in parallel; the compressed
    bytes are written to ``out`` from a background thread, in order. Closing the writer
    flushes everything and writes the trailer; after an error the output is incomplete
    and the caller must discard it.
    """
    if kind == GZIP:
        from isal import igzip_threaded

        lvl = DEFAULT_GZIP_LEVEL if level is None else level
        if not 0 <= lvl <= 3:
            raise InvalidArgument(f"gzip level {lvl} out of range: ISA-L supports 0-3")
        return igzip_threaded.open(out, "wb", compresslevel=lvl, threads=max(1, threads))
    if kind == ZSTD:
        import zstandard

        lvl = DEFAULT_ZSTD_LEVEL if level is None else level
        if not 1 <= lvl <= 22:
            raise InvalidArgument(f"zstd level {lvl} out of range: want 1-22")
        cctx = zstandard.ZstdCompressor(level=lvl, threads=threads if threads > 1 else 0)
        return cctx.stream_writer(out, closefd=False, write_size=1 << 20)
    raise InvalidArgument(f"unsupported layer compression {kind!r}: want gzip or zstd")
