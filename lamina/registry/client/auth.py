"""Registry authentication: ``WWW-Authenticate`` challenges -> ``Authorization`` headers.

- No challenge (``GET /v2/`` answered 200): anonymous.
- ``Basic realm=...``: the stored username and password on every request; without them a
  request that needs them fails with Docker's ``no basic auth credentials``.
- ``Bearer realm=...,service=...[,scope=...]``: a token per set of scopes
  (``repository:me/app:pull``, ``repository:me/app:pull,push``, ``registry:catalog:*``),
  fetched from the realm with ``GET ?service=&scope=`` (Basic credentials when logged in, an
  OAuth ``POST`` with the refresh token when the login left an identity token), cached
  until it expires (``expires_in``, default 60 s, less a margin), and fetched afresh when
  the registry answers 401 to it anyway.

Thread-safe: the parallel layer downloads share one Auth.
"""

from __future__ import annotations

import base64
import json
import threading
import time

from lamina.errors import Unauthorized
from lamina.registry.client.credentials import Credential
from lamina.registry.client.transport import Transport, TransportError, body_of

_MIN_EXPIRY = 60
_MARGIN = 10


def parse_challenges(header: str) -> list[tuple[str, dict[str, str]]]:
    """``Bearer realm="x",service="y", Basic realm="z"`` -> [("bearer", {...}), ("basic", {...})].

    RFC 7235 grammar, tolerant: quoted strings with backslash escapes, or tokens.
    """
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(header)
    scheme = None
    params: dict[str, str] = {}

    def skip_ws(j):
        while j < n and header[j] in " \t,":
            j += 1
        return j

    while True:
        i = skip_ws(i)
        if i >= n:
            break
        j = i
        while j < n and header[j] not in " \t,=":
            j += 1
        word = header[i:j]
        k = j
        while k < n and header[k] in " \t":
            k += 1
        if k < n and header[k] == "=" and scheme is not None:
            k += 1
            while k < n and header[k] in " \t":
                k += 1
            if k < n and header[k] == '"':
                k += 1
                val = []
                while k < n and header[k] != '"':
                    if header[k] == "\\" and k + 1 < n:
                        k += 1
                    val.append(header[k])
                    k += 1
                k += 1
                value = "".join(val)
            else:
                s = k
                while k < n and header[k] not in " \t,":
                    k += 1
                value = header[s:k]
            params[word.lower()] = value
            i = k
            continue
        if scheme is not None:
            out.append((scheme, params))
        scheme, params = word.lower(), {}
        i = j
    if scheme is not None:
        out.append((scheme, params))
    return out


class Auth:
    """Authorization for one registry, given what its ``/v2/`` ping answered."""

    def __init__(self, transport: Transport, cred: Credential | None, *, login_key: str) -> None:
        self.t = transport
        self.cred = cred
        self.login_key = login_key
        self.scheme: str | None = None       # None (anonymous), "basic" or "bearer"
        self.params: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def set_challenge(self, header: str | None) -> None:
        """Take the challenge a 401 carried (the strongest scheme offered wins: Bearer)."""
        if not header:
            return
        chs = dict(parse_challenges(header))
        if "bearer" in chs and chs["bearer"].get("realm"):
            self.scheme, self.params = "bearer", chs["bearer"]
        elif "basic" in chs:
            self.scheme, self.params = "basic", chs["basic"]

    def header(self, scopes: tuple[str, ...], *, fresh: bool = False) -> dict[str, str]:
        """Headers authorizing a request that needs ``scopes``."""
        if self.scheme == "basic":
            if not self.cred or not (self.cred.username or self.cred.password):
                raise Unauthorized("no basic auth credentials")
            raw = f"{self.cred.username}:{self.cred.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.scheme == "bearer":
            return {"Authorization": "Bearer " + self.token(scopes, fresh=fresh)}
        return {}

    def token(self, scopes: tuple[str, ...], *, fresh: bool = False) -> str:
        key = tuple(sorted(set(scopes)))
        with self._lock:
            now = time.monotonic()
            hit = self._tokens.get(key)
            if hit and not fresh and hit[1] > now:
                return hit[0]
            tok, ttl = self._fetch(key)
            self._tokens[key] = (tok, now + max(ttl - _MARGIN, 1))
            return tok

    def _fetch(self, scopes: tuple[str, ...]) -> tuple[str, float]:
        from urllib.parse import urlencode
        realm = self.params["realm"]
        service = self.params.get("service", "")
        cred = self.cred
        if cred and cred.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                    "service": service, "client_id": "lamina", "scope": " ".join(scopes)}
            r = self.t.request("POST", realm, body=urlencode(form).encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            q = [("service", service)] if service else []
            q += [("scope", s) for s in scopes]
            headers = {}
            if cred and (cred.username or cred.password):
                raw = f"{cred.username}:{cred.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            sep = "&" if "?" in realm else "?"
            r = self.t.request("GET", realm + (sep + urlencode(q) if q else ""), headers=headers)
        body = body_of(r)
        if r.status in (401, 403):
            from lamina.registry import errcodes
            errs = errcodes.parse(body)
            text = body.decode(errors="replace").strip()[:200]
            detail = errs[0].message if errs else (text or r.reason or str(r.status))
            raise Unauthorized(f"unauthorized: {detail}" if "unauthorized" not in detail.lower()
                               else detail)
        if r.status != 200:
            raise TransportError(f'Get "{realm}": token server answered {r.status} {r.reason}')
        try:
            doc = json.loads(body)
            tok = doc.get("token") or doc.get("access_token")
            ttl = float(doc.get("expires_in") or _MIN_EXPIRY)
        except (ValueError, AttributeError, TypeError):
            tok, ttl = None, 0
        if not tok:
            raise TransportError(f'Get "{realm}": the token server answered no token')
        return tok, max(ttl, _MIN_EXPIRY)
