"""Network records and their bridges.

On-disk tree (owned by this module)::

    /run/lamina/net/                 0700, host-wide
      lock                           flock: subnets are picked, bridges made, one at a time
      lamina0/                       the default network "bridge" (shared by every store)
        network.json                 {"Id", "Subnet", "Gateway", "Created"} 0600
        lock  leases/                lamina.network.ipam
    <root>/networks/                 0700
      lock                           flock: user network names are unique per store
      builtin.json                   IDs of this store's "host" and "none" records
      <id>/network.json              a user network's record 0600
      <id>/lock <id>/leases/ <id>/dns/   its leases and DNS entries (lamina.network.dns)

``network.json`` is written once (atomic rename) and never changed; a record without one is
a half-made network that :meth:`Networks.list` ignores and ``network prune`` removes.
A user network's bridge is made when the network is created (as Docker does) and made
again on a container's start if the host lost it (a reboot).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager

from lamina.errors import Conflict, InvalidArgument, NotFound
from lamina.values import value

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins

HOST_DIR = "/run/lamina/net"
#: the version of the firewall rules a bridge gets (lamina.network.firewall.network_rules):
#: a bridge whose record names an older one gets its rules replaced on next use
RULES_VERSION = 2
DEFAULT_BRIDGE = "lamina0"
PREDEFINED = ("bridge", "host", "none")


@value
class Network:
    """One network record. ``driver`` is bridge, host or null; bridges have a subnet."""

    id: str
    name: str
    driver: str
    created: str = ""
    subnet: str = ""
    gateway: str = ""
    bridge: str = ""
    state_dir: str = ""
    user_subnet: bool = False
    internal: bool = False
    labels: tuple = ()
    options: tuple = ()
    rules: int = 0

    @property
    def is_default(self) -> bool:
        return self.name == "bridge"

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.partition("/")[2] or 0)


@contextmanager
def flocked(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _host_dir() -> str:
    from lamina import perms
    if not os.path.isdir(HOST_DIR):
        perms.makedirs(HOST_DIR)
    return HOST_DIR


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _now() -> str:
    from lamina.timefmt import rfc3339
    return rfc3339()


_NAME_OK = None


def check_name(name: str) -> str:
    import re
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name or ""):
        raise InvalidArgument(f'invalid network name "{name}": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
    return name


class Networks:
    """The networks one store can use: the predefined three and its user networks."""

    def __init__(self, store) -> None:
        self.store = store
        self.dir = os.path.join(store.root, "networks")

    def _mkdir(self) -> None:
        from lamina import perms
        if not os.path.isdir(self.dir):
            perms.mkdir(self.dir, exist_ok=True)

    # -- records ------------------------------------------------------------------
    def _builtin_ids(self) -> dict:
        path = os.path.join(self.dir, "builtin.json")
        ids = _read_json(path)
        if ids is None:
            from lamina import perms
            self._mkdir()
            with flocked(os.path.join(self.dir, "lock")):
                ids = _read_json(path)
                if ids is None:
                    ids = {"host": os.urandom(32).hex(), "none": os.urandom(32).hex(), "Created": _now()}
                    perms.write_file(path, json.dumps(ids))
        return ids

    def default(self) -> Network:
        """The default bridge (its subnet is picked when it is first brought up)."""
        d = os.path.join(HOST_DIR, DEFAULT_BRIDGE)
        rec = _read_json(os.path.join(d, "network.json")) or {}
        return Network(id=rec.get("Id", ""), name="bridge", driver="bridge", created=rec.get("Created", ""),
                       subnet=rec.get("Subnet", ""), gateway=rec.get("Gateway", ""),
                       bridge=DEFAULT_BRIDGE, state_dir=d, rules=rec.get("Rules", 0))

    def _user(self, nid: str) -> Network | None:
        rec = _read_json(os.path.join(self.dir, nid, "network.json"))
        if rec is None:
            return None
        return Network(id=rec["Id"], name=rec["Name"], driver="bridge", created=rec["Created"],
                       subnet=rec["Subnet"], gateway=rec["Gateway"], bridge=rec["Bridge"],
                       state_dir=os.path.join(self.dir, nid), user_subnet=rec.get("UserSubnet", False),
                       internal=rec.get("Internal", False),
                       labels=tuple(sorted((rec.get("Labels") or {}).items())),
                       options=tuple(sorted((rec.get("Options") or {}).items())), rules=rec.get("Rules", 0))

    def list(self) -> list[Network]:
        """Every network (predefined first, then user networks by name)."""
        ids = self._builtin_ids()
        out = [self.default(),
               Network(id=ids["host"], name="host", driver="host", created=ids["Created"]),
               Network(id=ids["none"], name="none", driver="null", created=ids["Created"])]
        users = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            names = []
        for n in names:
            if len(n) == 64:
                net = self._user(n)
                if net is not None:
                    users.append(net)
        return out + sorted(users, key=lambda n: n.name)

    def get(self, ref: str) -> Network:
        """By name, full ID or unique ID prefix; ``default`` is ``bridge``. NotFound in
        Docker's words."""
        if ref in ("default", "bridge"):
            return self.default()
        nets = self.list()
        for n in nets:
            if n.name == ref or n.id == ref:
                return n
        if ref and all(c in "0123456789abcdef" for c in ref):
            hits = [n for n in nets if n.id and n.id.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(hits)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    # -- create / remove ----------------------------------------------------------
    def create(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
               labels: dict | None = None, options: dict | None = None, internal: bool = False,
               driver: str = "bridge") -> Network:
        """A new user bridge network with its bridge up. AlreadyExists for a taken name."""
        from lamina import perms
        from lamina.network import ipam
        check_name(name)
        if driver != "bridge":
            raise InvalidArgument(f"plugin \"{driver}\" not found: lamina's networks use the bridge driver")
        if name in PREDEFINED or name == "default":
            raise Conflict(f"network with name {name} already exists")
        want = ipam.check_subnet(subnet) if subnet else None
        gw = None
        if gateway:
            if want is None:
                raise InvalidArgument("--gateway needs --subnet")
            import ipaddress
            try:
                gw = ipaddress.IPv4Address(gateway)
            except ValueError:
                raise InvalidArgument(f"invalid gateway address: {gateway}") from None
            if gw not in want:
                raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        self._mkdir()
        self._builtin_ids()  # made now: it takes the lock below itself
        with flocked(os.path.join(self.dir, "lock")):
            if any(n.name == name for n in self.list()):
                raise Conflict(f"network with name {name} already exists")
            nid = os.urandom(32).hex()
            d = os.path.join(self.dir, nid)
            perms.mkdir(d)
            try:
                rec = {"Id": nid, "Name": name, "Created": _now(), "Bridge": f"lm-{nid[:12]}", "Rules": RULES_VERSION,
                       "UserSubnet": want is not None, "Internal": internal,
                       "Labels": labels or {}, "Options": options or {}}
                _host_dir()
                with flocked(os.path.join(HOST_DIR, "lock")):
                    sub, gw_s = _bring_up(f"lm-{nid[:12]}", nid, want, gw, self._taken(), internal=internal)
                rec.update(Subnet=sub, Gateway=gw_s)
                perms.write_file(os.path.join(d, "network.json"), json.dumps(rec))
            except BaseException:
                _bring_down(f"lm-{nid[:12]}", nid)
                import shutil
                shutil.rmtree(d, ignore_errors=True)
                raise
        made = self._user(nid)
        assert made is not None  # written above
        from lamina.events import emit
        emit(self.store.root, "network", "create", nid, {"name": name, "type": "bridge"})
        return made

    def _taken(self) -> builtins.list:
        import ipaddress
        out = []
        for n in self.list():
            if n.subnet:
                out.append(ipaddress.IPv4Network(n.subnet))
        return out

    def remove(self, net: Network, *, in_use: builtins.list[str]) -> None:
        """Remove a user network: its bridge, rules, record. ``in_use`` names containers
        that run on it (then Conflict, as Docker)."""
        if not net.user_defined:
            raise Conflict(f"{net.name} is a pre-defined network and cannot be removed")
        if in_use:
            raise Conflict(f"error while removing network: network {net.name} id {net.id} has active endpoints")
        with flocked(os.path.join(self.dir, "lock")):
            _bring_down(net.bridge, net.id)
            from lamina.network import dns
            dns.stop(net)
            import shutil
            shutil.rmtree(net.state_dir, ignore_errors=True)
        from lamina.events import emit
        emit(self.store.root, "network", "destroy", net.id, {"name": net.name, "type": "bridge"})

    def ensure_up(self, net: Network) -> Network:
        """Bring ``net``'s bridge up if it is not (the default bridge: first use on this host,
        a user network: after a reboot); returns the record with its subnet."""
        from lamina.network.netlink import IFF_UP
        nl = host_netlink()
        link = nl.link(net.bridge)
        if link is not None and link.flags & IFF_UP and net.subnet and net.rules == RULES_VERSION:
            return net  # the common case: one netlink request
        if link is not None and net.subnet and net.rules != RULES_VERSION:
            net = self._update_rules(net)
            if link.flags & IFF_UP:
                return net
        _host_dir()
        with flocked(os.path.join(HOST_DIR, "lock")):
            if net.is_default:
                from lamina import perms
                d = os.path.join(HOST_DIR, DEFAULT_BRIDGE)
                if not os.path.isdir(d):
                    perms.mkdir(d)
                net = self.default()
                link = nl.link(net.bridge)
                if link is not None and net.subnet:
                    if not link.flags & IFF_UP:
                        nl.set_up(link.index, f"bringing up {net.bridge}")
                    return net
                import ipaddress
                want = ipaddress.IPv4Network(net.subnet) if net.subnet else None
                gw = ipaddress.IPv4Address(net.gateway) if net.gateway else None
                if link is not None:  # a bridge without our record: made by a crashed lamina
                    nl.delete_link(link.index)
                nid = net.id or os.urandom(32).hex()
                taken = [n for n in self._taken() if not net.subnet or str(n) != net.subnet]
                sub, gws = _bring_up(net.bridge, nid, want, gw, taken, internal=False)
                perms.write_file(os.path.join(d, "network.json"),
                                 json.dumps({"Id": nid, "Subnet": sub, "Gateway": gws,
                                             "Created": net.created or _now(), "Rules": RULES_VERSION}))
                return self.default()
            link = nl.link(net.bridge)
            if link is None:
                import ipaddress
                _bring_up(net.bridge, net.id, ipaddress.IPv4Network(net.subnet),
                          ipaddress.IPv4Address(net.gateway), [], internal=net.internal)
            elif not link.flags & IFF_UP:
                nl.set_up(link.index, f"bringing up {net.bridge}")
        return net


    def _update_rules(self, net: Network) -> Network:
        """Replace the firewall rules of ``net``'s bridge with this lamina's (an older lamina
        made them) and record the version."""
        from lamina import perms
        from lamina.network import firewall
        _host_dir()
        with flocked(os.path.join(HOST_DIR, "lock")):
            path = os.path.join(net.state_dir, "network.json")
            rec = _read_json(path) or {}
            if rec.get("Rules") == RULES_VERSION:
                return self.default() if net.is_default else self._user(net.id)  # type: ignore[return-value]
            if firewall.available():
                firewall.ensure_base()
                tag = f"lamina net:{net.id[:12]}"
                firewall.delete_owned(lambda c: c == tag)
                firewall.apply(firewall.network_rules(net.bridge, net.subnet, f"net:{net.id[:12]}",
                                                      internal=net.internal), f"updating the rules of {net.bridge}")
            rec["Rules"] = RULES_VERSION
            perms.write_file(path, json.dumps(rec))
        return self.default() if net.is_default else self._user(net.id)  # type: ignore[return-value]


_host_nl = None


def host_netlink():
    """This process's rtnetlink socket in the host's namespace (made on first use)."""
    global _host_nl
    if _host_nl is None:
        from lamina.network.netlink import Netlink
        _host_nl = Netlink()
    return _host_nl


def _bring_up(bridge: str, nid: str, want, gw, taken: list, *, internal: bool) -> tuple[str, str]:
    """Make ``bridge`` with its gateway address and rules; returns (subnet, gateway). The
    subnet is ``want`` (refused if the host routes it) or the first free default pool.
    The caller holds the host-wide lock."""
    from lamina.network import firewall, ipam
    from lamina.network.netns import sysctl
    nl = host_netlink()
    if want is None:
        net = ipam.pick_subnet(nl, taken)
    else:
        busy = ipam.host_networks(nl)
        clash = next((n for n in busy if want.overlaps(n)), None)
        if clash is not None:
            raise Conflict(f"Pool overlaps with other one on this address space ({want} and {clash})")
        net = want
    gateway = gw or next(net.hosts())
    nl.add_bridge(bridge, alias=f"lamina net:{nid[:12]}")
    try:
        link = nl.link(bridge)
        nl.add_addr(link.index, str(gateway), net.prefixlen, f"adding {gateway} to {bridge}")
        sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")
        if firewall.available():
            sysctl("net/ipv4/ip_forward", "1")
            firewall.ensure_base()
            tag = f"lamina net:{nid[:12]}"
            firewall.delete_owned(lambda c: c == tag)  # a crashed bring-up's, or the lost bridge's
            rules = firewall.network_rules(bridge, str(net), f"net:{nid[:12]}", internal=internal)
            firewall.apply(rules, f"adding the rules of {bridge}")
    except BaseException:
        nl.delete_link(bridge)
        raise
    return str(net), str(gateway)


def _bring_down(bridge: str, nid: str) -> None:
    """Delete ``bridge`` and every rule tagged with the network (idempotent)."""
    from lamina.network import firewall
    host_netlink().delete_link(bridge)
    if firewall.available():
        tag = f"lamina net:{nid[:12]}"
        firewall.delete_owned(lambda c: c == tag)


def remove_default_bridge() -> bool:
    """Delete ``lamina0``, its rules and state when no container of any store uses it (no
    live lease); for a clean host (tests, uninstall). Returns whether it was removed."""
    from lamina.network import firewall
    from lamina.network.ipam import Leases
    d = os.path.join(HOST_DIR, DEFAULT_BRIDGE)
    if not os.path.isdir(HOST_DIR):
        return True
    with flocked(os.path.join(HOST_DIR, "lock")):
        if any(l.alive for l in Leases(os.path.join(d, "leases")).all()):
            return False
        rec = _read_json(os.path.join(d, "network.json")) or {}
        host_netlink().delete_link(DEFAULT_BRIDGE)
        if firewall.available() and rec.get("Id"):
            tag = f"lamina net:{rec['Id'][:12]}"
            firewall.delete_owned(lambda c: c == tag)
        import shutil
        shutil.rmtree(d, ignore_errors=True)
        firewall.remove_base_if_unused()
    return True
