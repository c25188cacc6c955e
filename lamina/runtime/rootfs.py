"""A container's merged root, for ``cp`` and ``export``.

Running: ``/proc/<pid>/root`` (the live view with its volumes, no mount needed), or, for
``export`` (``mounts=False``, Docker exports the root filesystem without /proc, /sys, /dev
or volumes), a forked child that clones the container's root mount alone
(``open_tree(OPEN_TREE_CLONE)`` from inside its mount namespace), goes back to the host's
namespace and chroots into that clone, so a symlink the running container swaps in cannot
lead the walk out of it. Stopped: the overlay is mounted in a forked child's private mount
namespace, so nothing is ever mounted on the host and a killed lamina leaves nothing behind.
"""

from __future__ import annotations

import os
import sys

from lamina.errors import LaminaError, describe


def _unshare_mount_ns() -> None:
    """unshare(CLONE_NEWNS) (os.unshare is Python 3.12+; this is 3.11)."""
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(0x00020000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")


def _root_mount_clone(pid: int) -> int:
    """An fd of a detached clone of the root mount of ``pid``'s mount namespace (only that
    mount: no submounts). Runs setns twice: call it in a single-threaded child."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    host = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(host)
        raise LaminaError(f"container process {pid} is not running") from None
    try:
        if libc.setns(target, 0x00020000) != 0:
            raise OSError(ctypes.get_errno(), "setns into the container's mount namespace")
        try:
            fd = libc.syscall(ctypes.c_long(428), ctypes.c_int(-100), b"/",  # open_tree
                              ctypes.c_uint(1 | os.O_CLOEXEC))  # OPEN_TREE_CLONE
            err = ctypes.get_errno()
        finally:
            if libc.setns(host, 0x00020000) != 0:
                os._exit(125)  # never go on inside the container's namespace
        if fd < 0:
            raise OSError(err, "open_tree of the container's root")
        return fd
    finally:
        os.close(host)
        os.close(target)


def _in_child(fn) -> int:
    """Run ``fn()`` in a forked child; its exit code (errors printed as ``Error: ...``)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
            sys.stdout.flush()
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            code = e.exit_code
        except BaseException as e:  # never let the child return into the CLI
            sys.stderr.write(f"Error: {describe(e)}\n")
            code = 125
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def with_container_root(containers, doc: dict, fn, *, mounts: bool = True) -> int:
    """Call ``fn(root_dir)``; returns 0, or the error's exit code after printing it.
    ``mounts=False``: the root filesystem alone, without the container's mounts (export).
    ``fn`` must have imported what it needs: it may run chrooted in the container's root."""
    from lamina.runtime.containers import process_alive
    st = doc["State"]
    if st.get("Running") and process_alive(st.get("Pid"), st.get("PidStart")):
        if mounts:
            fn(f"/proc/{st['Pid']}/root")
            return 0

        def in_clone() -> None:
            fd = _root_mount_clone(st["Pid"])
            os.fchdir(fd)
            os.chroot(".")
            os.close(fd)
            fn("/")
        return _in_child(in_clone)
    from lamina.snapshot import Snapshotter, make_init_layer
    d = containers.dir(doc["Id"])
    layers = containers.layers_of(doc)
    with containers.store.operation():
        # with the init layer, as the container sees its root (Docker: empty /etc/hostname,
        # /etc/hosts, /etc/resolv.conf and the mount points of a stopped container)
        rootfs_mounts = Snapshotter(containers.store).mounts(layers, upper=os.path.join(d, "upper"),
                                                             work=os.path.join(d, "work"),
                                                             init=make_init_layer(os.path.join(d, "init")))

        def mounted() -> None:
            from lamina import mount
            _unshare_mount_ns()
            mount.make_private("/")
            target = os.path.join(d, "rootfs")
            mount.mount_all(rootfs_mounts, target)
            fn(target)
        return _in_child(mounted)
