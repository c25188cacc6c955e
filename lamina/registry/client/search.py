"""``search``: the Hub's search API where the registry offers it, else its catalog.

``TERM`` is parsed as Docker does: ``localhost:5000/app`` searches the registry
``localhost:5000`` for ``app``; a term without a registry part searches Docker Hub. A
registry without ``/v1/search`` (registry:2, lamina's own server) is searched through
``/v2/_catalog``: every repository whose name contains the term, shown with its registry
(``localhost:5000/me/app``) so the name can be pulled as it is.
"""

from __future__ import annotations

from lamina.registry.client import hosts
from lamina.registry.client.api import Registry
from lamina.values import value


@value
class Result:
    name: str
    description: str = ""
    stars: int = 0
    official: bool = False
    automated: bool = False


def split_term(term: str) -> tuple[str, str]:
    """(registry domain, query) as Docker's ParseSearchIndexInfo splits a search term."""
    first, slash, rest = term.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain = hosts.DOCKER_HUB_DOMAIN if first in ("docker.io", "index.docker.io") else first
        return domain, rest
    return hosts.DOCKER_HUB_DOMAIN, term


def _check_v1_endpoint(reg: Registry) -> None:
    """dockerd's validateEndpoint for a search on a registry other than the Hub: ``/v1/_ping``
    over HTTPS, then over HTTP when the registry is insecure; any answer will do. Raises
    TransportError in dockerd's words when no attempt connects."""
    from lamina.registry.client.transport import TransportError
    host = reg.ep.host
    errors = []
    for scheme in reg.ep.schemes:
        try:
            r = reg.t.request("GET", f"{scheme}://{host}/v1/_ping", limit=1 << 16, retry=False)
        except TransportError as e:
            errors.append(str(e))
            continue
        r.release_conn()
        return
    if len(errors) == 1:
        raise TransportError(
            f"invalid registry endpoint https://{host}/v1/: {errors[0]}. If this private registry supports "
            f"only HTTP or HTTPS with an unknown CA certificate, please add `--insecure-registry {host}` to "
            "the daemon's arguments. In the case of HTTPS, if you have access to the registry's CA "
            "certificate, no need for the flag; simply place the CA certificate at "
            f"/etc/docker/certs.d/{host}/ca.crt")
    raise TransportError(f'invalid registry endpoint "http://{host}/v1/". HTTPS attempt: {errors[0]}. '
                         f"HTTP attempt: {errors[1]}")


def search(term: str, *, limit: int = 25) -> list[Result]:
    domain, query = split_term(term)
    with Registry(domain) as reg:
        if domain != hosts.DOCKER_HUB_DOMAIN:
            _check_v1_endpoint(reg)
        found = reg.search_v1(query, limit)
        if found is not None:
            out = []
            for r in found:
                if not isinstance(r, dict):
                    continue
                out.append(Result(name=str(r.get("name", "")), description=str(r.get("description") or ""),
                                  stars=int(r.get("star_count") or 0), official=bool(r.get("is_official")),
                                  automated=bool(r.get("is_automated"))))
            return out[:limit]
        q = query.lower()
        names = [n for n in reg.catalog() if q in n.lower()]
    return [Result(name=f"{domain}/{n}") for n in sorted(names)[:limit]]
