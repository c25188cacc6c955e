"""``search`` (the Hub's API where offered, else the catalog) and TLS: per-registry CA and
client certificates from certs.d, against registry:2 on loopback."""

from __future__ import annotations

import os
import uuid

import pytest
from registry_util import DockerRegistry, Front, make_ca


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-search")))
    yield r
    r.stop()


def test_search_a_private_registry_through_its_catalog(lamina, busybox_tar, registry):
    word = f"srch{uuid.uuid4().hex[:6]}"
    for path in (f"team/{word}-api", f"{word}-web", "team/unrelated"):
        lamina("import", busybox_tar, f"{registry.host}/{path}:v1")
        lamina("push", f"{registry.host}/{path}:v1")
    out = lamina("search", f"{registry.host}/{word}").out.splitlines()
    assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    assert [l.split()[0] for l in out[1:]] == [f"{registry.host}/{word}-web", f"{registry.host}/team/{word}-api"]
    assert lamina("search", "--limit", "1", "--format", "{{.Name}}", f"{registry.host}/{word}").out == \
        f"{registry.host}/{word}-web\n"
    r = lamina("search", "--limit", "0", f"{registry.host}/{word}", check=False)
    assert r.rc == 1 and r.err.strip() == "Error: limit 0 is outside the range of [1, 100]"


HUB = [
    {"name": "busybox", "description": "Busybox base image.", "star_count": 3300, "is_official": True,
     "is_automated": False},
    {"name": "someone/busybox-tools", "description": "A very long description that Docker truncates "
     "at forty-five characters", "star_count": 12, "is_official": False, "is_automated": True},
    {"name": "other/busybox", "description": "", "star_count": 1, "is_official": False, "is_automated": False},
]


def test_search_the_hub_api_with_filters(lamina, registry):
    front = Front(registry.port, search_results=HUB)
    try:
        term = f"{front.host}/busybox"
        out = lamina("search", term).out.splitlines()
        assert out[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
        rows = [l.split() for l in out[1:]]
        assert [r[0] for r in rows] == ["busybox", "someone/busybox-tools", "other/busybox"]
        assert out[1].rstrip().endswith("[OK]")
        assert "A very long description that Docker truncate…" in out[2]
        assert "forty-five characters" in lamina("search", "--no-trunc", term).out
        assert lamina("search", "--filter", "stars=10", "--format", "{{.Name}}", term).out.split() == \
            ["busybox", "someone/busybox-tools"]
        assert lamina("search", "-f", "is-official=true", "--format", "{{.Name}} {{.StarCount}}", term).out == \
            "busybox 3300\n"
        r = lamina("search", "-f", "color=red", term, check=False)
        assert r.rc == 1 and r.err.strip() == "Error: invalid filter 'color'"
        assert ("GET", "/v1/search?q=busybox&n=25", None) in front.log
    finally:
        front.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca(str(tmp_path_factory.mktemp("pki")))


def test_tls_verification_uses_the_certs_d_ca(tmp_path, pki, monkeypatch):
    """A registry that is not insecure is verified against the CA in its certs.d directory."""
    from lamina.registry.client import hosts
    from lamina.registry.client.transport import Transport, TransportError
    reg = DockerRegistry(str(tmp_path / "reg"), tls=(pki["server.crt"], pki["server.key"]))
    try:
        certs = tmp_path / "certs.d"
        monkeypatch.setenv("LAMINA_CERTS_D", str(certs))
        ep = hosts.Endpoint(domain=reg.host, host=reg.host, schemes=("https",), verify_tls=True,
                            tls=hosts.tls_files(reg.host))
        with pytest.raises(TransportError) as e:
            Transport(ep, retries=0).request("GET", "/v2/")
        assert str(e.value) == (f'Get "https://{reg.host}/v2/": tls: failed to verify certificate: '
                                "x509: certificate signed by unknown authority")
        (certs / reg.host).mkdir(parents=True)
        os.symlink(pki["ca.crt"], certs / reg.host / "ca.crt")
        ep = hosts.Endpoint(domain=reg.host, host=reg.host, schemes=("https",), verify_tls=True,
                            tls=hosts.tls_files(reg.host))
        assert ep.tls.cas == (str(certs / reg.host / "ca.crt"),)
        assert Transport(ep).request("GET", "/v2/").status == 200
    finally:
        reg.stop()


def test_client_certificate_from_certs_d(lamina, busybox_tar, tmp_path, pki):
    reg = DockerRegistry(str(tmp_path / "reg"), tls=(pki["server.crt"], pki["server.key"]),
                         client_ca=pki["ca.crt"])
    try:
        certs = tmp_path / "certs.d"
        lamina.env["LAMINA_CERTS_D"] = str(certs)
        name = f"{reg.host}/tls/app:v1"
        lamina("import", busybox_tar, name)
        r = lamina("push", name, check=False)
        assert r.rc == 1 and len(r.err.strip().splitlines()) == 1, r.err
        d = certs / reg.host
        d.mkdir(parents=True)
        for n in ("ca.crt", "client.cert", "client.key"):
            os.symlink(pki[n], d / n)
        lamina("push", name)
        lamina("rmi", name)
        lamina("pull", name)
        lamina("run", "--rm", name, "true")
        os.unlink(d / "client.key")
        r = lamina("pull", name, check=False)
        assert r.rc == 1 and r.err.strip() == f"Error: missing key client.key for client certificate {d / 'client.cert'}"
    finally:
        reg.stop()
