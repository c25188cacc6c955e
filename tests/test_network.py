"""Bridge networking (issue 12): real containers on real bridges, veths and NAT rules; servers
run by the tests bind 127.0.0.1 or addresses of lamina's bridges only, and every test ends
with nothing of its containers and networks left on the host (the ``net`` fixture)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest
from conftest import need_tool
from containers_util import bb, state, until  # noqa: F401 - fixtures
from network_util import Server, gateway, links, net, remember, rules, traces  # noqa: F401

pytestmark = pytest.mark.usefixtures("net")


def web(port: int) -> list[str]:
    """A busybox HTTP server answering every request with the container's hostname.
    (busybox httpd crashes with IPv6 off, in Docker's containers as in lamina's.)"""
    script = ("printf '%s\\n' '#!/bin/sh' 'while read -r l; do [ \"${#l}\" -le 1 ] && break; done' "
              "'echo HTTP/1.0 200 OK' 'echo' 'cat /etc/hostname' > /srv && chmod +x /srv && "
              f"exec nc -ll -p {port} -e /srv")
    return ["sh", "-c", script]


def cid_of(lamina, name: str) -> str:
    return lamina("inspect", "-f", "{{.Id}}", name).out.strip()


def ip_of(lamina, name: str, network: str | None = None) -> str:
    if network:
        return lamina("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}",
                      name).out.strip()
    return lamina("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).out.strip()


def http_get(port: int, host: str = "127.0.0.1", path: str = "/hostname") -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.split(b"\n\n", 1)[1]


def wait_http(port: int, host: str = "127.0.0.1") -> bytes:
    out = []

    def ok():
        try:
            out.append(http_get(port, host))
            return True
        except OSError:
            return False
    until(ok, timeout=20, what=f"http on {host}:{port}")
    return out[-1]


def listeners(port: int) -> set[int]:
    """Pids holding a TCP socket listening on ``port``."""
    inodes = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "0A":
            inodes.add(f[9])
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in {f"socket:[{i}]" for i in inodes}:
                    pids.add(int(pid))
        except OSError:
            continue
    return pids


def ppid(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- default bridge ------------------------------------------------------------------------------

def test_default_bridge_container_has_address_route_and_files(net):
    out = net("run", "--name", "c", "--hostname", "h1", "--domainname", "example.com",
              "--add-host", "foo:1.2.3.4", "--add-host", "gw:host-gateway",
              "busybox", "sh", "-c",
              "ls /sys/class/net | tr '\\n' ' '; echo; ip -4 -o addr show eth0; ip route; "
              "echo --; cat /etc/hosts; echo --; cat /etc/resolv.conf; cat /sys/class/net/eth0/address").out
    ifaces, rest = out.split("\n", 1)
    assert "inet6" not in net("run", "--rm", "busybox", "ip", "addr").out  # IPv6 off, as Docker without --ipv6
    assert ifaces.split() == ["eth0", "lo"]
    gw = gateway(net)
    doc = json.loads(net("inspect", "c").out)[0]
    assert doc["HostConfig"]["NetworkMode"] == "default"
    assert doc["NetworkSettings"]["IPAddress"] == ""  # stopped: Docker clears it
    assert list(doc["NetworkSettings"]["Networks"]) == ["bridge"]
    addr_line, routes_hosts = rest.split("\n", 1)
    ip, plen = addr_line.split()[3].split("/")
    subnet = net("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "bridge").out.strip()
    import ipaddress
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet) and plen == subnet.split("/")[1]
    assert f"default via {gw} dev eth0" in routes_hosts
    _, hosts, resolv = routes_hosts.split("--\n")
    assert hosts == ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                     "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
                     f"1.2.3.4\tfoo\n{gw}\tgw\n{ip}\th1.example.com h1\n")
    host_ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")
               and not l.split()[1].startswith("127.")]
    lines = resolv.splitlines()
    assert [l.split()[1] for l in lines if l.startswith("nameserver")] == (host_ns or ["8.8.8.8", "8.8.4.4"])
    mac = lines[-1]
    assert mac == "02:42:" + ":".join(f"{int(x):02x}" for x in ip.split("."))


def test_dns_flags_replace_resolv_conf_lines(net):
    out = net("run", "--rm", "--dns", "192.0.2.53", "--dns-search", "a.example", "--dns-option", "ndots:3",
              "busybox", "cat", "/etc/resolv.conf").out
    assert out == "search a.example\nnameserver 192.0.2.53\noptions ndots:3\n"  # Docker's order


def test_two_containers_talk_over_the_default_bridge(net):
    net("run", "-d", "--name", "srv", "busybox", *web(8080))
    ip = ip_of(net, "srv")
    out = net("run", "--rm", "busybox", "sh", "-c",
              f"for i in $(seq 100); do wget -qO- http://{ip}:8080/hostname && break; sleep 0.1; done").out
    assert out == cid_of(net, "srv")[:12] + "\n"


def test_outbound_to_a_server_on_the_gateway(net):
    gw = gateway(net)
    srv = Server(gw)
    try:
        out = net("run", "--rm", "busybox", "sh", "-c", f"nc {gw} {srv.port} </dev/null").out
        assert out == "from-test-server\n"
        # the container's own address is the source (no NAT towards the bridge)
        assert srv.peers and srv.peers[0][0].startswith(gw.rsplit(".", 2)[0] + ".") and srv.peers[0][0] != gw
    finally:
        srv.close()


def test_host_loopback_is_not_the_containers(net):
    srv = Server("127.0.0.1")
    try:
        out = net("run", "--rm", "busybox", "sh", "-c",
                  f"nc -w 2 127.0.0.1 {srv.port} </dev/null || echo unreachable").out
        assert out == "unreachable\n" and not srv.peers
    finally:
        srv.close()


def test_network_none_has_only_lo_and_host_is_the_hosts(net):
    assert net("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").out == "lo\n"
    mine = sorted(os.listdir("/sys/class/net"))
    theirs = net("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net").out.split()
    assert set(theirs) <= set(mine) | {"lo"} and "eth0" in theirs


def test_container_network_mode_shares_the_namespace(net):
    net("run", "-d", "--name", "owner", "busybox", "sleep", "300")
    pid = net("inspect", "-f", "{{.State.Pid}}", "owner").out.strip()
    out = net("run", "--rm", "--network", "container:owner", "busybox", "sh", "-c",
              "readlink /proc/self/ns/net; ip -4 -o addr show eth0").out.splitlines()
    assert out[0] == os.readlink(f"/proc/{pid}/ns/net")
    assert ip_of(net, "owner") in out[1]
    r = net("run", "--rm", "--network", "container:owner", "-p", "80:80", "busybox", "true", check=False)
    assert r.rc == 125 and "conflicting options: port publishing and the container type network mode" in r.err
    net("stop", "-t", "0", "owner")
    r = net("run", "--rm", "--network", "container:owner", "busybox", "true", check=False)
    assert r.rc == 125 and f"cannot join network of a non running container: {cid_of(net, 'owner')}" in r.err


def test_unknown_network_and_bad_flags_are_errors(net):
    for args, msg in ((["--network", "nosuch"], "network nosuch not found"),
                      (["--ip", "172.30.0.9"], "user specified IP address is supported on user defined networks only"),
                      (["--network-alias", "x"], "network-scoped alias is supported only for containers in user defined networks"),
                      (["-p", "80:80:80:80"], "invalid port format for --publish: 80:80:80:80"),
                      (["-p", "0:80"], "invalid hostPort '0' in -p 0:80"),
                      (["-p", "8000-8001:80-82"], "invalid ranges specified for container and host Ports"),
                      (["--add-host", "nocolon"], "bad format for add-host"),
                      (["--network", "container:nosuch"], "No such container: nosuch")):
        r = net("run", "--rm", *args, "busybox", "true", check=False)
        assert r.rc == 125 and msg in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    assert net("ps", "-a", "-q").out == ""


# -- published ports -----------------------------------------------------------------------------

@pytest.mark.parametrize("forwarder", ["nat", "proxy", "no-iptables"])
def test_published_tcp_port_from_host_loopback_and_other_containers(net, forwarder):
    if forwarder == "proxy":
        net.env["LAMINA_USERLAND_PROXY"] = "1"
    elif forwarder == "no-iptables":  # chosen automatically: iptables is not on the PATH
        net.env["PATH"] = ":".join(p for p in os.environ["PATH"].split(":") if "sbin" not in p)
        import shutil
        assert shutil.which("iptables", path=net.env["PATH"]) is None
    port = free_port()
    cid = net("run", "-d", "--name", "web", "-p", f"{port}:8080", "busybox",
              *web(8080)).out.strip()
    assert wait_http(port) == cid[:12].encode() + b"\n"
    nat = [r for r in rules() if f"c:{cid[:12]}:" in r]
    monitor = int(net("inspect", "-f", "{{.State.MonitorPid}}", "web").out)
    holders = listeners(port)
    if forwarder == "nat":  # the monitor holds the port (reserved); DNAT moves the packets
        assert len(nat) == 1 and f"--dport {port}" in nat[0] and "DNAT" in nat[0]
        assert holders == {monitor}
    else:  # the proxy, a child of the container's monitor, accepts and relays
        assert nat == []
        proxy = holders - {monitor}
        assert monitor in holders and len(proxy) == 1 and ppid(proxy.pop()) == monitor
    # another container reaches it through the host's address on the bridge
    gw = gateway(net)
    out = net("run", "--rm", "busybox", "wget", "-qO-", f"http://{gw}:{port}/hostname").out
    assert out == cid[:12] + "\n"
    assert net("port", "web").out == f"8080/tcp -> 0.0.0.0:{port}\n"
    assert net("port", "web", "8080").out == f"0.0.0.0:{port}\n"
    r = net("port", "web", "81", check=False)
    assert r.rc == 1 and r.err == "Error: No public port '81' published for web\n"
    net("stop", "-t", "0", "web")
    with pytest.raises(OSError):
        http_get(port)
    assert [r for r in rules() if f"c:{cid[:12]}:" in r] == []


UDP_ECHO_C = r"""
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a; memset(&a, 0, sizeof a);
    a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[1]));
    if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
    for (;;) {
        char buf[2048]; struct sockaddr_in p; socklen_t n = sizeof p;
        ssize_t k = recvfrom(s, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&p, &n);
        if (k < 0) continue;
        memcpy(buf, "echo ", 5);
        sendto(s, buf, k + 5, 0, (struct sockaddr *)&p, n);
    }
}
"""


@pytest.fixture(scope="session")
def udp_echo(tmp_path_factory) -> str:
    """A static UDP echo server (busybox has none), built with the host's gcc."""
    gcc = need_tool("gcc")
    d = tmp_path_factory.mktemp("udp")
    (d / "udpecho.c").write_text(UDP_ECHO_C)
    subprocess.run([gcc, "-static", "-O2", "-o", str(d / "udpecho"), str(d / "udpecho.c")], check=True)
    return str(d / "udpecho")


