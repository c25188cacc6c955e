"""Who may do what: htpasswd (bcrypt) Basic auth, a built-in Bearer token issuer, an ACL.

Modes (``lamina registry serve``):

``none``       every request is allowed (the default without ``--htpasswd``).
``htpasswd``   ``--htpasswd FILE``: requests carry ``Authorization: Basic``; the file holds
               ``user:bcrypt-hash`` lines, the format registry:2 reads (``$2a$``/``$2b$``/
               ``$2y$``); ``lamina registry htpasswd USER`` writes such lines.
``token``      ``--auth token`` (with ``--htpasswd``): the registry is also its own token
               server. A request without a valid token gets ``401`` and
               ``WWW-Authenticate: Bearer realm="<scheme>://<host>/token",service=...,
               scope="repository:<name>:pull,push"``; the client fetches a token from the
               realm (GET with Basic credentials, or the OAuth2 POST form that containerd
               uses) and retries with ``Authorization: Bearer``. Tokens are JWTs signed with
               HMAC-SHA256 by a key kept in the store (``_auth/token.key``, 0600), so every
               instance sharing a store accepts every other instance's tokens.

ACL (``--acl FILE``; without one, every authenticated user may do everything and anonymous
requests nothing): one rule per line, ``USER REPOSITORY-PATTERN ACTIONS``. USER is a name,
``*`` (any authenticated user) or ``anonymous``; the pattern is a shell glob over repository
names (``team/*``); ACTIONS is a comma list of ``pull``, ``push``, ``delete`` or ``*``.
The first line that matches both user and repository decides; ``#`` starts a comment.
``_catalog`` as the pattern grants the catalog (``registry:catalog:*``).

A token grants, for each requested repository, the requested actions the ACL allows, with
pull and push always together (a client that asked for pull before pushing still pushes);
``delete`` only when asked for.

Denials: missing or wrong credentials are ``401 UNAUTHORIZED`` with the challenge; a known
user the ACL refuses gets ``403 DENIED``; a valid token that lacks a scope the ACL would
grant gets ``401`` with ``error="insufficient_scope"`` (the client fetches a new token).

Cost: a bcrypt check (tens of milliseconds) runs once per (user, stored hash, password)
in a worker thread; after that the result is remembered, which is exact because a
password that matched a bcrypt hash always matches it. A token is checked once (HMAC)
and remembered until it expires.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import os
import re
import time
from collections import OrderedDict

from lamina.registry import errcodes
from lamina.registry.server.http import Response

ACTIONS = ("pull", "push", "delete")
_HOST_RE = re.compile(r"[A-Za-z0-9.-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")
TOKEN_TTL = 300
SERVICE = "lamina-registry"


class AuthError(Exception):
    """A configuration file (htpasswd, ACL) is unusable; the message names it and the line."""


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def bcrypt_hash(password: str, *, rounds: int = 10) -> str:
    """A bcrypt hash in htpasswd's ``$2y$`` spelling (what ``htpasswd -B`` writes)."""
    import bcrypt

    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return "$2y$" + h[4:]


def bcrypt_check(password: str, hashed: str) -> bool:
    import bcrypt

    h = hashed.encode()
    if h[:4] in (b"$2y$", b"$2a$"):
        h = b"$2b$" + h[4:]
    try:
        return bcrypt.checkpw(password.encode(), h)
    except ValueError:
        return False


