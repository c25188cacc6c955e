"""The container's file system, in its own mount namespace: the plan read from the spec,
rootfs and spec mounts, /dev, the cgroup mounts, ``pivot_root``, masked and read-only
paths; plus the network namespace joined by path and the loopback brought up.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

from lamina.errors import InvalidArgument, LaminaError, NotFound, Unavailable, Unsupported
from lamina.runtime.launcher.base import (
    _CLONE_NEWNET,
    _CLONE_NEWUTS,
    _DEV_LINKS,
    _DEV_NODES,
    _MACHINE,
    _MNT_DETACH,
    _MS_BIND,
    _MS_NODEV,
    _MS_NOEXEC,
    _MS_NOSUID,
    _MS_PRIVATE,
    _MS_RDONLY,
    _MS_REC,
    _MS_REMOUNT,
    _MS_SLAVE,
    _NS_FLAGS,
    _SYS_PIVOT_ROOT,
    _check,
    _lib,
    _sysmount,
)
from lamina.runtime.launcher.cgroups import _is_v2, _v1_hierarchies
from lamina.runtime.launcher.console import _make_console
from lamina.runtime.launcher.process import _Proc
from lamina.runtime.launcher.targets import _in_root, _mount_at

# ---------------------------------------------------------------------------------------------
# The container's PID 1 (P2)

def _bring_lo_up() -> None:
    lib = _lib()
    s = lib.socket(2, 2 | 0o2000000, 0)  # AF_INET, SOCK_DGRAM|SOCK_CLOEXEC
    if s < 0:
        return
    try:
        ifr = ctypes.create_string_buffer(40)
        ifr.raw = b"lo".ljust(40, b"\0")
        if lib.ioctl(s, 0x8913, ifr) == 0:  # SIOCGIFFLAGS
            flags = int.from_bytes(ifr.raw[16:18], sys.byteorder) | 0x1 | 0x40
            ctypes.memmove(ctypes.addressof(ifr) + 16, flags.to_bytes(2, sys.byteorder), 2)
            if lib.ioctl(s, 0x8914, ifr) != 0:  # SIOCSIFFLAGS
                _check(-1, "bringing up lo")
    finally:
        os.close(s)


def _join_netns(path: str) -> None:
    """setns into the network namespace at ``path`` (before pivot_root: a host path)."""
    _join_namespace(path, _CLONE_NEWNET, "network")


class _Plan:
    """Everything P2 needs, parsed from config.json before the fork."""

    def __init__(self, spec: dict, bundle: str) -> None:
        root = spec.get("root") or {}
        if not root.get("path"):
            raise InvalidArgument(f"{bundle}/config.json: root.path is missing")
        self.rootfs = os.path.realpath(os.path.join(bundle, root["path"]))
        if not os.path.isdir(self.rootfs):
            raise NotFound(f"rootfs {self.rootfs} of bundle {bundle} is not a directory")
        self.readonly = bool(root.get("readonly"))
        linux = spec.get("linux") or {}
        flags = 0
        self.pidns = False
        self.join_net = ""
        self.join_pid = ""  # joined by P1 before it forks P2 (a pid namespace applies to children)
        self.join_other: list[tuple[str, int]] = []  # (path, CLONE_NEW*) ipc/uts, joined by P2
        for ns in linux.get("namespaces") or ():
            t = ns.get("type")
            if t not in _NS_FLAGS:
                raise InvalidArgument(f"config.json: unknown namespace type {t!r}")
            if ns.get("path"):
                if t == "network":
                    self.join_net = ns["path"]  # the netns lamina.network made, or container:<x>'s
                elif t == "pid":
                    self.join_pid = ns["path"]
                elif t in ("ipc", "uts"):
                    self.join_other.append((ns["path"], _NS_FLAGS[t]))
                else:
                    raise Unsupported(f"joining an existing {t} namespace ({ns['path']}) is not "
                                      "supported by the built-in runtime: use runtime=runc")
                continue
            if t == "user":
                raise Unsupported("user namespaces are not supported by the built-in runtime")
            if t == "pid":
                self.pidns = True
            else:
                flags |= _NS_FLAGS[t]
        self.ns_flags = flags
        self.hostname = spec.get("hostname") or ""
        if self.hostname and not flags & _CLONE_NEWUTS:
            raise InvalidArgument("config.json: hostname set without a uts namespace")
        self.mounts = list(spec.get("mounts") or ())
        self.sysctl = dict(linux.get("sysctl") or {})
        self.devices = list(linux.get("devices") or ())
        self.masked = list(linux.get("maskedPaths") or ())
        self.readonly_paths = list(linux.get("readonlyPaths") or ())
        self.proc = _Proc(spec.get("process") or {}, linux.get("seccomp"))
        self.resources = linux.get("resources") or {}
        self.cgroups_path = linux.get("cgroupsPath")
        self.root_propagation = linux.get("rootfsPropagation") or ""
        if self.root_propagation not in ("", "private", "rprivate", "slave", "rslave"):
            raise Unsupported(f"config.json: rootfsPropagation {self.root_propagation!r} is not supported "
                              "by the built-in runtime (private or slave)")
        self.hierarchies = {} if _is_v2() else dict(_v1_hierarchies())
        self.detached: frozenset[int] = frozenset()  # fds of detached mounts (run(detached=...))

    @property
    def detached_sources(self) -> frozenset[str]:
        return frozenset(f"/proc/self/fd/{fd}" for fd in self.detached)


def _setup_mounts(plan: _Plan, rootfs_mounts, console: int | None,
                  before_cgroup: Callable[[], None] = lambda: None,
                  console_sock: int | None = None) -> None:
    """Every mount of P2 before pivot_root. ``before_cgroup`` runs once before the first
    cgroup filesystem mount (it joins the cgroups and unshares the cgroup namespace).
    With ``console_sock``, the terminal is made in the container's devpts (_make_console)
    and becomes ``console``."""
    from lamina.mount import DETACHED, Mount, mount_all

    rootfs = plan.rootfs
    if plan.root_propagation in ("slave", "rslave"):  # a bind mount with slave propagation
        _sysmount("/", _MS_REC | _MS_SLAVE, "making / rslave")
    else:
        _sysmount("/", _MS_REC | _MS_PRIVATE, "making / rprivate")
    try:
        if rootfs_mounts:
            mount_all(list(rootfs_mounts), rootfs)
        else:
            mount_all([Mount("bind", rootfs, ("rbind",))], rootfs)
    except LaminaError as e:
        raise type(e)(f"mount of the rootfs on {rootfs} failed: "
                      f"{str(e).split(' failed: ', 1)[-1]}") from e
    dev_tmpfs = False
    for m in plan.mounts:
        dest = m.get("destination", "")
        if not dest.startswith("/"):
            raise InvalidArgument(f"config.json: mount destination {dest!r} is not absolute")
        typ = m.get("type") or "bind"
        opts = tuple(m.get("options") or ())
        src = m.get("source") or typ
        if src in plan.detached_sources:  # made by the caller from a descriptor: attach it
            make = "dir" if os.path.isdir(src) else "file"
            _mount_at(rootfs, dest, [Mount(DETACHED, src)], what=dest, make=make)
        elif typ == "bind" or "bind" in opts or "rbind" in opts:
            if "bind" not in opts and "rbind" not in opts:
                opts = ("rbind",) + opts
            make = "dir" if os.path.isdir(src) else "file"
            _mount_at(rootfs, dest, [Mount("bind", src, opts)], what=dest, make=make)
        elif typ == "cgroup":
            before_cgroup()
            _mount_cgroups(plan, dest, opts)
        else:
            if typ == "cgroup2":
                before_cgroup()
            _mount_at(rootfs, dest, [Mount(typ, src, opts)], what=dest)
            if dest == "/dev" and typ == "tmpfs":
                dev_tmpfs = True
    if dev_tmpfs:
        dev = _in_root(rootfs, "/dev", make="dir")
        old = os.umask(0)
        try:
            for name, major, minor in _DEV_NODES:
                p = os.path.join(dev, name)
                if not os.path.lexists(p):
                    os.mknod(p, 0o20666, os.makedev(major, minor))
            for name, target in _DEV_LINKS:
                p = os.path.join(dev, name)
                if not os.path.lexists(p):
                    os.symlink(target, p)
        except OSError as e:
            raise Unavailable(f"creating device nodes in {dev} failed: {e.strerror}") from e
        finally:
            os.umask(old)
    for d in plan.devices:  # --device: the node, made in the container's /dev
        path = d.get("path") or ""
        parent, _, name = path.rstrip("/").rpartition("/")
        if not path.startswith("/") or not name:
            raise InvalidArgument(f"config.json: device path {path!r} is not absolute")
        where = os.path.join(_in_root(rootfs, parent or "/", make="dir"), name)
        kind = {"c": 0o020000, "u": 0o020000, "b": 0o060000, "p": 0o010000}.get(d.get("type", "c"), 0o020000)
        old = os.umask(0)
        try:
            if os.path.lexists(where):
                os.unlink(where)
            os.mknod(where, kind | (int(d.get("fileMode") or 0o666) & 0o7777),
                     os.makedev(int(d.get("major", 0)), int(d.get("minor", 0))))
            os.chown(where, int(d.get("uid") or 0), int(d.get("gid") or 0))
        except OSError as e:
            raise Unavailable(f"creating device {path} failed: {e.strerror}") from e
        finally:
            os.umask(old)
    if console_sock is not None:
        _make_console(rootfs, console_sock, plan.proc.console_size)
        console = 0
    if console is not None:
        # The console's own path: an fd opened in the caller's mount namespace cannot be
        # the source of a bind mount made in this one (EINVAL), its path in our copy can.
        src = os.readlink(f"/proc/self/fd/{console}")
        if src.startswith("/"):
            _mount_at(rootfs, "/dev/console", [Mount("bind", src, ("bind",))],
                      what="/dev/console", make="file")


def _mount_cgroups(plan: _Plan, dest: str, opts: tuple) -> None:
    from lamina.mount import Mount

    ro = "ro" in opts
    flags = tuple(o for o in opts if o in ("nosuid", "noexec", "nodev", "relatime"))
    if not plan.hierarchies:
        _mount_at(plan.rootfs, dest, [Mount("cgroup2", "cgroup", opts)], what=dest)
        return
    top = _mount_at(plan.rootfs, dest, [Mount("tmpfs", "tmpfs",
                                              flags + ("mode=755",))], what=dest)
    for point, ctl in plan.hierarchies.items():
        if not ctl:
            continue  # the hybrid "unified" v2 tree: joined but not mounted (as runc)
        name = os.path.basename(point)
        sub = dest.rstrip("/") + "/" + name
        m = Mount("cgroup", "cgroup", flags + (("ro",) if ro else ()) + tuple(ctl.split(",")))
        _mount_at(plan.rootfs, sub, [m], what=sub)
    if ro:
        _sysmount(top, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NOEXEC
                  | _MS_NODEV, f"remounting {top} read-only")


def _join_namespace(path: str, flag: int, what: str) -> None:
    """setns into the namespace at ``path`` (another container's ipc, uts or pid one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise Unavailable(f"opening {what} namespace {path} failed: {e.strerror}") from e
    try:
        if _lib().setns(fd, flag) != 0:
            _check(-1, f"joining {what} namespace {path}")
    finally:
        os.close(fd)


def _write_sysctls(sysctl: dict) -> None:
    """``linux.sysctl`` (``--sysctl``) in the container's own namespaces, before /proc/sys is
    made read-only: ``net.ipv4.ip_forward`` is /proc/sys/net/ipv4/ip_forward."""
    for key, val in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        if ".." in key.split("."):
            raise InvalidArgument(f"config.json: bad sysctl name {key!r}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            raise Unavailable(f"setting sysctl {key} failed: open {path}: {e.strerror}") from e
        try:
            os.write(fd, val.encode())
        except OSError as e:
            raise Unavailable(f"setting sysctl {key}={val} failed: {e.strerror}") from e
        finally:
            os.close(fd)


def _pivot_root(rootfs: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(_MACHINE)
    if nr is None:
        raise Unsupported(f"pivot_root: unknown syscall number on {_MACHINE}")
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        if _lib().syscall(ctypes.c_long(nr), b".", b".") != 0:
            e = ctypes.get_errno()
            raise Unavailable(f"pivot_root to {rootfs} failed: {os.strerror(e)}")
        os.fchdir(old)
        _sysmount(".", _MS_REC | _MS_SLAVE, "making the old root rslave")
        if _lib().umount2(b".", _MNT_DETACH) != 0:
            e = ctypes.get_errno()
            raise Unavailable(f"detaching the old root failed: {os.strerror(e)}")
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def _mask_and_protect(plan: _Plan) -> None:
    from lamina.mount import Mount, mount_all

    for p in plan.masked:
        try:
            if os.path.isdir(p):
                mount_all([Mount("tmpfs", "tmpfs", ("ro",))], p)
            elif os.path.lexists(p):
                mount_all([Mount("bind", "/dev/null", ("bind",))], p)
        except LaminaError as e:
            raise type(e)(f"masking {p} failed: {str(e).split(' failed: ', 1)[-1]}") from e
    for p in plan.readonly_paths:
        if not os.path.lexists(p):
            continue
        try:
            mount_all([Mount("bind", p, ("rbind", "ro", "nosuid", "nodev", "noexec"))], p)
        except LaminaError as e:
            raise type(e)(f"making {p} read-only failed: "
                          f"{str(e).split(' failed: ', 1)[-1]}") from e
    if plan.readonly:
        _sysmount("/", _MS_REMOUNT | _MS_BIND | _MS_RDONLY, "remounting / read-only")
