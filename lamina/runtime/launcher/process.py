"""Process setup in P2 and in exec: seccomp loading (the program was compiled in the caller),
a new session keyring, rlimits, the OOM score, credentials and capabilities, the signal
dispositions, the PATH lookup and the final ``execve`` -- the only one in lamina.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import signal

from lamina.errors import InvalidArgument, Unavailable
from lamina.runtime.launcher.base import (
    _DEFAULT_PATH,
    _KEYCTL_JOIN_SESSION_KEYRING,
    _LINUX_CAPABILITY_VERSION_3,
    _MACHINE,
    _PR_CAP_AMBIENT,
    _PR_CAP_AMBIENT_RAISE,
    _PR_CAPBSET_DROP,
    _PR_SET_KEEPCAPS,
    _PR_SET_NO_NEW_PRIVS,
    _PR_SET_PDEATHSIG,
    _PR_SET_SECCOMP,
    _RLIMIT_NUM,
    _SECCOMP_MODE_FILTER,
    _SYS_KEYCTL,
    _UMASK,
    _check,
    _ExecError,
    _lib,
    _prctl,
    _report,
)
from lamina.runtime.launcher.caps import _cap_last_cap, _cap_mask
from lamina.runtime.launcher.cgroups import _write

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
