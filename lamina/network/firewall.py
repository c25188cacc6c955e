"""Kernel NAT and forwarding rules for lamina's bridges, through the host's iptables.

Which firewall: the one the host's ``iptables`` command drives (nf_tables or legacy, as
Docker 20.10 does). dockerd on the same host sets the ``FORWARD`` policy to DROP through
that same command, so rules of another kind (a separate nft table) could not let bridge
traffic through; with no ``iptables`` at all, :func:`available` is False and published
ports fall back to the userspace proxy (lamina/network/proxy.py), without outbound NAT.

Rules (every one carries a comment naming who owns it, so a sweep finds a dead owner's)::

    nat    PREROUTING  -m addrtype --dst-type LOCAL -j LAMINA
           OUTPUT      -m addrtype --dst-type LOCAL -j LAMINA      (loopback included)
           POSTROUTING -j LAMINA-POSTROUTING
           LAMINA      -p tcp [-d hostip] --dport P -j DNAT --to-destination IP:port   per container
           LAMINA-POSTROUTING  -s SUBNET ! -o BRIDGE -j MASQUERADE       outbound NAT, per network
                               -s 127.0.0.0/8 -o BRIDGE -j MASQUERADE    published ports from loopback
                               -s SUBNET -o BRIDGE -m conntrack --ctstate DNAT -j MASQUERADE  hairpin
    filter FORWARD     -j LAMINA-FORWARD   (first, so dockerd's DROP policy does not apply)
           LAMINA-FORWARD  -i BRIDGE -o BRIDGE -j ACCEPT
                           -i BRIDGE -o lm-+/lamina+ -j DROP     networks are isolated, as Docker's
                           -i BRIDGE -j ACCEPT
                           -o BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT
           (an --internal network: only -i BRIDGE -o BRIDGE; the rest of its traffic is dropped)

A container's published port needs ``route_localnet`` on its bridge (a DNATed packet from
127.0.0.1 leaves through it); the network sets it when it brings the bridge up.

Changes are applied with one ``iptables-restore --noflush -w`` per batch (4 ms here).
"""

from __future__ import annotations

import os

from lamina.errors import Unavailable

__all__ = ["available", "ensure_base", "network_rules", "port_rules", "apply", "delete",
           "delete_owned", "rules_matching"]

_iptables: str | None | bool = False


