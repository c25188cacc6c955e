"""Container networking: bridge networks, published ports, embedded DNS (Docker's model).

Package map (each module one concern; only ``netlink`` and ``netns`` touch the kernel's
network configuration, only ``firewall`` runs ``iptables``)::

    netlink.py    a small rtnetlink client (links, veth pairs, addresses, routes)
    netns.py      network namespaces held by an fd; sysctls
    ipam.py       Docker's default address pools; lease files, one per address
    firewall.py   NAT and forwarding rules through iptables (iptables-restore batches)
    ports.py      -p/--publish and --expose grammar; host port reservation; userspace proxy
    networks.py   network records (bridge, host, none, user networks); bridges up/down
    sandbox.py    a container's network for one start: netns, veths, addresses, routes,
                  ports, DNS entries, /etc/hosts and /etc/resolv.conf; teardown and sweep
    dns.py        the embedded DNS responder of a user network (a process per network)

Model. Docker's default network ``bridge`` is the host's bridge ``lamina0``, shared by every
lamina store on the host as docker0 is by a daemon's containers; its address leases live in
``/run/lamina/net/lamina0/``. A user network (``network create``) belongs to one store:
``<root>/networks/<id>/`` holds its record, leases and DNS entries, its bridge is
``lm-<id[:12]>``. ``host`` and ``none`` are records without a bridge.

A container's network exists while it runs. Its monitor (the process that waits for it:
the foreground ``lamina run`` itself or the detached monitor) makes a network namespace
held by an fd (no process needed), a veth pair per network with the container's end born in
that namespace, the address, the default route, the published ports (kernel DNAT rules, or
the userspace proxy where iptables is missing or ``LAMINA_USERLAND_PROXY=1``), and the DNS
entries. The container's PID 1 joins the namespace through ``/proc/<monitor>/fd/<n>``. When
the container exits, the monitor removes all of it. When the monitor is SIGKILLed, the kernel
destroys the namespace and so both ends of every veth pair, the reserved sockets and the
proxy die with the monitor, and what remains (the lease, DNAT rules, a DNS entry, all tagged
with the dead monitor's pid, start time and boot ID) is removed by the next lamina command
that looks: :func:`lamina.network.sandbox.sweep` runs before any address is handed out, on
``network`` verbs and when ``ps``/``inspect`` find a dead container.

Locks: ``/run/lamina/net/lock`` (host-wide) while a subnet is picked and a bridge is brought
up or down; ``<state>/lock`` of a network while its leases change; ``<root>/networks/lock``
while user network records are created or removed (names are unique per store).
"""
