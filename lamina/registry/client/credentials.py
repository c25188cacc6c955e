"""Registry credentials in Docker's own format and place, so one login serves both tools.

The file is ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``::

    {"auths": {"https://index.docker.io/v1/": {"auth": "<base64 user:password>"},
               "localhost:5000": {"auth": "...", "identitytoken": "..."}},
     "credsStore": "pass",                      # every registry through docker-credential-pass
     "credHelpers": {"gcr.io": "gcloud"}}       # per registry, wins over credsStore

Contracts:
- Keys are Docker's: ``https://index.docker.io/v1/`` for Docker Hub, ``host[:port]``
  otherwise; a lookup also accepts keys written as URLs (``https://host/v1/``), as Docker.
- Writes keep every other field of the file (``proxies``, ``psFormat`` ...), are atomic
  (temp file, fsync, rename) and leave the file mode 0600 (its directory 0700 when created).
- With a credential helper configured, the secret goes to the helper
  (``docker-credential-<name> store|get|erase``, Docker's stdin/stdout JSON protocol) and
  the file only keeps an empty ``auths`` entry, as Docker writes it.
- Secrets are never printed or put in exception messages.
"""

from __future__ import annotations

import base64
import json
import os

from lamina.errors import InvalidArgument, Unavailable
from lamina.registry.client.hosts import auth_key
from lamina.values import value


@value
class Credential:
    """A username and secret for one registry. ``identity_token`` (an OAuth refresh token a
    registry handed out at login) replaces the password when set."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never show the secret
        return f"Credential(username={self.username!r})"


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_path() -> str:
    return os.path.join(config_dir(), "config.json")


def _load() -> dict:
    path = config_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON ({e}); fix or remove the file") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path}: not a JSON object; fix or remove the file")
    return doc


def _save(doc: dict) -> None:
    from lamina.content.store import atomic_write
    d = config_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = config_path()
    atomic_write(path, json.dumps(doc, indent="\t").encode(), mode=0o600)
    os.chmod(path, 0o600)


def _hostname(key: str) -> str:
    """Docker's ConvertToHostname: drop a scheme and any path."""
    for prefix in ("http://", "https://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key.split("/", 1)[0]


def _helper_for(doc: dict, key: str) -> str | None:
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        h = helpers.get(key) or helpers.get(_hostname(key))
        if isinstance(h, str) and h:
            return h
    store = doc.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(helper: str, action: str, data: bytes) -> bytes | None:
    """Run ``docker-credential-<helper> <action>``; None when it says the entry is missing."""
    import shutil
    import subprocess
    exe = shutil.which(f"docker-credential-{helper}")
    if not exe:
        raise Unavailable(f"credential helper docker-credential-{helper} (configured in {config_path()}) "
                          "is not installed or not in PATH")
    p = subprocess.run([exe, action], input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        msg = (p.stdout or p.stderr).decode(errors="replace").strip()
        if "credentials not found" in msg.lower():
            return None
        raise Unavailable(f"credential helper docker-credential-{helper} {action} failed: "
                          f"{msg.splitlines()[0] if msg else 'exit status ' + str(p.returncode)}")
    return p.stdout


def get(domain: str) -> Credential | None:
    """The stored credential for a reference's domain (or a login server name), or None."""
    key = auth_key(domain) if "/" not in domain else domain
    doc = _load()
    helper = _helper_for(doc, key)
    if helper:
        out = _run_helper(helper, "get", key.encode())
        if out is None:
            return None
        try:
            r = json.loads(out)
            user, secret = r.get("Username", ""), r.get("Secret", "")
        except (ValueError, AttributeError):
            raise Unavailable(f"credential helper docker-credential-{helper} answered something "
                              "that is not its JSON") from None
        if user == "<token>":
            return Credential(identity_token=secret)
        return Credential(username=user, password=secret)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    entry = auths.get(key)
    if entry is None:
        want = _hostname(key)
        for k, v in auths.items():
            if _hostname(k) == want:
                entry = v
                break
    if not isinstance(entry, dict):
        return None
    user, password = entry.get("username") or "", entry.get("password") or ""
    encoded = entry.get("auth")
    if encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f"{config_path()}: the auth entry for {key} is not base64 "
                                  "of user:password") from None
    token = entry.get("identitytoken") or ""
    if not (user or password or token):
        return None
    return Credential(username=user, password=password, identity_token=token)


def store(domain: str, cred: Credential) -> str:
    """Save ``cred`` for ``domain``; returns where it went (the file or the helper name)."""
    key = auth_key(domain) if "/" not in domain else domain
    doc = _load()
    helper = _helper_for(doc, key)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = doc["auths"] = {}
    if helper:
        user, secret = (("<token>", cred.identity_token) if cred.identity_token
                        else (cred.username, cred.password))
        _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": user,
                                                 "Secret": secret}).encode())
        auths[key] = {}
        _save(doc)
        return f"docker-credential-{helper}"
    entry = {"auth": base64.b64encode(f"{cred.username}:{cred.password}".encode()).decode()}
    if cred.identity_token:
        entry = {"identitytoken": cred.identity_token}
    auths[key] = entry
    _save(doc)
    return config_path()


def erase(domain: str) -> bool:
    """Forget the credential for ``domain``; False if there was none."""
    key = auth_key(domain) if "/" not in domain else domain
    doc = _load()
    auths: dict = doc["auths"] if isinstance(doc.get("auths"), dict) else {}
    found_key = key if key in auths else next((k for k in auths if _hostname(k) == _hostname(key)), None)
    helper = _helper_for(doc, key)
    had = found_key is not None
    if helper:
        if _run_helper(helper, "erase", key.encode()) is not None:
            had = True
    if found_key is not None:
        del auths[found_key]
        _save(doc)
    return had
