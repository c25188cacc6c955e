"""The built-in container launcher: the one module in lamina that performs a container's
final ``execve``.

:func:`run` starts the container described by ``bundle/config.json`` (an OCI runtime spec,
usually from :func:`lamina.runtime.spec.build_spec`) in the foreground and returns Docker's
exit code. :func:`exec_in` runs one more process inside a running container.
:func:`freeze`, :func:`thaw` and :func:`pids` serve pause/unpause/top.

Process tree of the built-in runtime (no subprocess, no exec of helpers)::

    caller ── clone3 ──> P2 = PID 1 of the new pid namespace (single-threaded caller)

    caller ── fork ──> P1 "setup parent": PR_SET_PDEATHSIG, waits (caller with threads)
                        └─ clone3 (or unshare(CLONE_NEWPID) + fork) ──> P2

P2's host pid is given to ``on_start``; P2 joins the v1 cgroups, unshares mnt/uts/ipc/
(net)/cgroup, mounts, pivot_root, drops privileges and execs the command (with ``--init``
the spec's command is Debian's tini, bound on /sbin/docker-init by lamina.runtime.spec).

P2 is made with a raw ``clone3(CLONE_NEWPID | CLONE_INTO_CGROUP)``: born in its pid namespace
(the cloning process's own later forks stay in its namespace) and in its v2 (or hybrid
``unified``) cgroup, so no cgroup.procs write is needed. A raw clone skips glibc's fork
handlers, which is safe only in a process with one thread (no other thread can hold a libc
lock): a single-threaded caller (``lamina run``) clones P2 itself and waits for it; a caller
with threads (the monitor, the build) forks P1, which clones P2 and exits with its Docker
exit code (``code`` or ``128+signal``). Without clone3 (old kernel, seccomp), P1 unshares
CLONE_NEWPID, forks P2 and writes its pid into cgroup.procs. P1 and P2 die with their parent
(``PR_SET_PDEATHSIG``): a SIGKILLed caller takes its container with it (note: the death
signal fires when the *thread* that called :func:`run` exits).

Mounts. Every mount is made inside the container's new mount namespace, after ``/`` was made
``rprivate``: the caller's ``rootfs_mounts`` (overlay ...) are mounted on ``root.path`` there,
so nothing is ever left mounted on the host, even when everything is SIGKILLed. Filesystem
mounts go through :func:`lamina.mount.mount_all`; this module itself calls mount(2) only to
change propagation and to remount read-only, plus ``pivot_root`` and ``umount2(MNT_DETACH)``
of the old root (which lamina.mount has no verbs for). Mount destinations are resolved with
``openat2(RESOLVE_IN_ROOT)``, so a symlink in the image cannot point a mount outside the
rootfs; missing destinations are created (a file for a bind of a file).

Order in P2 (as runc, but for the cgroup namespace): umask 022 -> join the network namespace
the spec names by ``path`` (the only namespace joined by path: lamina.network made it, or it
is another container's) -> namespaces but cgroup -> loopback up (new netns) -> ``/`` rprivate
(rslave with ``linux.rootfsPropagation`` rslave: a bind with slave propagation follows the
host) -> rootfs -> spec mounts [before the first cgroup
mount: wait until the parent has P2 in the v2 cgroup, join the v1 cgroups, unshare the
cgroup namespace] -> /dev nodes and symlinks -> pivot_root -> masked paths -> readonly paths
-> read-only root -> hostname -> rlimits -> cwd -> a new anonymous session keyring -> the
process's umask -> the caller's persona flags cleared -> [seccomp, when ``noNewPrivileges`` is false, while CAP_SYS_ADMIN is still
held] -> bounding set -> setgroups/setresgid/setresuid (PR_SET_KEEPCAPS) -> capset + ambient
-> no_new_privs -> [seccomp, when ``noNewPrivileges``] -> cwd again -> execve.

Seccomp: :mod:`lamina.runtime.seccomp` compiles the spec's ``linux.seccomp`` into classic BPF
*in the caller* (cached); the child only calls ``prctl(PR_SET_SECCOMP)`` with it.

What a container process never gets from its caller (run and exec alike): its environment
(execve gets the spec's env only), its terminal or any other descriptor (0/1/2 are the
given stdio, every other fd is closed; a stdio fd that is not a pipe, a socket or /dev/null,
e.g. a terminal, is replaced by a pipe that a thread of the caller copies), its session
keyring, its umask, its persona flags (setarch -R), its OOM score adjustment, its signal
mask and dispositions, its cwd, its cgroups, namespaces,
capabilities and seccomp state (the container's own are applied), its rlimits beyond the
container's (exec copies the container init's limits, never above them).

Exec failures follow Docker: a command not found -> ``exec: "foo": executable file not found
in $PATH`` on the container's stderr and exit code 127; found but not executable ->
``... permission denied`` and 126. The child reports them (and setup failures) through a
CLOEXEC pipe that reaches EOF at the successful execve. Setup failures raise
:class:`~lamina.errors.LaminaError` subclasses in the caller (exit 125 class), e.g.
``mount /proc on /x/rootfs/proc failed: ...``.

cgroups (host side, in the caller): v1 creates ``<hierarchy>/<cgroup_parent>/<id>`` in every
mounted v1 hierarchy (and the hybrid ``unified`` one), writes memory/cpu/pids limits and
Docker's device allow-list, and removes the cgroups after exit. P2 joins every v1 hierarchy
(all of them, as runc: one left out would make the container's cgroup namespace root, and so
its /sys/fs/cgroup/<ctl> mount, the caller's cgroup) by writing ``0`` to each ``tasks`` file:
moving one thread of a single-threaded process skips the global threadgroup rwsem whose
write side, taken by every cgroup.procs write, waits for an RCU grace period (3-15 ms). v2 (when
``/sys/fs/cgroup/cgroup.controllers`` exists) uses ``/sys/fs/cgroup/<parent>/<id>``. A
requested limit whose controller is missing raises :class:`~lamina.errors.Unavailable`.

``runtime="runc"`` (or ``"crun"``): :mod:`lamina.runtime.external` drives the runtime's own
verbs (create --pid-file, start, wait for the init as a child subreaper, delete), so the pid
given to ``on_start`` is the container's init, as with the built-in runtime.

Terminals of the built-in runtime. With ``on_console`` (the monitor's way), P2 allocates the
pty as runc does: after the spec's mounts it opens ``<rootfs>/dev/pts/ptmx`` (the
container's own devpts instance), sets the window size (``console_size`` or the spec's
``process.consoleSize``), makes the slave its controlling tty and 0/1/2, bind-mounts it on
``/dev/console`` and sends the master to the caller over a socketpair (SCM_RIGHTS, runc's
"console socket"); the caller hands it to ``on_console`` before the command is exec'd, so
``tty`` prints ``/dev/pts/0`` and ``ps`` shows ``pts/0``. (A rootfs without a devpts on
/dev/pts gets a pty of the host's devpts instead.) The caller keeps a slave of that pty open
(``TIOCGPTPEER``) until the container exits, for exec error messages, as a caller-given
console would be. With ``console`` (a pty slave the caller made, e.g. with os.openpty()),
that slave itself is the container's tty, bind-mounted on ``/dev/console``: a host pty is
invisible in the container's new devpts, so ``tty`` prints ``/dev/console``.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

from lamina.errors import InvalidArgument, LaminaError, NotFound, Unavailable, Unsupported

__all__ = ["run", "exec_in", "freeze", "thaw", "pids", "remove_cgroups", "cgroup_dirs"]

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


# ---------------------------------------------------------------------------------------------
# Seccomp: the program is compiled (and cached) by lamina.runtime.seccomp in the caller; the
# child only calls prctl(PR_SET_SECCOMP) with it

class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp_fprog(oci: dict) -> tuple:
    """(sock_fprog, buffer) of an OCI linux.seccomp object (the buffer keeps it alive)."""
    from lamina.runtime import seccomp

    prog = seccomp.program(oci)
    buf = ctypes.create_string_buffer(prog, len(prog))
    return _SockFprog(len(prog) // 8, ctypes.addressof(buf)), buf


def _load_seccomp(fprog) -> None:
    if _lib().prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise Unavailable(f"loading the seccomp filter failed: {os.strerror(e)}")


def _new_session_keyring() -> None:
    """Join a new anonymous session keyring (as runc does), so the container never holds the
    caller's session keyring and the keys in it. A kernel without keyrings is fine."""
    nr = _SYS_KEYCTL.get(_MACHINE)
    if nr is None:
        return
    if _lib().syscall(ctypes.c_long(nr), ctypes.c_long(_KEYCTL_JOIN_SESSION_KEYRING),
                      ctypes.c_void_p(None)) < 0:
        e = ctypes.get_errno()
        if e != _errno.ENOSYS:
            raise Unavailable(f"joining a new session keyring failed: {os.strerror(e)}")


