"""The embedded DNS server of a user network: containers find each other by name.

One server process per user network (as podman's aardvark-dns, there being no daemon),
listening on the network's gateway address, port 53, UDP and TCP; containers on the
network have it as their only nameserver. It answers A queries for the names of the
running containers on its network (container name, ``--network-alias`` aliases, short
ID) and PTR queries for their addresses, says "no AAAA" for those names, and forwards
every other query to the asking container's upstream servers (``--dns``, else the host's),
relaying the answer unchanged.

Entries: one file per container in ``<network state>/dns/<container id>``
(``{"IP", "Names", "Owner", "Upstreams"}``), written atomically by the container's monitor
at start and removed at stop; an entry whose owner (the monitor) is dead is ignored, and
removed by the next sweep. The server re-reads the directory when its mtime changes.

Lifetime: the server holds ``<state>/dns.lock`` (flock) while it runs. :func:`ensure` starts
one (a fresh interpreter: ``python -m lamina.network.dns``) unless the lock is held, and
waits until it listens; the server exits by itself once no live entry has been left for
a few seconds, and :func:`stop` (``network rm``) ends it at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import sys

__all__ = ["register", "unregister", "ensure", "stop", "serve"]


def _dir(state_dir: str) -> str:
    return os.path.join(state_dir, "dns")


def register(state_dir: str, cid: str, *, ip: str, names: list[str], owner: str,
             upstreams: list[str]) -> None:
    from lamina import perms
    d = _dir(state_dir)
    if not os.path.isdir(d):
        perms.mkdir(d, exist_ok=True)
    perms.write_file(os.path.join(d, cid), json.dumps(
        {"IP": ip, "Names": names, "Owner": owner, "Upstreams": upstreams}))


def unregister(state_dir: str, cid: str, owner: str | None = None) -> None:
    from lamina.network.ipam import remove_owned
    remove_owned(os.path.join(_dir(state_dir), cid), owner)


def entries(state_dir: str) -> list[dict]:
    d = _dir(state_dir)
    out: list[dict] = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in names:
        if n.startswith(".") or ".tmp-" in n:
            continue
        try:
            with open(os.path.join(d, n)) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        e["Container"] = n
        out.append(e)
    return out


def _lock_held(state_dir: str) -> bool:
    path = os.path.join(state_dir, "dns.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def ensure(state_dir: str, gateway: str) -> None:
    """Start the network's DNS server unless one runs; return once it listens."""
    from lamina.errors import Unavailable
    from lamina.network.networks import flocked
    with flocked(os.path.join(state_dir, "lock")):
        if _lock_held(state_dir):
            return
        r, w = os.pipe()
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": pkg_root}
        argv = [sys.executable, "-m", "lamina.network.dns", state_dir, gateway, str(w)]
        pid = os.fork()
        if pid == 0:  # detach: a new session, and a grandchild that init reaps
            try:
                os.close(r)
                os.setsid()
                if os.fork() == 0:
                    os.chdir("/")
                    null = os.open(os.devnull, os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.set_inheritable(w, True)
                    os.closerange(3, w)
                    os.closerange(w + 1, 65536)
                    os.execve(sys.executable, argv, env)
            finally:
                os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        with os.fdopen(r, "rb") as f:
            msg = f.read()
        if msg != b"ok":
            raise Unavailable(f"the DNS server of network {state_dir} did not start: "
                              f"{msg.decode(errors='replace') or 'it exited'}")


def stop(net) -> None:
    """End the DNS server of ``net`` (a Network), if one runs."""
    pidfile = os.path.join(net.state_dir, "dns.pid")
    try:
        with open(pidfile) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        return
    from lamina.network.ipam import _start_time
    if _start_time(int(pid)) == start:
        try:
            os.kill(int(pid), 15)
        except ProcessLookupError:
            pass


# -- the server -----------------------------------------------------------------------
class _Records:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.mtime: int | None = None
        self.by_name: dict[str, str] = {}
        self.by_ip: dict[str, str] = {}
        self.upstreams: dict[str, list[str]] = {}
        self.live = 0

    def load(self) -> None:
        from lamina.network.ipam import owner_alive
        try:
            m = os.stat(_dir(self.state_dir)).st_mtime_ns
        except FileNotFoundError:
            m = 0
        if m == self.mtime:
            return
        self.mtime = m
        by_name: dict = {}
        by_ip: dict = {}
        ups: dict = {}
        live = 0
        for e in entries(self.state_dir):
            if not owner_alive(e.get("Owner", "")):
                continue
            live += 1
            ip = e["IP"]
            for n in e.get("Names") or ():
                by_name.setdefault(n.lower().rstrip("."), ip)
            if e.get("Names"):
                by_ip[ip] = e["Names"][0]
            ups[ip] = e.get("Upstreams") or []
        self.by_name, self.by_ip, self.upstreams, self.live = by_name, by_ip, ups, live

    def refresh_liveness(self) -> None:
        self.mtime = None
        self.load()


def _qname(msg: bytes) -> tuple[str, int, int, int]:
    """(name, qtype, qclass, end offset of the question) of a query."""
    i, labels = 12, []
    while True:
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed question")
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack_from("!HH", msg, i)
    return ".".join(labels), qtype, qclass, i + 4


def _answer(msg: bytes, end: int, rcode: int, answers: list[bytes]) -> bytes:
    qid, flags = struct.unpack_from("!HH", msg, 0)
    flags = 0x8000 | (flags & 0x0100) | 0x0080 | 0x0400 | rcode  # QR, RD copied, RA, AA
    return struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0) + msg[12:end] + b"".join(answers)


