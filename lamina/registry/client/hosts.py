"""Where a registry lives and how to reach it. No network I/O.

- ``docker.io`` (and ``index.docker.io``) is served by ``registry-1.docker.io``; its
  credentials are stored under ``https://index.docker.io/v1/`` as Docker does.
- Plain HTTP (and TLS without verification) only for registries Docker treats as insecure
  by default, ``localhost``, ``127.0.0.0/8`` and ``::1``, and for those the user lists:
  ``insecure-registries`` of ``/etc/docker/daemon.json`` (hosts or CIDRs, as dockerd reads
  them) and ``$LAMINA_INSECURE_REGISTRIES`` (comma-separated, same forms). An insecure
  registry is tried with HTTPS first, then HTTP, as Docker does.
- TLS material per registry, Docker's layout: ``<dir>/<host[:port]>/*.crt`` are CA
  certificates, ``*.cert`` + ``*.key`` client certificate pairs. The directories searched
  are lamina's own (``$LAMINA_CERTS_D``, else ``/etc/lamina/certs.d``) then Docker's
  (``/etc/docker/certs.d``).
"""

from __future__ import annotations

import os

from lamina.values import value

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_INDEX_HOST = "index.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
"""The key Docker stores Hub credentials under in config.json."""

DOCKER_CERTS_D = "/etc/docker/certs.d"
LAMINA_CERTS_D = "/etc/lamina/certs.d"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"


@value
class TLSFiles:
    """CA files and (cert, key) client pairs found for one registry."""

    cas: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()


@value
class Endpoint:
    """How to reach one registry: ``domain`` as in references, ``host`` to connect to
    (host[:port]), the schemes to try in order, and whether TLS is verified."""

    domain: str
    host: str
    schemes: tuple[str, ...]
    verify_tls: bool
    tls: TLSFiles

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://{self.host}{path}"


def api_host(domain: str) -> str:
    """The host[:port] that serves the distribution API for a reference's domain."""
    if domain in (DOCKER_HUB_DOMAIN, DOCKER_HUB_INDEX_HOST):
        return DOCKER_HUB_API_HOST
    return domain


def auth_key(domain: str) -> str:
    """The config.json key credentials for ``domain`` are stored under (Docker's)."""
    if domain in (DOCKER_HUB_DOMAIN, DOCKER_HUB_INDEX_HOST, DOCKER_HUB_API_HOST):
        return DOCKER_HUB_AUTH_KEY
    return domain


def split_host_port(host: str) -> tuple[str, int | None]:
    """``localhost:5000`` -> ("localhost", 5000); ``[::1]:5000`` -> ("::1", 5000)."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1:]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def _listed_insecure() -> list[str]:
    out: list[str] = []
    try:
        import json
        with open(DOCKER_DAEMON_JSON, "rb") as f:
            doc = json.load(f)
        listed = doc.get("insecure-registries") if isinstance(doc, dict) else None
        if isinstance(listed, list):
            out.extend(x for x in listed if isinstance(x, str))
    except (OSError, ValueError):
        pass
    env = os.environ.get("LAMINA_INSECURE_REGISTRIES", "")
    out.extend(x.strip() for x in env.split(",") if x.strip())
    return out


def _strip_scheme(entry: str) -> str:
    for prefix in ("http://", "https://"):
        if entry.startswith(prefix):
            entry = entry[len(prefix):]
    return entry.rstrip("/")


def is_insecure(host: str) -> bool:
    """True if ``host`` (host[:port]) may be reached over plain HTTP / unverified TLS.

    Docker's rule: the loopback names and addresses, plus listed hosts and CIDRs. A host
    name counts as loopback when it is ``localhost`` (or ends in ``.localhost``) or is an
    IP literal in 127.0.0.0/8 or ::1; names are not resolved (no DNS on this path).
    """
    import ipaddress

    name, _port = split_host_port(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    ip = None
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        pass
    if ip is not None and ip.is_loopback:
        return True
    for entry in _listed_insecure():
        entry = _strip_scheme(entry)
        if entry == host or entry == name:
            return True
        if "/" in entry and ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def certs_dirs() -> list[str]:
    """The certs.d roots searched, lamina's own first."""
    return [os.environ.get("LAMINA_CERTS_D") or LAMINA_CERTS_D, DOCKER_CERTS_D]


def tls_files(host: str) -> TLSFiles:
    """CA certificates and client pairs for ``host`` from every certs.d root (Docker's
    layout). A ``.cert`` without its ``.key`` (or the reverse) is an error, as in Docker."""
    from lamina.errors import InvalidArgument

    cas: list[str] = []
    pairs: list[tuple[str, str]] = []
    for root in certs_dirs():
        d = os.path.join(root, host)
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for n in names:
            p = os.path.join(d, n)
            if n.endswith(".crt"):
                cas.append(p)
            elif n.endswith(".cert"):
                key = p[:-5] + ".key"
                if not os.path.exists(key):
                    raise InvalidArgument(f"missing key {os.path.basename(key)} for client certificate {p}")
                pairs.append((p, key))
            elif n.endswith(".key"):
                if not os.path.exists(p[:-4] + ".cert"):
                    raise InvalidArgument(f"missing client certificate {os.path.basename(p[:-4])}.cert "
                                          f"for key {p}")
    return TLSFiles(tuple(cas), tuple(pairs))


def endpoint(domain: str) -> Endpoint:
    """The Endpoint for a reference's domain (``docker.io`` -> its API host)."""
    host = api_host(domain)
    insecure = is_insecure(host)
    return Endpoint(domain=domain, host=host, schemes=("https", "http") if insecure else ("https",),
                    verify_tls=not insecure, tls=tls_files(host))