# ---------------------------------------------------------------------------------------------
# Process plan: everything the child needs, computed before the fork

_cap_last = None


def _cap_last_cap() -> int:
    global _cap_last
    if _cap_last is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _cap_last = int(f.read())
        except (OSError, ValueError):
            _cap_last = 40
    return _cap_last


_host_bnd = None


def _host_caps() -> int:
    """Our own bounding set: a container cannot get a capability this process lacks (here
    CAP_SYS_RESOURCE), so such names in a spec are left out, as beyond cap_last_cap."""
    global _host_bnd
    if _host_bnd is None:
        _host_bnd = (1 << (_cap_last_cap() + 1)) - 1
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("CapBnd:"):
                        _host_bnd = int(line.split()[1], 16)
        except (OSError, ValueError):
            pass
    return _host_bnd


def _cap_mask(names) -> int:
    """Mask of capability names (with or without CAP_), within this host's bounding set."""
    from lamina.runtime.spec import ALL_CAPS

    mask = 0
    for n in names or ():
        n = n.upper()
        if not n.startswith("CAP_"):
            n = "CAP_" + n
        try:
            i = ALL_CAPS.index(n)
        except ValueError:
            raise InvalidArgument(f'unknown capability: "{n}"') from None
        if i <= _cap_last_cap():
            mask |= 1 << i
    return mask & _host_caps()


class _Proc:
    """The process part of a spec, ready to apply in a forked child without imports."""

    def __init__(self, process: dict, seccomp: dict | None) -> None:
        args = process.get("args") or []
        if not args:
            raise InvalidArgument("config.json: process.args is empty: no command specified")
        self.args = [str(a) for a in args]
        env: dict[str, str] = {}
        for e in process.get("env") or ():
            k, _, v = e.partition("=")
            env[k] = v
        self.env = env
        self.path = env.get("PATH", _DEFAULT_PATH)
        self.cwd = process.get("cwd") or "/"
        user = process.get("user") or {}
        self.uid = int(user.get("uid", 0))
        self.gid = int(user.get("gid", 0))
        self.groups = [int(g) for g in user.get("additionalGids") or ()]
        caps = process.get("capabilities") or {}
        self.bounding = _cap_mask(caps.get("bounding"))
        self.effective = _cap_mask(caps.get("effective"))
        self.permitted = _cap_mask(caps.get("permitted"))
        self.inheritable = _cap_mask(caps.get("inheritable"))
        self.ambient = [i for i in range(_cap_last_cap() + 1)
                        if _cap_mask(caps.get("ambient")) >> i & 1]
        self.nnp = bool(process.get("noNewPrivileges"))
        self.rlimits = []
        for r in process.get("rlimits") or ():
            num = _RLIMIT_NUM.get(r.get("type", ""))
            if num is None:
                raise InvalidArgument(f"config.json: unknown rlimit {r.get('type')!r}")
            self.rlimits.append((num, r["type"], int(r["soft"]), int(r["hard"])))
        self.seccomp = _seccomp_fprog(seccomp) if seccomp else None
        self.oom_score_adj = int(process.get("oomScoreAdj") or 0)
        umask = user.get("umask")
        self.umask = _UMASK if umask is None else int(umask) & 0o777
        self.terminal = bool(process.get("terminal"))
        size = process.get("consoleSize") or {}
        self.console_size = (int(size.get("height") or 0), int(size.get("width") or 0))
        self.last_cap = _cap_last_cap()
        self.hdr = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
        lo, hi = (lambda m: m & 0xFFFFFFFF), (lambda m: m >> 32)
        self.capdata = (ctypes.c_uint32 * 6)(lo(self.effective), lo(self.permitted),
                                             lo(self.inheritable), hi(self.effective),
                                             hi(self.permitted), hi(self.inheritable))


