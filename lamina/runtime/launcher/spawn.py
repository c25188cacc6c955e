"""P2's birth: ``clone3(CLONE_NEWPID | CLONE_INTO_CGROUP)`` straight from a single-threaded
caller, else through P1 (fork, then clone3 or unshare + fork); the child's main (namespaces,
mounts, process setup, exec) and the stdio it gets.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal

from lamina.errors import Unavailable
from lamina.runtime.launcher.base import (
    _CLONE_NEWCGROUP,
    _CLONE_NEWIPC,
    _CLONE_NEWNET,
    _CLONE_NEWPID,
    _F_DUPFD_CLOEXEC,
    _PR_SET_PDEATHSIG,
    _TERMINAL_SIGNALS,
    _TIOCSCTTY,
    _UMASK,
    _check,
    _lib,
    _prctl,
    _report,
    _unshare,
    _wait,
)
from lamina.runtime.launcher.cgroups import _Cgroup
from lamina.runtime.launcher.mounts import (
    _bring_lo_up,
    _join_namespace,
    _join_netns,
    _mask_and_protect,
    _pivot_root,
    _Plan,
    _setup_mounts,
    _write_sysctls,
)
from lamina.runtime.launcher.process import _apply_rlimits, _apply_security, _exec, _set_oom_score_adj


def _container_main(plan: _Plan, cg: _Cgroup | None, rootfs_mounts, stdio, console,
                    errfd: int, syncfd: int, console_sock: int | None = None) -> None:
    """P2: PID 1 of the container. Never returns.

    ``syncfd`` gets one byte from P1 once P2 is in the v2 / hybrid unified cgroup (EOF if
    P1 failed: it reports the error). Waiting for it, joining the v1 cgroups and unsharing
    the cgroup namespace happen just before the first cgroup mount, so P1's grace period
    overlaps the namespace and rootfs work; nothing of the image runs before that point.

    ``console_sock``: make the terminal in the container's devpts and send its master there.
    """
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        os.umask(_UMASK)  # never the caller's: the mount points and cwd made here
        if console is not None or console_sock is not None:
            os.setsid()
        if console is not None:
            if _lib().ioctl(console, _TIOCSCTTY, None) != 0:
                _check(-1, "ioctl TIOCSCTTY on the console")
        _setup_stdio(stdio if console is None else (console,) * 3, errfd, syncfd,
                     console_sock, keep=plan.detached)
        errfd, syncfd = 3, 4
        if console_sock is not None:
            console_sock = 5
        joined = []

        def join() -> None:
            if joined:
                return
            joined.append(True)
            while True:
                try:
                    ok = os.read(syncfd, 1)
                    break
                except InterruptedError:
                    continue
            if ok != b"1":
                os._exit(125)  # P1 failed to join us and reports why
            os.close(syncfd)
            if cg is not None:
                try:
                    cg.join_self()
                except OSError as e:
                    raise Unavailable(f"joining cgroup {cg.path} failed: {e.strerror}") from e
            if plan.ns_flags & _CLONE_NEWCGROUP:
                try:
                    _unshare(_CLONE_NEWCGROUP)
                except OSError as e:
                    raise Unavailable(f"creating the cgroup namespace failed: {e}") from e

        if plan.join_net:
            _join_netns(plan.join_net)
        for path, flag in plan.join_other:
            _join_namespace(path, flag, "ipc" if flag == _CLONE_NEWIPC else "uts")
        try:
            _unshare(plan.ns_flags & ~_CLONE_NEWCGROUP)
        except OSError as e:
            raise Unavailable(f"creating namespaces failed: {e}") from e
        if plan.ns_flags & _CLONE_NEWNET:
            _bring_lo_up()
        _setup_mounts(plan, rootfs_mounts, 0 if console is not None else None, join,
                      console_sock)
        join()
        _pivot_root(plan.rootfs)
        if plan.sysctl:
            _write_sysctls(plan.sysctl)
        _mask_and_protect(plan)
        if plan.hostname:
            h = plan.hostname.encode()
            if _lib().sethostname(h, len(h)) != 0:
                _check(-1, f"sethostname {plan.hostname}")
        p = plan.proc
        _set_oom_score_adj(str(p.oom_score_adj))
        _apply_rlimits(p)
        try:
            os.makedirs(p.cwd, 0o755, exist_ok=True)
        except OSError:
            pass
        try:
            os.chdir(p.cwd)
        except OSError as e:
            raise Unavailable(f"chdir to cwd ({p.cwd!r}) set in config.json failed: "
                              f"{e.strerror}") from e
        if (console is not None or console_sock is not None) and p.uid:
            try:
                os.fchown(0, p.uid, -1)  # the user must be able to reopen its tty
            except OSError:
                pass
        _apply_security(p)
        try:
            os.chdir(p.cwd)
        except OSError as e:
            raise Unavailable(f"chdir to cwd ({p.cwd!r}) as user {p.uid} failed: "
                              f"{e.strerror}") from e
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        _report(errfd, e)
        os._exit(125)
    _exec(plan.proc, errfd)
    os._exit(125)


def _setup_stdio(stdio, errfd: int, syncfd: int | None = None,
                 sockfd: int | None = None, keep: frozenset[int] = frozenset()) -> None:
    """Put stdio on 0/1/2, errfd on 3, syncfd (if any) on 4 and sockfd (if any, with a
    syncfd) on 5 (CLOEXEC); close every other descriptor but ``keep`` (all above 5)."""
    def dup(fd: int) -> int:  # above 0-5, so no dup2 below is a no-op (dup3 refuses those)
        return _check(_lib().fcntl(fd, _F_DUPFD_CLOEXEC, 10), "fcntl(F_DUPFD_CLOEXEC)")

    tmp = [dup(fd) for fd in stdio]
    e = dup(errfd)
    s = None if syncfd is None else dup(syncfd)
    c = None if sockfd is None else dup(sockfd)
    for i, fd in enumerate(tmp):
        os.dup2(fd, i, inheritable=True)
    os.dup2(e, 3, inheritable=False)
    if s is not None:
        os.dup2(s, 4, inheritable=False)
    if c is not None:
        os.dup2(c, 5, inheritable=False)
    _close_from(4 if s is None else 5 if c is None else 6, keep)


def _close_all_but(keep) -> None:
    """Close every descriptor but ``keep`` (a forked helper must not hold the caller's fds:
    a held write end of the container's stdin pipe would keep it from ever seeing EOF)."""
    hi = os.sysconf("SC_OPEN_MAX")
    lo = 0
    for fd in sorted({k for k in keep if k is not None and k >= 0}):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    if lo < hi:
        os.closerange(lo, hi)


def _close_from(lowfd: int, keep: frozenset[int] = frozenset()) -> None:
    try:
        top = os.sysconf("SC_OPEN_MAX")
        for fd in sorted(k for k in keep if k >= lowfd):
            os.closerange(lowfd, fd)
            lowfd = fd + 1
        os.closerange(lowfd, top)
    except OSError:
        pass


def _single_threaded() -> bool:
    """Whether this process has one thread (then a raw clone3 is as safe as fork)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[17] == b"1"
    except (OSError, IndexError):
        return False


class _NoClone(Exception):
    """clone3 is not available: start P2 through P1 instead."""


def _spawn_p2(plan: _Plan, cg: _Cgroup, rootfs_mounts, stdio, console, errw: int, *,
              direct: bool, console_sock: int | None = None) -> int:
    """Start P2 (from P1, or ``direct``ly from a single-threaded caller) in a new pid
    namespace when the spec asks, put it into the v2 / hybrid unified cgroup (born there
    through clone3(CLONE_INTO_CGROUP) when the kernel can, else moved) and let it go on.
    Returns P2's pid; never returns in P2. ``direct`` raises _NoClone if clone3 fails."""
    syncr, syncw = os.pipe2(os.O_CLOEXEC)
    try:
        p2, joined = _fork_p2(cg, plan.pidns, direct)
    except BaseException:
        os.close(syncr)
        os.close(syncw)
        raise
    if p2 == 0:
        try:
            gc.disable()
            for s in _TERMINAL_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            _container_main(plan, cg, rootfs_mounts, stdio, console, errw, syncr,
                            console_sock)
        finally:
            os._exit(125)
    os.close(syncr)
    try:
        if not joined:
            cg.join_pid(p2)
    except OSError as e:
        os.close(syncw)
        os.kill(p2, signal.SIGKILL)
        _wait(p2)
        raise Unavailable(f"joining cgroup {cg.path} failed: {e.strerror}") from e
    os.write(syncw, b"1")
    os.close(syncw)
    return p2


class _CloneArgs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("flags", "pidfd", "child_tid", "parent_tid",
                                              "exit_signal", "stack", "stack_size", "tls",
                                              "set_tid", "set_tid_size", "cgroup")]


