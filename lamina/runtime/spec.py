"""OCI runtime spec (config.json) generation with Docker's defaults.

Pure module: :func:`build_spec` turns :class:`RunOptions` into an OCI runtime-spec 1.0.2
``config.json`` dict that both the built-in launcher (:mod:`lamina.runtime.launcher`) and
runc accept; :func:`resolve_user` reads ``/etc/passwd`` and ``/etc/group`` *inside* a rootfs
(never following a symlink out of it). Nothing here mounts, forks or writes.

Docker's profile, as reproduced here:

* capabilities: the 14 defaults (:data:`DEFAULT_CAPS`) in the bounding, effective and
  permitted sets; inheritable and ambient stay empty (Docker >= 20.10). ``cap_add`` /
  ``cap_drop`` accept ``ALL`` and names with or without ``CAP_``; ``privileged`` gives every
  capability, no seccomp, no masked or read-only paths, and read-write ``/sys``.
* mounts: ``/proc``, ``/dev`` (tmpfs), ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``, ``/sys``
  (ro) and ``/sys/fs/cgroup`` (ro), then the caller's mounts, then the etc files.
* namespaces: pid, ipc, uts, mount, cgroup, and network unless ``network="host"``.
* seccomp: a *deny-list* profile (default action allow) of Docker's well-known blocked
  syscalls, each unblocked by the capability that Docker's profile ties it to
  (:data:`SECCOMP_BLOCKED`). Docker's real profile is an allow-list; the deny-list blocks the
  same dangerous calls without needing a 350-name list that must track every new kernel.
  ``clone`` with namespace flags and ``clone3`` (ENOSYS, so libc falls back to ``clone``) are
  blocked without CAP_SYS_ADMIN; ``personality`` is restricted by refusing the dangerous
  persona bits (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT,
  ADDR_LIMIT_3GB) unless bit 31 is set (the 0xffffffff query), an approximation of Docker's
  four allowed values expressible with one comparison per rule.
"""

from __future__ import annotations

import errno as _errno
import os
from lamina._dcache import dataclass, field
from collections.abc import Mapping

from lamina.errors import InvalidArgument

__all__ = [
    "UserInfo", "MountSpec", "RunOptions", "resolve_user", "build_spec", "capabilities",
    "seccomp_profile", "ALL_CAPS", "DEFAULT_CAPS", "DEFAULT_PATH",
]

#: Every capability name Linux knows (index = capability number), as of Linux 6.x.
ALL_CAPS: tuple[str, ...] = tuple("CAP_" + n for n in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split())

#: Docker's default capabilities (moby oci/caps/defaults.go), in Docker's order.
DEFAULT_CAPS: tuple[str, ...] = tuple("CAP_" + n for n in (
    "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP "
    "NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE").split())

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Docker's default device cgroup rules (moby oci/defaults.go DefaultLinuxSpec).
_DEFAULT_DEVICE_RULES = (
    ("c", None, None, "m"), ("b", None, None, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"),
)

#: Blocked syscalls -> the capability that unblocks them (None: always blocked), after the
#: ``includes.caps`` groups of moby's profiles/seccomp/default.json.
SECCOMP_BLOCKED: dict[str, str | None] = {
    **dict.fromkeys(("add_key", "keyctl", "request_key", "nfsservctl", "sysfs", "_sysctl",
                     "uselib", "userfaultfd", "ustat", "vm86", "vm86old"), None),
    "acct": "CAP_SYS_PACCT",
    **dict.fromkeys(("bpf", "lookup_dcookie", "mount", "umount", "umount2", "unshare", "setns",
                     "pivot_root", "swapon", "swapoff", "quotactl", "name_to_handle_at",
                     "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
                     "mount_setattr", "perf_event_open", "fanotify_init", "setdomainname",
                     "sethostname"), "CAP_SYS_ADMIN"),
    **dict.fromkeys(("clock_adjtime", "clock_settime", "settimeofday", "stime"),
                    "CAP_SYS_TIME"),
    **dict.fromkeys(("create_module", "delete_module", "finit_module", "init_module",
                     "get_kernel_syms", "query_module"), "CAP_SYS_MODULE"),
    **dict.fromkeys(("get_mempolicy", "mbind", "set_mempolicy", "move_pages"),
                    "CAP_SYS_NICE"),
    **dict.fromkeys(("ioperm", "iopl"), "CAP_SYS_RAWIO"),
    **dict.fromkeys(("kcmp", "process_vm_readv", "process_vm_writev", "ptrace",
                     "pidfd_getfd", "process_madvise"), "CAP_SYS_PTRACE"),
    **dict.fromkeys(("kexec_file_load", "kexec_load", "reboot"), "CAP_SYS_BOOT"),
    "open_by_handle_at": "CAP_DAC_READ_SEARCH",
    "syslog": "CAP_SYSLOG",
    "vhangup": "CAP_SYS_TTY_CONFIG",
}
_CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000)  # NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET
_PERSONA_DANGEROUS = (0x0040000, 0x0400000, 0x0100000, 0x0200000, 0x8000000)