def _apply_rlimits(p: _Proc) -> None:
    lib = _lib()
    for num, name, soft, hard in p.rlimits:
        lim = (ctypes.c_ulong * 2)(soft if soft >= 0 else 2**64 - 1,
                                   hard if hard >= 0 else 2**64 - 1)
        if lib.setrlimit(num, lim) != 0:
            e = ctypes.get_errno()
            hint = ""
            if e == _errno.EPERM:
                hint = (" (raising a hard limit needs CAP_SYS_RESOURCE, which this host does "
                        "not grant: ask for a hard limit at or below the current one)")
            raise Unavailable(f"setrlimit {name} soft={soft} hard={hard} failed: "
                              f"{os.strerror(e)}{hint}")


def _apply_security(p: _Proc) -> None:
    """A new session keyring and the umask, then seccomp (early when no NNP), bounding set,
    ids, capabilities, NNP (+ late seccomp)."""
    lib = _lib()
    _new_session_keyring()
    os.umask(p.umask)
    # the caller's persona flags (setarch -R: ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC ...) are
    # inherited across exec: keep only its execution domain (PER_LINUX, PER_LINUX32)
    persona = lib.personality(0xFFFFFFFF)
    if persona > 0 and persona & ~0xFF:
        lib.personality(persona & 0xFF)
    if p.seccomp is not None and not p.nnp:
        _load_seccomp(p.seccomp[0])
    for cap in range(p.last_cap + 1):
        if not p.bounding >> cap & 1:
            if lib.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 \
                    and ctypes.get_errno() != _errno.EINVAL:
                _check(-1, f"prctl PR_CAPBSET_DROP {cap}")
    _prctl(_PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups(p.groups)
    except OSError as e:
        raise Unavailable(f"setgroups {p.groups} failed: {e.strerror}") from e
    try:
        os.setresgid(p.gid, p.gid, p.gid)
        os.setresuid(p.uid, p.uid, p.uid)
    except OSError as e:
        raise Unavailable(f"cannot switch to user {p.uid}:{p.gid}: {e.strerror}") from e
    _prctl(_PR_SET_KEEPCAPS, 0)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # a credential change clears it
    if lib.capset(ctypes.addressof(p.hdr), ctypes.addressof(p.capdata)) != 0:
        _check(-1, "capset")
    if p.ambient:
        for cap in p.ambient:
            _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap)
    if p.nnp:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        if p.seccomp is not None:
            _load_seccomp(p.seccomp[0])


def _look_path(p: _Proc) -> str:
    """Go's exec.LookPath inside the (already pivoted) root; raises _ExecError."""
    name = p.args[0]
    if "/" in name:
        try:
            os.stat(name)
        except OSError as e:
            raise _ExecError(127, f'exec: "{name}": stat {name}: '
                             f'{os.strerror(e.errno).lower()}') from None
        return name
    for d in p.path.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if not (st.st_mode & 0o170000 == 0o040000) and st.st_mode & 0o111:
            return cand
    raise _ExecError(127, f'exec: "{name}": executable file not found in $PATH')


