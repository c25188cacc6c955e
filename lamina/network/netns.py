"""Network namespaces: made by lamina for a container, held by a file descriptor.

:func:`new_netns` makes a namespace without a process in it: the calling *thread* unshares
``CLONE_NEWNET``, opens ``/proc/thread-self/ns/net`` and an rtnetlink socket there, and
``setns``-es straight back (a socket stays bound to the namespace it was made in). The fd
keeps the namespace alive; the container's PID 1 joins it by the path
``/proc/<caller pid>/fd/<fd>`` (the OCI spec's namespace ``path``, which runc reads too).
When the last holder goes (the caller closes the fd or dies, and the container's processes
exit), the kernel destroys the namespace and every interface in it: the container's end of
its veth pair, and with it the host's end. So a SIGKILLed monitor leaves no interface
behind; only what lives outside the namespace (firewall rules, leases) needs a sweep.
"""

from __future__ import annotations

import ctypes
import os

from lamina.errors import Unavailable
from lamina.network.netlink import Netlink

CLONE_NEWNET = 0x40000000

_lib = None


def _libc():
    global _lib
    if _lib is None:
        from lamina.mount import _libc as mount_libc
        lib = mount_libc()
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        _lib = lib
    return _lib


def _here() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def new_netns() -> tuple[int, Netlink]:
    """A new network namespace with ``lo`` up and IPv6 off (Docker's without ``--ipv6``):
    ``(fd holding it, rtnetlink socket in it)``.
    The caller owns both (close them). Raises Unavailable when the kernel refuses."""
    lib = _libc()
    own = _here()
    try:
        if lib.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise Unavailable(f"creating a network namespace failed: {os.strerror(e)}")
        fd = nl = None
        try:
            fd = _here()
            nl = Netlink()
            # no IPv6 in the container, as Docker without --ipv6: sysctls under /proc/sys/net
            # are the opener's namespace's, which is this thread's new one right now
            for conf in ("default", "all"):
                with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
                    f.write("1")
        finally:
            if lib.setns(own, CLONE_NEWNET) != 0:  # cannot happen with our own fd; never go on
                os.write(2, b"lamina: cannot return to the host's network namespace\n")
                os._exit(125)
            if nl is None and fd is not None:
                os.close(fd)
    finally:
        os.close(own)
    try:
        nl.set_up(1, "bringing up lo")  # lo is always index 1 in a new namespace
    except BaseException:
        nl.close()
        os.close(fd)
        raise
    return fd, nl


def netlink_in(path: str) -> Netlink:
    """An rtnetlink socket inside the namespace at ``path`` (``/proc/<pid>/ns/net``)."""
    lib = _libc()
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    own = _here()
    try:
        if lib.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise Unavailable(f"entering network namespace {path} failed: {os.strerror(e)}")
        try:
            return Netlink()
        finally:
            if lib.setns(own, CLONE_NEWNET) != 0:
                os.write(2, b"lamina: cannot return to the host's network namespace\n")
                os._exit(125)
    finally:
        os.close(own)
        os.close(target)


def sysctl(name: str, value: str) -> None:
    """Write ``/proc/sys/<name>`` (``net/ipv4/ip_forward``: slashes, so an interface name
    may hold dots) unless it holds ``value`` already."""
    path = "/proc/sys/" + name
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise Unavailable(f"setting {name}={value} failed: {e.strerror}") from e
