"""Docker's pull/push output (docker/cli's jsonmessage rendering), without a daemon.

On a terminal each layer owns a line that is redrawn in place (``\\x1b[<n>A`` up, clear,
``\\r``, the text, ``\\x1b[<n>B`` down) with a progress bar when the terminal is wider than
110 columns (``Downloading [=====>        ]  12.35MB/64MB 3s``), as Docker draws it. Elsewhere
(a pipe, a log file) only the status changes are printed, one line each
(``a3ed95caeb02: Pull complete``), and byte-progress updates are dropped, as Docker does.

Thread-safe: parallel layer workers report through one Progress. Redraws of one line are
throttled to 10 per second; status changes are always shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time


def human(n: float) -> str:
    """go-units HumanSize (4 significant digits, decimal units), as Docker's bars use."""
    from lamina.cli.units import human_size
    return human_size(n, 4)


def bar(current: int, total: int, *, width: int, start: float | None = None,
        now: float | None = None) -> str:
    """Docker's JSONProgress.String() for byte counts."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return "%8s" % human(current)
    pct = min(int(current / total * 100) // 2, 50)
    box = ""
    if width > 110:
        box = "[" + "=" * pct + ">" + " " * max(50 - pct, 0) + "] "
    nums = "%8s/%s" % (human(current), human(total))
    if current > total:
        nums = "%8s" % human(current)
    left = ""
    if current > 0 and start and pct < 50 and width > 50:
        elapsed = (now or time.time()) - start
        secs = int(elapsed / current * (total - current))
        left = " " + _go_duration(secs)
    return box + nums + left


def _go_duration(secs: int) -> str:
    if secs <= 0:
        return "0s"
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


class Progress:
    """Writes Docker-shaped progress to ``out``. ``quiet`` prints nothing (``-q``)."""

    def __init__(self, out=None, *, tty: bool | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        if tty is None:
            try:
                tty = self.out.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.quiet = quiet
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._start: dict[str, float] = {}
        try:
            self.width = os.get_terminal_size(self.out.fileno()).columns if tty else 0
        except (OSError, AttributeError, ValueError):
            self.width = 80

    def _write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()

    def line(self, text: str) -> None:
        """A message without an ID (``Digest: ...``): ends the current group of lines."""
        if self.quiet:
            return
        with self._lock:
            self._ids.clear()
            self._write(text + "\n")

    def status(self, ident: str, text: str) -> None:
        """``<ident>: <text>`` as a status change (always shown)."""
        self._show(ident, text, None)

    def bytes(self, ident: str, text: str, current: int, total: int) -> None:
        """A byte-progress update (terminal only, throttled)."""
        if not self.tty or self.quiet:
            return
        now = time.monotonic()
        if current < total and now - self._last.get(ident, 0.0) < 0.1:
            return
        self._last[ident] = now
        start = self._start.setdefault(ident, time.time())
        self._show(ident, text, bar(current, total, width=self.width, start=start))

    def _show(self, ident: str, text: str, prog: str | None) -> None:
        if self.quiet:
            return
        with self._lock:
            if not self.tty:
                self._write(f"{ident}: {text}\n")
                return
            if ident not in self._ids:
                self._ids[ident] = len(self._ids)
                self._write("\n")
            diff = len(self._ids) - self._ids[ident]
            msg = f"{ident}: {text} {prog or ''}"
            self._write(f"\x1b[{diff}A\x1b[2K\r{msg}\r\x1b[{diff}B")


class Null(Progress):
    def __init__(self) -> None:
        super().__init__(out=open(os.devnull, "w"), tty=False, quiet=True)