_SYS_CLONE3 = 435  # the unified number of every architecture but alpha
_CLONE_INTO_CGROUP = 0x200000000
_pylibc = None


def _clone(flags: int, cgroup_dir: str | None) -> int:
    """``fork`` through clone3: ``flags`` (CLONE_NEWPID) and, with ``cgroup_dir`` (a v2
    cgroup), CLONE_INTO_CGROUP: the child is born there, no migration. Only for a
    single-threaded process: a raw clone skips glibc's fork handlers, so the child's
    malloc/stdio locks are consistent only when no other thread could hold them. Python's
    own fork bookkeeping is done as os.fork does it (PyOS_BeforeFork/AfterFork_*).
    Returns the pid (0 in the child); raises OSError (ENOSYS, EINVAL on old kernels ...)."""
    global _pylibc
    if _pylibc is None:
        lib = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held over the clone
        lib.syscall.restype = ctypes.c_long
        _pylibc = lib
    fd = -1 if cgroup_dir is None else \
        os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    pid = -1
    try:
        if fd >= 0:
            flags |= _CLONE_INTO_CGROUP
        args = _CloneArgs(flags=flags, exit_signal=signal.SIGCHLD, cgroup=max(fd, 0))
        api = ctypes.pythonapi
        api.PyOS_BeforeFork()
        pid = _pylibc.syscall(ctypes.c_long(_SYS_CLONE3), ctypes.byref(args),
                              ctypes.c_size_t(ctypes.sizeof(args)))
        if pid == 0:
            api.PyOS_AfterFork_Child()
            return 0
        err = ctypes.get_errno()
        api.PyOS_AfterFork_Parent()
    finally:
        if pid != 0 and fd >= 0:
            os.close(fd)
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return pid


def _fork_p2(cg: _Cgroup, pidns: bool, direct: bool) -> tuple[int, bool]:
    """Fork P2 (in a new pid namespace if ``pidns``): ``(pid, joined)``, joined when P2 was
    born in its v2 / hybrid unified cgroup, else it must still be moved there. ``direct``
    (the caller itself): clone3 or _NoClone; from P1: clone3, else unshare + fork."""
    flags = _CLONE_NEWPID if pidns else 0
    if direct or len(cg.procs) == 1:
        try:
            return _clone(flags, cg.procs[0].rpartition("/")[0] if cg.procs else None), True
        except OSError:
            if direct:
                raise _NoClone() from None
    if pidns:
        _unshare(_CLONE_NEWPID)
    return os.fork(), False
