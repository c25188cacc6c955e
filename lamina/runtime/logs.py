"""json-file logs, Docker's format: one JSON object per line,
``{"log": "text\\n", "stream": "stdout", "time": "2026-11-28T07:20:29.087161840Z"}``.

The writer (``LogWriter``) is owned by whoever pumps a container's output (the monitor, or
a foreground ``run``); readers (``read_entries``/``follow``) may run in any process.
"""

from __future__ import annotations

import json
import os
import time


def _now() -> str:
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


class LogWriter:
    """Appends output chunks as json-file lines; a partial line waits for its newline
    (or ``flush``). Not thread-safe: one pump writes."""

    def __init__(self, path: str) -> None:
        self.f = open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600),
                      "ab", buffering=0)  # 0600: a log holds what the container printed
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        self.partial[stream] = lines.pop()
        if lines:
            ts = _now()
            out = b"".join(json.dumps({"log": l.decode("utf-8", "replace") + "\n", "stream": stream,
                                       "time": ts}).encode() + b"\n" for l in lines)
            self.f.write(out)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.f.write(json.dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                         "time": _now()}).encode() + b"\n")
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        self.f.close()


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


def read_entries(path: str, offset: int = 0) -> tuple[list[dict], int]:
    """Complete entries from ``offset``; returns them and the offset after the last one."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out, offset + end


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