def _reset_signals() -> None:
    for s in range(1, signal.NSIG):
        if s in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(s, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
    except (OSError, ValueError):
        pass


def _exec(p: _Proc, errfd: int) -> None:
    """Find and execve the command; on failure report through errfd and _exit(126/127)."""
    try:
        path = _look_path(p)
        _reset_signals()
        try:
            os.execve(path, p.args, p.env)
        except OSError as e:
            code = 127 if e.errno in (_errno.ENOENT, _errno.ENOTDIR) else 126
            raise _ExecError(code, f'exec: "{p.args[0]}": '
                             f'{os.strerror(e.errno).lower()}') from None
    except _ExecError as e:
        _report(errfd, e)
        os._exit(e.code)
    except BaseException as e:  # noqa: BLE001
        _report(errfd, e)
        os._exit(125)


# ---------------------------------------------------------------------------------------------
# Paths inside the rootfs

def _in_root(rootfs: str, dest: str, *, make: str | None) -> str:
    """The host path of ``dest`` resolved inside ``rootfs`` (symlinks stay inside).

    ``make`` = ``"dir"`` or ``"file"`` creates a missing destination (and its parents).
    """
    from lamina.layer.extract import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

    how = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    rfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rel = dest.strip("/")
        if not rel:
            return rootfs
        try:
            fd = openat2(rfd, rel, os.O_PATH, how)
        except OSError as e:
            if e.errno != _errno.ENOENT or make is None:
                raise
            parts = rel.split("/")
            pfd = os.dup(rfd)
            try:
                for i, part in enumerate(parts):
                    last = i == len(parts) - 1
                    try:
                        nfd = openat2(pfd, part, os.O_PATH, how)
                    except FileNotFoundError:
                        if last and make == "file":
                            os.close(os.open(part, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC
                                             | os.O_NOFOLLOW, 0o755, dir_fd=pfd))
                        else:
                            try:
                                os.mkdir(part, 0o755, dir_fd=pfd)
                            except FileExistsError:
                                pass
                        nfd = openat2(pfd, part, os.O_PATH, how)
                    os.close(pfd)
                    pfd = nfd
            except BaseException:
                os.close(pfd)
                raise
            fd = pfd
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(rfd)
    if real != rootfs and not real.startswith(rootfs.rstrip("/") + "/"):
        raise InvalidArgument(f"mount destination {dest} resolves outside the rootfs ({real})")
    return real


def _mount_at(rootfs: str, dest: str, mounts, *, what: str, make: str | None = "dir") -> str:
    from lamina.mount import mount_all

    try:
        target = _in_root(rootfs, dest, make=make)
    except OSError as e:
        raise Unavailable(f"mount {what} on {rootfs.rstrip('/')}{dest} failed: cannot create "
                          f"the mount point: {e.strerror}") from e
    try:
        mount_all(mounts, target)
    except LaminaError as e:
        reason = str(e).split(" failed: ", 1)[-1]
        raise type(e)(f"mount {what} on {target} failed: {reason}") from e
    return target


# ---------------------------------------------------------------------------------------------
# cgroups (host side)

_v1_cache: dict[str, str] | None = None


def _v1_hierarchies() -> dict[str, str]:
    """Mounted cgroup v1 hierarchies: mount point -> superblock options (controllers),
    plus the hybrid v2 ``unified`` one with value ``""``."""
    global _v1_cache
    if _v1_cache is None:
        out: dict[str, str] = {}
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    left, _, right = line.partition(" - ")
                    fields = right.split()
                    if len(fields) < 3:
                        continue
                    point = left.split()[4]
                    if not point.startswith(_CGROUP_ROOT + "/"):
                        continue
                    if fields[0] == "cgroup":
                        opts = [o for o in fields[2].split(",")
                                if o in _V1_CONTROLLERS or o.startswith("name=")]
                        if opts:
                            out[point] = ",".join(opts)
                    elif fields[0] == "cgroup2":
                        out[point] = ""
        except OSError:
            pass
        _v1_cache = out
    return _v1_cache


def _is_v2() -> bool:
    return os.path.exists(_CGROUP_ROOT + "/cgroup.controllers")


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def cgroup_dirs(cgroups_path: str) -> dict[str, str]:
    """Host directories of ``cgroups_path`` (e.g. ``/lamina/<id>``): controller -> dir.

    v1 keys are each hierarchy's controllers (``"memory"``, ``"cpu,cpuacct"``,
    ``"name=systemd"``, ``""`` for the hybrid unified one); v2 has the single key ``""``.
    """
    rel = cgroups_path.strip("/")
    if _is_v2():
        return {"": os.path.join(_CGROUP_ROOT, rel)}
    return {ctl: os.path.join(point, rel) for point, ctl in _v1_hierarchies().items()}


def _dir_for(dirs: dict[str, str], controller: str) -> str | None:
    for ctl, d in dirs.items():
        if controller in ctl.split(","):
            return d
    return None


class _Cgroup:
    """A container's cgroups: created with limits before the fork, removed after exit."""

    def __init__(self, cgroups_path: str, resources: dict) -> None:
        self.path = cgroups_path
        self.dirs = cgroup_dirs(cgroups_path)
        self.created: list[str] = []
        self.v2 = _is_v2()
        # Joined by P2 itself writing "0" (its only thread) into each v1 ``tasks`` file: a
        # single-thread move of the caller skips the global threadgroup rwsem, whose write
        # side waits for an RCU grace period (3-15 ms) on every cgroup.procs write.
        self.tasks: list[str] = []
        # cgroup.procs of v2 / the hybrid unified tree: a v2 domain cgroup only takes whole
        # processes, so these pay that grace period; P1 writes P2's pid into them while P2
        # is busy with its namespaces and mounts.
        self.procs: list[str] = []
        try:
            self._create(resources or {})
        except BaseException:
            self.remove()
            raise

    def _mkdirs(self, d: str, top: str, copy_cpuset: bool) -> None:
        rel = os.path.relpath(d, top).split("/")
        cur = top
        for part in rel:
            parent, cur = cur, os.path.join(cur, part)
            try:
                os.mkdir(cur)
            except FileExistsError:
                continue
            self.created.append(cur)
            if copy_cpuset:
                for f in ("cpuset.cpus", "cpuset.mems"):
                    try:
                        with open(os.path.join(parent, f)) as src:
                            v = src.read().strip()
                        _write(os.path.join(cur, f), v or "\n")
                    except OSError:
                        pass

    def _create(self, res: dict) -> None:
        mem = (res.get("memory") or {}).get("limit")
        swap = (res.get("memory") or {}).get("swap")
        cpu = res.get("cpu") or {}
        pids = (res.get("pids") or {}).get("limit")
        devices = res.get("devices")
        if self.v2:
            d = self.dirs[""]
            avail = set()
            try:
                with open(os.path.join(_CGROUP_ROOT, "cgroup.controllers")) as f:
                    avail = set(f.read().split())
            except OSError:
                pass
            for need, ctl in ((mem, "memory"), (cpu.get("quota"), "cpu"), (pids, "pids")):
                if need is not None and ctl not in avail:
                    raise Unavailable(f"the {ctl} limit needs the cgroup v2 {ctl} controller, "
                                      "which this host does not enable")
            self._mkdirs(d, _CGROUP_ROOT, False)
            want = [c for c in ("memory", "cpu", "pids") if c in avail]
            parents, cur = [_CGROUP_ROOT], _CGROUP_ROOT
            for part in os.path.relpath(d, _CGROUP_ROOT).split("/")[:-1]:
                cur = os.path.join(cur, part)
                parents.append(cur)
            for parent in parents:
                try:
                    _write(os.path.join(parent, "cgroup.subtree_control"),
                           " ".join("+" + c for c in want))
                except OSError:
                    pass
            if mem is not None:
                _write(os.path.join(d, "memory.max"), str(mem))
                if swap is not None and os.path.exists(os.path.join(d, "memory.swap.max")):
                    _write(os.path.join(d, "memory.swap.max"),
                           "max" if swap == -1 else str(max(0, swap - mem)))
            if cpu.get("quota") is not None:
                _write(os.path.join(d, "cpu.max"), f"{cpu['quota']} {cpu.get('period', 100000)}")
            if pids is not None:
                _write(os.path.join(d, "pids.max"), str(pids))
            self.procs = [os.path.join(d, "cgroup.procs")]
            return
        for need, ctl in ((mem, "memory"), (cpu.get("quota") or cpu.get("shares"), "cpu"),
                          (pids, "pids")):
            if need is not None and _dir_for(self.dirs, ctl) is None:
                raise Unavailable(f"the {ctl} limit needs the cgroup v1 {ctl} controller, "
                                  f"which is not mounted under {_CGROUP_ROOT}")
        for ctl, d in self.dirs.items():
            top = d[: len(d) - len(self.path.strip("/")) - 1]
            self._mkdirs(d, top, "cpuset" in ctl.split(","))
            if ctl:
                self.tasks.append(os.path.join(d, "tasks"))
            else:
                self.procs.append(os.path.join(d, "cgroup.procs"))
        try:
            if mem is not None:
                md = _dir_for(self.dirs, "memory")
                _write(os.path.join(md, "memory.limit_in_bytes"), str(mem))
                # memory+swap (Docker: twice -m unless --memory-swap); a kernel without swap
                # accounting has no such file: then swap stays unlimited, as Docker warns
                if swap is not None and os.path.exists(os.path.join(md,
                                                                    "memory.memsw.limit_in_bytes")):
                    _write(os.path.join(md, "memory.memsw.limit_in_bytes"), str(swap))
            if cpu.get("shares") is not None:
                _write(os.path.join(_dir_for(self.dirs, "cpu"), "cpu.shares"), str(cpu["shares"]))
            if cpu.get("quota") is not None:
                d = _dir_for(self.dirs, "cpu")
                _write(os.path.join(d, "cpu.cfs_period_us"), str(cpu.get("period") or 100000))
                _write(os.path.join(d, "cpu.cfs_quota_us"), str(cpu["quota"]))
            if pids is not None:
                _write(os.path.join(_dir_for(self.dirs, "pids"), "pids.max"), str(pids))
            d = _dir_for(self.dirs, "devices")
            if devices is not None and d is not None:
                for rule in devices:
                    typ = rule.get("type", "a")
                    major = "*" if rule.get("major") is None else str(rule["major"])
                    minor = "*" if rule.get("minor") is None else str(rule["minor"])
                    line = "a" if typ == "a" and major == minor == "*" else \
                        f"{typ} {major}:{minor} {rule.get('access', 'rwm')}"
                    _write(os.path.join(d, "devices.allow" if rule.get("allow")
                                        else "devices.deny"), line)
        except OSError as e:
            raise Unavailable(f"cgroup setup of {self.path} failed: {e.strerror}: "
                              f"{e.filename or ''}") from e

    def join_pid(self, pid: int) -> None:
        """Move process ``pid`` into the v2 / hybrid unified cgroup (P1, for P2)."""
        for p in self.procs:
            _write(p, str(pid))

    def join_self(self) -> None:
        """Move the calling single-threaded process into the v1 cgroups (P2 itself)."""
        for p in self.tasks:
            _write(p, "0")

    def remove(self) -> None:
        """Remove the container's cgroup dirs (never the shared parent). Best effort: a
        cgroup whose last task is still exiting is retried for up to ~0.2 s."""
        leaf = os.path.basename(self.path.rstrip("/"))
        for d in reversed(self.created):
            if os.path.basename(d) != leaf:
                continue
            for i in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != _errno.EBUSY:
                        break
                    time.sleep(0.002)


def remove_cgroups(container_id: str, *, cgroup_parent: str = "lamina") -> None:
    """Remove the container's cgroup dirs left behind when the process that ran :func:`run`
    was killed (run() removes them itself otherwise). Idempotent; a cgroup that still has
    processes stays (Unavailable is not raised: the caller checks :func:`pids` first)."""
    for d in cgroup_dirs(f"/{cgroup_parent}/{container_id}").values():
        try:
            os.rmdir(d)
        except OSError:
            pass


def _freezer_state(container_id: str, cgroup_parent: str) -> str:
    if _is_v2():
        return os.path.join(_CGROUP_ROOT, cgroup_parent, container_id)
    d = _dir_for(cgroup_dirs(f"/{cgroup_parent}/{container_id}"), "freezer")
    if d is None:
        raise Unavailable("pause needs the cgroup v1 freezer controller, which is not mounted")
    return d


def _set_frozen(container_id: str, frozen: bool, cgroup_parent: str) -> None:
    d = _freezer_state(container_id, cgroup_parent)
    if not os.path.isdir(d):
        raise NotFound(f"no cgroup for container {container_id} ({d}): is it running?")
    if _is_v2():
        _write(os.path.join(d, "cgroup.freeze"), "1" if frozen else "0")
        return
    want = "FROZEN" if frozen else "THAWED"
    for _ in range(1000):
        _write(os.path.join(d, "freezer.state"), want)
        with open(os.path.join(d, "freezer.state")) as f:
            if f.read().strip() == want:
                return
        time.sleep(0.001)
    raise Unavailable(f"cgroup freezer of {container_id} did not reach {want}")


def freeze(container_id: str, *, cgroup_parent: str = "lamina") -> None:
    """Freeze every process of the container (``docker pause``). Idempotent."""
    _set_frozen(container_id, True, cgroup_parent)


def thaw(container_id: str, *, cgroup_parent: str = "lamina") -> None:
    """Thaw a frozen container (``docker unpause``). Idempotent."""
    _set_frozen(container_id, False, cgroup_parent)


def pids(container_id: str, *, cgroup_parent: str = "lamina") -> list[int]:
    """Host pids of every process in the container's cgroup (``docker top``), sorted.
    Raises NotFound if the container has no cgroup (not running)."""
    dirs = cgroup_dirs(f"/{cgroup_parent}/{container_id}")
    for ctl in ("pids", "freezer", "memory", ""):
        d = dirs.get("") if ctl == "" else _dir_for(dirs, ctl)
        if d and os.path.isdir(d):
            with open(os.path.join(d, "cgroup.procs")) as f:
                return sorted(int(x) for x in f.read().split())
    raise NotFound(f"no cgroup for container {container_id}: is it running?")


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
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise Unavailable(f"opening network namespace {path} failed: {e.strerror}") from e
    try:
        if _lib().setns(fd, _CLONE_NEWNET) != 0:
            _check(-1, f"joining network namespace {path}")
    finally:
        os.close(fd)


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
        for ns in linux.get("namespaces") or ():
            t = ns.get("type")
            if t not in _NS_FLAGS:
                raise InvalidArgument(f"config.json: unknown namespace type {t!r}")
            if ns.get("path"):
                if t != "network":
                    raise Unsupported(f"joining an existing {t} namespace ({ns['path']}) is not "
                                      "supported by the built-in runtime: use runtime=runc")
                self.join_net = ns["path"]  # the netns lamina.network made, or container:<x>'s
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


# ---------------------------------------------------------------------------------------------
# Public API

def _load_spec(bundle: str) -> dict:
    import json

    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"bundle {bundle} has no config.json") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: invalid JSON: {e}") from e


