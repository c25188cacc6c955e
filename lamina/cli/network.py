"""``lamina network`` verbs: create, ls, inspect, rm, connect, disconnect, prune.
Parsing and output only; the work is in lamina.network. Errors of a verb that names
several networks are reported one by one, exit status 1, as Docker's CLI does."""

from __future__ import annotations

import sys

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument, LaminaError

NET_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NET_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
               "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def _networks(ctx):
    from lamina.network.networks import Networks
    return Networks(ctx.store)


def _kv(items: list[str], what: str) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not k:
            raise InvalidArgument(f"invalid argument \"{it}\" for \"{what}\" flag: bad format")
        out[k] = v
    return out


def _containers_on(ctx, net) -> dict:
    """{id: doc} of this store's containers with a live endpoint on ``net``."""
    from lamina.runtime.containers import Containers
    out = {}
    for d in Containers(ctx.store).all():
        if not d["State"]["Running"]:
            continue
        ep = ((d.get("NetworkSettings") or {}).get("Networks") or {}).get(net.name)
        if ep is not None and (ep.get("NetworkID") in ("", None, net.id) or net.name == "bridge"):
            out[d["Id"]] = d
    return out


def _referencing(ctx, net) -> list[str]:
    from lamina.runtime.containers import Containers
    return [d["Id"] for d in Containers(ctx.store).all()
            if net.name in (((d.get("NetworkSettings") or {}).get("Networks")) or {})]


def inspect_doc(ctx, net) -> dict:
    """Docker's ``network inspect`` document of ``net``."""
    conts = {}
    if net.driver == "bridge":
        for cid, d in _containers_on(ctx, net).items():
            ep = d["NetworkSettings"]["Networks"][net.name]
            conts[cid] = {"Name": d["Name"].lstrip("/"), "EndpointID": ep.get("EndpointID", ""),
                          "MacAddress": ep.get("MacAddress", ""),
                          "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}" if ep.get("IPAddress") else "",
                          "IPv6Address": ""}
    options = dict(net.options)
    if net.is_default:
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_icc": "true",
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                   "com.docker.network.bridge.name": net.bridge, "com.docker.network.driver.mtu": "1500"}
    config = []
    if net.subnet:
        config = [{"Subnet": net.subnet, "Gateway": net.gateway}]
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {} if net.user_defined else None, "Config": config},
            "Internal": net.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": conts, "Options": options, "Labels": dict(net.labels)}


def cmd_network_create(argv, ctx) -> int:
    p = Parser("network create", "[OPTIONS] NETWORK", "Create a network")
    p.option("-d", "--driver", default="bridge", help="Driver to manage the Network (default \"bridge\")")
    p.option("--subnet", append=True, metavar="strings", help="Subnet in CIDR format that represents a network segment")
    p.option("--gateway", append=True, metavar="strings", help="IPv4 or IPv6 Gateway for the master subnet")
    p.option("--label", append=True, metavar="list", help="Set metadata on a network")
    p.option("-o", "--opt", append=True, metavar="map", help="Set driver specific options")
    p.flag("--internal", help="Restrict external access to the network")
    p.args("name", min=1, max=1)
    a = parse(p, argv)
    if len(a.subnet) > 1 or len(a.gateway) > 1:
        raise InvalidArgument("lamina networks have one IPv4 subnet: give --subnet and --gateway once")
    if a.name in ("bridge", "host", "none", "default"):
        sys.stderr.write(f"Error: operation is not permitted on predefined {a.name} network\n")
        return 1
    net = _networks(ctx).create(a.name, subnet=a.subnet[0] if a.subnet else None,
                                gateway=a.gateway[0] if a.gateway else None,
                                labels=_kv(a.label, "--label"), options=_kv(a.opt, "--opt"),
                                internal=a.internal, driver=a.driver)
    print(net.id)
    return 0