def test_published_udp_port(net, udp_echo):
    port = free_port(socket.SOCK_DGRAM)
    net("run", "-d", "--name", "echo", "-p", f"127.0.0.1:{port}:5353/udp", "-v", f"{udp_echo}:/udpecho:ro",
        "busybox", "/udpecho", "5353")
    got = []

    def ask():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                got.append(s.recv(100))
                return True
            except OSError:
                return False
    until(ask, timeout=20, what="a UDP answer through the published port")
    assert got[-1] == b"echo ping"
    assert net("port", "echo").out == f"5353/udp -> 127.0.0.1:{port}\n"
    # the reservation: the port is bound on the host while the container runs
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OSError):
            s.bind(("127.0.0.1", port))


def test_publish_all_takes_random_ports_for_exposed_ones(net, busybox_tar):
    net("import", "-c", "EXPOSE 8080", "-c", "EXPOSE 9090/udp", busybox_tar, "exposing")
    net("run", "-d", "--name", "p", "-P", "--expose", "7070", "exposing", *web(8080))
    lines = net("port", "p").out.splitlines()
    ports = {l.split(" -> ")[0]: int(l.rsplit(":", 1)[1]) for l in lines}
    assert sorted(ports) == ["7070/tcp", "8080/tcp", "9090/udp"]
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert all(lo <= p <= hi for p in ports.values())
    assert wait_http(ports["8080/tcp"]) == cid_of(net, "p")[:12].encode() + b"\n"


