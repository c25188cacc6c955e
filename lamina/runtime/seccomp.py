"""Seccomp: Docker's default profile, Docker-format profiles, and their classic-BPF programs.

Three steps, the ones Docker and runc take:

1. A profile in **Docker's JSON format** (``defaultAction``, ``defaultErrnoRet``,
   ``architectures`` or ``archMap``, ``syscalls`` rules with ``names``, ``action``,
   ``errnoRet``, ``args``, ``includes``/``excludes`` by ``caps``/``arches``/``minKernel``):
   :func:`default_profile` (Docker 20.10's default, an allow-list), or a user's
   ``--security-opt seccomp=FILE`` read by :func:`parse_profile`.
2. :func:`resolve` turns it into the OCI ``linux.seccomp`` object *for one container*: the
   rules whose ``includes`` hold and whose ``excludes`` do not, for this machine's
   architecture, the container's bounding capabilities and this kernel's version; the
   ``archMap`` entry of the native architecture becomes ``architectures``.
3. :func:`compile_bpf` turns an OCI object into a classic BPF program (bytes of
   ``struct sock_filter``) with libseccomp (ctypes), behind a short prefix of our own that
   answers ``ENOSYS`` for syscall numbers above the highest one the profile names, per
   architecture (what runc does: a libc probing a syscall newer than the profile falls back
   instead of failing with EPERM). :func:`program` caches compiled programs in memory and in
   :data:`BPF_CACHE_DIR`, keyed by everything that changes the bytes.

Rules with several conditions on one argument become one rule per condition (OR'ed), as in
runc; a syscall name libseccomp does not know is skipped (also as runc).

Errors: a malformed profile raises InvalidArgument naming the field
(``seccomp profile: syscalls[3].action: unknown action "SCMP_ACT_FOO"``).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from lamina.errors import InvalidArgument, Unavailable

__all__ = ["default_profile", "parse_profile", "resolve", "compile_bpf", "program",
           "native_arch", "BPF_CACHE_DIR"]

# ---------------------------------------------------------------------------------------------
# Docker's default profile (facts of moby profiles/seccomp/default.json, Docker 20.10),
# written as groups of what the calls are for. Everything else is refused with EPERM.

_ALLOW_ALWAYS = {
    "files": """
        access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat chown fchown
        fchownat lchown creat open openat openat2 close close_range dup dup2 dup3 fcntl flock
        link linkat symlink symlinkat unlink unlinkat rename renameat renameat2 mkdir mkdirat
        rmdir mknod mknodat readlink readlinkat stat lstat fstat newfstatat statx statfs
        fstatfs truncate ftruncate fallocate fadvise64 readahead getdents getdents64 lseek
        read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 sendfile
        splice tee vmsplice copy_file_range sync syncfs fsync fdatasync sync_file_range umask
        utime utimes utimensat futimesat getxattr lgetxattr fgetxattr setxattr lsetxattr
        fsetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr
        inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
        io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_uring_setup
        io_uring_enter io_uring_register ioctl
    """,
    "waiting and events": """
        poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
        epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd signalfd4
        timerfd_create timerfd_gettime timerfd_settime pause nanosleep clock_nanosleep
        futex futex_waitv
    """,
    "processes and threads": """
        fork vfork execve execveat exit exit_group wait4 waitid kill tkill tgkill
        pidfd_open pidfd_send_signal process_mrelease getpid getppid gettid getpgid setpgid
        getpgrp getsid setsid getuid geteuid getgid getegid getresuid getresgid setuid setgid
        setreuid setregid setresuid setresgid setfsuid setfsgid getgroups setgroups capget
        capset prctl seccomp getrlimit setrlimit prlimit64 getrusage getpriority setpriority
        ioprio_get ioprio_set sched_yield sched_getaffinity sched_setaffinity sched_getattr
        sched_setattr sched_getparam sched_setparam sched_getscheduler sched_setscheduler
        sched_get_priority_max sched_get_priority_min sched_rr_get_interval getcpu
        set_tid_address get_robust_list set_robust_list rseq restart_syscall
        get_thread_area set_thread_area landlock_create_ruleset landlock_add_rule
        landlock_restrict_self uname sysinfo times getrandom membarrier
    """,
    "signals": """
        rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo rt_tgsigqueueinfo
        rt_sigreturn rt_sigsuspend rt_sigtimedwait sigaltstack
    """,
    "memory": """
        brk mmap munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall munlock
        munlockall remap_file_pages memfd_create memfd_secret
    """,
    "time": """
        time gettimeofday clock_gettime clock_getres clock_adjtime adjtimex alarm getitimer
        setitimer timer_create timer_delete timer_gettime timer_settime timer_getoverrun
    """,
    "sockets and IPC": """
        socket socketpair bind connect listen accept accept4 getsockname getpeername
        getsockopt setsockopt shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg
        recvmmsg pipe pipe2 mq_open mq_unlink mq_notify mq_getsetattr mq_timedsend
        mq_timedreceive msgget msgctl msgsnd msgrcv semget semctl semop semtimedop shmget
        shmctl shmat shmdt
    """,
    "32-bit and multiplexed variants": """
        _llseek _newselect chown32 fchown32 lchown32 fadvise64_64 fcntl64 fstat64 fstatat64
        fstatfs64 ftruncate64 truncate64 lstat64 stat64 statfs64 sendfile64 mmap2 getuid32
        geteuid32 getgid32 getegid32 getresuid32 getresgid32 setuid32 setgid32 setreuid32
        setregid32 setresuid32 setresgid32 setfsuid32 setfsgid32 getgroups32 setgroups32
        ugetrlimit waitpid sigprocmask sigreturn socketcall ipc clock_adjtime64
        clock_getres_time64 clock_gettime64 clock_nanosleep_time64 futex_time64
        io_pgetevents_time64 mq_timedreceive_time64 mq_timedsend_time64 ppoll_time64
        pselect6_time64 recvmmsg_time64 rt_sigtimedwait_time64 sched_rr_get_interval_time64
        semtimedop_time64 timer_gettime64 timer_settime64 timerfd_gettime64
        timerfd_settime64 utimensat_time64
    """,
}

#: Syscalls a capability in the bounding set unlocks (Docker's ``includes.caps`` groups).
_ALLOW_WITH_CAP = {
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_ADMIN": """
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl
        quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare
    """,
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev "
                      "ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy",
    "CAP_SYSLOG": "syslog",
}

#: Syscalls of one architecture family only (Go architecture names, as Docker's profile).
_ALLOW_ON_ARCH = (
    (("ppc64le",), "sync_file_range2"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint "
                       "cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
)

#: personality(2) values a container may set: PER_LINUX, UNAME26, PER_LINUX32,
#: PER_LINUX32|UNAME26, and 0xffffffff (the query). ADDR_NO_RANDOMIZE & co. stay refused.
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
#: clone(2) flags that make namespaces (NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET):
#: without CAP_SYS_ADMIN, clone is allowed only when none of them is set.
_CLONE_NS_MASK = 0x7E020000
_MIPS = ["mips3l64n32", "mips64", "mips64n32", "mipsel", "mipsel64"]

_ARCH_MAP = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    ("SCMP_ARCH_MIPS64N32", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64")),
    ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    ("SCMP_ARCH_MIPSEL64N32", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64")),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
)


def _words(text: str) -> list[str]:
    return text.split()


def default_profile() -> dict:
    """Docker's default seccomp profile, in Docker's JSON format (a new dict each call).

    Default action ERRNO(EPERM); an allow-list of ordinary syscalls; ``ptrace`` from Linux
    4.8; ``personality`` with the five harmless values only; ``clone`` without namespace
    flags and ``clone3`` as ENOSYS (so libc falls back to clone) unless CAP_SYS_ADMIN; the
    privileged calls (mount, bpf, reboot, ...) only with the capability that guards them."""
    allow = sorted({n for text in _ALLOW_ALWAYS.values() for n in _words(text)})
    rules: list[dict] = [{"names": allow, "action": "SCMP_ACT_ALLOW"}]
    rules.append({"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                  "includes": {"minKernel": "4.8"}})
    for value in _PERSONALITIES:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    for arches, names in _ALLOW_ON_ARCH:
        rules.append({"names": _words(names), "action": "SCMP_ACT_ALLOW",
                      "includes": {"arches": list(arches)}})
    for cap, names in _ALLOW_WITH_CAP.items():
        rules.append({"names": _words(names), "action": "SCMP_ACT_ALLOW",
                      "includes": {"caps": [cap]}})
    no_admin = ["CAP_SYS_ADMIN"]
    rules += [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": _CLONE_NS_MASK, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": no_admin, "arches": ["s390", "s390x"]}},
        # s390 passes clone's flags second
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": _CLONE_NS_MASK, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}],
         "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": no_admin}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _errno.ENOSYS,
         "excludes": {"caps": no_admin, "arches": _MIPS}},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 89,  # mips' ENOSYS
         "includes": {"arches": _MIPS}, "excludes": {"caps": no_admin}},
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": a, "subArchitectures": list(s)} for a, s in _ARCH_MAP],
            "syscalls": rules}


# ---------------------------------------------------------------------------------------------
# Docker format -> OCI linux.seccomp

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
             "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
#: libseccomp's architecture tokens (AUDIT_ARCH_* values).
ARCHES = {"SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E,
          "SCMP_ARCH_X32": 0x4000003E, "SCMP_ARCH_ARM": 0x40000028,
          "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_MIPS": 0x00000008,
          "SCMP_ARCH_MIPS64": 0x80000008, "SCMP_ARCH_MIPS64N32": 0xA0000008,
          "SCMP_ARCH_MIPSEL": 0x40000008, "SCMP_ARCH_MIPSEL64": 0xC0000008,
          "SCMP_ARCH_MIPSEL64N32": 0xE0000008, "SCMP_ARCH_PPC": 0x00000014,
          "SCMP_ARCH_PPC64": 0x80000015, "SCMP_ARCH_PPC64LE": 0xC0000015,
          "SCMP_ARCH_S390": 0x00000016, "SCMP_ARCH_S390X": 0x80000016,
          "SCMP_ARCH_RISCV64": 0xC00000F3}
# uname machine -> (Go's name for it, as profiles' "arches" use, libseccomp's token)
_NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
           "i686": ("x86", "SCMP_ARCH_X86"), "i386": ("x86", "SCMP_ARCH_X86"),
           "armv7l": ("arm", "SCMP_ARCH_ARM"), "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
           "s390x": ("s390x", "SCMP_ARCH_S390X"), "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
           "mips64": ("mips64", "SCMP_ARCH_MIPS64")}


def native_arch(machine: str | None = None) -> tuple[str, str | None]:
    """(Go architecture name, libseccomp token or None) of ``machine`` (default: this one)."""
    m = machine or os.uname().machine
    return _NATIVE.get(m, (m, None))


def _kernel_version(release: str | None = None) -> tuple[int, int]:
    rel = release or os.uname().release
    parts = rel.split(".", 2)
    try:
        major = int(parts[0])
        minor = int("".join(ch for ch in (parts[1] if len(parts) > 1 else "0").split("-")[0]
                            if ch.isdigit()) or 0)
    except ValueError:
        return (0, 0)
    return (major, minor)


def _bad(where: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"seccomp profile: {where}: {what}")


def _str_list(v, where: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad(where, "want a list of strings")
    return v


def _uint(v, where: str, bits: int = 64) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << bits:
        raise _bad(where, f"want an unsigned {bits}-bit integer, got {v!r}")
    return v


def _min_kernel(v, where: str) -> tuple[int, int] | None:
    if v in (None, ""):
        return None
    if not isinstance(v, str):
        raise _bad(where, f'invalid kernel version {v!r}, expected "<kernel>.<major>"')
    parts = v.split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise _bad(where, f'invalid kernel version "{v}", expected "<kernel>.<major>"')
    kv = (int(parts[0]), int(parts[1]))
    if kv == (0, 0) or max(kv) > 255:
        raise _bad(where, f'invalid kernel version "{v}"')
    return kv


def _filter(v, where: str) -> dict:
    if v is None:
        v = {}
    if not isinstance(v, dict):
        raise _bad(where, "want an object with caps, arches or minKernel")
    for k in v:
        if k not in ("caps", "arches", "minKernel"):
            raise _bad(f"{where}.{k}", "unknown field")
    return {"caps": _str_list(v.get("caps"), f"{where}.caps"),
            "arches": _str_list(v.get("arches"), f"{where}.arches"),
            "minKernel": _min_kernel(v.get("minKernel"), f"{where}.minKernel")}


def parse_profile(text: str | bytes, *, source: str = "profile") -> dict:
    """A Docker-format profile from JSON text, checked (InvalidArgument naming ``source``
    and the field). The result is the decoded dict; :func:`resolve` applies it."""
    import json

    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"Decoding seccomp profile failed: {source}: {e}"[:300]) from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"Decoding seccomp profile failed: {source}: want a JSON object")
    check(doc)
    return doc


def check(profile: dict) -> None:
    """Validate a Docker-format profile (every field :func:`resolve` reads)."""
    if not isinstance(profile, dict):
        raise _bad("profile", "want a JSON object")
    act = profile.get("defaultAction", "")
    if act not in ACTIONS and not (act == "" and not profile.get("syscalls")):
        raise _bad("defaultAction", f'unknown action "{act}"')
    if profile.get("defaultErrnoRet") is not None:
        _uint(profile["defaultErrnoRet"], "defaultErrnoRet", 16)
    arches = _str_list(profile.get("architectures"), "architectures")
    for a in arches:
        if a not in ARCHES:
            raise _bad("architectures", f'unknown architecture "{a}"')
    amap = profile.get("archMap") or []
    if arches and amap:
        raise _bad("profile", "'architectures' and 'archMap' were both specified, use one")
    if not isinstance(amap, list):
        raise _bad("archMap", "want a list")
    for i, m in enumerate(amap):
        if not isinstance(m, dict) or m.get("architecture") not in ARCHES:
            raise _bad(f"archMap[{i}].architecture", "unknown architecture "
                       f"{m.get('architecture') if isinstance(m, dict) else m!r}")
        for s in _str_list(m.get("subArchitectures"), f"archMap[{i}].subArchitectures"):
            if s not in ARCHES:
                raise _bad(f"archMap[{i}].subArchitectures", f'unknown architecture "{s}"')
    calls = profile.get("syscalls") or []
    if not isinstance(calls, list):
        raise _bad("syscalls", "want a list")
    for i, c in enumerate(calls):
        w = f"syscalls[{i}]"
        if not isinstance(c, dict):
            raise _bad(w, "want an object")
        if c.get("name") and c.get("names"):
            raise _bad(w, "'name' and 'names' were both specified, use one")
        if c.get("name") is not None and not isinstance(c["name"], str):
            raise _bad(f"{w}.name", "want a string")
        _str_list(c.get("names"), f"{w}.names")
        if c.get("action") not in ACTIONS:
            raise _bad(f"{w}.action", f'unknown action "{c.get("action")}"')
        if c.get("errnoRet") is not None:
            _uint(c["errnoRet"], f"{w}.errnoRet", 16)
        args = c.get("args") or []
        if not isinstance(args, list):
            raise _bad(f"{w}.args", "want a list")
        for j, a in enumerate(args):
            wa = f"{w}.args[{j}]"
            if not isinstance(a, dict):
                raise _bad(wa, "want an object")
            _uint(a.get("index", 0), f"{wa}.index", 3)
            if a.get("index", 0) > 5:
                raise _bad(f"{wa}.index", f"syscalls have 6 arguments, got {a['index']}")
            _uint(a.get("value", 0), f"{wa}.value")
            _uint(a.get("valueTwo", 0), f"{wa}.valueTwo")
            if a.get("op") not in OPERATORS:
                raise _bad(f"{wa}.op", f'unknown operator "{a.get("op")}"')
        _filter(c.get("includes"), f"{w}.includes")
        _filter(c.get("excludes"), f"{w}.excludes")


def resolve(profile: dict, *, bounding, machine: str | None = None,
            kernel: str | None = None, checked: bool = False) -> dict | None:
    """The OCI ``linux.seccomp`` object of a Docker-format ``profile`` for a container whose
    bounding set is ``bounding`` (capability names), on ``machine`` (uname -m) and kernel
    release ``kernel`` (both default to this host). None when the profile has neither a
    default action nor rules (Docker: no filter). Pure; raises InvalidArgument.
    ``checked``: the profile is :func:`default_profile`'s, which tests hold valid, so
    :func:`check` is not run again at every start (~1 ms)."""
    if not checked:
        check(profile)
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    arch, token = native_arch(machine)
    kv = _kernel_version(kernel)
    caps = set(bounding)
    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches = list(profile.get("architectures") or [])
    for m in profile.get("archMap") or ():
        if token is not None and m["architecture"] == token:
            arches = [m["architecture"], *(m.get("subArchitectures") or ())]
            break
    if arches:
        out["architectures"] = arches
    rules = []
    for c in profile.get("syscalls") or ():
        inc, exc = _filter(c.get("includes"), ""), _filter(c.get("excludes"), "")
        if arch in exc["arches"] or caps & set(exc["caps"]):
            continue
        if exc["minKernel"] is not None and kv >= exc["minKernel"]:
            continue
        if inc["arches"] and arch not in inc["arches"]:
            continue
        if not set(inc["caps"]) <= caps:
            continue
        if inc["minKernel"] is not None and kv < inc["minKernel"]:
            continue
        rule: dict = {"names": [c["name"]] if c.get("name") else list(c.get("names") or ()),
                      "action": c["action"]}
        if c.get("errnoRet") is not None:
            rule["errnoRet"] = c["errnoRet"]
        if c.get("args"):
            rule["args"] = [{"index": a.get("index", 0), "value": a.get("value", 0),
                             "valueTwo": a.get("valueTwo", 0), "op": a["op"]}
                            for a in c["args"]]
        rules.append(rule)
    out["syscalls"] = rules
    return out


# ---------------------------------------------------------------------------------------------
# OCI linux.seccomp -> classic BPF (libseccomp + an ENOSYS prefix)

_ACTION_BITS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
                "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
                "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
                "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
_OP_CODES = {op: i + 1 for i, op in enumerate(OPERATORS)}
_X32_SYSCALL_BIT = 0x40000000
_SCMP_FLTATR_CTL_OPTIMIZE = 8
_RET_ERRNO = 0x00050000


def _action(name: str, ret: int | None, default_errno: int) -> int:
    try:
        bits = _ACTION_BITS[name]
    except KeyError:
        raise _bad("action", f'unknown action "{name}"') from None
    if name == "SCMP_ACT_ERRNO":
        return bits | ((default_errno if ret is None else ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return bits | ((0 if ret is None else ret) & 0xFFFF)
    return bits


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_libseccomp = None


def _lib():
    global _libseccomp
    if _libseccomp is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as e:
            raise Unavailable(f"a seccomp profile is requested but libseccomp.so.2 cannot be "
                              f"loaded ({e}): install libseccomp2, or run with "
                              f"--security-opt seccomp=unconfined") from e
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        _libseccomp = lib
    return _libseccomp


def _names(rule: dict) -> list[str]:
    return list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))


def compile_bpf(oci: dict) -> bytes:
    """The classic BPF program (``struct sock_filter`` array, native byte order) of an OCI
    ``linux.seccomp`` object. Raises InvalidArgument for a bad profile, Unavailable when
    libseccomp is missing or fails."""
    lib = _lib()
    default_errno = oci.get("defaultErrnoRet")
    default_errno = _errno.EPERM if default_errno is None else int(default_errno)
    default = oci.get("defaultAction") or "SCMP_ACT_ALLOW"
    ctx = lib.seccomp_init(_action(default, None, default_errno))
    if not ctx:
        raise Unavailable("seccomp_init failed")
    try:
        tokens: list[int] = []
        arch_names = list(oci.get("architectures") or ())
        native = lib.seccomp_arch_native()
        for name in arch_names:
            token = ARCHES.get(name)
            if token is None:
                raise _bad("architectures", f'unknown architecture "{name}"')
            r = lib.seccomp_arch_add(ctx, token)
            if r == 0 or r == -_errno.EEXIST:
                tokens.append(token)
            # else: an architecture this libseccomp cannot filter; its calls hit badarch
        if arch_names and native not in tokens:
            lib.seccomp_arch_remove(ctx, native)  # only the profile's architectures
        if not arch_names:
            tokens.append(native)
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)  # binary tree; best effort
        for i, rule in enumerate(oci.get("syscalls") or ()):
            action = _action(rule.get("action", ""), rule.get("errnoRet"), default_errno)
            conds = []
            for a in rule.get("args") or ():
                op = _OP_CODES.get(a.get("op", ""))
                if op is None:
                    raise _bad(f"syscalls[{i}]", f'unknown operator "{a.get("op")}"')
                conds.append((int(a.get("index", 0)), op, int(a.get("value", 0)),
                              int(a.get("valueTwo", 0))))
            indexes = [c[0] for c in conds]
            # several conditions on one argument: separate rules (OR), as runc
            groups = [[c] for c in conds] if len(set(indexes)) != len(indexes) else [conds]
            for name in _names(rule):
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # __NR_SCMP_ERROR: a name this libseccomp does not know
                    continue
                for group in groups:
                    arr = (_ArgCmp * max(1, len(group)))(*[_ArgCmp(*c) for c in group])
                    r = lib.seccomp_rule_add_array(ctx, action, nr, len(group), arr)
                    if r < 0 and r not in (-_errno.EEXIST, -_errno.EDOM):
                        raise _bad(f"syscalls[{i}]", f"rule for {name} rejected by "
                                   f"libseccomp: {os.strerror(-r)}")
        fd = os.memfd_create("lamina-seccomp", os.MFD_CLOEXEC)
        try:
            r = lib.seccomp_export_bpf(ctx, fd)
            if r < 0:
                raise Unavailable(f"seccomp_export_bpf failed: {os.strerror(-r)}")
            prog = os.pread(fd, os.lseek(fd, 0, os.SEEK_END), 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if default in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        return prog
    stub = _enosys_prefix(oci, tokens)
    if len(stub) + len(prog) > 4096 * 8:
        raise InvalidArgument(f"seccomp profile too large: {(len(stub) + len(prog)) // 8} BPF "
                              "instructions (the kernel takes 4096)")
    return stub + prog


def _highest(oci: dict, token: int) -> int:
    """The highest syscall number ``oci`` names on the architecture ``token`` (-1: none)."""
    lib = _lib()
    best = -1
    for rule in oci.get("syscalls") or ():
        for name in _names(rule):
            nr = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
            if nr >= 0:
                best = max(best, nr)
    return best


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return code.to_bytes(2, "little" if _LITTLE else "big") + bytes((jt, jf)) + \
        (k & 0xFFFFFFFF).to_bytes(4, "little" if _LITTLE else "big")


_LITTLE = ctypes.c_uint16(1).value.to_bytes(2, "little") == bytes(ctypes.c_uint16(1))
_LD_W_ABS, _JEQ_K, _JGT_K, _JGE_K, _JA, _RET_K = 0x20, 0x15, 0x25, 0x35, 0x05, 0x06
_OFF_NR, _OFF_ARCH = 0, 4


def _enosys_prefix(oci: dict, tokens: list[int]) -> bytes:
    """Instructions run before libseccomp's program: a syscall number above the highest the
    profile names on its architecture returns ERRNO(ENOSYS); everything else falls through.

    x86_64 and x32 share AUDIT_ARCH_X86_64 and differ by bit 30 of the number; an x32 call
    is checked against the x32 numbers only when the profile lists x32 (else libseccomp's
    own program decides, as without the prefix)."""
    x32 = ARCHES["SCMP_ARCH_X32"]
    x86_64 = ARCHES["SCMP_ARCH_X86_64"]
    # per audit arch: list of (low, high, max): numbers in [low, high) above max -> ENOSYS
    checks: dict[int, list[tuple[int, int]]] = {}
    for token in tokens:
        top = _highest(oci, token)
        if top < 0:
            continue
        if token == x32:
            checks.setdefault(x86_64, []).append((_X32_SYSCALL_BIT, top))
        elif token == x86_64:
            checks.setdefault(x86_64, []).append((0, top))
        else:
            checks.setdefault(token, []).append((0, top))
    if not checks:
        return b""
    # layout: [arch dispatch] [per-arch blocks] ENOSYS-return; "out" = first insn after us
    blocks: list[tuple[int, list[tuple]]] = []
    for audit, ranges in checks.items():
        body: list[tuple] = [("ld", _OFF_NR)]
        has_x32 = any(low for low, _ in ranges)
        native_top = next((top for low, top in ranges if not low), None)
        x32_top = next((top for low, top in ranges if low), None)
        if audit == x86_64:
            # nr >= X32 bit ? (x32 check or fall through) : native check
            body.append(("jge", _X32_SYSCALL_BIT, "x32", "native"))
            body.append(("label", "native"))
            if native_top is None:
                body.append(("ja", "out"))
            else:
                body.append(("jgt", native_top, "enosys", "out"))
            body.append(("label", "x32"))
            if has_x32:
                body.append(("jgt", x32_top, "enosys", "out"))
            else:
                body.append(("ja", "out"))
        else:
            body.append(("jgt", native_top, "enosys", "out"))
        blocks.append((audit, body))
    prog: list[tuple] = [("ld", _OFF_ARCH)]
    for i, (audit, _) in enumerate(blocks):
        prog.append(("jeq", audit, f"arch{i}", "next"))
        prog.append(("label", "next"))
    prog.append(("ja", "out"))
    for i, (_, body) in enumerate(blocks):
        prog.append(("label", f"arch{i}"))
        prog.extend(body)
    prog.append(("label", "enosys"))
    prog.append(("ret", _RET_ERRNO | _errno.ENOSYS))
    prog.append(("label", "out"))
    # resolve labels: "next" means the following instruction; labels are local to position
    pos: dict[str, int] = {}
    insns: list[tuple] = []
    for op in prog:
        if op[0] == "label":
            if op[1] != "next":
                pos[op[1]] = len(insns)
        else:
            insns.append(op)
    out = b""
    for i, op in enumerate(insns):
        def rel(label: str, i: int = i) -> int:
            target = i + 1 if label == "next" else pos[label]
            d = target - i - 1
            if not 0 <= d < 256:
                raise AssertionError("seccomp prefix jump out of range")
            return d
        kind = op[0]
        if kind == "ld":
            out += _insn(_LD_W_ABS, 0, 0, op[1])
        elif kind == "ret":
            out += _insn(_RET_K, 0, 0, op[1])
        elif kind == "ja":
            out += _insn(_JA, 0, 0, rel(op[1]))
        else:
            code = {"jeq": _JEQ_K, "jgt": _JGT_K, "jge": _JGE_K}[kind]
            out += _insn(code, rel(op[2]), rel(op[3]), op[1])
    return out


# ---------------------------------------------------------------------------------------------
# Cached programs

#: Compiled filters kept across processes (root-only, cleared at boot): ~1 ms per start.
BPF_CACHE_DIR = "/run/lamina/seccomp"
_memory: dict[str, bytes] = {}


def program(oci: dict) -> bytes:
    """:func:`compile_bpf`, cached in this process and on disk (root only). The disk key
    covers the profile, the libseccomp file, this module's file and the kernel (libseccomp
    asks the kernel which actions it supports), so a change of any of them recompiles."""
    import json

    key = json.dumps(oci, sort_keys=True, separators=(",", ":"))
    hit = _memory.get(key)
    if hit is not None:
        return hit
    disk = _disk_path(key)
    prog = None
    if disk is not None:
        try:
            with open(disk, "rb") as f:
                prog = f.read()
        except OSError:
            prog = None
    if not prog or len(prog) % 8:
        prog = compile_bpf(oci)
        if disk is not None:
            _store(disk, prog)
    _memory[key] = prog
    return prog


def _ident(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"


def _libseccomp_path() -> str | None:
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libseccomp.so" in line:
                    return line.split(None, 5)[5].strip()
    except OSError:
        return None
    m = os.uname().machine
    for d in (f"/usr/lib/{m}-linux-gnu", f"/lib/{m}-linux-gnu", "/usr/lib64", "/lib64",
              "/usr/lib", "/lib"):
        if os.path.exists(d + "/libseccomp.so.2"):
            return d + "/libseccomp.so.2"
    return None


def _disk_path(key: str) -> str | None:
    from lamina.digest import hexdigest

    if os.geteuid() != 0:
        return None
    lib = _libseccomp_path()
    if lib is None:
        return None
    try:
        ident = f"{key}\0{_ident(lib)}\0{_ident(__file__)}"
    except OSError:
        return None
    u = os.uname()
    ident += f"\0{u.machine}\0{u.release}\0{u.version}"
    return os.path.join(BPF_CACHE_DIR, hexdigest(ident.encode()) + ".bpf")


def _store(path: str, prog: bytes) -> None:
    try:
        parent = os.path.dirname(BPF_CACHE_DIR)
        os.makedirs(parent, 0o700, exist_ok=True)
        pst = os.lstat(parent)
        if pst.st_uid == 0 and pst.st_mode & 0o170000 == 0o040000 and pst.st_mode & 0o077:
            os.chmod(parent, 0o700)  # /run/lamina of an older lamina was 0755
        os.makedirs(BPF_CACHE_DIR, 0o700, exist_ok=True)
        st = os.lstat(BPF_CACHE_DIR)
        if st.st_uid != 0 or st.st_mode & 0o022 or not os.path.isdir(BPF_CACHE_DIR):
            return  # someone else's directory: never trust, never write
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, prog)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        pass
