"""A container's network for one start, its teardown, and the sweep after a crash.

:func:`attach` (called by the container's monitor before it starts the container) returns a
:class:`Sandbox`, or None for ``host``/``none``/``container:`` modes where lamina makes
nothing. For each network the container is connected to (the default bridge or user
networks) it: brings the bridge up if needed, claims an address (the sweep runs first),
makes a veth pair whose container end (``eth0``, ``eth1`` ...; MAC ``02:42`` + the address,
as Docker) is born in a new network namespace, adds the address and (first network) the
default route. Then it publishes ports (host sockets reserved; DNAT rules, or the proxy),
registers DNS entries on user networks, writes the container's hosts and resolv.conf, and
records NetworkSettings in the container's document. Any failure undoes what was done.

Ownership: everything made carries the monitor's owner token (pid, start time, boot ID):
the lease file, the veth's interface alias, the rules' comment, the DNS entry.
:meth:`Sandbox.teardown` removes them in reverse order, the lease last. :func:`sweep`
removes whatever a dead owner left (the kernel has already taken its namespace, veths and
sockets), lease last again, so a lease still on disk means "maybe more to clean". A lease
whose container ended normally is handed to its host veth (``link:<name>``) and freed by the
sweep once the kernel has destroyed the namespace: an address is never given to a new
container while the old one's interface may still answer for it.
"""

from __future__ import annotations

import os
import signal

from lamina.errors import InvalidArgument, LaminaError, NotFound, Unavailable
from lamina.network import ipam
from lamina.network.networks import Network, Networks, flocked, host_netlink

_SWEPT: set[str] = set()


def _mac(ip: str) -> bytes:
    return bytes([0x02, 0x42, *(int(x) for x in ip.split("."))])


def mac_text(ip: str) -> str:
    return ":".join(f"{b:02x}" for b in _mac(ip))


def _leases(net: Network) -> ipam.Leases:
    return ipam.Leases(os.path.join(net.state_dir, "leases"))


class Endpoint:
    __slots__ = ("net", "ip", "veth", "ifname", "aliases", "endpoint_id", "owner")

    def __init__(self, net: Network, ip: str, veth: str, ifname: str, aliases: list[str], owner: str):
        self.net, self.ip, self.veth, self.ifname, self.aliases = net, ip, veth, ifname, aliases
        self.endpoint_id = os.urandom(32).hex()
        self.owner = owner


