"""Display forms of canonical reference strings, without parsing or validation.

Leaf module, cheap to import (no regex, no dataclasses): listing commands use it to show
the names stored in the metadata DB, which lamina.reference validated when they were
stored. ``lamina.reference`` uses the same rule for ``Reference.familiar_name``.
"""

from __future__ import annotations

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_REPO_PREFIX = "library/"


def familiar(domain: str, path: str) -> str:
    """``docker.io`` + ``library/busybox`` -> ``busybox``; other domains are kept."""
    if domain != DEFAULT_DOMAIN:
        return f"{domain}/{path}" if domain else path
    if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX):]:
        return path[len(OFFICIAL_REPO_PREFIX):]
    return path


def split_canonical(name: str) -> tuple[str, str | None]:
    """A canonical ``domain/path[:tag]`` (no digest) -> (familiar name, tag or None)."""
    slash = name.find("/")
    colon = name.rfind(":")
    tag = None
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    if slash < 0:
        return name, tag
    return familiar(name[:slash], name[slash + 1:]), tag
