"""Constants, libc through ctypes (loaded on first use, before any fork), and the protocol by
which a child reports a setup or exec failure to its caller (a CLOEXEC pipe that reaches EOF
at the successful execve).
"""

from __future__ import annotations

import ctypes
import os
import signal

from lamina.errors import InvalidArgument, LaminaError, NotFound, Unavailable, Unsupported

# ---------------------------------------------------------------------------------------------
# Constants

_CLONE_NEWNS, _CLONE_NEWCGROUP, _CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
_CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWPID = 0x08000000, 0x10000000, 0x20000000
_CLONE_NEWNET = 0x40000000
_NS_FLAGS = {"mount": _CLONE_NEWNS, "cgroup": _CLONE_NEWCGROUP, "uts": _CLONE_NEWUTS,
             "ipc": _CLONE_NEWIPC, "pid": _CLONE_NEWPID, "network": _CLONE_NEWNET,
             "user": _CLONE_NEWUSER}
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC = 32, 4096, 16384
_MS_PRIVATE, _MS_SLAVE = 1 << 18, 1 << 19
_MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_SET_KEEPCAPS, _PR_SET_SECCOMP = 1, 8, 22
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 24, 38, 47
_PR_CAP_AMBIENT_RAISE, _PR_CAP_AMBIENT_CLEAR_ALL = 2, 4
_SECCOMP_MODE_FILTER = 2
_TIOCSCTTY, _TIOCSWINSZ, _TIOCSPTLCK, _TIOCGPTPEER = 0x540E, 0x5414, 0x40045431, 0x5441
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 271, "s390x": 280}
_KEYCTL_JOIN_SESSION_KEYRING = 1
_F_DUPFD_CLOEXEC = 1030
#: The umask of every container process (runc's), unless the spec's process.user.umask says.
_UMASK = 0o022
_RLIMIT_NUM = {"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
               "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
               "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
               "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
               "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15}
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Default device nodes runc creates in /dev: name -> (major, minor).
_DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
              ("urandom", 1, 9), ("tty", 5, 0))
_DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
              ("ptmx", "pts/ptmx"))
_CGROUP_ROOT = "/sys/fs/cgroup"
_V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
                             "net_cls", "net_prio", "blkio", "perf_event", "hugetlb", "pids",
                             "rdma", "misc"})

# ---------------------------------------------------------------------------------------------
# libc (ctypes, loaded on first use, before any fork)

_libc = None


def _lib():
    global _libc
    if _libc is None:
        from lamina.mount import _libc as mount_libc
        lib = mount_libc()  # the same libc handle; mount, umount2, unshare, syscall typed there
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                              ctypes.c_ulong]
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        lib.setrlimit.argtypes = [ctypes.c_int, ctypes.c_void_p]
        lib.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.fcntl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.personality.argtypes = [ctypes.c_ulong]
        _libc = lib
    return _libc


def _check(r: int, what: str) -> int:
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return r


def _prctl(opt: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> int:
    return _check(_lib().prctl(opt, a, b, c, d), f"prctl({opt})")


def _unshare(flags: int) -> None:
    _check(_lib().unshare(flags), "unshare")


def _sysmount(target: str, flags: int, what: str) -> None:
    """mount(2) with no source and no type: a propagation change or a remount."""
    if _lib().mount(None, os.fsencode(target), None, flags, None) != 0:
        e = ctypes.get_errno()
        raise Unavailable(f"{what} failed: {os.strerror(e)}")


# ---------------------------------------------------------------------------------------------
# Errors across the fork: one CLOEXEC pipe, child -> caller

class _ExecError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


_ERROR_CLASSES = {c.__name__: c for c in (LaminaError, InvalidArgument, NotFound, Unavailable,
                                          Unsupported)}


def _report(fd: int, exc: BaseException) -> None:
    try:
        if isinstance(exc, _ExecError):
            msg = f"X{exc.code}\t{exc}"
        else:
            cls = type(exc).__name__ if type(exc).__name__ in _ERROR_CLASSES else "Unavailable"
            text = str(exc) if isinstance(exc, LaminaError) else \
                f"container setup failed: {exc}"
            msg = f"E{cls}\t{text}"
        os.write(fd, msg.encode("utf-8", "replace")[:8000])
    except BaseException:  # noqa: BLE001
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks)


def _docker_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128


def _wait(pid: int) -> int:
    while True:
        try:
            _, st = os.waitpid(pid, 0)
            return st
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0


_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGTSTP, signal.SIGTTIN,
                     signal.SIGTTOU, signal.SIGWINCH)


_MACHINE = os.uname().machine
