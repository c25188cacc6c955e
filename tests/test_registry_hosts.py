"""Which registries may use plain HTTP, where docker.io lives, and Docker's credential keys
(pure functions over the environment and files; the network is never touched)."""

from __future__ import annotations

import base64
import json
import os

from lamina.registry.client import credentials, hosts


def test_insecure_is_loopback_and_listed_only(monkeypatch):
    monkeypatch.delenv("LAMINA_INSECURE_REGISTRIES", raising=False)
    for h in ("localhost:5000", "localhost", "127.0.0.1:5000", "127.8.9.10", "[::1]:5000", "reg.localhost:80"):
        assert hosts.is_insecure(h), h
    for h in ("registry-1.docker.io", "10.0.0.1:5000", "myreg.example:5000", "localhost.example.com"):
        assert not hosts.is_insecure(h), h
    monkeypatch.setenv("LAMINA_INSECURE_REGISTRIES", "myreg.example:5000, 10.0.0.0/8,http://plain.example")
    assert hosts.is_insecure("myreg.example:5000") and not hosts.is_insecure("myreg.example:5001")
    assert hosts.is_insecure("10.1.2.3:5000") and not hosts.is_insecure("11.0.0.1")
    assert hosts.is_insecure("plain.example")
    ep = hosts.endpoint("myreg.example:5000")
    assert ep.schemes == ("https", "http") and not ep.verify_tls
    ep = hosts.endpoint("docker.io")
    assert (ep.host, ep.schemes, ep.verify_tls) == ("registry-1.docker.io", ("https",), True)


def test_credentials_in_dockers_format(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials.get("localhost:5000") is None
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpw").decode()},
                     "https://myreg.example:5000/v1/": {"auth": base64.b64encode(b"u:p:with:colons").decode()}},
           "psFormat": "table {{.ID}}"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    c = credentials.get("docker.io")
    assert (c.username, c.password) == ("hubuser", "hubpw")
    c = credentials.get("myreg.example:5000")  # a key written as a URL is found by its host
    assert (c.username, c.password) == ("u", "p:with:colons")
    assert "p:with" not in repr(c)
    where = credentials.store("localhost:5000", credentials.Credential("me", "pw"))
    assert where == str(tmp_path / "config.json")
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["psFormat"] == "table {{.ID}}" and doc["auths"]["localhost:5000"] == {"auth": "bWU6cHc="}
    assert oct(os.stat(tmp_path / "config.json").st_mode & 0o777) == "0o600"
    assert credentials.erase("localhost:5000") and not credentials.erase("localhost:5000")