def _tool(name: str) -> str | None:
    """``name`` on the PATH (shutil.which without importing shutil: start-up time)."""
    for d in (os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        p = os.path.join(d or ".", name)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    return None


def available() -> bool:
    """Whether kernel NAT rules can be used here: ``iptables`` and ``iptables-restore`` are
    on the PATH (as Docker, lamina looks there). Otherwise published ports go through the
    userspace proxy, and bridges get no outbound NAT."""
    global _iptables
    if _iptables is False:
        _iptables = _tool("iptables-restore") if _tool("iptables") else None
    return bool(_iptables)


def _save(table: str) -> list[str]:
    import subprocess
    try:
        p = subprocess.run([_tool("iptables-save") or "iptables-save", "-t", table],
                           capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise Unavailable(f"iptables-save failed: {e.strerror}") from e
    if p.returncode != 0:
        raise Unavailable(f"iptables-save -t {table} failed: {p.stderr.strip()}")
    return p.stdout.splitlines()


def _restore(script: str) -> tuple[bool, str]:
    if not available():
        return False, "iptables is not installed"
    import subprocess
    try:
        p = subprocess.run([str(_iptables), "--noflush", "-w"], input=script, capture_output=True,
                           text=True, timeout=120)
    except OSError as e:
        return False, e.strerror or str(e)
    return p.returncode == 0, p.stderr.strip()


def _batch(rules: dict[str, list[str]]) -> str:
    out = []
    for table, lines in rules.items():
        if lines:
            out.append(f"*{table}")
            out.extend(lines)
            out.append("COMMIT")
    return "\n".join(out) + "\n"


def apply(rules: dict[str, list[str]], what: str) -> None:
    """Append/insert ``rules`` ({table: ["-A CHAIN ...", ...]}) in one transaction."""
    ok, err = _restore(_batch(rules))
    if not ok:
        raise Unavailable(f"{what}: iptables-restore failed: {err}")


def delete(rules: dict[str, list[str]]) -> None:
    """Delete ``rules`` (given as they were added, with -A); rules already gone are
    tolerated (then the others are deleted one by one)."""
    dels = {t: ["-D " + r.split(" ", 1)[1] for r in lines] for t, lines in rules.items()}
    ok, _ = _restore(_batch(dels))
    if ok:
        return
    for t, _lines in rules.items():  # one at a time: skip those already gone
        for r in dels[t]:
            _restore(_batch({t: [r]}))


def _comment(line: str) -> str:
    """The comment of an iptables-save line (quoted only when it has spaces)."""
    i = line.find("--comment ")
    if i < 0:
        return ""
    rest = line[i + 10:]
    if rest.startswith('"'):
        return rest[1:rest.find('"', 1)]
    return rest.split(" ", 1)[0]


def rules_matching(pred) -> dict[str, list[str]]:
    """Rules whose comment satisfies ``pred(comment)``, as ``-A`` lines per table."""
    out: dict[str, list[str]] = {}
    for table in ("nat", "filter"):
        out[table] = [l for l in _save(table) if l.startswith("-A ") and pred(_comment(l))]
    return out


def delete_owned(pred) -> int:
    """Delete every rule whose comment satisfies ``pred``; returns how many."""
    found = rules_matching(pred)
    n = sum(len(v) for v in found.values())
    if n:
        delete(found)
    return n


_BASE = {
    "nat": [("PREROUTING", "-m addrtype --dst-type LOCAL -j LAMINA"),
            ("OUTPUT", "-m addrtype --dst-type LOCAL -j LAMINA"),
            ("POSTROUTING", "-j LAMINA-POSTROUTING")],
    "filter": [("FORWARD", "-j LAMINA-FORWARD")],
}
_CHAINS = {"nat": ("LAMINA", "LAMINA-POSTROUTING"), "filter": ("LAMINA-FORWARD",)}


def ensure_base() -> None:
    """Create lamina's chains and the jumps to them if missing (idempotent; the caller holds
    the host-wide network lock)."""
    script: dict[str, list[str]] = {}
    for table in ("nat", "filter"):
        lines = _save(table)
        chains = {l[1:].split()[0] for l in lines if l.startswith(":")}
        add = [f":{c} - [0:0]" for c in _CHAINS[table] if c not in chains]
        for chain, spec in _BASE[table]:
            rule = f'-A {chain} {spec} -m comment --comment "lamina"'
            # iptables-save prints matches in its own order; compare loosely
            if not any(l.startswith(f"-A {chain} ") and "lamina" == _comment(l) for l in lines):
                add.append(rule.replace("-A FORWARD", "-I FORWARD 1"))
        script[table] = add
    if any(script.values()):
        apply(script, "installing lamina's firewall chains")


def remove_base_if_unused() -> bool:
    """Remove lamina's chains and jumps when no network rule is left in them (no lamina
    bridge on the host); returns whether they were removed."""
    if not available():
        return True
    saved = {t: _save(t) for t in ("nat", "filter")}
    if any(_comment(l).startswith("lamina ") for lines in saved.values() for l in lines):
        return False
    jumps = {t: [l for l in lines if l.startswith("-A ") and _comment(l) == "lamina"] for t, lines in saved.items()}
    if any(jumps.values()):
        delete(jumps)
    chains = {t: [f"-X {c}" for c in _CHAINS[t] if any(l.startswith(f":{c} ") for l in saved[t])]
              for t in saved}
    if any(chains.values()):
        _restore(_batch(chains))
    return True


def network_rules(bridge: str, subnet: str, tag: str, *, internal: bool = False) -> dict[str, list[str]]:
    """The rules of one bridge network; ``tag`` (``net:<id>``) is their comment. An
    ``internal`` network reaches nothing beyond its bridge and nothing reaches into it."""
    c = f'-m comment --comment "lamina {tag}"'
    if internal:
        return {"nat": [],
                "filter": [f"-A LAMINA-FORWARD -i {bridge} -o {bridge} {c} -j ACCEPT",
                           f"-A LAMINA-FORWARD -i {bridge} ! -o {bridge} {c} -j DROP",
                           f"-A LAMINA-FORWARD -o {bridge} ! -i {bridge} {c} -j DROP"]}
    isolate = [f"-A LAMINA-FORWARD -i {bridge} -o {bridge} {c} -j ACCEPT",
               f"-A LAMINA-FORWARD -i {bridge} -o lm-+ {c} -j DROP",
               f"-A LAMINA-FORWARD -i {bridge} -o lamina+ {c} -j DROP"]
    return {
        "nat": [f"-A LAMINA-POSTROUTING -s {subnet} ! -o {bridge} {c} -j MASQUERADE",
                f"-A LAMINA-POSTROUTING -s 127.0.0.0/8 -o {bridge} {c} -j MASQUERADE",
                f"-A LAMINA-POSTROUTING -s {subnet} -o {bridge} -m conntrack --ctstate DNAT {c} -j MASQUERADE"],
        "filter": [*isolate, f"-A LAMINA-FORWARD -i {bridge} {c} -j ACCEPT",
                   f"-A LAMINA-FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT {c} -j ACCEPT"],
    }


def port_rules(ports, ip: str, tag: str) -> dict[str, list[str]]:
    """DNAT rules for a container's published ports (``PortMapping`` values) to ``ip``."""
    c = f'-m comment --comment "lamina {tag}"'
    nat = []
    for p in ports:
        dst = "" if p.host_ip in ("", "0.0.0.0") else f"-d {p.host_ip}/32 "
        nat.append(f"-A LAMINA {dst}-p {p.proto} -m {p.proto} --dport {p.host_port} {c} "
                   f"-j DNAT --to-destination {ip}:{p.container_port}")
    return {"nat": nat}
