"""Helpers for the container integration tests (tests/test_containers_*.py): a store with
busybox imported, a real pseudo-terminal driver, and small polling helpers."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time

import pytest
from conftest import REPO, wait_for


@pytest.fixture
def bb(lamina, busybox_tar):
    """The lamina CLI with ``busybox`` imported into its fresh store."""
    lamina("import", busybox_tar, "busybox")
    yield lamina
    # never leave a container running after a test, whatever happened in it
    ids = lamina("ps", "-a", "-q", "--no-trunc", check=False).out.split()
    if ids:
        lamina("rm", "-f", *ids, check=False)


def image(lamina, busybox_tar, name: str, *changes: str) -> None:
    args = ["import"]
    for c in changes:
        args += ["-c", c]
    lamina(*args, busybox_tar, name)


def until(fn, timeout: float = 60, what: str = "condition"):
    """Poll ``fn`` until it returns a true value (returned): conftest.wait_for, polling every
    50 ms (each poll of these tests is a lamina command)."""
    return wait_for(fn, timeout=timeout, what=what, interval=0.05)


def state(lamina, name: str) -> str:
    return lamina("inspect", "--format", "{{.State.Status}}", name).out.strip()


def mounts_under(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(root)]


class Pty:
    """``lamina ARGS`` with its stdio on a real pty (the test holds the master)."""

    def __init__(self, lamina, *args: str, cols: int = 80, rows: int = 24) -> None:
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.chdir(REPO)
                os.execve(sys.executable, [sys.executable, "-m", "lamina", *args], lamina.env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.buf, self.status = pid, fd, b"", None
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    def expect(self, pat: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while pat not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pat!r} not seen; got {self.buf!r}")
        return self.buf

    def expect_re(self, pat: bytes, timeout: float = 10):
        import re
        deadline = time.monotonic() + timeout
        while not (m := re.search(pat, self.buf)):
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                raise AssertionError(f"{pat!r} not matched; got {self.buf!r}")
        return m

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"lamina did not exit; output {self.buf!r}")
            self._read(0.05)
        return self.status

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.status = -9
        try:
            os.close(self.fd)
        except OSError:
            pass
