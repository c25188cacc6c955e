"""Published ports: Docker's ``-p`` grammar, the host sockets that reserve them, and the
userspace proxy used where kernel NAT is not available.

``-p`` forms (Docker's): ``[ip:][hostPort:]containerPort[/proto]``, ports or ranges
(``8000-8010:80-90``; a host range with a single container port takes the first free host
port of the range); ``ip::containerPort`` and ``containerPort`` alone take a random host
port. Only IPv4 host addresses are published.

Reservation: whichever way packets are forwarded, the host port is *bound* by a socket of
the process that holds the container's network (Docker's docker-proxy, or its "dummy
proxy" when the userland proxy is off, do the same): a second container or a host
process asking for the same port gets EADDRINUSE, a random port is the kernel's pick, and
the port is freed when that process exits, however it exits. With kernel NAT the sockets
only reserve (DNAT rewrites packets before they could reach them); with the proxy, a
forked process (dies with its parent: PR_SET_PDEATHSIG) accepts on them and relays.
"""

from __future__ import annotations

import os
import socket

from lamina.errors import Conflict, InvalidArgument
from lamina.values import value

__all__ = ["PortMapping", "parse_publish", "parse_expose", "reserve", "start_proxy", "port_key"]


@value
class PortMapping:
    """One published port: ``host_ip:host_port -> container_port/proto`` (host_port 0 =
    random, until reserved)."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_range: tuple[int, int] | None = None  # a host range for a single container port


def port_key(port: int, proto: str) -> str:
    return f"{port}/{proto}"


def _port(text: str, spec: str, what: str = "port") -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r} in -p {spec}: ports are numbers 1-65535") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise InvalidArgument(f"invalid {what} {text!r} in -p {spec}: ports are numbers 1-65535")
    return a, b


def parse_publish(spec: str) -> list[PortMapping]:
    """The mappings one ``-p/--publish`` value asks for (InvalidArgument naming it)."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto} (in -p {spec})")
    if proto == "sctp":
        raise InvalidArgument(f"-p {spec}: sctp ports are not supported by lamina")
    if body.startswith("["):
        raise InvalidArgument(f"-p {spec}: IPv6 host addresses are not supported by lamina")
    parts = body.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise InvalidArgument(f"invalid port format for --publish: {spec}")
    host_ip, host = "", ""
    if len(parts) == 3:
        host_ip, host, cont = parts
    elif len(parts) == 2:
        host, cont = parts
    else:
        cont = parts[0]
    if host_ip:
        try:
            socket.inet_aton(host_ip)
            if host_ip.count(".") != 3:
                raise OSError
        except OSError:
            raise InvalidArgument(f"invalid IP address in -p {spec}: {host_ip}") from None
    c0, c1 = _port(cont, spec, "containerPort")
    if not host:
        return [PortMapping(c, proto, host_ip, 0) for c in range(c0, c1 + 1)]
    h0, h1 = _port(host, spec, "hostPort")
    if c0 == c1 and h1 > h0:
        return [PortMapping(c0, proto, host_ip, 0, (h0, h1))]
    if h1 - h0 != c1 - c0:
        raise InvalidArgument(f"invalid ranges specified for container and host Ports: {cont} and {host}")
    return [PortMapping(c0 + i, proto, host_ip, h0 + i) for i in range(c1 - c0 + 1)]


def parse_expose(spec: str) -> list[str]:
    """``--expose PORT[-PORT][/proto]`` as port keys (``80/tcp``)."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto} (in --expose {spec})")
    lo, sep, hi = body.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise InvalidArgument(f"invalid range format for --expose: {spec}, error: invalid port") from None
    if not (0 < a <= 65535 and 0 < b <= 65535) or b < a:
        raise InvalidArgument(f"invalid range format for --expose: {spec}")
    return [port_key(p, proto) for p in range(a, b + 1)]


def _bind(m: PortMapping, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if m.proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        s.bind((m.host_ip or "0.0.0.0", port))
        if m.proto == "tcp":
            s.listen(128)
    except BaseException:
        s.close()
        raise
    return s


def reserve(mappings, taken=()) -> list[tuple[PortMapping, socket.socket]]:
    """Bind a host socket for every mapping (random and ranged ports resolved); all or
    nothing. Raises Conflict in Docker's words when a port is in use."""
    out: list[tuple[PortMapping, socket.socket]] = []
    try:
        for m in mappings:
            addr = m.host_ip or "0.0.0.0"
            if m.host_range:
                for p in range(m.host_range[0], m.host_range[1] + 1):
                    try:
                        s = _bind(m, p)
                    except OSError:
                        continue
                    break
                else:
                    raise Conflict(f"Bind for {addr}:{m.host_range[0]}-{m.host_range[1]} failed: "
                                   f"no port of the range is free")
            else:
                try:
                    s = _bind(m, m.host_port)
                except OSError as e:
                    if e.errno == 98:
                        raise Conflict(f"driver failed programming external connectivity: Bind for "
                                       f"{addr}:{m.host_port} failed: port is already allocated") from None
                    raise Conflict(f"Error starting userland proxy: listen {m.proto}4 {addr}:{m.host_port}: "
                                   f"bind: {e.strerror.lower() if e.strerror else e}") from None
            port = s.getsockname()[1]
            out.append((PortMapping(m.container_port, m.proto, m.host_ip, port), s))
    except BaseException:
        for _, s in out:
            s.close()
        raise
    return out


# -- the userspace proxy --------------------------------------------------------------
def start_proxy(bound: list[tuple[PortMapping, socket.socket]], ip: str) -> int:
    """Fork a process that relays every bound socket to ``ip:container_port``; it dies
    with this process (PR_SET_PDEATHSIG) or when killed. Returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        os.setsid()
        _proxy_main(bound, ip)
    except BaseException:  # noqa: BLE001 - a proxy never takes its parent's code paths
        code = 1
    finally:
        os._exit(code)


def _proxy_main(bound, ip: str) -> None:
    import selectors
    import threading

    sel = selectors.DefaultSelector()
    udp_peers: dict = {}
    for m, s in bound:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, m)

    def relay(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(1 << 18)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve(client: socket.socket, port: int) -> None:
        try:
            up = socket.create_connection((ip, port), timeout=30)
            up.settimeout(None)
        except OSError:
            client.close()
            return
        client.setblocking(True)
        t = threading.Thread(target=relay, args=(up, client), daemon=True)
        t.start()
        relay(client, up)
        t.join()
        client.close()
        up.close()

    def udp_back(s: socket.socket, up: socket.socket, peer) -> None:
        up.settimeout(120)
        try:
            while True:
                data = up.recv(1 << 16)
                s.sendto(data, peer)
        except OSError:
            pass
        finally:
            udp_peers.pop((s.fileno(), peer), None)
            up.close()

    while True:
        for key, _ in sel.select():
            m, s = key.data, key.fileobj
            assert isinstance(s, socket.socket)
            try:
                if m.proto == "tcp":
                    client, _ = s.accept()
                    threading.Thread(target=serve, args=(client, m.container_port), daemon=True).start()
                else:
                    data, peer = s.recvfrom(1 << 16)
                    up = udp_peers.get((s.fileno(), peer))
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.connect((ip, m.container_port))
                        udp_peers[(s.fileno(), peer)] = up
                        threading.Thread(target=udp_back, args=(s, up, peer), daemon=True).start()
                    up.send(data)
            except OSError:
                continue