class Htpasswd:
    """A htpasswd file, re-read whenever it changes (checked with one stat per use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self.users: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise AuthError(f"htpasswd file {self.path}: {e.strerror}") from None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._key:
            return
        users = {}
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                user, sep, h = line.partition(":")
                if not sep or not user:
                    raise AuthError(f"{self.path}:{i}: want user:bcrypt-hash")
                if not h.startswith(("$2a$", "$2b$", "$2y$")):
                    raise AuthError(f"{self.path}:{i}: user {user!r} has no bcrypt hash "
                                    "(only bcrypt is supported, as in registry:2)")
                users[user] = h
        self.users = users
        self._key = key


class Acl:
    """Rules ``(user, pattern, actions)``; see the module docstring."""

    def __init__(self, rules: list[tuple[str, str, frozenset]] | None) -> None:
        self.rules = rules

    @classmethod
    def load(cls, path: str | None) -> Acl:
        if path is None:
            return cls(None)
        rules = []
        try:
            f = open(path, encoding="utf-8")
        except OSError as e:
            raise AuthError(f"ACL file {path}: {e.strerror}") from None
        with f:
            for i, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if len(parts) != 3:
                    raise AuthError(f"{path}:{i}: want USER REPOSITORY-PATTERN ACTIONS")
                acts: set[str] = set()
                for a in parts[2].split(","):
                    if a == "*":
                        acts.update(ACTIONS)
                    elif a in ACTIONS:
                        acts.add(a)
                    else:
                        raise AuthError(f"{path}:{i}: unknown action {a!r} (want pull, push, delete or *)")
                rules.append((parts[0], parts[1], frozenset(acts)))
        return cls(rules)

    def allowed(self, user: str | None, name: str) -> frozenset:
        """The actions ``user`` (None: anonymous) may do on repository ``name``."""
        if self.rules is None:
            return frozenset(ACTIONS) if user is not None else frozenset()
        for u, pat, acts in self.rules:
            if u == "anonymous":
                if user is not None:
                    continue
            elif u == "*":
                if user is None:
                    continue
            elif u != user:
                continue
            if fnmatch.fnmatchcase(name, pat):
                return acts
        return frozenset()


def _challenge_scope(scopes) -> str:
    by: dict[tuple[str, str], list[str]] = {}
    for t, n, a in scopes:
        by.setdefault((t, n), [])
        if a not in by[(t, n)]:
            by[(t, n)].append(a)
    return " ".join(f"{t}:{n}:{','.join(acts)}" for (t, n), acts in by.items())


class Auth:
    """Decides requests. ``authorize`` returns None (allowed), a Response (refused) or a
    Future of either (a password still to check with bcrypt)."""

    def __init__(self, *, mode: str, htpasswd: str | None, acl: str | None, store,
                 realm: str = "lamina-registry", service: str = SERVICE, loop=None) -> None:
        self.mode = mode
        self.htpasswd = Htpasswd(htpasswd) if htpasswd else None
        self.acl = Acl.load(acl)
        self.realm = realm
        self.service = service
        self.loop = loop
        self._verified: OrderedDict = OrderedDict()
        self._tokens: OrderedDict = OrderedDict()
        self.key = self._token_key(store) if mode == "token" else b""

    @staticmethod
    def _token_key(store) -> bytes:
        """The store's token signing key, made on first use (by whichever instance is
        first: O_EXCL decides, the others read it)."""
        rel = "_auth/token.key"
        b = store.read(rel, 4096)
        if b:
            return b
        dfd = store.opendir("_auth", create=True)
        try:
            tmp = "key-" + os.urandom(6).hex()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                os.write(fd, os.urandom(32).hex().encode())
            finally:
                os.close(fd)
            try:
                os.link(tmp, "token.key", src_dir_fd=dfd, dst_dir_fd=dfd)
            except FileExistsError:
                pass
            os.unlink(tmp, dir_fd=dfd)
        finally:
            os.close(dfd)
        return store.read(rel, 4096)

    # -- credentials -----------------------------------------------------------------------
    def _basic(self, header: str | None) -> tuple[str, str] | None:
        if not header or not header[:6].lower() == "basic ":
            return None
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, pw = raw.partition(":")
        return (user, pw) if sep else None

    def check_password(self, user: str, password: str):
        """True/False now, or a Future of the bcrypt verdict."""
        if self.htpasswd is None:
            return False
        try:
            self.htpasswd.reload()
        except AuthError:
            return False
        h = self.htpasswd.users.get(user)
        if h is None:
            return False
        key = (user, h, hashlib.sha256(password.encode()).digest())
        if key in self._verified:
            return True

        def done(ok: bool) -> bool:
            if ok:
                self._verified[key] = True
                while len(self._verified) > 4096:
                    self._verified.popitem(last=False)
            return ok

        fut = self.loop.run_in_executor(None, bcrypt_check, password, h)
        out = self.loop.create_future()

        def cb(f):
            if not out.done():
                try:
                    out.set_result(done(f.result()))
                except Exception:
                    out.set_result(False)
        fut.add_done_callback(cb)
        return out

    # -- decisions -------------------------------------------------------------------------
    def _unauthorized(self, req, scopes, *, error: str | None = None, message: str | None = None) -> Response:
        if self.mode == "token":
            host = req.headers.get("host", "")
            if not _HOST_RE.fullmatch(host):
                host = "localhost"
            ch = f'Bearer realm="{req.scheme}://{host}/token",service="{self.service}"'
            if scopes:
                ch += f',scope="{_challenge_scope(scopes)}"'
            if error:
                ch += f',error="{error}"'
        else:
            ch = f'Basic realm="{self.realm}"'
        st, body = errcodes.envelope("UNAUTHORIZED", message=message,
                                     detail=[{"Type": t, "Name": n, "Action": a} for t, n, a in scopes] or None)
        return Response(st, [("Content-Type", "application/json; charset=utf-8"),
                             ("WWW-Authenticate", ch)], body)

    def _denied(self, scopes) -> Response:
        st, body = errcodes.envelope("DENIED",
                                     detail=[{"Type": t, "Name": n, "Action": a} for t, n, a in scopes] or None)
        return Response(st, [("Content-Type", "application/json; charset=utf-8")], body)

    def _acl_allows(self, user: str | None, scopes) -> bool:
        for t, n, a in scopes:
            if t == "registry":
                if user is None and not self._anon_catalog():
                    return False
                if self.acl.rules is not None and "pull" not in self.acl.allowed(user, "_catalog"):
                    return False
                continue
            if a not in self.acl.allowed(user, n):
                return False
        return True

    def _anon_catalog(self) -> bool:
        return self.acl.rules is not None and "pull" in self.acl.allowed(None, "_catalog")

    def authorize(self, req, scopes: list[tuple[str, str, str]]):
        if self.mode == "none":
            return None
        hdr = req.headers.get("authorization")
        if self.mode == "token":
            if hdr and hdr[:7].lower() == "bearer ":
                claims = self.verify_token(hdr[7:].strip())
                if claims is None:
                    return self._unauthorized(req, scopes, error="invalid_token",
                                              message="invalid or expired token")
                user = claims.get("sub") or None
                req.user = user
                granted = {(a.get("type"), a.get("name")): set(a.get("actions") or ())
                           for a in claims.get("access") or () if isinstance(a, dict)}
                for t, n, act in scopes:
                    if act not in granted.get((t, n), ()) and "*" not in granted.get((t, n), ()):
                        if user is None:      # an anonymous token: log in first
                            return self._unauthorized(req, scopes, error="insufficient_scope")
                        if not self._acl_allows(user, [(t, n, act)]):
                            return self._denied(scopes)
                        return self._unauthorized(req, scopes, error="insufficient_scope")
                return None
            if not hdr and scopes and self._acl_allows(None, scopes):
                return None   # anonymous access the ACL grants needs no token
            return self._unauthorized(req, scopes)
        # htpasswd (Basic)
        cred = self._basic(hdr)
        if cred is None:
            if not hdr and scopes and self._acl_allows(None, scopes):
                return None
            return self._unauthorized(req, scopes)
        user, pw = cred
        ok = self.check_password(user, pw)

        def decide(ok: bool):
            if not ok:
                return self._unauthorized(req, scopes, message="invalid username or password")
            req.user = user
            return None if self._acl_allows(user, scopes) else self._denied(scopes)

        if isinstance(ok, bool):
            return decide(ok)
        out = self.loop.create_future()
        ok.add_done_callback(lambda f: out.set_result(decide(f.result())))
        return out

    # -- tokens ----------------------------------------------------------------------------
    def sign(self, claims: dict) -> str:
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(sig)}"

    def verify_token(self, token: str) -> dict | None:
        now = time.time()
        c = self._tokens.get(token)
        if c is not None:
            return c if c.get("exp", 0) > now else None
        try:
            head, body, sig = token.split(".")
            want = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, _unb64url(sig)):
                return None
            if json.loads(_unb64url(head)).get("alg") != "HS256":
                return None
            claims = json.loads(_unb64url(body))
        except (ValueError, binascii.Error, AttributeError):
            return None
        if not isinstance(claims, dict) or claims.get("aud") != self.service:
            return None
        if not (claims.get("nbf", 0) <= now + 30 and claims.get("exp", 0) > now):
            return None
        if claims.get("typ") == "refresh":
            return None
        self._tokens[token] = claims
        while len(self._tokens) > 4096:
            self._tokens.popitem(last=False)
        return claims

    def grant(self, user: str | None, scope_params: list[str]) -> list[dict]:
        """The ``access`` claim for requested scopes: what the ACL allows of each."""
        access = []
        for sp in scope_params:
            for s in sp.split(" "):
                parts = s.split(":")
                if len(parts) < 3:
                    continue
                t, n, acts = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if t == "registry" and n == "catalog":
                    if self._acl_allows(user, [("registry", "catalog", "*")]):
                        access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
                    continue
                if t != "repository":
                    continue
                allowed = self.acl.allowed(user, n)
                want = set(ACTIONS) if "*" in acts else set(acts)
                if want & {"pull", "push"}:
                    # pull and push travel together: clients that got a pull token for a
                    # push's first HEAD and never ask again (oras-py) still push
                    want |= {"pull", "push"}
                got = [a for a in ACTIONS if a in want and a in allowed]
                access.append({"type": t, "name": n, "actions": got})
        return access

    def issue(self, user: str | None, scope_params: list[str], *, refresh: bool = False) -> dict:
        now = int(time.time())
        claims = {"iss": self.service, "sub": user or "", "aud": self.service, "iat": now,
                  "nbf": now - 5, "exp": now + TOKEN_TTL, "jti": os.urandom(12).hex(),
                  "access": self.grant(user, scope_params)}
        tok = self.sign(claims)
        out = {"token": tok, "access_token": tok, "expires_in": TOKEN_TTL,
               "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
        if refresh and user:
            out["refresh_token"] = self.sign({"typ": "refresh", "sub": user, "aud": self.service,
                                              "iat": now, "exp": now + 30 * 86400,
                                              "jti": os.urandom(12).hex()})
        return out

    def refresh_subject(self, token: str) -> str | None:
        try:
            head, body, sig = token.split(".")
            want = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(want, _unb64url(sig)):
                return None
            claims = json.loads(_unb64url(body))
        except (ValueError, binascii.Error):
            return None
        if claims.get("typ") != "refresh" or claims.get("exp", 0) <= time.time():
            return None
        if self.htpasswd is None or claims.get("sub") not in self.htpasswd.users:
            return None
        return claims.get("sub")
