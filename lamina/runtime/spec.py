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
* seccomp: Docker's default profile, an *allow-list* (lamina.runtime.seccomp), resolved for
  the container's bounding set; or the user's profile (``seccomp_profile``, Docker's JSON
  format); none with ``seccomp=False`` (``--security-opt seccomp=unconfined``) or
  ``privileged``.
* ``--init``: Debian's ``tini-static`` bound read-only on ``/sbin/docker-init`` and run as
  ``/sbin/docker-init -- <command>``, as Docker's docker-init.
* memory: ``memory`` without ``memory_swap`` limits memory+swap to twice ``memory``
  (Docker); ``memory_swap=-1`` leaves swap unlimited.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Mapping

from lamina.errors import InvalidArgument
from lamina.values import field, value

__all__ = [
    "UserInfo", "MountSpec", "RunOptions", "resolve_user", "build_spec", "capabilities",
    "seccomp_profile", "find_init", "ALL_CAPS", "DEFAULT_CAPS", "DEFAULT_PATH", "INIT_DEST",
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

# ---------------------------------------------------------------------------------------------
# Users


@value
class UserInfo:
    """Who the container process runs as: ids, supplementary gids and $HOME."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _read_in_root(rootfs: str, path: str) -> str | None:
    """Text of ``path`` resolved inside ``rootfs`` (symlinks cannot leave it); None if absent."""
    from lamina.safepath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

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
    """:func:`resolve_user_with` reading ``rootfs``'s files with ``openat2(RESOLVE_IN_ROOT)``,
    so symlinks resolve inside ``rootfs``."""
    return resolve_user_with(lambda path: _read_in_root(rootfs, path), user)


def resolve_user_with(read, user: str) -> UserInfo:
    """Resolve a Docker ``--user`` value against ``rootfs``'s passwd and group files.

    Same rules as runc's ``GetExecUser`` (which Docker uses): ``""`` is uid 0; ``name`` and
    ``uid`` look the user up in ``/etc/passwd`` (gid and home from the entry; a numeric uid
    with no entry is fine: gid 0, home ``/``); when a passwd entry matched and no group was
    given, the supplementary gids are the groups of ``/etc/group`` that list the user's name.
    ``user:group`` / ``uid:gid`` set the gid (a group name is looked up in ``/etc/group``) and
    no supplementary gids. ``read(path)`` returns a file's text in the container's root (None
    when missing: it counts as empty).
    Raises InvalidArgument for an unknown name:
    ``unable to find user foo: no matching entries in passwd file``.
    """
    user = user.strip()
    name, _, group = user.partition(":")
    passwd = _entries(read("/etc/passwd"), 7)
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
            groups_text = read("/etc/group")
            for g in _entries(groups_text, 4):
                if g[0] == group and _int(g[2]) is not None:
                    gid = _int(g[2])
                    break
            else:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in "
                                      "group file")
    elif uname is not None:
        for g in _entries(read("/etc/group"), 4):
            members = [m.strip() for m in g[3].split(",")]
            gv = _int(g[2])
            if uname in members and gv is not None and gv not in sgids:
                sgids.append(gv)
    return UserInfo(uid, gid, tuple(sgids), home)


# ---------------------------------------------------------------------------------------------
# Options


@value
class MountSpec:
    """A mount the user asked for: ``type`` "bind", "tmpfs" or "volume" (a bind of the
    volume's directory, resolved by the caller); ``options`` as ``mount -o`` words
    (``"ro"``, ``"size=64m"`` ...)."""

    type: str
    source: str
    destination: str
    options: tuple[str, ...] = ()


@value(kw_only=True)
class RunOptions:
    """Everything :func:`build_spec` needs; defaults are Docker's."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: UserInfo = UserInfo(0, 0, (), "/root")
    hostname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    network: str = "none"  # "none" (only lo) | "host" | "path" (join ``netns_path``)
    netns_path: str = ""   # with network="path": the namespace to join (lamina.network's)
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
    init_path: str | None = None  # host path of tini-static (found on PATH when None)
    seccomp: bool = True
    seccomp_profile: Mapping | None = None  # Docker-format profile; None: Docker's default
    system_paths: bool = True  # False: systempaths=unconfined (no masked/read-only paths)
    memory_swap: int | None = None  # memory+swap; None: twice memory; -1: unlimited
    etc_files: Mapping[str, str] = field(default_factory=dict)  # container path -> host file
    annotations: Mapping[str, str] = field(default_factory=dict)
    pid_ns: str = ""       # "": a new one; "host": the host's; else the path of one to join
    ipc_ns: str = ""       # "": a new one; "host"; "none" (a new one, no /dev/shm); else a path
    uts_ns: str = ""       # "": a new one (with ``hostname``); "host": the host's
    sysctls: Mapping[str, str] = field(default_factory=dict)
    devices: tuple[Mapping, ...] = ()  # OCI linux.devices entries plus "access" (rwm)
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_reservation: int = 0
    oom_kill_disable: bool = False


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


def seccomp_profile(caps: list[str] | tuple[str, ...], profile: Mapping | None = None) -> dict | None:
    """The OCI ``linux.seccomp`` object for a container whose bounding set is ``caps``:
    Docker's default profile, or ``profile`` (Docker's JSON format, already decoded)."""
    from lamina.runtime import seccomp

    if profile is None:
        return seccomp.resolve(seccomp.default_profile(), bounding=caps, checked=True)
    return seccomp.resolve(dict(profile), bounding=caps)


_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


#: Where ``--init`` binds the init binary, and the name it runs under (Docker's).
INIT_DEST = "/sbin/docker-init"
#: Host binaries that may serve as ``--init`` (Debian's tini package), first found wins.
INIT_CANDIDATES = ("tini-static",)


def find_init() -> str:
    """The host path of the init binary ``--init`` binds into containers: Debian's
    statically linked ``tini-static`` (what Docker's docker-init is), on PATH or in /usr/bin.
    Raises Unavailable when it is not installed."""
    import shutil

    from lamina.errors import Unavailable

    for name in INIT_CANDIDATES:
        path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if path:
            return os.path.realpath(path)
    raise Unavailable("--init needs tini-static (Debian package tini), which is not installed")


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
    if opts.network not in ("host", "none", "path") or (opts.network == "path") != bool(opts.netns_path):
        raise InvalidArgument(f"network {opts.network!r} is not supported: use host, none or a netns path")
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
    ]
    if opts.ipc_ns == "host":  # Docker binds the host's /dev/shm
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                       "options": ["rbind", "rprivate"]})
    elif opts.ipc_ns != "none":
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={int(opts.shm_size)}"]})
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
    namespaces: list[dict] = []
    for typ, how in (("pid", opts.pid_ns), ("ipc", "" if opts.ipc_ns == "none" else opts.ipc_ns),
                     ("uts", opts.uts_ns)):
        if how == "host":
            continue
        namespaces.append({"type": typ, "path": how} if how else {"type": typ})
    namespaces.append({"type": "mount"})
    if opts.network == "none":
        namespaces.append({"type": "network"})
    elif opts.network == "path":
        namespaces.append({"type": "network", "path": opts.netns_path})
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
        resources["devices"] = devs + [{"allow": True, "type": d["type"], "major": d["major"],
                                        "minor": d["minor"], "access": d.get("access") or "rwm"}
                                       for d in opts.devices]
    if opts.memory is not None:
        if opts.memory < 6 << 20:
            raise InvalidArgument("minimum memory limit allowed is 6MB")
        resources["memory"] = {"limit": int(opts.memory)}
        swap = 2 * int(opts.memory) if opts.memory_swap is None else int(opts.memory_swap)
        if swap != -1 and swap < opts.memory:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory "
                                  "limit, see usage")
        resources["memory"]["swap"] = swap
    elif opts.memory_swap not in (None, 0):
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if opts.memory_reservation:
        resources.setdefault("memory", {})["reservation"] = int(opts.memory_reservation)
    if opts.oom_kill_disable:
        resources.setdefault("memory", {})["disableOOMKiller"] = True
    if opts.cpus is not None:
        if opts.cpus <= 0:
            raise InvalidArgument(f"invalid --cpus {opts.cpus}: must be positive")
        resources["cpu"] = {"quota": int(round(opts.cpus * 100000)), "period": 100000}
    if opts.cpu_shares:
        resources.setdefault("cpu", {})["shares"] = int(opts.cpu_shares)
    if opts.cpuset_cpus:
        resources.setdefault("cpu", {})["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        resources.setdefault("cpu", {})["mems"] = opts.cpuset_mems
    if opts.pids_limit is not None and opts.pids_limit > 0:
        resources["pids"] = {"limit": int(opts.pids_limit)}
    linux: dict = {"namespaces": namespaces, "resources": resources}
    if opts.sysctls:
        linux["sysctl"] = dict(opts.sysctls)
    if opts.devices:
        linux["devices"] = [{k: v for k, v in d.items() if k != "access"} for d in opts.devices]
    if any(o in ("slave", "rslave") for m in mounts if m["type"] == "bind" for o in m["options"]):
        linux["rootfsPropagation"] = "rslave"  # else a slave bind would have no master to follow
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    if not opts.privileged:
        if opts.system_paths:
            linux["maskedPaths"] = list(MASKED_PATHS)
            linux["readonlyPaths"] = list(READONLY_PATHS)
        if opts.seccomp:
            profile = seccomp_profile(caps, opts.seccomp_profile)
            if profile is not None:
                linux["seccomp"] = profile
    spec: dict = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": root_path, "readonly": opts.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
    if opts.hostname and opts.uts_ns != "host":
        spec["hostname"] = opts.hostname
    if opts.init:
        process["args"] = [INIT_DEST, "--", *process["args"]]
        mounts.append({"destination": INIT_DEST, "type": "bind",
                       "source": opts.init_path or find_init(),
                       "options": ["rbind", "ro", "rprivate"]})
    ann = dict(opts.annotations)
    if ann:
        spec["annotations"] = ann
    return spec
