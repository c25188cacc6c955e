"""Signal names as Docker spells them (``--stop-signal``, ``kill -s``, ``STOPSIGNAL``).

A leaf of the runtime: containers (create checks a stop signal), lifecycle (stop, kill) and
the builder use it, and it imports nothing of lamina but the errors.
"""

from __future__ import annotations

import signal

from lamina.errors import InvalidArgument

__all__ = ["parse_signal"]


def parse_signal(name: str | int) -> int:
    """A signal number from Docker's spellings: a number 1-64, ``SIGTERM``/``term``,
    ``SIGRTMIN+3``, ``RTMAX-1``. Raises InvalidArgument ``Invalid signal: X`` (exit 125)
    for anything else (0, 65, -1, SIGBOGUS, SIG_IGN)."""
    text = str(name).strip()
    if text.isdigit():
        n = int(text)
        if not 0 < n <= _SIGRTMAX:
            raise InvalidArgument(f"Invalid signal: {name}")
        return n
    s = text.upper()
    if not s.startswith("SIG"):
        s = "SIG" + s
    for base, sign, low in (("SIGRTMIN", "+", int(signal.SIGRTMIN)), ("SIGRTMAX", "-", _SIGRTMAX)):
        if s == base:
            return low
        if s.startswith(base + sign) and s[len(base) + 1:].isdigit():
            off = int(s[len(base) + 1:])
            n = low + off if sign == "+" else low - off
            if int(signal.SIGRTMIN) <= n <= _SIGRTMAX:
                return n
            raise InvalidArgument(f"Invalid signal: {name}")
    try:
        return int(signal.Signals[s])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {name}") from None


_SIGRTMAX = int(signal.SIGRTMAX)
