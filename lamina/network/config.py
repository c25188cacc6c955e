"""A new container's network settings from ``create``/``run`` flags, checked as Docker does.

:func:`for_create` turns the options into the pieces of the container's document:
HostConfig (NetworkMode, PortBindings, PublishAllPorts, ExtraHosts, Dns, DnsSearch,
DnsOptions), Config.ExposedPorts and NetworkSettings.Networks (the endpoint settings that
the sandbox reads at each start). Every refusal is an InvalidArgument/Conflict/NotFound in
Docker's words, before anything is written.
"""

from __future__ import annotations

from lamina.errors import Conflict, InvalidArgument, NotFound


def mode_of(name: str) -> str:
    """Docker's name for a ``--network`` value (``default`` stays ``default``)."""
    if name == "":
        return "default"
    return name


def _check_host(spec: str) -> str:
    name, sep, addr = spec.partition(":")
    if not sep or not name or not addr:
        raise InvalidArgument(f"invalid argument \"{spec}\" for \"--add-host\" flag: "
                              f"bad format for add-host: \"{spec}\"")
    if addr != "host-gateway":
        import ipaddress
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--add-host\" flag: invalid IP address in "
                                  f"add-host: \"{addr}\"") from None
    return f"{name}:{addr}"


def for_create(store, containers, opts, cid: str, image_exposed: dict | None) -> dict:
    """{"HostConfig": {...}, "ExposedPorts": {...}, "Networks": {...}, "Mode": str,
    "Container": <doc of container:<x>> or None}."""
    mode = mode_of(opts.network)
    other = None
    hc: dict = {}
    if mode.startswith("container:"):
        ref = mode.partition(":")[2]
        if not ref:
            raise InvalidArgument("--network container: needs a container name or ID")
        other = containers.get(ref)  # NotFound: "No such container: x"
        if other["Id"] == cid:
            raise InvalidArgument("cannot join own network")
        mode = f"container:{other['Id']}"
        if opts.hostname:
            raise Conflict("conflicting options: hostname and the network mode")
        if opts.publish or opts.publish_all:
            raise Conflict("conflicting options: port publishing and the container type network mode")
        if opts.dns or opts.dns_search or opts.dns_options:
            raise Conflict("conflicting options: dns and the network mode")
        if opts.add_hosts:
            raise Conflict("conflicting options: custom host-to-IP mapping and the network mode")
        if opts.expose:
            raise Conflict("conflicting options: exposing port and the container type network mode")
    net = None
    if mode not in ("host", "none") and not mode.startswith("container:"):
        from lamina.network.networks import Networks
        try:
            net = Networks(store).get("bridge" if mode == "default" else mode)
        except NotFound:
            raise NotFound(f"network {mode} not found") from None
        if net.driver != "bridge":
            mode = net.name
            net = None
        elif net.is_default and not net.id:  # first use on this host: Docker's bridge always has an ID
            net = Networks(store).ensure_up(net)
    user_net = net is not None and net.user_defined
    if opts.ip is not None:
        import ipaddress
        try:
            ipaddress.IPv4Address(opts.ip)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {opts.ip}") from None
        if not user_net:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if not net.user_subnet:  # type: ignore[union-attr]  # user_net: net is set
            raise InvalidArgument("user specified IP address is supported only when connecting to networks "
                                  "with user configured subnets")
    if opts.network_aliases and not user_net:
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
    exposed = dict(image_exposed or {})
    if opts.expose or opts.publish:
        from lamina.network import ports as P
    for e in opts.expose:
        for key in P.parse_expose(e):
            exposed[key] = {}
    bindings: dict = {}
    for spec in opts.publish:
        for m in P.parse_publish(spec):
            key = P.port_key(m.container_port, m.proto)
            exposed[key] = {}
            hp = f"{m.host_range[0]}-{m.host_range[1]}" if m.host_range else (str(m.host_port) if m.host_port else "")
            bindings.setdefault(key, []).append({"HostIp": m.host_ip, "HostPort": hp})
    if mode == "host" and (bindings or opts.publish_all):
        import sys
        sys.stderr.write("WARNING: Published ports are discarded when using host network mode\n")
    hc.update({"NetworkMode": mode, "PortBindings": bindings, "PublishAllPorts": opts.publish_all,
               "ExtraHosts": [_check_host(h) for h in opts.add_hosts] or None,
               "Dns": list(opts.dns), "DnsSearch": list(opts.dns_search), "DnsOptions": list(opts.dns_options)})
    networks: dict = {}
    if net is not None:
        networks[net.name] = {
            "IPAMConfig": {"IPv4Address": opts.ip} if opts.ip else None, "Links": None,
            "Aliases": [*opts.network_aliases, cid[:12]] if user_net else None,
            "NetworkID": net.id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
            "DriverOpts": None}
    elif mode in ("host", "none"):
        from lamina.network.networks import Networks
        n = Networks(store).get(mode)
        networks[mode] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": n.id,
                          "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                          "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                          "MacAddress": "", "DriverOpts": None}
    return {"HostConfig": hc, "ExposedPorts": exposed, "Networks": networks, "Mode": mode, "Container": other}
