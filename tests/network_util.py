"""Helpers for the networking tests: a store whose every trace on the host (veths, rules,
leases, bridges, DNS servers, proxies) is asserted gone at the end of each test, and small
servers bound to addresses of lamina's bridges only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest
from conftest import need_tool
from containers_util import until

HOST_DIR = "/run/lamina/net"


def links() -> list[dict]:
    out = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def rules() -> list[str]:
    out = []
    for t in ("nat", "filter"):
        out += subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True, check=True).stdout.splitlines()
    return out


def gateway(lamina, net: str = "bridge") -> str:
    return lamina("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", net).out.strip()


def traces(root: str, ids: list[str], nets: list[str]) -> list[str]:
    """What is left on the host of this store's containers ``ids`` and networks ``nets``."""
    left = []
    short = [i[:12] for i in ids]
    for l in links():
        alias = l.get("ifalias", "")
        if any(f"c:{s}:" in alias for s in short):
            left.append(f"link {l['ifname']} ({alias})")
        if any(l["ifname"] == f"lm-{n[:12]}" for n in nets):
            left.append(f"bridge {l['ifname']}")
    for r in rules():
        if any(f"c:{s}:" in r for s in short) or any(f"net:{n[:12]}" in r for n in nets):
            left.append(f"rule {r}")
    leases = os.path.join(HOST_DIR, "lamina0", "leases")
    for name in os.listdir(leases) if os.path.isdir(leases) else ():
        try:
            with open(os.path.join(leases, name)) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if data.get("Store") == root or data.get("Container") in ids:
            left.append(f"lease {name} {data}")
    for n in nets:
        if os.path.isdir(os.path.join(root, "networks", n)):
            left.append(f"network dir {n}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"lamina.network.dns" in cmd and any(n.encode() in c for c in cmd for n in nets):
            left.append(f"dns server {pid}")
        try:
            env = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if f"LAMINA_ROOT={root}".encode() + b"\0" in env and int(pid) != os.getpid():
            left.append(f"process {pid} {cmd[:4]}")
    return left


@pytest.fixture
def net(bb):
    """The lamina CLI with busybox in its store; at the end every container and network of
    the store is removed and nothing of them may remain on the host."""
    need_tool("ip")
    need_tool("iptables-save")
    yield bb
    ids = bb("ps", "-a", "-q", "--no-trunc", check=False).out.split()
    if ids:
        bb("rm", "-f", *ids, check=False)
    seen = set(ids) | set(getattr(bb, "seen_ids", ()))
    nets = [n for n in bb("network", "ls", "-q", "--no-trunc", "-f", "type=custom", check=False).out.split()]
    seen_nets = set(nets) | set(getattr(bb, "seen_nets", ()))
    if nets:
        bb("network", "rm", *nets, check=False)
    left = []

    def clean():
        bb("network", "ls", check=False)  # a later lamina command sweeps what ended containers left
        left[:] = traces(bb.root, sorted(seen), sorted(seen_nets))
        return not left
    try:
        until(clean, timeout=20, what="the host to be clean")
    except AssertionError:
        raise AssertionError(f"left on the host: {left}") from None


def remember(lamina, *, cid: str | None = None, net: str | None = None) -> None:
    """Ask the cleanliness check to look for a removed container's or network's traces too."""
    if cid:
        lamina.__dict__.setdefault("seen_ids", set()).add(cid)
    if net:
        lamina.__dict__.setdefault("seen_nets", set()).add(net)


class Server:
    """A TCP (or UDP) server the test runs on ``addr`` (an address of a lamina bridge or
    127.0.0.1): answers every connection/datagram with ``reply`` and records who came."""

    def __init__(self, addr: str, port: int = 0, *, reply: bytes = b"from-test-server\n", udp: bool = False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.port = self.sock.getsockname()[1]
        self.peers: list = []
        self.reply = reply
        if not udp:
            self.sock.listen(16)
        self.t = threading.Thread(target=self._udp if udp else self._tcp, daemon=True)
        self.t.start()

    def _tcp(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer)
            try:
                c.sendall(self.reply)
            finally:
                c.close()

    def _udp(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.peers.append(peer)
            self.sock.sendto(self.reply, peer)

    def close(self):
        self.sock.close()