def test_port_conflicts_are_clear_errors(net):
    port = free_port()
    net("run", "-d", "--name", "first", "-p", f"{port}:80", "busybox", "sleep", "300")
    r = net("run", "--rm", "--name", "second", "-p", f"{port}:80", "busybox", "true", check=False)
    assert r.rc == 125 and f"Bind for 0.0.0.0:{port} failed: port is already allocated" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert net("ps", "-a", "--format", "{{.Names}}").out == "first\n"  # --rm removed the second
    # a host process holding the port
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        hp = holder.getsockname()[1]
        r = net("run", "-d", "-p", f"127.0.0.1:{hp}:80", "busybox", "sleep", "1", check=False)
        assert r.rc == 125 and f"127.0.0.1:{hp}" in r.err and "already" in r.err
    finally:
        holder.close()


def test_ps_and_inspect_show_ports_as_docker(net, docker_side):
    """Side by side with dockerd: the same -p/--expose flags give the same PORTS column and
    the same HostConfig.PortBindings / NetworkSettings.Ports (IPv4 entries: lamina publishes
    no IPv6 port)."""
    p1, p2, d1, d2 = free_port(), free_port(socket.SOCK_DGRAM), free_port(), free_port(socket.SOCK_DGRAM)

    def flags(a, b):
        return ["-p", f"{a}:80", "-p", f"127.0.0.1:{b}:81/udp", "--expose", "8080", "-p", "127.0.0.1::82"]
    net("run", "-d", "--name", "ports", *flags(p1, p2), "busybox", "sleep", "300")
    dname = f"lamina-test-ports-{os.getpid()}"
    try:
        docker_side("run", "-d", "--name", dname, *flags(d1, d2), "busybox:local", "sleep", "300")
        rnd_d = json.loads(docker_side("inspect", "-f", "{{json .NetworkSettings.Ports}}", dname).stdout)["82/tcp"]
        rnd_l = json.loads(net("inspect", "-f", "{{json .NetworkSettings.Ports}}", "ports").out)["82/tcp"]
        ports = {str(d1): str(p1), str(d2): str(p2), rnd_d[0]["HostPort"]: rnd_l[0]["HostPort"]}

        def mine(text: str) -> str:  # docker's output with lamina's host ports
            import re
            return re.sub(r"\b(\d{4,5})\b", lambda m: ports.get(m.group(1), m.group(1)), text)
        dps = docker_side("ps", "--format", "{{.Ports}}", "-f", f"name={dname}").stdout.strip()
        dps = ", ".join(x for x in dps.split(", ") if not x.startswith("[::]"))  # no IPv6 in lamina
        assert net("ps", "--format", "{{.Ports}}").out.strip() == mine(dps)
        for field in ("{{json .HostConfig.PortBindings}}", "{{json .Config.ExposedPorts}}",
                      "{{json .HostConfig.PublishAllPorts}}"):
            assert net("inspect", "-f", field, "ports").out == mine(docker_side("inspect", "-f", field, dname).stdout)
        dports = json.loads(mine(docker_side("inspect", "-f", "{{json .NetworkSettings.Ports}}", dname).stdout))
        dports = {k: v and [b for b in v if b["HostIp"] != "::"] for k, v in dports.items()}
        assert json.loads(net("inspect", "-f", "{{json .NetworkSettings.Ports}}", "ports").out) == dports
        dkeys = set(json.loads(docker_side("inspect", "-f", "{{json .NetworkSettings}}", dname).stdout))
        lkeys = set(json.loads(net("inspect", "-f", "{{json .NetworkSettings}}", "ports").out))
        assert lkeys == dkeys
        dkeys = set(json.loads(docker_side("inspect", "-f", "{{json .NetworkSettings.Networks.bridge}}", dname).stdout))
        lkeys = set(json.loads(net("inspect", "-f", "{{json .NetworkSettings.Networks.bridge}}", "ports").out))
        assert lkeys == dkeys - {"DNSNames", "GwPriority"}  # fields of newer APIs only
    finally:  # also when its run failed (a created container stays in dockerd)
        subprocess.run(["docker", "rm", "-f", dname], capture_output=True)


