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


def search(term: str, *, limit: int = 25) -> list[Result]:
    domain, query = split_term(term)
    with Registry(domain) as reg:
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
