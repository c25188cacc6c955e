"""Capabilities: the kernel's last capability, the host's bounding set, and the mask a
spec's capability names make.
"""

from __future__ import annotations

from lamina.errors import InvalidArgument

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
