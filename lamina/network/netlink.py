"""A small rtnetlink client: the links, addresses and routes lamina's networks need.

Why hand-written: measured on this project's machine, ``import pyroute2`` costs 160-220 ms
(more than a whole ``lamina run --rm``), and one ``ip`` subprocess 10-15 ms; a request on
a raw ``AF_NETLINK`` socket costs tens of microseconds, and this module imports only the
stdlib's ``socket`` and ``struct``.

Contract: every request is sent with ``NLM_F_ACK`` and :meth:`Netlink.request` returns only
when the kernel acknowledged it; a negative ack raises :class:`NetlinkError` (an OSError
with the kernel's errno and a message naming the request). Dumps return parsed messages.
A :class:`Netlink` speaks to the network namespace it was created in, whatever the
namespace of the thread that later uses it (the kernel binds a socket to its creator's
namespace): :func:`lamina.network.netns.netlink_in` makes one inside a container's.
"""

from __future__ import annotations

import os
import socket
import struct

__all__ = ["Netlink", "NetlinkError", "Link", "Addr", "Route"]

# message types and flags (linux/netlink.h, linux/rtnetlink.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x100, 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
# address and route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RTPROT_KERNEL = 254, 3, 2
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


class NetlinkError(OSError):
    """The kernel refused a request (errno from its negative ack)."""


def _attr(kind: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n & 3)


def _str(kind: int, s: str) -> bytes:
    return _attr(kind, s.encode() + b"\0")


def _u32(kind: int, v: int) -> bytes:
    return _attr(kind, struct.pack("=I", v))


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(data):
        n, kind = struct.unpack_from("=HH", data, i)
        if n < 4:
            break
        out[kind & 0x3FFF] = data[i + 4:i + n]
        i += (n + 3) & ~3
    return out


def _cstr(b: bytes | None) -> str:
    return "" if b is None else b.split(b"\0", 1)[0].decode(errors="replace")


class Link:
    """One network interface as a dump reports it."""

    __slots__ = ("index", "name", "flags", "master", "alias", "kind")

    def __init__(self, index: int, name: str, flags: int, master: int, alias: str, kind: str):
        self.index, self.name, self.flags = index, name, flags
        self.master, self.alias, self.kind = master, alias, kind

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, kind={self.kind!r}, alias={self.alias!r})"


class Addr:
    __slots__ = ("index", "address", "prefixlen")

    def __init__(self, index: int, address: str, prefixlen: int):
        self.index, self.address, self.prefixlen = index, address, prefixlen


class Route:
    __slots__ = ("dst", "dst_len", "oif", "gateway", "table")

    def __init__(self, dst: str, dst_len: int, oif: int, gateway: str, table: int):
        self.dst, self.dst_len, self.oif, self.gateway, self.table = dst, dst_len, oif, gateway, table