def _raise_or_print(data: bytes, errfd: int) -> None:
    """Interpret the child's report: raise a setup error, or print an exec error."""
    if not data:
        return
    kind, text = data[:1], data[1:].decode("utf-8", "replace")
    if kind == b"P":
        return
    if kind == b"X":
        _, _, msg = text.partition("\t")
        try:
            os.write(errfd, (msg + "\n").encode())
        except OSError:
            pass
        return
    cls, _, msg = text.partition("\t")
    raise _ERROR_CLASSES.get(cls, Unavailable)(msg)


def run(bundle: str, *, container_id: str, rootfs_mounts: Sequence = (),
        stdio: tuple[int, int, int] = (0, 1, 2), console: int | None = None,
        runtime: str = "builtin", on_start: Callable[[int], None] | None = None,
        cgroup_parent: str = "lamina", on_console: Callable[[int], None] | None = None,
        console_size: tuple[int, int] | None = None,
        on_spawn: Callable[[], None] | None = None, detached: Sequence[int] = ()) -> int:
    """Run the container of ``bundle/config.json`` in the foreground; return Docker's exit code.

    ``rootfs_mounts`` (lamina.mount.Mount values, e.g. the snapshot's overlay) are mounted on
    ``root.path`` inside the container's mount namespace (builtin) or on the host around the
    runtime call (runc/crun). ``stdio`` fds become the container's 0/1/2 unless ``console``
    (a pty slave fd) is given with ``process.terminal``: then it is the controlling tty and
    0/1/2. A ``stdio`` fd that is not a pipe, a socket or /dev/null (a terminal, a file) is
    never handed over: the container gets a pipe that a thread of this process copies to
    (from) it. Without ``console``, ``on_console(master_fd)`` makes the terminal in the
    container's own devpts (``tty`` prints ``/dev/pts/0``, as with runc; see the module
    docstring) and is called with its pty master (then the caller's, CLOEXEC) before the
    command is exec'd; ``console_size`` = ``(rows, cols)`` is its window size (default:
    the spec's ``process.consoleSize``). ``on_spawn()`` is called once the container's
    first process exists (from then on the caller may start threads: a single-threaded
    caller clones the container itself). ``on_start(pid)`` is called with the host pid of
    the container's PID 1 once the command was exec'd (builtin) or the runtime started it.
    The return value is the command's exit code, ``128+N`` for death by signal N, 127/126
    for an exec failure (message written to ``stdio[2]``, or to the terminal). Setup
    failures raise LaminaError subclasses. The cgroups ``/<cgroup_parent>/<container_id>``
    (unless config.json names ``linux.cgroupsPath``) are created before and removed after.
    ``detached`` (builtin only): descriptors (all above 5) of detached mounts
    (lamina.mount.detached_bind/detached_overlay) that config.json mounts as binds with source
    ``/proc/self/fd/<n>``: they are attached with move_mount(2) in the container's namespace,
    never looked up by path.
    """
    if detached and runtime != "builtin":
        raise InvalidArgument(f"detached mounts need the built-in runtime, not {runtime}")
    if runtime not in ("builtin", "runc", "crun"):
        raise InvalidArgument(f"unknown runtime {runtime!r}: use builtin, runc or crun")
    bundle = os.path.abspath(bundle)
    spec = _load_spec(bundle)
    guard = None
    if not (spec.get("process") or {}).get("terminal"):
        from lamina.runtime.stdio import Pipes, is_private

        if not all(is_private(fd) for fd in stdio):
            guard = Pipes(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], only_unsafe=True)
            stdio = guard.child
            spawned = on_spawn

            def on_spawn() -> None:
                guard.start()
                if spawned is not None:
                    spawned()
    try:
        if runtime != "builtin":
            from lamina.runtime.external import run_external

            return run_external(runtime, bundle, spec, container_id=container_id,
                                 rootfs_mounts=rootfs_mounts, stdio=stdio, console=console,
                                 on_start=on_start, cgroup_parent=cgroup_parent,
                                 on_console=on_console, console_size=console_size,
                                 on_spawn=on_spawn)
        return _run_builtin(bundle, spec, container_id=container_id,
                            rootfs_mounts=rootfs_mounts, stdio=stdio, console=console,
                            on_start=on_start, cgroup_parent=cgroup_parent,
                            on_console=on_console, console_size=console_size,
                            on_spawn=on_spawn, detached=detached)
    finally:
        if guard is not None:
            guard.finish()


