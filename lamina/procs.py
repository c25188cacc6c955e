"""Facts about host processes read from /proc, shared by the runtime and the network code."""

from __future__ import annotations


def pid_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``, None if it is gone or a
    zombie: with the pid it tells a live process from a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):  # a zombie is gone, even if nobody reaped it yet
        return None
    return fields[19].decode()