# ---------------------------------------------------------------------------------------------
# Users


@dataclass(frozen=True)
class UserInfo:
    """Who the container process runs as: ids, supplementary gids and $HOME."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _read_in_root(rootfs: str, path: str) -> str | None:
    """Text of ``path`` resolved inside ``rootfs`` (symlinks cannot leave it); None if absent."""
    from lamina.layer.extract import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

    try:
        dfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"cannot open rootfs {rootfs}: {e.strerror}") from e
    try:
        fd = openat2(dfd, path.lstrip("/"), os.O_RDONLY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError as e:
        if e.errno in (_errno.ENOENT, _errno.ENOTDIR, _errno.ELOOP, _errno.EISDIR):
            return None
        raise InvalidArgument(f"cannot read {path} in {rootfs}: {e.strerror}") from e
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        return f.read(1 << 22).decode("utf-8", "replace")


def _entries(text: str | None, nfields: int) -> list[list[str]]:
    out = []
    for line in (text or "").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= nfields:
            out.append(parts)
    return out


def _int(s: str) -> int | None:
    try:
        v = int(s, 10)
    except ValueError:
        return None
    return v if 0 <= v < 2**32 and s.isdigit() else None


def resolve_user(rootfs: str, user: str) -> UserInfo:
    """Resolve a Docker ``--user`` value against ``rootfs``'s passwd and group files.

    Same rules as runc's ``GetExecUser`` (which Docker uses): ``""`` is uid 0; ``name`` and
    ``uid`` look the user up in ``/etc/passwd`` (gid and home from the entry; a numeric uid
    with no entry is fine: gid 0, home ``/``); when a passwd entry matched and no group was
    given, the supplementary gids are the groups of ``/etc/group`` that list the user's name.
    ``user:group`` / ``uid:gid`` set the gid (a group name is looked up in ``/etc/group``) and
    no supplementary gids. Files are opened with ``openat2(RESOLVE_IN_ROOT)``, so symlinks
    resolve inside ``rootfs``; missing files count as empty.
    Raises InvalidArgument for an unknown name:
    ``unable to find user foo: no matching entries in passwd file``.
    """
    user = user.strip()
    name, _, group = user.partition(":")
    passwd = _entries(_read_in_root(rootfs, "/etc/passwd"), 7)
    uid_arg = _int(name) if name else 0
    entry = None
    for p in passwd:
        if (name and uid_arg is None and p[0] == name) or (uid_arg is not None
                                                           and _int(p[2]) == uid_arg):
            entry = p
            break
    if entry is None and uid_arg is None:
        raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    if entry is not None:
        uid, gid, home, uname = _int(entry[2]) or 0, _int(entry[3]) or 0, entry[5] or "/", entry[0]
    else:
        uid, gid, home, uname = uid_arg or 0, 0, "/", None
    groups_text = None
    sgids: list[int] = []
    if group:
        gid_arg = _int(group)
        if gid_arg is not None:
            gid = gid_arg
        else:
            groups_text = _read_in_root(rootfs, "/etc/group")
            for g in _entries(groups_text, 4):
                if g[0] == group and _int(g[2]) is not None:
                    gid = _int(g[2])
                    break
            else:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in "
                                      "group file")
    elif uname is not None:
        for g in _entries(_read_in_root(rootfs, "/etc/group"), 4):
            members = [m.strip() for m in g[3].split(",")]
            gv = _int(g[2])
            if uname in members and gv is not None and gv not in sgids:
                sgids.append(gv)
    return UserInfo(uid, gid, tuple(sgids), home)


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class MountSpec:
    """A mount the user asked for: ``type`` "bind", "tmpfs" or "volume" (a bind of the
    volume's directory, resolved by the caller); ``options`` as ``mount -o`` words
    (``"ro"``, ``"size=64m"`` ...)."""

    type: str
    source: str
    destination: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Everything :func:`build_spec` needs; defaults are Docker's."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: UserInfo = UserInfo(0, 0, (), "/root")
    hostname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    network: str = "host"  # "host" | "none"
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    no_new_privileges: bool = False
    mounts: tuple[MountSpec, ...] = ()
    shm_size: int = 64 << 20
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name like "nofile", soft, hard)
    init: bool = False
    seccomp: bool = True
    etc_files: Mapping[str, str] = field(default_factory=dict)  # container path -> host file
    annotations: Mapping[str, str] = field(default_factory=dict)


def _cap_name(name: str) -> str:
    n = name.strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in ALL_CAPS:
        raise InvalidArgument(f'unknown capability: "{name}"')
    return n


def capabilities(cap_add=(), cap_drop=(), *, privileged: bool = False) -> list[str]:
    """The capability set Docker computes (moby oci/caps TweakCapabilities).

    ``cap_drop`` ALL starts from nothing, ``cap_add`` ALL from everything, else from the 14
    defaults; then drops are removed and adds added (an add wins over a drop).
    Raises InvalidArgument for an unknown name.
    """
    if privileged:
        return list(ALL_CAPS)
    adds = [_cap_name(c) for c in cap_add]
    drops = [_cap_name(c) for c in cap_drop]
    if "ALL" in drops:
        base: list[str] = []
    elif "ALL" in adds:
        base = list(ALL_CAPS)
    else:
        base = list(DEFAULT_CAPS)
    base = [c for c in base if c not in drops]
    for c in (ALL_CAPS if "ALL" in adds else adds):
        if c != "ALL" and c not in base:
            base.append(c)
    return base


def seccomp_profile(caps: list[str] | tuple[str, ...]) -> dict:
    """The OCI ``linux.seccomp`` object: Docker's blocked set minus what ``caps`` unblocks."""
    have = set(caps)
    blocked = sorted(n for n, cap in SECCOMP_BLOCKED.items() if cap is None or cap not in have)
    if "CAP_BPF" in have and "bpf" in blocked:
        blocked.remove("bpf")
    if "CAP_PERFMON" in have and "perf_event_open" in blocked:
        blocked.remove("perf_event_open")
    rules: list[dict] = [{"names": blocked, "action": "SCMP_ACT_ERRNO", "errnoRet": _errno.EPERM}]
    if "CAP_SYS_ADMIN" not in have:
        for flag in _CLONE_NS_FLAGS:
            rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": _errno.EPERM,
                          "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                    "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": _errno.ENOSYS})
    for bit in _PERSONA_DANGEROUS:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": _errno.EPERM,
                      "args": [{"index": 0, "value": bit | 0x80000000, "valueTwo": bit,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": rules}


_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def _env_has(env, key: str) -> bool:
    return any(e.split("=", 1)[0] == key for e in env)


def build_spec(opts: RunOptions, *, root_path: str, cgroups_path: str | None = None) -> dict:
    """An OCI runtime-spec 1.0.2 ``config.json`` dict for ``opts`` (Docker's defaults).

    ``root_path`` becomes ``root.path`` (relative to the bundle, or absolute).
    ``cgroups_path`` (e.g. ``"/lamina/<id>"``) becomes ``linux.cgroupsPath`` when given;
    the launcher otherwise uses ``/<cgroup_parent>/<container_id>``. ``PATH`` (Docker's
    default) and ``HOME`` (the user's) are added to the environment when missing, and
    ``HOSTNAME`` first when a hostname is set, as Docker does. Pure: no I/O.
    Raises InvalidArgument for an empty command, an unknown capability, ulimit or network.
    """
    if not opts.args:
        raise InvalidArgument("no command specified")
    if opts.network not in ("host", "none"):
        raise InvalidArgument(f"network {opts.network!r} is not supported: use host or none")
    env = list(opts.env)
    if opts.hostname and not _env_has(env, "HOSTNAME"):
        env.insert(0, f"HOSTNAME={opts.hostname}")
    if not _env_has(env, "PATH"):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    if not _env_has(env, "HOME"):
        env.append(f"HOME={opts.user.home or '/'}")
    caps = capabilities(opts.cap_add, opts.cap_drop, privileged=opts.privileged)
    rlimits = []
    for name, soft, hard in opts.ulimits:
        n = name.lower().removeprefix("rlimit_")
        if n not in _RLIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        if soft > hard:
            raise InvalidArgument(f"ulimit {name}: soft limit {soft} is above hard limit {hard}")
        rlimits.append({"type": "RLIMIT_" + n.upper(), "soft": soft, "hard": hard})
    process: dict = {
        "terminal": opts.terminal,
        "user": {"uid": opts.user.uid, "gid": opts.user.gid,
                 **({"additionalGids": list(opts.user.additional_gids)}
                    if opts.user.additional_gids else {})},
        "args": list(opts.args),
        "env": env,
        "cwd": opts.cwd or "/",
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
        "noNewPrivileges": opts.no_new_privileges,
    }
    if rlimits:
        process["rlimits"] = rlimits
    ro_sys = [] if opts.privileged else ["ro"]
    mounts: list[dict] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *ro_sys]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro_sys]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={int(opts.shm_size)}"]},
    ]
    for m in opts.mounts:
        if not m.destination.startswith("/"):
            raise InvalidArgument(f"invalid mount destination {m.destination!r}: "
                                  "it must be an absolute path")
        if m.type in ("bind", "volume"):
            o = [x for x in m.options if x not in ("ro", "rw", "readonly", "bind", "rbind")]
            ro = any(x in ("ro", "readonly") for x in m.options)
            if not any(x in ("rprivate", "private", "rslave", "slave", "rshared", "shared")
                       for x in o):
                o.append("rprivate")
            mounts.append({"destination": m.destination, "type": "bind", "source": m.source,
                           "options": ["rbind", "ro" if ro else "rw", *o]})
        elif m.type == "tmpfs":
            mounts.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "noexec",
                                       *["ro" if x == "readonly" else x for x in m.options]]})
        else:
            raise InvalidArgument(f"unsupported mount type {m.type!r} for {m.destination}: "
                                  "use bind, volume or tmpfs")
    for dest, src in opts.etc_files.items():
        mounts.append({"destination": dest, "type": "bind", "source": src,
                       "options": ["rbind", "rprivate"]})
    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if opts.network == "none":
        namespaces.append({"type": "network"})
    namespaces.append({"type": "cgroup"})
    resources: dict = {}
    if opts.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        devs = [{"allow": False, "access": "rwm"}]
        for typ, major, minor, access in _DEFAULT_DEVICE_RULES:
            d: dict = {"allow": True, "type": typ}
            if major is not None:
                d["major"] = major
            if minor is not None:
                d["minor"] = minor
            d["access"] = access
            devs.append(d)
        resources["devices"] = devs
    if opts.memory is not None:
        if opts.memory < 6 << 20:
            raise InvalidArgument("minimum memory limit allowed is 6MB")
        resources["memory"] = {"limit": int(opts.memory)}
    if opts.cpus is not None:
        if opts.cpus <= 0:
            raise InvalidArgument(f"invalid --cpus {opts.cpus}: must be positive")
        resources["cpu"] = {"quota": int(round(opts.cpus * 100000)), "period": 100000}
    if opts.pids_limit is not None and opts.pids_limit > 0:
        resources["pids"] = {"limit": int(opts.pids_limit)}
    linux: dict = {"namespaces": namespaces, "resources": resources}
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if opts.seccomp:
            linux["seccomp"] = seccomp_profile(caps)
    spec: dict = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": root_path, "readonly": opts.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
    if opts.hostname:
        spec["hostname"] = opts.hostname
    ann = dict(opts.annotations)
    if opts.init:
        ann["lamina.init"] = "1"
    if ann:
        spec["annotations"] = ann
    return spec