def _run_builtin(bundle: str, spec: dict, *, container_id: str, rootfs_mounts, stdio, console,
                 on_start, cgroup_parent: str, on_console, console_size, on_spawn,
                 detached: Sequence[int] = ()) -> int:
    import lamina.layer.extract  # noqa: F401 - used in the child: import before the fork
    import lamina.mount

    if any(getattr(m, "type", None) == "overlay" for m in rootfs_mounts):
        lamina.mount._new_api_supported()  # probe once here, not in every child (2-7 ms)

    plan = _Plan(spec, bundle)
    if any(fd <= 5 for fd in detached):
        raise InvalidArgument("detached mount descriptors must be above 5")
    plan.detached = frozenset(detached)
    sock = None  # the "console socket": P2 sends the pty master over it
    if plan.proc.terminal and console is None:
        if on_console is None:
            raise InvalidArgument("process.terminal is set but no console fd was given")
        import socket
        sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # CLOEXEC
        if console_size:
            plan.proc.console_size = (int(console_size[0]), int(console_size[1]))
    csock = None if sock is None else sock[1].fileno()
    peer = None  # the caller's slave of the container's pty
    cg = _Cgroup(plan.cgroups_path or f"/{cgroup_parent}/{container_id}", plan.resources)
    try:
        errr, errw = os.pipe2(os.O_CLOEXEC)
        p2 = 0
        try:
            if _single_threaded():
                p2 = _spawn_p2(plan, cg, rootfs_mounts, stdio, console, errw, direct=True,
                               console_sock=csock)
        except _NoClone:
            pass
        except BaseException:
            os.close(errr)
            os.close(errw)
            raise
        if p2:
            try:
                if on_spawn is not None:
                    on_spawn()
                if sock is not None:
                    sock[1].close()
                    peer = _take_console(sock[0], on_console)
            except BaseException:
                os.close(errw)
                _kill_and_reap(p2, p2, errr)
                raise
            return _finish(p2, p2, b"", errr, errw, stdio, console if sock is None else peer,
                           on_start)
        try:
            p1 = os.fork()
        except BaseException:
            os.close(errr)
            os.close(errw)
            raise
        if p1 == 0:  # P1
            code = 125
            try:
                gc.disable()  # a collection here would copy the caller's heap page by page
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                _close_all_but([errw, *stdio, console, csock])
                for s in _TERMINAL_SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
                p2 = _spawn_p2(plan, cg, rootfs_mounts, stdio, console, errw, direct=False,
                               console_sock=csock)
                if csock is not None:
                    os.close(csock)
                os.write(errw, f"P{p2}\n".encode())
                os.close(errw)
                code = _docker_code(_wait(p2))
            except BaseException as e:  # noqa: BLE001
                _report(errw, e)
            os._exit(code)
        os.close(errw)
        try:
            if on_spawn is not None:
                on_spawn()
            if sock is not None:
                sock[1].close()
                peer = _take_console(sock[0], on_console)
        except BaseException:
            _kill_and_reap(p1, 0, errr)
            raise
        data = _read_all(errr)
        if data.startswith(b"P"):
            line, _, data = data.partition(b"\n")
            p2 = int(line[1:])
        return _finish(p1, p2, data, None, None, stdio, console if sock is None else peer,
                       on_start)
    finally:
        if sock is not None:
            sock[0].close()
            sock[1].close()
        if peer is not None:
            os.close(peer)
        cg.remove()


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


