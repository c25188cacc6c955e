"""A small streaming tar reader shared by ingest (checking) and extract (unpacking).

It understands the formats image layers come in: ustar (with the name prefix), GNU
(``L`` long names, ``K`` long link names, base-256 numbers, old sparse headers) and PAX
(``x`` extended headers: path, linkpath, size, uid, gid, mtime, ``SCHILY.xattr.*``;
``g`` global headers are read and ignored, like Go's archive/tar does for names).

It pulls bytes from a ``read_chunk()`` callable (``b""`` at EOF), which lets ingest hash
and compress every chunk it hands over, and it never copies file data: skipping an entry
is arithmetic. Every malformed or truncated input raises InvalidArgument naming the
entry. Names are decoded as UTF-8 with ``surrogateescape`` so that any byte string
round-trips through ``os`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from lamina.errors import InvalidArgument

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
#: Largest PAX/GNU meta entry accepted (Go's archive/tar allows 1 MiB).
MAX_META = 8 << 20

REG = b"0"
AREG = b"\x00"
CONTREG = b"7"
LNK = b"1"
SYM = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
GNU_SPARSE = b"S"
REGULAR_TYPES = (REG, AREG, CONTREG)
#: Types that never carry data, whatever their size field says (as in Go and Python).
HEADER_ONLY = (LNK, SYM, CHR, BLK, DIR, FIFO)


def decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class TarEntry:
    """One tar member after its meta headers (PAX, GNU long names) have been applied.

    ``name``/``linkname`` are exactly as stored (not cleaned); ``size`` is the number of
    data bytes that follow (0 for header-only types); ``xattrs`` holds SCHILY.xattr
    records with raw byte values. A mutable record made once per member in the readers'
    inner loops, so written out by hand (slots, straight-line ``__init__``).
    """

    __slots__ = ("name", "linkname", "type", "mode", "uid", "gid", "mtime_ns", "size",
                 "devmajor", "devminor", "xattrs", "sparse")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, name: str, linkname: str, type: bytes, mode: int, uid: int, gid: int,
                 mtime_ns: int, size: int, devmajor: int = 0, devminor: int = 0,
                 xattrs: dict[str, bytes] | None = None, sparse: bool = False) -> None:
        self.name = name
        self.linkname = linkname
        self.type = type
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime_ns = mtime_ns
        self.size = size
        self.devmajor = devmajor
        self.devminor = devminor
        self.xattrs = {} if xattrs is None else xattrs
        self.sparse = sparse

    def _fields(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not TarEntry:
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return "TarEntry(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    @property
    def is_regular(self) -> bool:
        return self.type in REGULAR_TYPES


def _num(field_: bytes, what: str, where: str) -> int:
    if field_ and field_[0] & 0x80:  # GNU base-256
        v = int.from_bytes(field_[1:], "big") | ((field_[0] & 0x3F) << (8 * (len(field_) - 1)))
        if field_[0] & 0x40:  # negative
            v -= 1 << (8 * len(field_) - 2)
        return v
    s = field_.split(b"\x00", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise InvalidArgument(f"invalid layer tar: {where}: bad {what} field {s[:20]!r}") from None


def _checksum_ok(blk: bytes) -> bool:
    stored = blk[148:156].split(b"\x00", 1)[0].strip(b" ")
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    unsigned = sum(blk[:148]) + 256 + sum(blk[156:])
    if want == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in blk[:148] + blk[156:]) + 256
    return want == signed


def _pax_time_ns(v: bytes) -> int:
    """PAX time ``[-]sec[.frac]`` as integer nanoseconds (exact, no float rounding)."""
    s = v.decode("ascii")
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    sec, _, frac = s.partition(".")
    if not sec.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(v)
    ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


def parse_pax(data: bytes, where: str) -> dict[str, bytes]:
    """Parse PAX records ``"<len> <key>=<value>\\n"``; values stay bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] == 0:  # NUL padding after the records
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise InvalidArgument(f"invalid layer tar: {where}: malformed PAX record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise InvalidArgument(f"invalid layer tar: {where}: malformed PAX record length") from None
        end = pos + length
        if length <= sp - pos + 1 or end > n or data[end - 1] != 0x0A:
            raise InvalidArgument(f"invalid layer tar: {where}: malformed PAX record")
        rec = data[sp + 1:end - 1]
        eq = rec.find(b"=")
        if eq <= 0:
            raise InvalidArgument(f"invalid layer tar: {where}: malformed PAX record")
        key = rec[:eq].decode("utf-8", "surrogateescape")
        value = rec[eq + 1:]
        out[key] = value
        pos = end
    return out


class TarReader:
    """Iterate the entries of a tar stream.

    ``for entry in reader:`` yields :class:`TarEntry`; while an entry is current, its data
    can be read with :meth:`read_data`; unread data is skipped when iteration continues.
    Iteration stops at the end-of-archive marker (two zero blocks, or one zero block at
    EOF as Go accepts); bytes after it are left unread (see :meth:`drain`). A stream that
    ends anywhere else raises InvalidArgument.
    """

    def __init__(self, read_chunk: Callable[[], bytes]) -> None:
        self._read_chunk = read_chunk
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._remaining = 0  # data bytes of the current entry still unread
        self._padding = 0  # padding after it
        self._current: str | None = None
        self.last_name: str | None = None
        self.ended = False

    # -- buffer primitives -------------------------------------------------------------
    def _fill(self) -> bool:
        """Make at least one byte available; False at EOF."""
        if self._pos < len(self._buf):
            return True
        if self._eof:
            return False
        while True:
            chunk = self._read_chunk()
            if not chunk:
                self._eof = True
                self._buf = b""
                self._pos = 0
                return False
            self._buf = chunk
            self._pos = 0
            return True

    def _read_exact(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at EOF."""
        buf, pos = self._buf, self._pos
        if pos + n <= len(buf):
            self._pos = pos + n
            return buf[pos:pos + n]
        parts = []
        need = n
        while need:
            if not self._fill():
                break
            buf, pos = self._buf, self._pos
            take = min(need, len(buf) - pos)
            parts.append(buf[pos:pos + take])
            self._pos = pos + take
            need -= take
        return b"".join(parts)

    def _skip(self, n: int) -> int:
        """Skip up to ``n`` bytes; returns how many were skipped."""
        done = 0
        while n:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._fill():
                    break
                avail = len(self._buf) - self._pos
            take = min(n, avail)
            self._pos += take
            n -= take
            done += take
        return done

    def drain(self) -> int:
        """Read the rest of the stream (padding after the end marker); returns its size."""
        n = len(self._buf) - self._pos
        self._pos = len(self._buf)
        while self._fill():
            n += len(self._buf)
            self._pos = len(self._buf)
        return n

    # -- data of the current entry -------------------------------------------------------
    def read_data(self, max_size: int = 1 << 20) -> memoryview | bytes:
        """Next piece (at most ``max_size`` bytes) of the current entry's data; b"" at its end."""
        if self._remaining <= 0:
            return b""
        if not self._fill():
            self._truncated_data()
        buf, pos = self._buf, self._pos
        take = min(self._remaining, len(buf) - pos, max_size)
        self._pos = pos + take
        self._remaining -= take
        return memoryview(buf)[pos:pos + take]

    def _truncated_data(self):
        raise InvalidArgument(
            f"truncated layer tar: the data of entry {self._current!r} is cut short "
            f"({self._remaining} bytes missing)")

    def _finish_entry(self) -> None:
        if self._remaining:
            got = self._skip(self._remaining)
            self._remaining -= got
            if self._remaining:
                self._truncated_data()
        if self._padding:
            if self._skip(self._padding) != self._padding:
                raise InvalidArgument(
                    f"truncated layer tar: stream ends inside the padding of entry "
                    f"{self._current!r}")
            self._padding = 0

    def _after(self) -> str:
        return f"after entry {self.last_name!r}" if self.last_name is not None else "at the start"

    def _meta_data(self, size: int, where: str) -> bytes:
        if size > MAX_META:
            raise InvalidArgument(f"invalid layer tar: {where}: meta header of {size} bytes "
                                  f"exceeds {MAX_META}")
        data = self._read_exact(size)
        pad = -size % BLOCK
        if len(data) < size or self._skip(pad) != pad:
            raise InvalidArgument(f"truncated layer tar: stream ends inside a meta header {where}")
        return data

    # -- iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[TarEntry]:
        while True:
            entry = self.next()
            if entry is None:
                return
            yield entry

    def next(self) -> TarEntry | None:
        """The next entry, or None at the end-of-archive marker."""
        if self.ended:
            return None
        self._finish_entry()
        pax: dict[str, bytes] = {}
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            blk = self._read_exact(BLOCK)
            if len(blk) < BLOCK:
                if not blk:
                    if self.last_name is None and not pax and longname is None:
                        raise InvalidArgument("invalid layer tar: the stream is empty "
                                              "(no entries and no end-of-archive marker)")
                    raise InvalidArgument(f"truncated layer tar: no end-of-archive marker "
                                          f"{self._after()}")
                raise InvalidArgument(f"truncated layer tar: header cut short {self._after()}")
            if blk == ZERO_BLOCK:
                second = self._read_exact(BLOCK)
                if second and second != ZERO_BLOCK:
                    raise InvalidArgument(f"invalid layer tar: a single zero block followed "
                                          f"by data {self._after()}")
                self.ended = True
                self._current = None
                return None
            if not _checksum_ok(blk):
                raise InvalidArgument(f"invalid layer tar: bad header checksum {self._after()} "
                                      "(not a tar, or corrupt)")
            typ = blk[156:157]
            where = self._after()
            size = _num(blk[124:136], "size", where)
            if size < 0:
                raise InvalidArgument(f"invalid layer tar: negative size {where}")
            if typ == b"x":
                pax.update(parse_pax(self._meta_data(size, where), where))
                continue
            if typ == b"g":
                parse_pax(self._meta_data(size, where), where)
                continue
            if typ == b"L":
                longname = self._meta_data(size, where).split(b"\x00", 1)[0]
                continue
            if typ == b"K":
                longlink = self._meta_data(size, where).split(b"\x00", 1)[0]
                continue
            return self._entry(blk, typ, size, pax, longname, longlink)

    def _entry(self, blk: bytes, typ: bytes, size: int, pax: dict[str, bytes],
               longname: bytes | None, longlink: bytes | None) -> TarEntry:
        if "path" in pax:
            raw_name = pax["path"]
        elif longname is not None:
            raw_name = longname
        else:
            raw_name = blk[0:100].split(b"\x00", 1)[0]
            if blk[257:263] == b"ustar\x00":  # POSIX ustar: name may have a prefix
                prefix = blk[345:500].split(b"\x00", 1)[0]
                if prefix:
                    raw_name = prefix + b"/" + raw_name
        if "linkpath" in pax:
            raw_link = pax["linkpath"]
        elif longlink is not None:
            raw_link = longlink
        else:
            raw_link = blk[157:257].split(b"\x00", 1)[0]
        name = decode_name(raw_name)
        where = f"entry {name!r}"
        sparse = typ == GNU_SPARSE
        if sparse and blk[482]:  # old GNU sparse: extension blocks follow the header
            while True:
                ext = self._read_exact(BLOCK)
                if len(ext) < BLOCK:
                    raise InvalidArgument(f"truncated layer tar: sparse header cut short in {where}")
                if not ext[504]:
                    break
        mode = _num(blk[100:108], "mode", where)
        uid = _num(blk[108:116], "uid", where)
        gid = _num(blk[116:124], "gid", where)
        mtime_ns = _num(blk[136:148], "mtime", where) * 1_000_000_000
        devmajor = devminor = 0
        if typ in (CHR, BLK):
            devmajor = _num(blk[329:337], "devmajor", where)
            devminor = _num(blk[337:345], "devminor", where)
        xattrs: dict[str, bytes] = {}
        if pax:
            try:
                if "size" in pax:
                    size = int(pax["size"])
                if "uid" in pax:
                    uid = int(pax["uid"])
                if "gid" in pax:
                    gid = int(pax["gid"])
                if "mtime" in pax:
                    mtime_ns = _pax_time_ns(pax["mtime"])
            except ValueError:
                raise InvalidArgument(f"invalid layer tar: {where}: bad number in PAX header") from None
            if size < 0:
                raise InvalidArgument(f"invalid layer tar: {where}: negative size")
            for k, v in pax.items():
                if k.startswith("SCHILY.xattr."):
                    xattrs[k[13:]] = v
                elif k.startswith("GNU.sparse."):
                    sparse = True
                    if k == "GNU.sparse.name":
                        name = decode_name(v)
        data = 0 if typ in HEADER_ONLY else size
        self._remaining = data
        self._padding = -data % BLOCK
        self._current = name
        self.last_name = name
        return TarEntry(name, decode_name(raw_link), typ, mode & 0o7777, uid, gid, mtime_ns,
                        data, devmajor, devminor, xattrs, sparse)
