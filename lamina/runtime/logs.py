"""json-file logs, Docker's format: one JSON object per line,
``{"log": "text\\n", "stream": "stdout", "time": "2026-11-28T07:20:29.087161840Z"}``.

The writer (``LogWriter``) is owned by whoever copies a container's output (the monitor, or
a foreground ``run``); readers (``LogReader``, ``read_entries``) may run in any process.

Bounded, as Docker's json-file driver: a line longer than :data:`MAX_RECORD` (16 KiB) is
written as several records, each full one of exactly 16 KiB without a newline ("partial"),
the last one with the rest and the newline; ``logs`` prints them back to back, so the line
arrives intact. The writer never holds more than 16 KiB per stream, whatever the container
writes; readers go record by record.
"""

from __future__ import annotations

import json
import os
import time

#: Longest ``log`` text of one record (Docker's copier buffer): longer lines are split.
MAX_RECORD = 16 * 1024


def _now() -> str:
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class LogWriter:
    """Appends output chunks as json-file records: each complete line, and every 16 KiB of a
    longer one (see the module docstring); a shorter unfinished line waits for its newline
    (or ``flush``). Memory: at most MAX_RECORD bytes kept per stream. Not thread-safe: the
    caller serialises writes (one lock for both streams).

    Rotation (``--log-opt max-size``/``max-file``, as Docker's json-file driver): before a
    write, a log of ``max_size`` bytes or more becomes ``<log>.1`` (``.1`` becomes ``.2`` ...,
    the oldest beyond ``max_file - 1`` is dropped; with one file the log starts over) and a
    new log is opened. Readers (:class:`LogReader`) read the rotated files first and follow
    a rotation."""

    def __init__(self, path: str, *, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.f = self._open()
        self.size = os.fstat(self.f.fileno()).st_size
        self.partial = {"stdout": b"", "stderr": b""}

    def _open(self):
        return open(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600),
                    "ab", buffering=0)  # 0600: a log holds what the container printed

    def _append(self, data: bytes) -> None:
        if 0 < self.max_size <= self.size:
            self._rotate()
        self.f.write(data)
        self.size += len(data)

    def _rotate(self) -> None:
        self.f.close()
        if self.max_file > 1:
            for n in range(self.max_file - 1, 0, -1):
                src = self.path if n == 1 else f"{self.path}.{n - 1}"
                try:
                    os.rename(src, f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.f = self._open()
        self.size = 0

    def write(self, stream: str, data: bytes) -> None:
        pending = self.partial[stream]
        records: list[bytes] = []
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            # the bytes [pos, end) continue the pending line: cut full 16 KiB records
            while len(pending) + (end - pos) >= MAX_RECORD:
                take = MAX_RECORD - len(pending)
                records.append(pending + view[pos:pos + take].tobytes())
                pending = b""
                pos += take
            if nl < 0:
                pending += view[pos:end].tobytes()
                pos = n
            else:
                records.append(pending + view[pos:end + 1].tobytes())
                pending = b""
                pos = end + 1
        self.partial[stream] = pending
        if records:
            ts = _now()
            for r in records:
                self._append(_record(r, stream, ts))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._append(_record(rest, stream, _now()))
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        self.f.close()


class NullLog:
    """The ``none`` log driver: output is shown to attached clients and kept nowhere."""

    def write(self, stream: str, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_log(doc: dict):
    """The writer of a container's log for its driver (a NullLog for ``none``), rotating
    as the record's ``Lamina.LogRotate`` ([max_size, max_file], checked at create) says."""
    cfg = doc["HostConfig"].get("LogConfig") or {"Type": "json-file", "Config": {}}
    if cfg.get("Type") == "none" or not doc.get("LogPath"):
        return NullLog()
    max_size, max_file = (doc.get("Lamina") or {}).get("LogRotate") or (-1, 1)
    return LogWriter(doc["LogPath"], max_size=max_size, max_file=max_file)


def _record(text: bytes, stream: str, ts: str) -> bytes:
    return json.dumps({"log": text.decode("utf-8", "replace"), "stream": stream,
                       "time": ts}).encode() + b"\n"


def parse_since(text: str | None, now: float) -> float | None:
    """Docker's --since/--until: RFC 3339 timestamps, Unix seconds, or a relative duration (10m)."""
    if not text:
        return None
    import re

    from lamina.errors import InvalidArgument
    from lamina.timefmt import parse_time
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if m:
        return now - float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    t = parse_time(text if ("Z" in text or "+" in text[10:]) else text + "Z")
    if t is None:
        raise InvalidArgument(f"invalid value for \"since\": {text}: want a timestamp or a duration like 10m")
    return t


class LogReader:
    """Complete records of a json-file log from ``offset`` on, one at a time (iterate it,
    again and again to follow); ``offset`` is then the position after the last complete
    record read. An unfinished last line (being written) is left for the next read. With
    ``rotated`` (a fresh read), the files a rotation kept (``<log>.N`` ... ``<log>.1``) come
    first; a rotation while following is followed (the old file is read to its end, then
    the new one from its start)."""

    def __init__(self, path: str, offset: int = 0, *, rotated: bool = False) -> None:
        self.path = path
        self.offset = offset
        self.f = None
        self._old: list[str] = []
        if rotated and offset == 0:
            n = 1
            while os.path.exists(f"{path}.{n}"):
                n += 1
            self._old = [f"{path}.{k}" for k in range(n - 1, 0, -1)]

    def _lines(self, f):
        while True:
            pos = f.tell()
            line = f.readline()
            if not line.endswith(b"\n"):
                f.seek(pos)
                return
            yield line

    def __iter__(self):
        while self._old:
            try:
                with open(self._old.pop(0), "rb") as old:
                    for line in self._lines(old):
                        yield from _decoded(line)
            except FileNotFoundError:
                continue
        while True:
            if self.f is None:
                try:
                    self.f = open(self.path, "rb")
                except FileNotFoundError:
                    return
                self.f.seek(self.offset)
            for line in self._lines(self.f):
                self.offset += len(line)
                yield from _decoded(line)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            mine = os.fstat(self.f.fileno())
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return
            for line in self._lines(self.f):  # rotated away: its last records, then the new file
                yield from _decoded(line)
            self.f.close()
            self.f = None
            self.offset = 0

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _decoded(line: bytes):
    try:
        yield json.loads(line)
    except ValueError:
        pass


def read_entries(path: str, offset: int = 0) -> tuple[list[dict], int]:
    """Complete entries from ``offset``; returns them and the offset after the last one
    (everything in memory: for small reads; ``LogReader`` streams)."""
    r = LogReader(path, offset)
    out = list(r)
    return out, r.offset


def format_entry(e: dict, *, timestamps: bool) -> bytes:
    text = e.get("log", "")
    if timestamps:
        text = f"{e.get('time', '')} {text}"
    return text.encode()


def write_entries(entries: list[dict], *, timestamps: bool, since: float | None, until: float | None) -> None:
    from lamina.timefmt import parse_time
    out, err = os.fdopen(os.dup(1), "wb"), os.fdopen(os.dup(2), "wb")
    try:
        for e in entries:
            if since is not None or until is not None:
                t = parse_time(e.get("time"))
                if t is not None and ((since is not None and t < since) or (until is not None and t > until)):
                    continue
            (err if e.get("stream") == "stderr" else out).write(format_entry(e, timestamps=timestamps))
    finally:
        out.close()
        err.close()