class Netlink:
    """An rtnetlink socket (NETLINK_ROUTE) of the namespace that created it."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                          socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------
    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body)
        return self.seq

    def _replies(self, seq: int, what: str):
        """Messages answering ``seq`` as (type, body) until the ack or NLMSG_DONE."""
        while True:
            data = self.sock.recv(1 << 16)
            i = 0
            while i + _HDR.size <= len(data):
                n, kind, flags, mseq, _ = _HDR.unpack_from(data, i)
                body = data[i + _HDR.size:i + n]
                i += (n + 3) & ~3
                if mseq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err:
                        raise NetlinkError(err, f"{what}: {os.strerror(err)}")
                    return
                if kind == NLMSG_DONE:
                    return
                yield kind, body

    def request(self, kind: int, body: bytes, *, flags: int = 0, what: str) -> None:
        """Send one request and wait for the kernel's ack (NetlinkError if refused)."""
        for _ in self._replies(self._send(kind, flags | NLM_F_ACK, body), what):
            pass

    def dump(self, kind: int, body: bytes, what: str) -> list[bytes]:
        return [b for _, b in self._replies(self._send(kind, NLM_F_DUMP, body), what)]

    # -- links --------------------------------------------------------------------
    def links(self) -> list[Link]:
        out = []
        for body in self.dump(RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0), "listing links"):
            _, _, index, flags, _ = _IFINFO.unpack_from(body)
            a = _attrs(body[_IFINFO.size:])
            info = _attrs(a.get(IFLA_LINKINFO, b""))
            master = struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
            out.append(Link(index, _cstr(a.get(IFLA_IFNAME)), flags, master,
                            _cstr(a.get(IFLA_IFALIAS)), _cstr(info.get(IFLA_INFO_KIND))))
        return out

    def link(self, name: str) -> Link | None:
        """The link called ``name``, or None."""
        try:
            bodies = list(self._replies(self._send(RTM_GETLINK, NLM_F_ACK,
                                                   _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
                                                   + _str(IFLA_IFNAME, name)), f"looking up {name}"))
        except NetlinkError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        for _, body in bodies:
            _, _, index, flags, _ = _IFINFO.unpack_from(body)
            a = _attrs(body[_IFINFO.size:])
            info = _attrs(a.get(IFLA_LINKINFO, b""))
            master = struct.unpack("=I", a[IFLA_MASTER])[0] if IFLA_MASTER in a else 0
            return Link(index, _cstr(a.get(IFLA_IFNAME)), flags, master,
                        _cstr(a.get(IFLA_IFALIAS)), _cstr(info.get(IFLA_INFO_KIND)))
        return None

    def add_bridge(self, name: str, *, alias: str = "", mac: bytes | None = None) -> None:
        """Create bridge ``name`` (EEXIST if a link of that name exists), up."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _str(IFLA_IFNAME, name)
        if mac:
            body += _attr(IFLA_ADDRESS, mac)
        body += _attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, body, flags=NLM_F_CREATE | NLM_F_EXCL, what=f"creating bridge {name}")
        if alias:
            self.set_alias(name, alias)

    def add_veth(self, name: str, *, master: int, alias: str, peer: str, peer_netns_fd: int,
                 peer_mac: bytes, mtu: int = 1500) -> None:
        """Create the veth pair ``name`` (up, enslaved to bridge ``master``, alias ``alias``)
        and ``peer`` (MAC ``peer_mac``, down: the kernel refuses a peer up at birth, ENOTCONN)
        born in the namespace ``peer_netns_fd``. The kernel ignores IFLA_IFALIAS when it
        creates a link, so the alias is a second request."""
        peer_body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, peer)
                     + _attr(IFLA_ADDRESS, peer_mac) + _u32(IFLA_MTU, mtu)
                     + _u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_body))
        body = (_IFINFO.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + _str(IFLA_IFNAME, name)
                + _u32(IFLA_MTU, mtu) + _u32(IFLA_MASTER, master) + _attr(IFLA_LINKINFO, info))
        self.request(RTM_NEWLINK, body, flags=NLM_F_CREATE | NLM_F_EXCL, what=f"creating veth {name}")
        self.set_alias(name, alias)

    def set_alias(self, name: str, alias: str) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, name) + _str(IFLA_IFALIAS, alias)
        self.request(RTM_NEWLINK, body, what=f"naming link {name}")

    def set_up(self, index: int, what: str) -> None:
        self.request(RTM_NEWLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP), what=what)

    def delete_link(self, index_or_name: int | str, *, missing_ok: bool = True) -> None:
        if isinstance(index_or_name, str):
            body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, index_or_name)
        else:
            body = _IFINFO.pack(socket.AF_UNSPEC, 0, index_or_name, 0, 0)
        try:
            self.request(RTM_DELLINK, body, what=f"deleting link {index_or_name}")
        except NetlinkError as e:
            if not (missing_ok and e.errno == 19):
                raise

    # -- addresses and routes -----------------------------------------------------
    def add_addr(self, index: int, address: str, prefixlen: int, what: str) -> None:
        """Add IPv4 ``address/prefixlen`` (with its broadcast) to link ``index``."""
        raw = socket.inet_aton(address)
        host_bits = (1 << (32 - prefixlen)) - 1
        bcast = struct.pack("!I", struct.unpack("!I", raw)[0] | host_bits)
        body = (_IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
                + _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw) + _attr(IFA_BROADCAST, bcast))
        self.request(RTM_NEWADDR, body, flags=NLM_F_CREATE | NLM_F_EXCL, what=what)

    def addrs(self) -> list[Addr]:
        out = []
        for body in self.dump(RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0), "listing addresses"):
            _, plen, _, _, index = _IFADDR.unpack_from(body)
            a = _attrs(body[_IFADDR.size:])
            raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
            if raw and len(raw) == 4:
                out.append(Addr(index, socket.inet_ntoa(raw), plen))
        return out

    def add_default_route(self, gateway: str, oif: int, what: str) -> None:
        body = (_RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                            RTN_UNICAST, 0)
                + _attr(RTA_GATEWAY, socket.inet_aton(gateway)) + _u32(RTA_OIF, oif))
        self.request(RTM_NEWROUTE, body, flags=NLM_F_CREATE | NLM_F_EXCL, what=what)

    def routes(self) -> list[Route]:
        """IPv4 routes of every table (the caller filters)."""
        out = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0),
                              "listing routes"):
            _, dst_len, _, _, table, _, _, rtype, _ = _RTMSG.unpack_from(body)
            a = _attrs(body[_RTMSG.size:])
            if RTA_TABLE in a:
                table = struct.unpack("=I", a[RTA_TABLE])[0]
            dst = socket.inet_ntoa(a[RTA_DST]) if RTA_DST in a else "0.0.0.0"
            gw = socket.inet_ntoa(a[RTA_GATEWAY]) if RTA_GATEWAY in a else ""
            oif = struct.unpack("=I", a[RTA_OIF])[0] if RTA_OIF in a else 0
            if rtype == RTN_UNICAST:
                out.append(Route(dst, dst_len, oif, gw, table))
        return out