def _kill_and_reap(waitee: int, p2: int, errr: int) -> None:
    """The caller failed while P2 sets up: kill it (P2, or P1 whose death kills P2 through
    its PDEATHSIG) and reap ``waitee``."""
    for pid in {waitee, p2} - {0}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.close(errr)
    _wait(waitee)


_TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGTSTP, signal.SIGTTIN,
                     signal.SIGTTOU, signal.SIGWINCH)


def _finish(waitee: int, p2: int, data: bytes, errr: int | None, errw: int | None, stdio,
            console, on_start) -> int:
    """The caller's side once P2 exists: read the child's report up to the exec (when
    ``errr`` is given), raise setup errors, call ``on_start``, wait for ``waitee`` (P2 itself
    or P1) and return Docker's exit code. Never leaves the container running on an error."""
    if errr is not None:
        os.close(errw)
        data = _read_all(errr)
    try:
        _raise_or_print(data, console if console is not None else stdio[2])
    except BaseException:
        _wait(waitee)
        raise
    try:
        if on_start is not None and p2 and not data:
            on_start(p2)
        return _docker_code(_wait(waitee))
    except BaseException:
        # on_start failed or the caller was interrupted (KeyboardInterrupt): never leave
        # a container running without its runner.
        if p2:
            try:
                os.kill(p2, signal.SIGKILL)
            except OSError:
                pass
        _wait(waitee)
        raise


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


