"""The /etc/hosts and /etc/resolv.conf a container on a bridge network sees (Docker's).

hosts: the localhost and IPv6 lines Docker writes, then ``--add-host`` entries, then the
container's own address with its hostname (``<ip>\\t<host>.<domain> <host>`` with a
domain name).

resolv.conf on the default bridge: the host's, with loopback nameservers dropped (they
mean nothing in another namespace) and Google's public servers when none is left, as
Docker does; ``--dns``, ``--dns-search`` and ``--dns-option`` replace the nameserver,
search and options lines. On a user network: the network's embedded DNS server (its
gateway address) as the only nameserver, ``options ndots:0`` as Docker writes, and the
search and options lines as above; ``--dns`` servers become the embedded server's upstreams.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

HOSTS_HEADER = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def hosts(*, ip: str, hostname: str, domainname: str = "", extra: Iterable[tuple[str, str]] = ()) -> str:
    out = [HOSTS_HEADER]
    for name, addr in extra:
        out.append(f"{addr}\t{name}\n")
    if ip:
        if domainname:
            out.append(f"{ip}\t{hostname}.{domainname} {hostname}\n")
        else:
            out.append(f"{ip}\t{hostname}\n")
    return "".join(out)


def host_resolv() -> tuple[list[str], list[str], list[str], list[str]]:
    """(nameservers, search, options, other lines) of the host's /etc/resolv.conf."""
    ns, search, options, other = [], [], [], []
    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        w = line.split()
        if not w or w[0].startswith(("#", ";")):
            continue
        if w[0] == "nameserver" and len(w) > 1:
            ns.append(w[1])
        elif w[0] in ("search", "domain"):
            search = w[1:]
        elif w[0] == "options":
            options += w[1:]
        else:
            other.append(line)
    return ns, search, options, other


def upstreams(dns: list[str]) -> list[str]:
    """The nameservers a container's queries go to outside its networks: ``--dns`` if given,
    else the host's without loopback ones (Google's when none is left)."""
    if dns:
        return list(dns)
    ns = [n for n in host_resolv()[0] if not n.startswith("127.") and n != "::1"]
    return ns or ["8.8.8.8", "8.8.4.4"]


def resolv_conf(*, nameservers: list[str], search: list[str] | None, options: list[str] | None,
                embedded: bool) -> str:
    _, hsearch, hoptions, _ = host_resolv()
    search = hsearch if search is None else search
    options = hoptions if options is None else options
    if embedded and "ndots:0" not in options and not any(o.startswith("ndots:") for o in options):
        options = [*options, "ndots:0"]
    out = []
    if search:
        out.append("search " + " ".join(search))
    out.extend(f"nameserver {n}" for n in nameservers)
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"