def cmd_network_ls(argv, ctx) -> int:
    p = Parser("network ls", "[OPTIONS]", "List networks")
    p.option("-f", "--filter", append=True, metavar="filter", help="Provide filter values (e.g. 'driver=bridge')")
    p.option("--format", help="Pretty-print networks using a Go template")
    p.flag("--no-trunc", help="Do not truncate the output")
    p.flag("-q", "--quiet", help="Only display network IDs")
    p.args("none", max=0)
    a = parse(p, argv)
    filters: dict[str, list[str]] = {}
    for f in a.filter:
        k, sep, v = f.partition("=")
        if not sep or k not in ("driver", "id", "label", "name", "scope", "type", "dangling"):
            raise InvalidArgument(f"invalid filter '{f}'")
        filters.setdefault(k, []).append(v)
    nets = _networks(ctx).list()
    from lamina.network.sandbox import sweep
    sweep(ctx.store, [n for n in nets if n.driver == "bridge" and n.state_dir])
    if any(n.is_default and not n.id for n in nets):  # the default bridge is made on first use
        nets = [_networks(ctx).ensure_up(n) if n.is_default else n for n in nets]
    rows = []
    for n in sorted(nets, key=lambda n: n.name):
        if "driver" in filters and n.driver not in filters["driver"]:
            continue
        if "name" in filters and not any(v in n.name for v in filters["name"]):
            continue
        if "id" in filters and not any(n.id.startswith(v) for v in filters["id"]):
            continue
        if "scope" in filters and "local" not in filters["scope"]:
            continue
        if "type" in filters and not any((v == "custom") == n.user_defined for v in filters["type"]):
            continue
        if "label" in filters:
            labels = dict(n.labels)
            if not all((k in labels and (not sep or labels[k] == v))
                       for k, sep, v in (x.partition("=") for x in filters["label"])):
                continue
        if "dangling" in filters:
            want = filters["dangling"][0] in ("true", "1")
            if (n.user_defined and not _referencing(ctx, n)) != want:
                continue
        rows.append({"ID": n.id if a.no_trunc else n.id[:12], "Name": n.name, "Driver": n.driver, "Scope": "local",
                     "IPv6": "false", "Internal": str(n.internal).lower(),
                     "Labels": ",".join(f"{k}={v}" for k, v in n.labels), "CreatedAt": n.created})
    if a.quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    from lamina.cli.table import format_table
    sys.stdout.write(format_table(rows, a.format or NET_TABLE, headers=NET_HEADERS))
    return 0


def cmd_network_inspect(argv, ctx) -> int:
    p = Parser("network inspect", "[OPTIONS] NETWORK [NETWORK...]",
               "Display detailed information on one or more networks")
    p.option("-f", "--format", help="Format the output using the given Go template")
    p.flag("-v", "--verbose", help="Verbose output for diagnostics")
    p.args("names", min=1)
    a = parse(p, argv)
    nets = _networks(ctx)
    out, rc = [], 0
    for name in a.names:
        try:
            n = nets.get(name)
            if n.is_default and not n.id:
                n = nets.ensure_up(n)
            out.append(inspect_doc(ctx, n))
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    from lamina.cli.table import print_documents
    print_documents(out, a.format)
    return rc


def cmd_network_rm(argv, ctx) -> int:
    p = Parser("network rm", "NETWORK [NETWORK...]", "Remove one or more networks")
    p.args("names", min=1)
    a = parse(p, argv)
    from lamina.network.sandbox import sweep
    nets = _networks(ctx)
    rc = 0
    for name in a.names:
        try:
            n = nets.get(name)
            sweep(ctx.store, [n] if n.driver == "bridge" and n.state_dir else [])
            nets.remove(n, in_use=list(_containers_on(ctx, n)) if n.user_defined else [])
            print(name)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    return rc