def exec_in(pid: int, process: dict, *, stdio: tuple[int, int, int] = (0, 1, 2),
            console: int | None = None, cgroup: str | None = None,
            seccomp: dict | None = None, on_spawn: Callable[[], None] | None = None) -> int:
    """Run ``process`` (an OCI process object) inside the running container whose PID 1 has
    host pid ``pid``; return Docker's exit code (126/127 for exec failures).

    The process gets the container's whole profile, nothing of the caller: it joins the
    target's cgroups (``cgroup``, e.g. ``/lamina/<id>``, or the ones in
    ``/proc/<pid>/cgroup``; a failure is an error), then its ipc, uts, net, cgroup, pid and
    mount namespaces, forks so the pid namespace applies, chroots to the target's root, takes
    the container init's rlimits and oom_score_adj (never above what this process may set),
    a new session keyring, umask 022, and the process's user, capabilities, no_new_privs and
    ``seccomp`` (the container's ``linux.seccomp`` object) before the exec. Its environment
    is ``process.env`` only; 0/1/2 are ``stdio`` (guarded as in :func:`run`) or ``console``.
    ``on_spawn`` as in :func:`run`. Raises NotFound if the process is gone, other
    LaminaErrors for setup failures.
    """
    p = _Proc(process, seccomp)
    if p.terminal and console is None:
        raise InvalidArgument("process.terminal is set but no console fd was given")
    guard = None
    if console is None:
        from lamina.runtime.stdio import Pipes, is_private

        if not all(is_private(fd) for fd in stdio):
            guard = Pipes(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], only_unsafe=True)
            stdio = guard.child
    nsfds: list[tuple[int, int]] = []
    try:
        for name, flag in (("ipc", _CLONE_NEWIPC), ("uts", _CLONE_NEWUTS),
                           ("net", _CLONE_NEWNET), ("cgroup", _CLONE_NEWCGROUP),
                           ("pid", _CLONE_NEWPID), ("mnt", _CLONE_NEWNS)):
            try:
                if os.stat(f"/proc/{pid}/ns/{name}").st_ino == \
                        os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
                nsfds.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                              flag))
            except FileNotFoundError:
                raise NotFound(f"container process {pid} is not running") from None
        rootfd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        nsfds.append((rootfd, 0))
        procs = _cgroup_procs_of(pid, cgroup)
        limits = _limits_of(pid)
        oom = _oom_score_adj(pid)
        errr, errw = os.pipe2(os.O_CLOEXEC)
        c = os.fork()
        if c == 0:
            code = 125
            try:
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                _close_all_but([errw, *stdio, console, *(fd for fd, _ in nsfds)])
                os.umask(_UMASK)
                for path in procs:
                    try:
                        _write(path, "0")
                    except OSError as e:
                        raise Unavailable(f"joining the container's cgroup "
                                          f"{os.path.dirname(path)} failed: {e.strerror}") from e
                for fd, flag in nsfds:
                    if flag and _lib().setns(fd, flag) != 0:
                        _check(-1, f"setns {flag:#x}")
                os.fchdir(rootfd)
                os.chroot(".")
                g = os.fork()
                if g == 0:
                    try:
                        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                        if console is not None:
                            os.setsid()
                            _lib().ioctl(console, _TIOCSCTTY, None)
                        _setup_stdio(stdio if console is None else (console,) * 3, errw)
                        _set_limits(limits)
                        _set_oom_score_adj(oom)
                        try:
                            os.chdir(p.cwd)
                        except OSError as e:
                            raise Unavailable(f"chdir to {p.cwd!r} failed: {e.strerror}") from e
                        _apply_security(p)
                    except BaseException as e:  # noqa: BLE001
                        _report(3, e)
                        os._exit(125)
                    _exec(p, 3)
                    os._exit(125)
                os.close(errw)
                code = _docker_code(_wait(g))
            except BaseException as e:  # noqa: BLE001
                _report(errw, e)
            os._exit(code)
        os.close(errw)
        try:
            if guard is not None:
                guard.start()
            if on_spawn is not None:
                on_spawn()
        except BaseException:
            _kill_and_reap(c, 0, errr)
            raise
        data = _read_all(errr)
        try:
            _raise_or_print(data, console if console is not None else stdio[2])
        except BaseException:
            _wait(c)
            raise
        return _docker_code(_wait(c))
    finally:
        for fd, _ in nsfds:
            os.close(fd)
        if guard is not None:
            guard.finish(wait_eof=False)


def _limits_of(pid: int) -> list[tuple[int, int, int]]:
    """The rlimits of process ``pid`` (the container's init): [(resource, soft, hard)]."""
    import resource

    out = []
    for num in sorted(set(_RLIMIT_NUM.values())):
        try:
            soft, hard = resource.prlimit(pid, num)
        except ProcessLookupError:
            raise NotFound(f"container process {pid} is not running") from None
        except (OSError, ValueError):
            continue
        out.append((num, soft, hard))
    return out


def _set_limits(limits: list[tuple[int, int, int]]) -> None:
    """Take the container init's rlimits; one whose hard limit is above ours (raising needs
    CAP_SYS_RESOURCE) is set as high as we may, never above the init's."""
    import resource  # imported by _limits_of before the fork: no file is read here

    for num, soft, hard in limits:
        try:
            resource.setrlimit(num, (soft, hard))
        except (OSError, ValueError):
            _, mine = resource.getrlimit(num)
            cap = (lambda v: v if mine == resource.RLIM_INFINITY or
                   (v != resource.RLIM_INFINITY and v <= mine) else mine)
            try:
                resource.setrlimit(num, (cap(soft), cap(hard)))
            except (OSError, ValueError) as e:
                raise Unavailable(f"setting rlimit {num} to the container's failed: {e}") from e


def _oom_score_adj(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/oom_score_adj") as f:
            return f.read().strip()
    except OSError:
        return None


def _set_oom_score_adj(value: str | None) -> None:
    """The container's OOM score adjustment, never the caller's (a caller at -1000 would
    make the container unkillable). Lowering below ours needs CAP_SYS_RESOURCE: then ours
    (higher, the safe side) stays."""
    if value is None:
        return
    try:
        _write("/proc/self/oom_score_adj", value)
    except OSError:
        pass


def _cgroup_procs_of(pid: int, cgroup: str | None) -> list[str]:
    if cgroup is not None:
        return [os.path.join(d, "cgroup.procs") for d in cgroup_dirs(cgroup).values()]
    out = []
    hier = {} if _is_v2() else _v1_hierarchies()
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NotFound(f"container process {pid} is not running") from None
    for line in lines:
        _, ctl, path = line.split(":", 2)
        if _is_v2():
            out.append(os.path.join(_CGROUP_ROOT, path.lstrip("/"), "cgroup.procs"))
            continue
        for point, c in hier.items():
            if c == ctl:
                out.append(os.path.join(point, path.lstrip("/"), "cgroup.procs"))
    return out


_MACHINE = os.uname().machine