@pytest.fixture
def docker_side():
    need_tool("docker")
    images = subprocess.run(["docker", "images", "-q", "busybox:local"], capture_output=True, text=True)
    assert images.returncode == 0 and images.stdout.strip(), \
        "dockerd with busybox:local is needed (../shared/peers/setup.sh --bases)"

    def run(*args):
        p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (args, p.stderr)
        return p
    return run


# -- user networks -------------------------------------------------------------------------------

def test_user_network_names_aliases_and_dns_forwarding(net):
    nid = net("network", "create", "appnet").out.strip()
    remember(net, net=nid)
    net("run", "-d", "--name", "db", "--network", "appnet", "--network-alias", "database",
        "busybox", *web(80))
    dbid = cid_of(net, "db")
    gw = gateway(net, "appnet")
    # an upstream server of the test's own, on the default bridge's gateway: forwarded names go there
    upstream_ip = gateway(net)
    fake = _FakeDNS(upstream_ip)
    try:
        out = net("run", "--rm", "--network", "appnet", "--dns", upstream_ip, "busybox", "sh", "-c",
                  "cat /etc/resolv.conf; for n in db database " + dbid[:12] + " outside.test; do "
                  "nslookup $n | tail -n +3 | grep Address; done; "
                  "for i in $(seq 100); do wget -qO- http://database/hostname && break; sleep 0.1; done").out
    finally:
        fake.close()
    lines = out.splitlines()
    assert lines[:2] == [f"nameserver {gw}", "options ndots:0"]
    dbip = ip_of(net, "db", "appnet")
    assert lines[2:5] == [f"Address: {dbip}"] * 3
    assert lines[5] == "Address: 192.0.2.77"  # the fake upstream's answer, relayed
    assert lines[6] == dbid[:12]
    assert fake.asked == ["outside.test"]
    doc = json.loads(net("inspect", "db").out)[0]
    ep = doc["NetworkSettings"]["Networks"]["appnet"]
    assert ep["Aliases"] == ["database", dbid[:12]] and ep["NetworkID"] == nid and ep["Gateway"] == gw
    ins = json.loads(net("network", "inspect", "appnet").out)[0]
    assert ins["Containers"][dbid]["Name"] == "db" and ins["Containers"][dbid]["IPv4Address"].startswith(dbip + "/")
    # a container on the default bridge resolves nothing of appnet and cannot reach it by name
    r = net("run", "--rm", "busybox", "sh", "-c", "ping -c1 -W1 db >/dev/null 2>&1 || echo no", check=False)
    assert r.out == "no\n"


