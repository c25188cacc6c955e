"""A container's stdio as pipes that the caller copies, never the caller's own descriptors.

Docker never hands a container the client's terminal or files: the container writes into
pipes and the daemon copies. A container holding the caller's terminal could type into the
caller's shell (``ioctl(TIOCSTI)``) or reopen the caller's files through
``/proc/self/fd/N``. :class:`Pipes` makes the three pipes, gives their container ends to the
runtime (:attr:`Pipes.child`) and copies in threads: the caller's stdin into the container
(only when asked: ``docker run -i``), the container's stdout/stderr to the caller's fds and,
optionally, into a json-file log (``LogWriter``).

Threads start only when :meth:`Pipes.start` is called: the launcher clones a container
from a single-threaded caller, so a caller starts them once the container exists
(``launcher.run(on_spawn=...)``). The pipe buffers hold what the container writes before.

:func:`is_private` tells which descriptors need no copying (a pipe, a socket, /dev/null).
"""

from __future__ import annotations

import os
import stat
import threading

__all__ = ["Pipes", "is_private"]

_CHUNK = 65536
_DRAIN = 1 << 20


def is_private(fd: int) -> bool:
    """Whether ``fd`` may be handed to a container as is: a pipe, a socket or /dev/null
    (never a terminal, a regular file, a directory or a device of the caller)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return True
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


class Pipes:
    """Pipes for a container's 0/1/2, copied from/to the caller's ``stdin``/``stdout``/
    ``stderr`` fds by threads.

    ``stdin`` None gives the container /dev/null (``run`` without ``-i``); ``stdout`` or
    ``stderr`` None discards that stream (still read, so the container never blocks).
    ``log`` (a LogWriter) receives every output chunk as well, under ``lock``.
    ``only_unsafe``: keep each given fd that :func:`is_private` accepts as is and make a
    pipe only for the others (the launcher's guard for direct callers).

    Use: ``p = Pipes(...)``; give ``p.child`` to the runtime; ``p.start()`` once the
    container exists; ``p.finish()`` after it exited (closes our copies of the container
    ends, waits until the output is copied, stops the stdin copier). Idempotent finish."""

    def __init__(self, *, stdin: int | None, stdout: int | None, stderr: int | None,
                 log=None, lock: threading.Lock | None = None, only_unsafe: bool = False) -> None:
        self.log = log
        self.lock = lock or threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stdin_thread: threading.Thread | None = None
        self._ours: list[int] = []  # the container ends, closed by finish()
        self._jobs: list[tuple] = []
        self._stop_r = self._stop_w = -1
        self._done = False
        child = []
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        try:
            # fd 0
            if stdin is None:
                fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                self._ours.append(fd)
                child.append(fd)
            elif only_unsafe and is_private(stdin):
                child.append(stdin)
            else:
                r, w = os.pipe2(os.O_CLOEXEC)
                self._ours.append(r)
                self._jobs.append(("in", stdin, w))
                child.append(r)
            for src, name in ((stdout, "stdout"), (stderr, "stderr")):
                if src is not None and only_unsafe and is_private(src):
                    child.append(src)
                    continue
                r, w = os.pipe2(os.O_CLOEXEC)
                self._ours.append(w)
                self._jobs.append(("out", r, src, name))
                child.append(w)
        except BaseException:
            self._close_all()
            raise
        self.child: tuple[int, int, int] = (child[0], child[1], child[2])

    @property
    def needed(self) -> bool:
        """Whether any stream is copied (False: ``child`` are the given fds / /dev/null)."""
        return bool(self._jobs)

    def start(self) -> None:
        """Start the copier threads (call once the container's first process exists): one
        for both outputs, one for stdin (with ``-i``)."""
        if self._threads or self._stdin_thread:
            return
        outs = [job[1:] for job in self._jobs if job[0] == "out"]
        if outs:
            t = threading.Thread(target=self._copy_out, args=(outs,), daemon=True,
                                 name="lamina-output")
            self._threads.append(t)
            t.start()
        for job in self._jobs:
            if job[0] == "in":
                t = threading.Thread(target=self._copy_in, args=job[1:], daemon=True,
                                     name="lamina-stdin")
                self._stdin_thread = t
                t.start()

    def finish(self, *, wait_eof: bool = True) -> None:
        """Close the container ends we hold, copy what is left, stop the stdin copier.

        ``wait_eof``: copy output until every writer closed it (a container whose PID 1
        exited: the kernel killed the rest). False (an exec'd process exited, its
        background children may hold the pipes): copy what is buffered now, then stop."""
        if self._done:
            return
        self._done = True
        for fd in self._ours:
            try:
                os.close(fd)
            except OSError:
                pass
        self._ours = []
        if not self._threads and not self._stdin_thread:
            self.start()  # never started (the container failed early): drain what is there
        if not wait_eof:
            os.write(self._stop_w, b"x")
        for t in self._threads:
            t.join()
        if wait_eof:
            os.write(self._stop_w, b"x")
        if self._stdin_thread is not None:
            self._stdin_thread.join()
        os.close(self._stop_w)
        os.close(self._stop_r)
        self._stop_w = self._stop_r = -1

    def _close_all(self) -> None:
        for fd in self._ours:
            os.close(fd)
        for job in self._jobs:
            os.close(job[2] if job[0] == "in" else job[1])
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._ours, self._jobs = [], []

    def _copy_out(self, outs: list[tuple[int, int | None, str]]) -> None:
        """Copy every output pipe (fd, caller's fd or None, stream name) until each reached
        EOF; once stopped, copy what is buffered (at most _DRAIN bytes a pipe: a writer
        may go on) and end."""
        import select

        poller = select.poll()
        live = {r: [dest, stream] for r, dest, stream in outs}
        for r in live:
            poller.register(r, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while live:
                ready = dict(poller.poll())
                if self._stop_r in ready:
                    break
                for r in ready:
                    if not self._copy_chunk(r, live[r]):
                        poller.unregister(r)
                        os.close(r)
                        del live[r]
            for r, info in live.items():  # stopped: drain
                os.set_blocking(r, False)
                left = _DRAIN
                while left > 0:
                    n = self._copy_chunk(r, info)
                    if not n:
                        break
                    left -= n
        finally:
            for r in live:
                os.close(r)

    def _copy_chunk(self, r: int, info: list) -> int:
        """Copy one read of pipe ``r``; the bytes copied, 0 at EOF (or nothing buffered)."""
        while True:
            try:
                data = os.read(r, _CHUNK)
                break
            except InterruptedError:
                continue
            except OSError:  # BlockingIOError when draining: nothing left
                return 0
        if not data:
            return 0
        if info[0] is not None:
            try:
                _write_all(info[0], data)
            except OSError:
                info[0] = None  # the reader went away: keep draining the container
        if self.log is not None:
            with self.lock:
                self.log.write(info[1], data)
        return len(data)

    def _copy_in(self, src: int, w: int) -> None:
        import select

        os.set_blocking(w, False)  # our own pipe end: never blocks the stop request
        poller = select.poll()
        try:
            while True:
                poller.register(src, select.POLLIN)
                poller.register(self._stop_r, select.POLLIN)
                ready = dict(poller.poll())
                poller.unregister(src)
                poller.unregister(self._stop_r)
                if self._stop_r in ready:
                    return
                try:
                    data = os.read(src, _CHUNK)
                except InterruptedError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                view = memoryview(data)
                while view:
                    poller.register(w, select.POLLOUT)
                    poller.register(self._stop_r, select.POLLIN)
                    ready = dict(poller.poll())
                    poller.unregister(w)
                    poller.unregister(self._stop_r)
                    if self._stop_r in ready:
                        return
                    try:
                        n = os.write(w, view)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:  # the container closed its stdin
                        return
                    view = view[n:]
        finally:
            os.close(w)  # EOF for the container


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the caller's ``fd`` (waiting while a non-blocking fd is full)."""
    import select

    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]