def _rr_a(ip: str) -> bytes:
    return struct.pack("!HHHIH", 0xC00C, 1, 1, 600, 4) + socket.inet_aton(ip)


def _rr_ptr(name: str) -> bytes:
    data = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return struct.pack("!HHHIH", 0xC00C, 12, 1, 600, len(data)) + data


def _local(rec: _Records, msg: bytes) -> bytes | None:
    """The answer from the network's own names, or None to forward."""
    try:
        name, qtype, qclass, end = _qname(msg)
    except (ValueError, IndexError, struct.error):
        return None
    key = name.lower().rstrip(".")
    if key in rec.by_name:
        if qtype in (1, 255):
            return _answer(msg, end, 0, [_rr_a(rec.by_name[key])])
        return _answer(msg, end, 0, [])  # the name exists, with no record of that type
    if qtype == 12 and key.endswith(".in-addr.arpa"):
        ip = ".".join(reversed(key[:-len(".in-addr.arpa")].split(".")))
        if ip in rec.by_ip:
            return _answer(msg, end, 0, [_rr_ptr(rec.by_ip[ip])])
    return None


def _forward(msg: bytes, upstreams: list[str], tcp: bool = False) -> bytes | None:
    for server in upstreams:
        try:
            if tcp:
                with socket.create_connection((server, 53), timeout=3) as s:
                    s.sendall(struct.pack("!H", len(msg)) + msg)
                    n = struct.unpack("!H", _recv_exact(s, 2))[0]
                    return _recv_exact(s, n)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.connect((server, 53))
                s.send(msg)
                return s.recv(65535)
        except (OSError, struct.error):
            continue
    return None


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("short read")
        buf += chunk
    return buf


def _servfail(msg: bytes) -> bytes:
    try:
        _, _, _, end = _qname(msg)
    except (ValueError, IndexError, struct.error):
        return b""
    return _answer(msg, end, 2, [])


def serve(state_dir: str, gateway: str, ready_fd: int) -> int:
    import selectors
    import threading

    from lamina.network.files import upstreams as default_upstreams
    from lamina.network.ipam import _start_time

    lock = os.open(os.path.join(state_dir, "dns.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.write(ready_fd, b"ok")  # another server runs
        return 0
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp.bind((gateway, 53))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((gateway, 53))
        tcp.listen(64)
    except OSError as e:
        os.write(ready_fd, f"listening on {gateway}:53: {e.strerror}".encode())
        return 1
    pid = os.getpid()
    from lamina import perms
    perms.write_file(os.path.join(state_dir, "dns.pid"), f"{pid} {_start_time(pid)}")
    rec = _Records(state_dir)
    rec.load()
    os.write(ready_fd, b"ok")
    os.close(ready_fd)
    fallback = default_upstreams([])

    def resolve(msg: bytes, src: str, tcp_: bool) -> bytes | None:
        rec.load()
        out = _local(rec, msg)
        if out is not None:
            return out
        ans = _forward(msg, rec.upstreams.get(src) or fallback, tcp_)
        return ans if ans is not None else _servfail(msg)

    def udp_query(msg: bytes, peer) -> None:
        ans = resolve(msg, peer[0], False)
        if ans:
            try:
                udp.sendto(ans, peer)
            except OSError:
                pass

    def tcp_client(c: socket.socket, peer) -> None:
        c.settimeout(10)
        try:
            while True:
                n = struct.unpack("!H", _recv_exact(c, 2))[0]
                ans = resolve(_recv_exact(c, n), peer[0], True)
                if not ans:
                    break
                c.sendall(struct.pack("!H", len(ans)) + ans)
        except (OSError, struct.error):
            pass
        finally:
            c.close()

    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    idle = 0
    while True:
        events = sel.select(2.0)
        if not events:
            rec.refresh_liveness()
            idle = idle + 1 if rec.live == 0 else 0
            if idle >= 3 or not os.path.isdir(state_dir):
                return 0
            continue
        for key, _ in events:
            try:
                if key.fileobj is udp:
                    msg, peer = udp.recvfrom(65535)
                    rec.load()
                    local = _local(rec, msg)
                    if local is not None:
                        udp.sendto(local, peer)
                    else:
                        threading.Thread(target=udp_query, args=(msg, peer), daemon=True).start()
                else:
                    c, peer = tcp.accept()
                    threading.Thread(target=tcp_client, args=(c, peer), daemon=True).start()
            except OSError:
                continue


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    raise SystemExit(serve(sys.argv[1], sys.argv[2], int(sys.argv[3])))
