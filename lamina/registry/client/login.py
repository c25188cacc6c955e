"""``login``: check a username and password against a registry, then store them.

The check is Docker's: ``GET /v2/`` with the credentials (Basic), or a token fetched from
the Bearer realm with them (no scope) and ``GET /v2/`` with that token. Only a registry that
accepted them gets them stored (credentials.store: config.json or the credential helper).
"""

from __future__ import annotations

from lamina.errors import Unauthorized
from lamina.registry.client import credentials
from lamina.registry.client.api import Registry, RegistryError
from lamina.registry.client.credentials import Credential


def login(domain: str, key: str, username: str, password: str) -> str:
    """Verify and store; returns where the secret went (the config path or the helper)."""
    cred = Credential(username=username, password=password)
    with Registry(domain, cred=cred) as reg:
        status = reg.ping()
        if status == 401:
            url = reg.t.url("/v2/")
            try:
                r = reg.t.request("GET", "/v2/", headers=reg.auth.header(()), limit=1 << 16)
            except Unauthorized as e:
                if isinstance(e, RegistryError):
                    raise
                raise Unauthorized(f'Get "{url}": {e}') from None
            if r.status != 200:
                raise Unauthorized(f"login attempt to {url} failed with status: {r.status} {r.reason}")
    return credentials.store(key, cred)
