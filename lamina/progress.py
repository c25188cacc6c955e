"""Progress of long operations, drawn as Docker's client draws its JSON message stream
(docker/cli's jsonmessage), without a daemon. One module for every verb: pull, push, load,
import, save, commit, export, build.

On a terminal each item (a layer) owns a line that is redrawn in place (``\\x1b[<n>A`` up,
clear, ``\\r``, the text, ``\\x1b[<n>B`` down) with a bar when the terminal is wider than
110 columns (``Loading layer [=====>      ]  176MB/943.8MB``), as Docker draws it; an
operation without items (``Importing  12.35MB/20.01MB``) redraws one line. Elsewhere (a
pipe, a log file) status changes are printed one line each (``a3ed95caeb02: Pull
complete``) and byte counts are dropped, as Docker does.

Cost: verbs ask :func:`on_terminal` first and get None when the stream is not a terminal;
the work paths then skip progress entirely (a None check per chunk). Nothing here is
imported by ``--help``, ``ps``, ``images``, ``run`` or a cached build.

Thread-safe: parallel layer workers report through one Progress. Redraws of a line are
throttled to 10 per second; status changes and completions are always shown.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from lamina.cli.units import human_size  # here, not in bar(): export may draw from a chroot


def human(n: float) -> str:
    """go-units HumanSize (4 significant digits, decimal units), as Docker's bars use."""
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


def is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def on_terminal(stream) -> Progress | None:
    """A Progress drawing on ``stream`` when it is a terminal, else None: callers then do
    no progress work at all (Docker prints no byte progress to a pipe either)."""
    return Progress(stream, tty=True) if is_terminal(stream) else None


class Progress:
    """Writes Docker-shaped progress to ``out``. ``quiet`` prints nothing (``-q``)."""

    def __init__(self, out=None, *, tty: bool | None = None, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        if tty is None:
            tty = is_terminal(self.out)
        self.tty = tty
        self.quiet = quiet
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._last: dict[str | None, float] = {}
        self._start: dict[str | None, float] = {}
        self._count: dict[str | None, int] = {}
        self._counting = False  # an ID-less line is drawn and not ended yet
        self._pending: tuple[str, int, int] | None = None  # its last count, when throttled away
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
            self._end_counter()
            self._ids.clear()
            self._write(text + "\n")

    def status(self, ident: str, text: str) -> None:
        """``<ident>: <text>`` as a status change (always shown)."""
        self._show(ident, text, None)

    def bytes(self, ident: str, text: str, current: int, total: int) -> None:
        """A byte-progress update of item ``ident`` (terminal only, throttled)."""
        if not self.tty or self.quiet or not self._due(ident, current, total):
            return
        start = self._start.setdefault(ident, time.time())
        self._show(ident, text, bar(current, total, width=self.width, start=start))

    def counter(self, text: str, current: int, total: int = 0) -> None:
        """A byte-progress update of the operation itself, one line redrawn in place
        (``Exporting  1.2GB``; with a total, Docker's bar). Terminal only, throttled;
        :meth:`done` ends the line."""
        if not self.tty or self.quiet:
            return
        with self._lock:  # worker threads may report at once (Meter)
            if not self._due(None, current, total):
                self._pending = (text, current, total)  # drawn by done() if nothing newer is
                return
            self._draw_counter(text, current, total)

    def _draw_counter(self, text: str, current: int, total: int) -> None:
        start = self._start.setdefault(None, time.time())
        prog = bar(current, total, width=self.width, start=start)
        self._counting = True
        self._pending = None
        self._write(f"\x1b[2K\r{text} {prog}")

    def done(self) -> None:
        """End the line :meth:`counter` drew, with its last count (nothing if none was)."""
        with self._lock:
            if self._pending is not None and self._counting:
                self._draw_counter(*self._pending)
            self._end_counter()

    def clear(self) -> None:
        """Erase the line :meth:`counter` drew (a transient activity line), so that the next
        output takes its place; the next counter starts afresh."""
        with self._lock:
            if self._counting:
                self._counting = False
                self._write("\x1b[2K\r")
            self._forget(None)

    def _end_counter(self) -> None:
        if self._counting:
            self._counting = False
            self._write("\n")
        self._forget(None)

    def _forget(self, key: str | None) -> None:
        if key is None:
            self._pending = None
        self._last.pop(key, None)
        self._start.pop(key, None)
        self._count.pop(key, None)

    def _due(self, key: str | None, current: int, total: int) -> bool:
        now = time.monotonic()
        if (total <= 0 or current < total) and now - self._last.get(key, 0.0) < 0.1:
            return False
        if self._count.get(key) == current:
            return False  # nothing new to draw
        self._last[key] = now
        self._count[key] = current
        return True

    def _show(self, ident: str, text: str, prog: str | None) -> None:
        if self.quiet:
            return
        with self._lock:
            self._end_counter()
            if not self.tty:
                self._write(f"{ident}: {text}\n")
                return
            if ident not in self._ids:
                self._ids[ident] = len(self._ids)
                self._write("\n")
            diff = len(self._ids) - self._ids[ident]
            msg = f"{ident}: {text} {prog or ''}"
            self._write(f"\x1b[{diff}A\x1b[2K\r{msg}\r\x1b[{diff}B")


class Meter:
    """A thread-safe byte counter for work done in pieces (per chunk, from worker threads):
    ``meter(n)`` adds ``n`` and draws ``text  <total so far>`` on the Progress's one line."""

    def __init__(self, progress: Progress, text: str, total: int = 0) -> None:
        self._progress = progress
        self._text = text
        self._total = total
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, n: int) -> None:
        with self._lock:
            self.count += n
            count = self.count
        self._progress.counter(self._text, count, self._total)


class Reader:
    """A binary reader that reports what passes through it to ``report(bytes so far)``
    (``read`` and ``readinto``; everything else is the wrapped file's)."""

    def __init__(self, f, report) -> None:
        self._f = f
        self._report = report
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self.count += len(data)
            self._report(self.count)
        return data

    def readinto(self, b) -> int:
        readinto = getattr(self._f, "readinto", None)
        if readinto is None:  # a reader with read() only
            data = self._f.read(len(b))
            n = len(data)
            b[:n] = data
        else:
            n = readinto(b)
        if n:
            self.count += n
            self._report(self.count)
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


class Writer:
    """A binary writer that reports what passes through it (see :class:`Reader`)."""

    def __init__(self, f, report) -> None:
        self._f = f
        self._report = report
        self.count = 0

    def write(self, b) -> int:
        n = self._f.write(b)
        self.count += len(b) if n is None else n
        self._report(self.count)
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


class Null(Progress):
    def __init__(self) -> None:
        super().__init__(out=open(os.devnull, "w"), tty=False, quiet=True)