def cmd_network_prune(argv, ctx) -> int:
    p = Parser("network prune", "[OPTIONS]", "Remove all unused networks")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.option("--filter", append=True, metavar="filter", help="Provide filter values (e.g. 'until=<timestamp>')")
    p.args("none", max=0)
    a = parse(p, argv)
    if not a.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = prune_networks(ctx)
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{r}\n" for r in removed))
    return 0


def prune_networks(ctx) -> list[str]:
    """Remove every user network no container refers to; returns their names."""
    from lamina.network.sandbox import sweep
    nets = _networks(ctx)
    removed = []
    for n in nets.list():
        if not n.user_defined or _referencing(ctx, n):
            continue
        try:
            sweep(ctx.store, [n])
            nets.remove(n, in_use=[])
            removed.append(n.name)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
    return removed


def cmd_network_connect(argv, ctx) -> int:
    p = Parser("network connect", "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network")
    p.option("--alias", append=True, metavar="strings", help="Add network-scoped alias for the container")
    p.option("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.args("args", min=2, max=2)
    a = parse(p, argv)
    from lamina.errors import Conflict
    from lamina.runtime.containers import Containers
    cs = Containers(ctx.store)
    net = _networks(ctx).get(a.args[0])
    doc = cs.get(a.args[1])
    mode = doc["HostConfig"]["NetworkMode"]
    if net.driver != "bridge" or mode in ("host", "none") or mode.startswith("container:"):
        raise Conflict("container cannot be disconnected from host network or connected to host network"
                       if "host" in (mode, net.name) else
                       "container sharing network namespace with another container or host cannot be connected "
                       "to any other network")
    nets = doc["NetworkSettings"].get("Networks") or {}
    if net.name in nets:
        raise Conflict(f"endpoint with name {doc['Name'].lstrip('/')} already exists in network {net.name}")
    if (a.alias or a.ip) and not net.user_defined:
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks"
                              if a.alias else "user specified IP address is supported on user defined networks only")
    if a.ip and not net.user_subnet:
        raise InvalidArgument("user specified IP address is supported only when connecting to networks with "
                              "user configured subnets")
    settings = {"IPAMConfig": {"IPv4Address": a.ip} if a.ip else None, "Links": None,
                "Aliases": [*a.alias, doc["Id"][:12]] if net.user_defined else None, "NetworkID": net.id,
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None}
    if doc["State"]["Running"]:
        from lamina.network.sandbox import connect_running
        settings = connect_running(ctx.store, doc, net, settings)
        from lamina.events import emit
        emit(ctx.store.root, "network", "connect", net.id, {"container": doc["Id"], "name": net.name,
                                                           "type": "bridge"})
    cs.update(doc["Id"], lambda d: d["NetworkSettings"].setdefault("Networks", {}).__setitem__(net.name, settings))
    return 0


def cmd_network_disconnect(argv, ctx) -> int:
    p = Parser("network disconnect", "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network")
    p.flag("-f", "--force", help="Force the container to disconnect from a network")
    p.args("args", min=2, max=2)
    a = parse(p, argv)
    from lamina.errors import Conflict
    from lamina.runtime.containers import Containers
    cs = Containers(ctx.store)
    net = _networks(ctx).get(a.args[0])
    doc = cs.get(a.args[1])
    nets = doc["NetworkSettings"].get("Networks") or {}
    if net.name not in nets:
        raise Conflict(f"container {doc['Id']} is not connected to network {net.name}")
    if net.driver != "bridge":
        raise Conflict("container cannot be disconnected from host network or connected to host network")
    if doc["State"]["Running"]:
        from lamina.network.sandbox import disconnect_running
        disconnect_running(ctx.store, doc, net, nets[net.name])
        from lamina.events import emit
        emit(ctx.store.root, "network", "disconnect", net.id, {"container": doc["Id"], "name": net.name,
                                                              "type": "bridge"})
    # as Docker, NetworkMode stays: a container left on no network starts with only lo
    cs.update(doc["Id"], lambda d: d["NetworkSettings"]["Networks"].pop(net.name, None))
    return 0
