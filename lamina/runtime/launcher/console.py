"""Terminals: the pty P2 allocates in the container's own devpts and sends to the caller over
a socketpair (runc's console socket), and the caller's side that receives it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from lamina.errors import Unavailable
from lamina.runtime.launcher.base import _TIOCGPTPEER, _TIOCSCTTY, _TIOCSPTLCK, _TIOCSWINSZ, _check, _lib
from lamina.runtime.launcher.targets import _in_root


def _make_console(rootfs: str, sockfd: int, size: tuple[int, int]) -> None:
    """P2, after the spec's mounts: allocate the container's pty in its own devpts
    (``/dev/pts/ptmx``, as runc), set its window size, make the slave the controlling tty
    (P2 is a session leader) and 0/1/2, and send the master to the caller over ``sockfd``
    (SCM_RIGHTS), which is closed. Without a devpts in the rootfs the pty is the host's."""
    import socket  # imported by run() before the fork: no file is read here

    try:
        master = os.open(_in_root(rootfs, "/dev/pts/ptmx", make=None),
                         os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        master = -1
    except OSError as e:
        raise Unavailable(f"opening the container's /dev/pts/ptmx failed: {e.strerror}") from e
    if master >= 0:
        try:
            unlock = ctypes.c_int(0)
            _check(_lib().ioctl(master, _TIOCSPTLCK, ctypes.byref(unlock)), "unlocking the pty")
            slave = _check(_lib().ioctl(master, _TIOCGPTPEER,
                                        os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC),
                           "opening the pty slave")
        except BaseException:
            os.close(master)
            raise
    else:
        master, slave = os.openpty()
    try:
        rows, cols = size
        if rows and cols:
            ws = (ctypes.c_ushort * 4)(rows, cols, 0, 0)
            _check(_lib().ioctl(master, _TIOCSWINSZ, ws), "setting the terminal size")
        _check(_lib().ioctl(slave, _TIOCSCTTY, None), "ioctl TIOCSCTTY on the console")
        for fd in (0, 1, 2):
            os.dup2(slave, fd, inheritable=True)
        s = socket.socket(fileno=sockfd)
        try:
            socket.send_fds(s, [b"c"], [master])
        finally:
            s.close()
    finally:
        os.close(master)
        os.close(slave)


def _take_console(sock, on_console: Callable[[int], None]) -> int | None:
    """The caller's end of the console socket: receive the pty master P2 made in the
    container's devpts (None when P2 failed before: it reports why), open a slave of it
    for the caller (exec error messages; -1 from TIOCGPTPEER gives None) and hand the
    master to ``on_console``. Returns that slave (the caller closes it when the run ends)."""
    import array
    import socket

    fds = array.array("i")
    try:
        # not socket.recv_fds: Python 3.11's ignores its flags (MSG_CMSG_CLOEXEC)
        _, anc, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(fds.itemsize),
                                    socket.MSG_CMSG_CLOEXEC)
    finally:
        sock.close()
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        return None
    master = fds[0]
    peer = _lib().ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        on_console(master)
    except BaseException:
        if peer >= 0:
            os.close(peer)
        raise
    return peer if peer >= 0 else None
