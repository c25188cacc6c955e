"""Docker's timestamps: RFC 3339 with nanoseconds. Leaf module (no lamina imports), cheap."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def rfc3339(ts: float | None = None) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed, 'Z' (Go's time.RFC3339Nano)."""
    ns = time.time_ns() if ts is None else int(ts * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    f = f"{frac:09d}".rstrip("0")
    return f"{base}.{f}Z" if f else f"{base}Z"


def parse_time(text: str | None) -> float | None:
    """Parse an RFC 3339 timestamp (any fraction length, Z or offset) to epoch seconds."""
    if not text:
        return None
    try:
        t = text.strip()
        frac = 0.0
        if "." in t:
            head, rest = t.split(".", 1)
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            frac = float("0." + rest[:i]) if i else 0.0
            t = head + rest[i:]
        t = t.replace("Z", "+00:00").replace("z", "+00:00")
        return datetime.fromisoformat(t).timestamp() + frac
    except ValueError:
        return None
