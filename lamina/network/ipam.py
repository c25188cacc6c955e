"""Address management: subnets for new networks, addresses for containers.

Subnets come from Docker's default address pools, in Docker's order: 172.17.0.0/16 ...
172.31.0.0/16, then 192.168.0.0/16 cut into /20s. A pool is taken only if it overlaps none
of the host's IPv4 routes (other engines' bridges such as docker0 have one; so does every
lamina network of any store whose bridge is up), no address on a host interface, no
nameserver of the host's resolv.conf, and no subnet in ``taken`` (networks recorded but
whose bridge is down). The caller holds the host-wide network lock while it picks and
brings the bridge up, so two lamina processes never pick the same pool.

Addresses: one lease file per address in ``<state>/leases/<a.b.c.d>``, created with
``link(2)`` from a complete temporary file (so a lease is never half-written and two
claimants cannot both win). A lease names its owner, the process that holds the
container's network namespace (pid, start time, boot ID): when that process is gone, the
lease is stale and :func:`reclaim` (run under the state's lock) hands it to the caller's
sweep, which removes what the dead container left (rules, DNS entry) and then the lease.
"""

from __future__ import annotations

import json
import os
import socket
import struct

from lamina.errors import InvalidArgument, Unavailable
from lamina.procs import pid_start as _start_time

__all__ = ["default_pools", "pick_subnet", "Lease", "Leases", "owner_token", "owner_alive"]


def default_pools():
    """Docker's default address pools, in its order (ipaddress is imported only here:
    picking a subnet is rare, handing out an address is on every start)."""
    import ipaddress
    return [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in range(17, 32)] + \
           [ipaddress.IPv4Network(f"192.168.{i}.0/20") for i in range(0, 256, 16)]


def _nameservers() -> list:
    import ipaddress
    out = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    try:
                        out.append(ipaddress.IPv4Address(w[1]))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def host_networks(nl) -> list:
    """Every IPv4 subnet the host routes or has an address in (default routes aside)."""
    import ipaddress
    nets = []
    for r in nl.routes():
        if r.dst_len == 0 or r.table not in (254, 253, 252):  # main, default; local is per address
            continue
        nets.append(ipaddress.IPv4Network(f"{r.dst}/{r.dst_len}", strict=False))
    for a in nl.addrs():
        if not a.address.startswith("127."):
            nets.append(ipaddress.IPv4Network(f"{a.address}/{a.prefixlen}", strict=False))
    return nets


def pick_subnet(nl, taken: list):
    """The first default pool clear of the host's routes and addresses, its nameservers and
    ``taken``. Raises Unavailable when every pool is in use (Docker's words)."""
    busy = host_networks(nl) + list(taken)
    dns = _nameservers()
    for pool in default_pools():
        if any(pool.overlaps(n) for n in busy) or any(ns in pool for ns in dns):
            continue
        return pool
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults "
                      "to assign to the network")


def check_subnet(text: str, what: str = "--subnet"):
    import ipaddress
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None
    # Docker accepts host bits set (it masks them); so do we
    if net.prefixlen > 30:
        raise InvalidArgument(f"{what} {text}: a network needs room for a gateway and a container (/30 at most)")
    return net


# -- leases ---------------------------------------------------------------------------
_boot_id = None


def _boot() -> str:
    global _boot_id
    if _boot_id is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot_id = f.read().strip()
        except OSError:
            _boot_id = ""
    return _boot_id


def remove_owned(path: str, owner: str | None) -> None:
    """Remove the JSON record at ``path`` (a lease, a DNS entry) unless ``owner`` is given and
    the record names another ``Owner``; an unreadable record is removed, a missing one ignored."""
    if owner is not None:
        try:
            with open(path) as f:
                if json.load(f).get("Owner") != owner:
                    return
        except (OSError, ValueError):
            pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def owner_token(pid: int | None = None) -> str:
    """``pid:start:boot`` of the process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}:{_boot()}"


def owner_alive(token: str) -> bool:
    """Whether the process a token names still runs (same pid, start time and boot); a
    ``link:<name>`` token (a lease whose container ended but whose veth the kernel has not
    destroyed yet) lives while that interface exists."""
    if token.startswith("link:"):
        return os.path.exists(f"/sys/class/net/{token[5:]}")
    try:
        pid, start, boot = token.split(":")
        return boot == _boot() and _start_time(int(pid)) == start
    except (ValueError, OSError):
        return False


class Lease:
    """One address held by one container's endpoint (a parsed lease file)."""

    __slots__ = ("address", "container", "owner", "store", "data")

    def __init__(self, address: str, data: dict) -> None:
        self.address = address
        self.data = data
        self.container = data.get("Container", "")
        self.owner = data.get("Owner", "")
        self.store = data.get("Store", "")

    @property
    def alive(self) -> bool:
        return owner_alive(self.owner)


class Leases:
    """The lease files of one network: ``<dir>/<address>``. Methods that change leases
    expect the caller to hold the network's state lock."""

    def __init__(self, directory: str) -> None:
        self.dir = directory

    def all(self) -> list[Lease]:
        out: list[Lease] = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for n in names:
            if n.startswith("."):
                continue
            try:
                with open(os.path.join(self.dir, n)) as f:
                    out.append(Lease(n, json.load(f)))
            except (OSError, ValueError):
                out.append(Lease(n, {}))  # unreadable: stale (owner "" is never alive)
        return out

    def _claim(self, address: str, data: dict) -> bool:
        tmp = os.path.join(self.dir, f".tmp-{os.getpid()}-{address}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, json.dumps(data).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, os.path.join(self.dir, address))
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def allocate(self, subnet: str, gateway: str, data: dict, *, want: str | None = None,
                 network: str) -> str:
        """Claim ``want`` (an address in ``subnet``, "a.b.c.d/n"), else the lowest free host
        address (never the gateway). Raises in Docker's words."""
        from lamina.errors import Conflict
        os.makedirs(self.dir, 0o700, exist_ok=True)
        base, plen = subnet.split("/")
        first = struct.unpack("!I", socket.inet_aton(base))[0] & ~((1 << (32 - int(plen))) - 1) & 0xFFFFFFFF
        last = first | ((1 << (32 - int(plen))) - 1)
        if want is not None:
            w = struct.unpack("!I", socket.inet_aton(want))[0]
            if not first < w < last:
                raise InvalidArgument(f"no configured subnet contains IP address {want} on network {network}")
            if want == gateway or not self._claim(want, data):
                raise Conflict(f"Address already in use: {want} on network {network}")
            return want
        used = set(os.listdir(self.dir)) | {gateway}
        for n in range(first + 1, last):
            a = socket.inet_ntoa(struct.pack("!I", n))
            if a in used:
                continue
            if self._claim(a, data):
                return a
        raise Unavailable(f"no available IPv4 addresses on network {network} ({subnet})")

    def hand_over(self, address: str, owner: str, token: str) -> None:
        """Give the lease of ``address`` (held by ``owner``) to ``token`` (atomic rename)."""
        path = os.path.join(self.dir, address)
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return
        if data.get("Owner") != owner:
            return
        data["Owner"] = token
        tmp = os.path.join(self.dir, f".tmp-{os.getpid()}-{address}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.rename(tmp, path)

    def release(self, address: str, owner: str | None = None) -> None:
        """Remove the lease of ``address`` (only if ``owner`` still holds it, when given)."""
        remove_owned(os.path.join(self.dir, address), owner)
