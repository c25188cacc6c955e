"""``--security-opt``: Docker's grammar, checked at create, applied at each start.

Accepted, as Docker 20.10 (client + daemon) on a host without AppArmor or SELinux:

=================================  ===========================================================
``no-new-privileges[=|:BOOL]``     no_new_privs for every process of the container
``seccomp=unconfined``             no seccomp filter
``seccomp=PATH``                   the profile in PATH (Docker's JSON format); read at create
                                   and kept inline as ``seccomp=<compact JSON>`` (what
                                   ``docker inspect`` shows)
``systempaths=unconfined``         no masked and no read-only /proc, /sys paths
``apparmor=PROFILE``               accepted and ignored where AppArmor is off (as dockerd);
                                   refused where it is on (lamina cannot load profiles)
``label=...``, ``disable``         SELinux labels: likewise, accepted where SELinux is off
=================================  ===========================================================

``key:value`` is the deprecated spelling of ``key=value``. Anything else is refused with
Docker's message and exit 125: ``invalid --security-opt 1: "bogus"`` (no separator),
``invalid --security-opt 2: "mask=/x"`` (unknown key or value),
``opening seccomp profile (/x.json) failed: open /x.json: no such file or directory``.
"""

from __future__ import annotations

import os

from lamina.errors import InvalidArgument, Unsupported

__all__ = ["normalize", "Security", "parse"]

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _split(opt: str) -> tuple[str, str] | None:
    if "=" in opt:
        k, _, v = opt.partition("=")
        return k, v
    if ":" in opt:
        k, _, v = opt.partition(":")
        return k, v
    return None


def normalize(opts, *, cwd: str | None = None) -> tuple[str, ...]:
    """Check ``--security-opt`` values and return them as stored in HostConfig.SecurityOpt:
    a seccomp profile file is read (relative to ``cwd``), checked and inlined as
    ``seccomp=<compact JSON>``. Raises InvalidArgument with Docker's message, Unsupported
    for AppArmor/SELinux options on a host that enforces them."""
    out = []
    for opt in opts:
        if opt in ("no-new-privileges", "disable"):
            if opt == "disable":
                _no_lsm("selinux", opt)
            out.append(opt)
            continue
        kv = _split(opt)
        if kv is None:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        key, value = kv
        if key == "seccomp":
            if value == "unconfined":
                out.append(opt)
                continue
            path = os.path.join(cwd or os.getcwd(), value) if value else value
            try:
                with open(path, "rb") as f:
                    data = f.read(16 << 20)
            except OSError as e:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: open {value}: "
                                      f"{(e.strerror or str(e)).lower()}") from None
            import json

            from lamina.runtime import seccomp
            profile = seccomp.parse_profile(data, source=value)
            out.append("seccomp=" + json.dumps(profile, separators=(",", ":")))
        elif key == "no-new-privileges":
            if value not in _TRUE + _FALSE:
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
            out.append(opt)
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
            out.append(opt)
        elif key == "apparmor":
            if value != "unconfined":
                _no_lsm("apparmor", opt)
            out.append(opt)
        elif key == "label":
            _no_lsm("selinux", opt)
            out.append(opt)
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    return tuple(out)


def _no_lsm(lsm: str, opt: str) -> None:
    """AppArmor/SELinux options are accepted (and ignored) only where the host does not
    enforce that LSM, as dockerd does; lamina cannot apply them where it does."""
    if lsm == "apparmor":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                on = f.read().strip() == "Y"
        except OSError:
            on = False
    else:
        on = os.path.exists("/sys/fs/selinux/enforce")
    if on:
        raise Unsupported(f"--security-opt {opt}: this host enforces {lsm}, which lamina "
                          "cannot apply profiles of")


class Security:
    """What a container's stored SecurityOpt asks for (see :func:`parse`)."""

    __slots__ = ("seccomp", "seccomp_profile", "no_new_privileges", "system_paths")

    def __init__(self) -> None:
        self.seccomp = True              # False: seccomp=unconfined
        self.seccomp_profile = None      # Docker-format dict, None: Docker's default
        self.no_new_privileges = False
        self.system_paths = True         # False: systempaths=unconfined


def parse(stored) -> Security:
    """The settings of a container's HostConfig.SecurityOpt (as :func:`normalize` stored
    them; older records may hold the ``seccomp:unconfined`` spelling)."""
    import json

    s = Security()
    for opt in stored or ():
        if opt == "no-new-privileges":
            s.no_new_privileges = True
            continue
        kv = _split(opt)
        if kv is None:
            continue
        key, value = kv
        if key == "seccomp":
            if value == "unconfined":
                s.seccomp = False
            else:
                s.seccomp_profile = json.loads(value)
        elif key == "no-new-privileges":
            s.no_new_privileges = value in _TRUE
        elif key == "systempaths" and value == "unconfined":
            s.system_paths = False
    return s