class Sandbox:
    """What one start of a container holds: release it with :meth:`teardown`."""

    def __init__(self, cid: str, owner: str) -> None:
        self.cid = cid
        self.owner = owner
        self.netns_fd: int | None = None
        self.endpoints: list[Endpoint] = []
        self.bound: list = []          # (PortMapping, socket)
        self.rules: dict = {}
        self.proxy_pid = 0

    @property
    def netns_path(self) -> str:
        return f"/proc/{os.getpid()}/fd/{self.netns_fd}"

    @property
    def tag(self) -> str:
        return f"c:{self.cid[:12]}:{self.owner}"

    def ports(self) -> list:
        return [m for m, _ in self.bound]

    def teardown(self) -> None:
        """Remove everything this start made (idempotent; never raises for what is gone)."""
        for ep in self.endpoints:
            if ep.net.user_defined:
                from lamina.network import dns
                dns.unregister(ep.net.state_dir, self.cid, self.owner)
        if self.rules:
            from lamina.network import firewall
            try:
                firewall.delete(self.rules)
            except LaminaError:
                pass
            self.rules = {}
        if self.proxy_pid:
            try:
                os.kill(self.proxy_pid, signal.SIGKILL)
                os.waitpid(self.proxy_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.proxy_pid = 0
        for _, s in self.bound:
            s.close()
        self.bound = []
        # Closing the namespace's last reference lets the kernel destroy it, and with it both
        # ends of every veth pair, in its own time (deleting a veth here costs 15-45 ms of
        # RCU grace periods). Until the host's end is gone, its address stays leased to it.
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None
        for ep in self.endpoints:
            with flocked(os.path.join(ep.net.state_dir, "lock")):
                leases = _leases(ep.net)
                if os.path.exists(f"/sys/class/net/{ep.veth}"):
                    leases.hand_over(ep.ip, self.owner, f"link:{ep.veth}")
                else:
                    leases.release(ep.ip, self.owner)
        self.endpoints = []


def _connected(doc: dict) -> list[tuple[str, dict]]:
    """The (network name, endpoint settings) a container is connected to, in order."""
    mode = doc["HostConfig"]["NetworkMode"]
    nets = doc.get("NetworkSettings", {}).get("Networks") or {}
    if mode in ("host", "none") or mode.startswith("container:"):
        return []
    return [(n, nets.get(n) or {}) for n in nets]


def attach(store, doc: dict) -> Sandbox | None:
    """Make the container's network for this start (see the module docstring)."""
    connected = _connected(doc)
    if not connected:
        return None
    from lamina.network.netns import new_netns
    cid = doc["Id"]
    owner = ipam.owner_token()
    networks = Networks(store)
    sb = Sandbox(cid, owner)
    nl = host_netlink()
    nl_in = None
    try:
        resolved = []
        for name, settings in connected:
            try:  # the default bridge by name (the host may have made it anew), others by ID
                net = networks.get(name if name == "bridge" or not settings.get("NetworkID")
                                   else settings["NetworkID"])
            except NotFound:
                raise NotFound(f"network {name} not found") from None
            net = networks.ensure_up(net)
            resolved.append((net, settings))
        sweep(store, [n for n, _ in resolved])
        fd, nl_in = new_netns()
        sb.netns_fd = fd
        for i, (net, settings) in enumerate(resolved):
            want = ((settings.get("IPAMConfig") or {}).get("IPv4Address")) or None
            lease = {"Container": cid, "Owner": owner, "Store": store.root, "Network": net.id}
            with flocked(os.path.join(net.state_dir, "lock")):
                ip = _leases(net).allocate(net.subnet, net.gateway, lease, want=want, network=net.name)
            veth = "veth" + os.urandom(4).hex()[:7]
            ep = Endpoint(net, ip, veth, f"eth{i}", list(settings.get("Aliases") or []), owner)
            sb.endpoints.append(ep)
            link = nl.link(net.bridge)
            if link is None:
                raise Unavailable(f"bridge {net.bridge} of network {net.name} is gone")
            nl.add_veth(veth, master=link.index, alias=f"lamina {sb.tag}", peer=ep.ifname,
                        peer_netns_fd=fd, peer_mac=_mac(ip))
            peer = nl_in.link(ep.ifname)
            assert peer is not None  # made just above
            nl_in.set_up(peer.index, f"bringing up {ep.ifname}")
            nl_in.add_addr(peer.index, ip, net.prefixlen, f"adding {ip} to {ep.ifname}")
            if i == 0:
                nl_in.add_default_route(net.gateway, peer.index, f"adding the default route via {net.gateway}")
        _publish(sb, doc)
        _write_files(store, doc, sb)
        _register_dns(doc, sb)
    except BaseException:
        sb.teardown()
        raise
    finally:
        if nl_in is not None:
            nl_in.close()
    return sb


def attach_build_step(store, *, cid: str, network: str, hostname: str, hosts_path: str,
                      resolv_path: str) -> Sandbox:
    """The network of a build's RUN step on ``network`` (``bridge`` or a user network):
    as a container's, without ports or DNS names."""
    name = "bridge" if network in ("bridge", "default") else network
    doc = {"Id": cid, "Name": "/" + cid[:12], "HostsPath": hosts_path, "ResolvConfPath": resolv_path,
           "HostConfig": {"NetworkMode": name, "PortBindings": {}, "PublishAllPorts": False},
           "Config": {"Hostname": hostname}, "NetworkSettings": {"Networks": {name: {}}}}
    sb = attach(store, doc)
    assert sb is not None  # a bridge network always makes one
    for ep in sb.endpoints:  # a build step answers to no name
        from lamina.network import dns
        dns.unregister(ep.net.state_dir, cid, sb.owner)
    return sb


def _publish(sb: Sandbox, doc: dict) -> None:
    hc = doc["HostConfig"]
    if not hc.get("PortBindings") and not (hc.get("PublishAllPorts") and doc["Config"].get("ExposedPorts")):
        return
    from lamina.network import firewall
    from lamina.network import ports as P
    wanted = []
    for key, binds in (hc.get("PortBindings") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or [{}]:
            hp = b.get("HostPort") or ""
            lo, _, hi = hp.partition("-")
            rng = (int(lo), int(hi)) if hi else None
            wanted.append(P.PortMapping(int(port), proto or "tcp", b.get("HostIp") or "",
                                        0 if (rng or not lo) else int(lo), rng))
    if hc.get("PublishAllPorts"):
        have = {P.port_key(m.container_port, m.proto) for m in wanted}
        for key in sorted(doc["Config"].get("ExposedPorts") or {}):
            if key not in have:
                port, _, proto = key.partition("/")
                wanted.append(P.PortMapping(int(port), proto or "tcp"))
    if not wanted:
        return
    if not sb.endpoints:
        raise InvalidArgument("published ports need a bridge network")
    sb.bound = P.reserve(wanted)
    ip = sb.endpoints[0].ip
    if firewall.available() and os.environ.get("LAMINA_USERLAND_PROXY", "") not in ("1", "true"):
        rules = firewall.port_rules(sb.ports(), ip, sb.tag)
        firewall.apply(rules, "publishing ports")
        sb.rules = rules
    else:
        sb.proxy_pid = P.start_proxy(sb.bound, ip)


def _write_files(store, doc: dict, sb: Sandbox) -> None:
    from lamina import perms
    from lamina.network import files
    c, hc = doc["Config"], doc["HostConfig"]
    ep = sb.endpoints[0]
    extra = []
    for h in hc.get("ExtraHosts") or ():
        name, _, addr = h.partition(":")
        extra.append((name, ep.net.gateway if addr == "host-gateway" else addr))
    perms.write_file(doc["HostsPath"], files.hosts(ip=ep.ip, hostname=c["Hostname"],
                                                   domainname=c.get("Domainname") or "", extra=extra),
                     perms.VISIBLE_FILE)
    embedded = ep.net.user_defined
    dns = list(hc.get("Dns") or ())
    if embedded:
        ns = [ep.net.gateway]
    else:
        ns = files.upstreams(dns)
    text = files.resolv_conf(nameservers=ns, search=hc.get("DnsSearch") or None,
                             options=hc.get("DnsOptions") or None, embedded=embedded)
    perms.write_file(doc["ResolvConfPath"], text, perms.VISIBLE_FILE)


def _register_dns(doc: dict, sb: Sandbox) -> None:
    if not any(ep.net.user_defined for ep in sb.endpoints):
        return
    from lamina.network import dns, files
    ups = files.upstreams(list(doc["HostConfig"].get("Dns") or ()))
    name = doc["Name"].lstrip("/")
    for ep in sb.endpoints:
        if not ep.net.user_defined:
            continue
        names = [name, *ep.aliases, doc["Id"][:12]]
        dns.register(ep.net.state_dir, sb.cid, ip=ep.ip, names=names, owner=sb.owner, upstreams=ups)
        dns.ensure(ep.net.state_dir, ep.net.gateway)


# -- NetworkSettings ----------------------------------------------------------------
def settings(doc: dict, sb: Sandbox | None) -> dict:
    """Docker's NetworkSettings for the container, running with ``sb`` or stopped (None)."""
    ns = dict(doc.get("NetworkSettings") or {})
    nets = {k: dict(v or {}) for k, v in (ns.get("Networks") or {}).items()}
    ports: dict = {}
    exposed = doc["Config"].get("ExposedPorts") or {}
    mode = doc["HostConfig"]["NetworkMode"]
    running = sb is not None
    if mode not in ("host", "none") and not mode.startswith("container:"):
        for key in sorted(set(exposed) | set(doc["HostConfig"].get("PortBindings") or {})):
            ports[key] = None
        if sb is not None:
            for m in sb.ports():
                key = f"{m.container_port}/{m.proto}"
                ports[key] = (ports.get(key) or []) + [{"HostIp": m.host_ip or "0.0.0.0",
                                                         "HostPort": str(m.host_port)}]
    eps = {ep.net.name: ep for ep in (sb.endpoints if sb else [])}
    for name, v in nets.items():
        ep = eps.get(name)
        v.update({"EndpointID": ep.endpoint_id if ep else "", "Gateway": ep.net.gateway if ep else "",
                  "IPAddress": ep.ip if ep else "", "IPPrefixLen": ep.net.prefixlen if ep else 0,
                  "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                  "MacAddress": mac_text(ep.ip) if ep else ""})
        if ep:
            v["NetworkID"] = ep.net.id
    first = sb.endpoints[0] if sb and sb.endpoints else None
    default = first if first and first.net.is_default else None
    ns.update({"Bridge": "", "SandboxID": first.endpoint_id if first else "",
               "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
               "Ports": ports if (running or ports) else {},
               "SandboxKey": sb.netns_path if sb is not None and sb.netns_fd is not None else "",
               "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
               "EndpointID": default.endpoint_id if default else "",
               "Gateway": default.net.gateway if default else "", "GlobalIPv6Address": "",
               "GlobalIPv6PrefixLen": 0, "IPAddress": default.ip if default else "",
               "IPPrefixLen": default.net.prefixlen if default else 0, "IPv6Gateway": "",
               "MacAddress": mac_text(default.ip) if default else "", "Networks": nets})
    if not running:
        ns["Ports"] = {}
    return ns


# -- sweep --------------------------------------------------------------------------
def sweep(store, nets: list[Network] | None = None) -> int:
    """Remove what dead owners left on ``nets`` (default: the default bridge and this store's
    user networks): DNS entries, DNAT rules and veths tagged with a dead owner, then their
    leases. Returns how many dead leases were found."""
    if nets is None:
        nets = [n for n in Networks(store).list() if n.driver == "bridge" and n.state_dir]
    dead: list[tuple[Network, ipam.Lease]] = []
    for net in nets:
        if not os.path.isdir(net.state_dir):
            continue
        for lease in _leases(net).all():
            if not lease.alive:
                dead.append((net, lease))
        if net.user_defined:
            from lamina.network import dns
            for e in dns.entries(net.state_dir):
                if not ipam.owner_alive(e.get("Owner", "")):
                    dns.unregister(net.state_dir, e["Container"], e.get("Owner"))
    drained = [(n, l) for n, l in dead if l.owner.startswith("link:")]  # torn down, veth now gone
    for net, lease in drained:
        with flocked(os.path.join(net.state_dir, "lock")):
            _leases(net).release(lease.address, lease.owner)
    dead = [(n, l) for n, l in dead if not l.owner.startswith("link:")]
    if not dead:
        return 0

    def dead_tag(comment: str) -> bool:
        parts = comment.split(" ", 1)
        if len(parts) != 2 or parts[0] != "lamina" or not parts[1].startswith("c:"):
            return False
        return not ipam.owner_alive(parts[1].split(":", 2)[2])
    from lamina.network import firewall
    if firewall.available():
        try:
            firewall.delete_owned(dead_tag)
        except LaminaError:
            pass
    nl = host_netlink()
    for link in nl.links():
        if link.alias.startswith("lamina c:") and dead_tag(link.alias):
            nl.delete_link(link.index)
    for net, lease in dead:
        with flocked(os.path.join(net.state_dir, "lock")):
            _leases(net).release(lease.address, lease.owner)
    return len(dead)


# -- connect / disconnect of a running container --------------------------------------
def connect_running(store, doc: dict, net: Network, settings_: dict) -> dict:
    """Give the running container ``doc`` an endpoint on ``net`` now (a veth into its
    namespace, an address, its DNS names). The endpoint's owner is the container's init:
    it is swept when the container stops. Returns the endpoint settings to record."""
    from lamina.network.netns import netlink_in
    pid = doc["State"]["Pid"]
    owner = ipam.owner_token(pid)
    cid = doc["Id"]
    net = Networks(store).ensure_up(net)
    sweep(store, [net])
    want = (settings_.get("IPAMConfig") or {}).get("IPv4Address") or None
    with flocked(os.path.join(net.state_dir, "lock")):
        ip = _leases(net).allocate(net.subnet, net.gateway,
                                   {"Container": cid, "Owner": owner, "Store": store.root, "Network": net.id},
                                   want=want, network=net.name)
    nl = host_netlink()
    nl_in = None
    veth = "veth" + os.urandom(4).hex()[:7]
    try:
        nl_in = netlink_in(f"/proc/{pid}/ns/net")
        taken = {l.name for l in nl_in.links()}
        ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in taken)
        nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            nl.add_veth(veth, master=nl.link(net.bridge).index, alias=f"lamina c:{cid[:12]}:{owner}",
                        peer=ifname, peer_netns_fd=nsfd, peer_mac=_mac(ip))
        finally:
            os.close(nsfd)
        peer = nl_in.link(ifname)
        assert peer is not None  # made just above
        nl_in.set_up(peer.index, f"bringing up {ifname}")
        nl_in.add_addr(peer.index, ip, net.prefixlen, f"adding {ip} to {ifname}")
        if net.user_defined:
            from lamina.network import dns, files
            names = [doc["Name"].lstrip("/"), *(settings_.get("Aliases") or [])]
            if cid[:12] not in names:
                names.append(cid[:12])
            dns.register(net.state_dir, cid, ip=ip, names=names, owner=owner,
                         upstreams=files.upstreams(list(doc["HostConfig"].get("Dns") or ())))
            dns.ensure(net.state_dir, net.gateway)
    except BaseException:
        nl.delete_link(veth)
        with flocked(os.path.join(net.state_dir, "lock")):
            _leases(net).release(ip, owner)
        raise
    finally:
        if nl_in is not None:
            nl_in.close()
    return {**settings_, "NetworkID": net.id, "EndpointID": os.urandom(32).hex(), "Gateway": net.gateway,
            "IPAddress": ip, "IPPrefixLen": net.prefixlen, "MacAddress": mac_text(ip)}


def disconnect_running(store, doc: dict, net: Network, settings_: dict) -> None:
    """Remove the running container's endpoint on ``net`` (its veth, DNS entry, lease)."""
    from lamina.network import dns
    ip = settings_.get("IPAddress")
    cid = doc["Id"]
    nl = host_netlink()
    veth = None  # the host end: on the network's bridge, tagged with the container
    link = nl.link(net.bridge)
    for l in nl.links():
        if link and l.master == link.index and l.alias.startswith(f"lamina c:{cid[:12]}:"):
            veth = l.name
    if veth:
        nl.delete_link(veth)
    if net.user_defined:
        dns.unregister(net.state_dir, cid)
    if ip:
        with flocked(os.path.join(net.state_dir, "lock")):
            _leases(net).release(ip)