class _FakeDNS:
    """A DNS server of the test on ``addr``:53 (UDP) answering every A query with 192.0.2.77."""

    def __init__(self, addr: str):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 53))
        self.asked: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import struct
        while True:
            try:
                msg, peer = self.sock.recvfrom(512)
            except OSError:
                return
            i, labels = 12, []
            while msg[i]:
                labels.append(msg[i + 1:i + 1 + msg[i]].decode())
                i += 1 + msg[i]
            qtype = struct.unpack_from("!H", msg, i + 1)[0]
            end = i + 5
            name = ".".join(labels)
            if qtype == 1:
                self.asked.append(name)
            ans = [struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("192.0.2.77")] if qtype == 1 else []
            head = struct.pack("!HHHHHH", struct.unpack_from("!H", msg)[0], 0x8180, 1, len(ans), 0, 0)
            self.sock.sendto(head + msg[12:end] + b"".join(ans), peer)

    def close(self):
        self.sock.close()


def test_network_verbs(net):
    nid = net("network", "create", "--subnet", "10.213.7.0/24", "--label", "a=b", "n1").out.strip()
    remember(net, net=nid)
    ls = net("network", "ls").out.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [l.split()[1] for l in ls[1:]] == ["bridge", "host", "n1", "none"]
    assert net("network", "ls", "-q", "-f", "name=n1").out == nid[:12] + "\n"
    doc = json.loads(net("network", "inspect", "n1").out)[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.213.7.0/24", "Gateway": "10.213.7.1"}]
    assert doc["Labels"] == {"a": "b"} and doc["Driver"] == "bridge" and doc["Id"] == nid
    bridge = [l for l in links() if l["ifname"] == f"lm-{nid[:12]}"]
    assert bridge and bridge[0]["linkinfo"]["info_kind"] == "bridge"
    r = net("network", "create", "n1", check=False)
    assert r.rc == 1 and "network with name n1 already exists" in r.err  # as docker network create
    r = net("network", "create", "--subnet", "10.213.7.0/25", "n2", check=False)
    assert r.rc == 1 and "Pool overlaps with other one on this address space" in r.err
    r = net("network", "create", "bridge", check=False)
    assert r.rc == 1 and "operation is not permitted on predefined bridge network" in r.err
    r = net("network", "rm", "bridge", "nosuch", check=False)
    assert r.rc == 1 and "bridge is a pre-defined network and cannot be removed" in r.err \
        and "network nosuch not found" in r.err
    # --ip on a user subnet, connect/disconnect of a running container
    net("run", "-d", "--name", "x", "--network", "n1", "--ip", "10.213.7.50", "busybox", "sleep", "300")
    assert ip_of(net, "x", "n1") == "10.213.7.50"
    r = net("run", "--rm", "--network", "n1", "--ip", "10.213.7.50", "busybox", "true", check=False)
    assert r.rc == 125 and "Address already in use" in r.err
    net("network", "connect", "bridge", "x")
    out = net("exec", "x", "ip", "-4", "-o", "addr").out
    bip = ip_of(net, "x", "bridge")
    assert "10.213.7.50/24" in out and f"{bip}/" in out
    r = net("network", "rm", "n1", check=False)
    assert r.rc == 1 and "has active endpoints" in r.err
    net("network", "disconnect", "bridge", "x")
    assert bip not in net("exec", "x", "ip", "-4", "-o", "addr").out
    assert "bridge" not in json.loads(net("inspect", "x").out)[0]["NetworkSettings"]["Networks"]
    remember(net, cid=cid_of(net, "x"))
    net("rm", "-f", "x")
    assert net("network", "rm", "n1").out == "n1\n"
    assert not [l for l in links() if l["ifname"] == f"lm-{nid[:12]}"]
    nid2 = net("network", "create", "n3").out.strip()
    remember(net, net=nid2)
    assert net("network", "prune", "-f").out == "Deleted Networks:\nn3\n"
    assert net("network", "ls", "-q", "-f", "type=custom").out == ""


# -- crashes -------------------------------------------------------------------------------------

def test_kill_9_of_the_monitor_leaves_nothing_behind(net):
    nid = net("network", "create", "crashnet").out.strip()
    remember(net, net=nid)
    port = free_port()
    ids = []
    for name, network, env in (("k1", "bridge", {}), ("k2", "crashnet", {"LAMINA_USERLAND_PROXY": "1"})):
        net.env.update(env)
        ids.append(net("run", "-d", "--name", name, "--network", network, "-p", f"{port + len(ids)}:80",
                       "busybox", *web(80)).out.strip())
        net.env.pop("LAMINA_USERLAND_PROXY", None)
    for cid in ids:
        remember(net, cid=cid)
    assert traces(net.root, ids, [nid])  # they are there while the containers run
    monitors = [int(net("inspect", "-f", "{{.State.MonitorPid}}", n).out) for n in ("k1", "k2")]
    for m in monitors:
        os.kill(m, signal.SIGKILL)
    # a later lamina command notices and sweeps: lease, rules, DNS entry; the kernel took the rest
    until(lambda: all(state(net, n) == "exited" for n in ("k1", "k2")), what="ps to see the dead monitors")
    until(lambda: not traces(net.root, ids, []), timeout=20, what="the dead containers' traces to go")
    state_dir = os.path.join(net.root, "networks", nid)
    assert os.listdir(os.path.join(state_dir, "dns")) == []  # k2's DNS entry
    until(lambda: not os.listdir(os.path.join(state_dir, "leases")), what="crashnet's lease to be swept")
    assert not [r for r in rules() if any(f"c:{c[:12]}:" in r for c in ids)]
    for n in ("k1", "k2"):
        doc = json.loads(net("inspect", n).out)[0]
        assert doc["NetworkSettings"]["IPAddress"] == "" and doc["NetworkSettings"]["Ports"] == {}
    # the ports are free again and the containers start again
    net("start", "k1")
    assert wait_http(port) == ids[0][:12].encode() + b"\n"


def test_build_run_steps_keep_the_host_network_unless_told(net, tmp_path):
    from conftest import mkctx
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN ls /sys/class/net | tr '\\n' ' ' > /ifaces; ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}' > /addr
        """)
    net("build", "-q", "-t", "hostnet", str(ctx))
    host_ifaces = net("run", "--rm", "hostnet", "cat", "/ifaces").out.split()
    assert "lamina0" in host_ifaces and "docker0" in host_ifaces  # the host's own interfaces
    net("build", "-q", "--no-cache", "--network", "bridge", "-t", "bridged", str(ctx))
    assert net("run", "--rm", "bridged", "cat", "/ifaces").out.split() == ["eth0", "lo"]
    subnet = net("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "bridge").out.strip()
    import ipaddress
    addr = net("run", "--rm", "bridged", "cat", "/addr").out.strip()
    assert ipaddress.ip_interface(addr).network == ipaddress.ip_network(subnet)
    r = net("build", "-q", "--no-cache", "--network", "nosuch", str(ctx), check=False)
    assert r.rc != 0 and "network nosuch not found" in r.err


def test_networks_are_isolated_and_internal_ones_reach_nothing(net):
    ids = [net("network", "create", n, *extra).out.strip() for n, extra in
           (("n1", []), ("n2", []), ("inside", ["--internal"]))]
    for i in ids:
        remember(net, net=i)
    net("run", "-d", "--name", "b", "--network", "n2", "busybox", *web(80))
    bip = ip_of(net, "b", "n2")
    # (busybox wget -T crashes with IPv6 off, as it does in Docker's containers: timeout(1) instead)
    wait = f"for i in $(seq 50); do timeout 2 wget -qO- http://{bip}/hostname && exit; sleep 0.1; done; echo unreachable"
    assert net("run", "--rm", "--network", "n2", "busybox", "sh", "-c", wait).out == cid_of(net, "b")[:12] + "\n"
    probe = f"timeout 3 wget -qO- http://{bip}/hostname || echo unreachable"
    assert net("run", "--rm", "--network", "n1", "busybox", "sh", "-c", probe).out == "unreachable\n"
    assert net("run", "--rm", "--network", "inside", "busybox", "sh", "-c", probe).out == "unreachable\n"
    assert net("run", "--rm", "busybox", "sh", "-c", probe).out == "unreachable\n"
    # a container on two networks talks on both (same bridge traffic is allowed)
    net("network", "connect", "n1", "b")
    aip = ip_of(net, "b", "n1")
    assert net("run", "--rm", "--network", "n1", "busybox", "timeout", "5", "wget", "-qO-",
               f"http://{aip}/hostname").out == cid_of(net, "b")[:12] + "\n"
    assert [r for r in rules() if f"net:{ids[2][:12]}" in r and "MASQUERADE" in r] == []


def test_a_removed_network_is_an_error_at_start_and_a_new_one_of_that_name_is_not_it(net):
    nid = net("network", "create", "gone").out.strip()
    remember(net, net=nid)
    net("create", "--name", "c", "--network", "gone", "busybox", "true")
    net("network", "rm", "gone")
    nid2 = net("network", "create", "gone").out.strip()
    remember(net, net=nid2)
    r = net("start", "c", check=False)
    assert r.rc != 0 and "network gone not found" in r.err
