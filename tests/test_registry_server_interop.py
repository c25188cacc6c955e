"""Real clients against ``lamina registry serve`` on a free loopback port: docker (dockerd
treats localhost as an insecure registry), podman, skopeo, containerd's ``ctr`` (plain
HTTP, its own containerd started here), the oras Python client; then the same clients
logging in, to htpasswd (Basic) and to the built-in token issuer (Bearer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import need_tool
from registry_server_util import Registry, digest


def run(*args, check=True, env=None, input=None, timeout=300) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), capture_output=True, env={**os.environ, **(env or {})}, input=input,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr.decode(errors='replace')}"
                             f"\n{p.stdout.decode(errors='replace')}")
    return p


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    r = Registry(str(tmp_path_factory.mktemp("interop") / "store"), "--log-level", "warn")
    yield r
    r.stop()


@pytest.fixture(scope="module")
def pushed(reg, busybox_tar):
    """busybox imported into dockerd and pushed with ``docker push``."""
    need_tool("docker")
    ref = f"localhost:{reg.port}/interop/busybox:1"
    run("docker", "import", "-c", 'CMD ["sh"]', busybox_tar, ref)
    try:
        out = run("docker", "push", ref).stdout.decode()
        assert "digest: sha256:" in out
        yield ref, out.split("digest: ")[1].split()[0]
    finally:
        run("docker", "rmi", "-f", ref, check=False)


def test_docker_push_pull(reg, pushed):
    ref, dg = pushed
    m = reg.request("GET", "/v2/interop/busybox/manifests/1")
    assert m.status == 200 and digest(m.body) == dg
    assert m.h("content-type") == "application/vnd.docker.distribution.manifest.v2+json"
    run("docker", "rmi", "-f", ref)
    try:
        run("docker", "pull", ref)
        out = run("docker", "run", "--rm", ref, "busybox", "echo", "pulled-ok").stdout
        assert out == b"pulled-ok\n"
        # a second repository: docker mounts the layer instead of uploading it
        ref2 = f"localhost:{reg.port}/interop/other:2"
        run("docker", "tag", ref, ref2)
        out = run("docker", "push", ref2).stdout.decode()
        assert "Mounted from interop/busybox" in out
        run("docker", "rmi", ref2)
    finally:
        run("docker", "rmi", "-f", ref, check=False)


def test_skopeo(reg, pushed, tmp_path):
    need_tool("skopeo")
    ref, dg = pushed
    src = f"docker://localhost:{reg.port}/interop/busybox:1"
    out = json.loads(run("skopeo", "inspect", "--tls-verify=false", src).stdout)
    assert out["Digest"] == dg
    tags = json.loads(run("skopeo", "list-tags", "--tls-verify=false",
                          f"docker://localhost:{reg.port}/interop/busybox").stdout)
    assert "1" in tags["Tags"]
    oci = f"oci:{tmp_path}/layout:bb"
    run("skopeo", "copy", "--src-tls-verify=false", src, oci)
    # back as an OCI image (skopeo converts: a new manifest digest, the same layer)
    run("skopeo", "copy", "--dest-tls-verify=false", "--format", "oci", oci,
        f"docker://localhost:{reg.port}/interop/skopeo:oci")
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false",
                         f"docker://localhost:{reg.port}/interop/skopeo:oci").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    run("skopeo", "delete", "--tls-verify=false", f"docker://localhost:{reg.port}/interop/skopeo:oci")
    assert reg.request("GET", "/v2/interop/skopeo/manifests/oci").status == 404


def test_podman(reg, pushed):
    need_tool("podman")
    ref, dg = pushed
    mine = f"localhost:{reg.port}/interop/podman:1"
    run("podman", "pull", "--tls-verify=false", ref)
    try:
        run("podman", "tag", ref, mine)
        run("podman", "push", "--tls-verify=false", mine)
        r = reg.request("GET", "/v2/interop/podman/manifests/1")
        assert r.status == 200
    finally:
        run("podman", "rmi", "-f", ref, mine, check=False)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    need_tool("containerd")
    need_tool("ctr")
    d = tmp_path_factory.mktemp("ctd")
    sock = str(d / "c.sock")
    (d / "cfg.toml").write_text(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                                f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    p = subprocess.Popen(["containerd", "--config", str(d / "cfg.toml")], stdout=subprocess.DEVNULL,
                         stderr=open(d / "log", "wb"))
    deadline = time.monotonic() + 60
    while run("ctr", "-a", sock, "version", check=False).returncode != 0:
        assert p.poll() is None and time.monotonic() < deadline, (d / "log").read_text()
        time.sleep(0.05)
    yield sock
    p.terminate()
    p.wait(timeout=30)
    subprocess.run(["umount", "-R", str(d / "state")], capture_output=True)


def test_ctr(reg, pushed, containerd):
    ref, dg = pushed
    ctr = ["ctr", "-a", containerd, "-n", "lamina-test"]
    run(*ctr, "images", "pull", "--plain-http", "--snapshotter", "native", ref)
    out = run(*ctr, "images", "ls").stdout.decode()
    assert ref in out and dg in out
    dst = f"localhost:{reg.port}/interop/ctr:1"
    run(*ctr, "images", "tag", ref, dst)
    run(*ctr, "images", "push", "--plain-http", dst)
    r = reg.request("GET", "/v2/interop/ctr/manifests/1")
    assert r.status == 200 and digest(r.body) == dg


def test_oras(reg, tmp_path):
    import oras.client

    (tmp_path / "hello.txt").write_text("hello from oras\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(3 << 20))
    c = oras.client.OrasClient(hostname=f"localhost:{reg.port}", insecure=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = c.push(target=f"localhost:{reg.port}/interop/oras:v1", files=["hello.txt", "big.bin"])
        assert res.status_code == 201
        out = tmp_path / "out"
        files = c.pull(target=f"localhost:{reg.port}/interop/oras:v1", outdir=str(out))
    finally:
        os.chdir(cwd)
    assert (out / "hello.txt").read_text() == "hello from oras\n"
    assert (out / "big.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()
    assert sorted(os.path.basename(f) for f in files) == ["big.bin", "hello.txt"]
    assert c.get_tags(f"localhost:{reg.port}/interop/oras") == ["v1"]


# -- logins -----------------------------------------------------------------------------------

def htpasswd_file(tmp_path, lam_env, users: dict[str, str]) -> str:
    path = str(tmp_path / "htpasswd")
    for u, pw in users.items():
        run(sys.executable, "-m", "lamina", "registry", "htpasswd", "--cost", "5",
            "-f", path, u, input=pw.encode(), env=lam_env)
    return path


@pytest.fixture(scope="module", params=["htpasswd", "token"])
def authreg(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"auth-{request.param}")
    from registry_server_util import REPO
    env = {"PYTHONPATH": REPO}
    pw = htpasswd_file(d, env, {"alice": "s3cret-alice", "reader": "s3cret-reader"})
    acl = d / "acl"
    acl.write_text("reader * pull\n* * *\n")
    r = Registry(str(d / "store"), "--htpasswd", pw, "--auth", request.param, "--acl", str(acl),
                 "--log-level", "warn")
    yield request.param, r, d
    r.stop()


def test_docker_login(authreg, busybox_tar):
    need_tool("docker")
    mode, reg, d = authreg
    cfg = {"DOCKER_CONFIG": str(d / f"docker-{mode}")}
    host = f"localhost:{reg.port}"
    bad = run("docker", "login", "-u", "alice", "--password-stdin", host, input=b"wrong", env=cfg, check=False)
    assert bad.returncode != 0 and b"unauthorized" in bad.stderr.lower()
    run("docker", "login", "-u", "alice", "--password-stdin", host, input=b"s3cret-alice", env=cfg)
    ref = f"{host}/auth/docker:1"
    run("docker", "import", busybox_tar, ref)
    try:
        run("docker", "push", ref, env=cfg)
        run("docker", "rmi", ref)
        run("docker", "pull", ref, env=cfg)
        # a user the ACL lets pull only cannot push
        run("docker", "login", "-u", "reader", "--password-stdin", host, input=b"s3cret-reader", env=cfg)
        run("docker", "pull", ref, env=cfg)
        run("docker", "tag", ref, f"{host}/auth/denied:1")
        p = run("docker", "push", f"{host}/auth/denied:1", env=cfg, check=False)
        assert p.returncode != 0 and b"denied" in (p.stderr + p.stdout).lower()
        run("docker", "logout", host, env=cfg)
        p = run("docker", "pull", ref, env=cfg, check=False)
        assert p.returncode != 0
    finally:
        run("docker", "rmi", "-f", ref, f"{host}/auth/denied:1", check=False)


def test_podman_and_skopeo_login(authreg, tmp_path):
    need_tool("podman")
    need_tool("skopeo")
    mode, reg, d = authreg
    host = f"localhost:{reg.port}"
    authfile = str(tmp_path / "auth.json")
    p = run("podman", "login", "--tls-verify=false", "--authfile", authfile, "-u", "alice",
            "--password-stdin", host, input=b"nope", check=False)
    assert p.returncode != 0
    run("podman", "login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "--password-stdin",
        host, input=b"s3cret-alice")
    dg = reg_push_with_skopeo(reg, authfile, tmp_path, "auth/skopeo:1")
    skauth = str(tmp_path / "sk.json")
    run("skopeo", "login", "--tls-verify=false", "--authfile", skauth, "-u", "reader", "--password-stdin",
        host, input=b"s3cret-reader")
    out = json.loads(run("skopeo", "inspect", "--tls-verify=false", "--authfile", skauth,
                         f"docker://{host}/auth/skopeo:1").stdout)
    assert out["Digest"] == dg
    p = run("skopeo", "delete", "--tls-verify=false", "--authfile", skauth, f"docker://{host}/auth/skopeo:1",
            check=False)
    assert p.returncode != 0 and b"denied" in p.stderr.lower()
    p = run("skopeo", "inspect", "--tls-verify=false", f"docker://{host}/auth/skopeo:1", check=False)
    assert p.returncode != 0 and (b"unauthorized" in p.stderr.lower() or b"authentication required" in p.stderr.lower())


def reg_push_with_skopeo(reg, authfile, tmp_path, repo_tag) -> str:
    """Push a small OCI image (made here as an OCI layout) with skopeo; returns the digest of
    the manifest skopeo pushed (it may rewrite the layout's manifest)."""
    import hashlib
    import io
    import tarfile

    lay = tmp_path / "layout"
    (lay / "blobs" / "sha256").mkdir(parents=True)

    def put(b: bytes) -> str:
        h = hashlib.sha256(b).hexdigest()
        (lay / "blobs" / "sha256" / h).write_bytes(b)
        return "sha256:" + h
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("hello")
        data = os.urandom(64)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    layer = buf.getvalue()
    ld = put(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    cd = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                 "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld,
                                  "size": len(layer)}]}).encode()
    md = put(man)
    (lay / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man),
         "annotations": {"org.opencontainers.image.ref.name": "x"}}]}))
    dfile = tmp_path / "pushed.digest"
    run("skopeo", "copy", "--dest-tls-verify=false", "--authfile", authfile, "--digestfile", str(dfile),
        f"oci:{lay}:x", f"docker://localhost:{reg.port}/{repo_tag}")
    return dfile.read_text().strip()


def test_raw_auth_answers(authreg):
    mode, reg, d = authreg
    r = reg.request("GET", "/v2/")
    assert r.status == 401 and r.codes() == ["UNAUTHORIZED"]
    ch = r.h("www-authenticate")
    if mode == "htpasswd":
        assert ch.startswith("Basic realm=")
        import base64
        auth = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret-alice").decode()}
        assert reg.request("GET", "/v2/", headers=auth).status == 200
        bad = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
        assert reg.request("GET", "/v2/", headers=bad).status == 401
        rd = {"Authorization": "Basic " + base64.b64encode(b"reader:s3cret-reader").decode()}
        r = reg.request("POST", "/v2/auth/raw/blobs/uploads/", headers=rd)
        assert r.status == 403 and r.codes() == ["DENIED"]
        return
    assert ch == f'Bearer realm="http://127.0.0.1:{reg.port}/token",service="lamina-registry"'
    r = reg.request("GET", "/v2/auth/raw/tags/list")
    assert r.status == 401
    assert 'scope="repository:auth/raw:pull"' in r.h("www-authenticate")
    import base64
    basic = {"Authorization": "Basic " + base64.b64encode(b"reader:s3cret-reader").decode()}
    t = reg.request("GET", "/token?service=lamina-registry&scope=repository:auth/raw:pull,push", headers=basic)
    assert t.status == 200, t
    tok = t.json()["token"]
    claims = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))
    assert claims["access"] == [{"type": "repository", "name": "auth/raw", "actions": ["pull"]}]
    t2 = reg.request("GET", "/token?service=lamina-registry&scope=repository:auth/raw:pull", headers={
        "Authorization": "Basic " + base64.b64encode(b"alice:s3cret-alice").decode()})
    claims = json.loads(base64.urlsafe_b64decode(t2.json()["token"].split(".")[1] + "=="))
    assert claims["access"] == [{"type": "repository", "name": "auth/raw", "actions": ["pull", "push"]}]
    bearer = {"Authorization": f"Bearer {tok}"}
    assert reg.request("GET", "/v2/", headers=bearer).status == 200
    assert reg.request("GET", "/v2/auth/raw/tags/list", headers=bearer).status == 404   # allowed, unknown
    r = reg.request("POST", "/v2/auth/raw/blobs/uploads/", headers=bearer)
    assert r.status == 403 and r.codes() == ["DENIED"]
    forged = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
    r = reg.request("GET", "/v2/", headers={"Authorization": f"Bearer {forged}"})
    assert r.status == 401 and 'error="invalid_token"' in r.h("www-authenticate")
    t = reg.request("GET", "/token?service=lamina-registry", headers={
        "Authorization": "Basic " + base64.b64encode(b"reader:wrong").decode()})
    assert t.status == 401
    # containerd's OAuth2 form: password grant, then refresh
    form = b"grant_type=password&username=alice&password=s3cret-alice&service=lamina-registry&" \
           b"scope=repository%3Aauth%2Fraw%3Apush&client_id=test&access_type=offline"
    t = reg.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert t.status == 200, t
    doc = t.json()
    assert doc["access_token"] and doc["refresh_token"]
    pushtok = {"Authorization": f"Bearer {doc['access_token']}"}
    # alice's token holds push (and pull) but not delete: she must come back for it
    r = reg.request("POST", "/v2/auth/raw/blobs/uploads/", headers=pushtok)
    assert r.status == 202, r
    r = reg.request("DELETE", f"/v2/auth/raw/blobs/{digest(b'x')}", headers=pushtok)
    assert r.status == 401 and 'error="insufficient_scope"' in r.h("www-authenticate")
    assert 'scope="repository:auth/raw:delete"' in r.h("www-authenticate")
    t = reg.request("POST", "/token", f"grant_type=refresh_token&refresh_token={doc['refresh_token']}&"
                    "service=lamina-registry&scope=repository:auth/raw:pull,push".encode())
    assert t.status == 200, t
    r = reg.request("POST", "/v2/auth/raw/blobs/uploads/",
                    headers={"Authorization": f"Bearer {t.json()['access_token']}"})
    assert r.status == 202


def test_ctr_and_oras_with_credentials(authreg, containerd, tmp_path):
    mode, reg, d = authreg
    host = f"localhost:{reg.port}"
    authfile = str(tmp_path / "auth.json")
    run("skopeo", "login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "--password-stdin",
        host, input=b"s3cret-alice")
    dg = reg_push_with_skopeo(reg, authfile, tmp_path, "auth/ctr:1")
    ctr = ["ctr", "-a", containerd, "-n", f"lamina-auth-{mode}"]
    p = run(*ctr, "images", "pull", "--plain-http", "--snapshotter", "native", f"{host}/auth/ctr:1", check=False)
    assert p.returncode != 0
    run(*ctr, "images", "pull", "--plain-http", "--snapshotter", "native", "--user", "reader:s3cret-reader",
        f"{host}/auth/ctr:1")
    assert dg in run(*ctr, "images", "ls").stdout.decode()
    import oras.client
    # oras-py's default backend reads every challenge's realm as a token URL: Basic needs "basic"
    c = oras.client.OrasClient(hostname=host, insecure=True,
                               auth_backend="basic" if mode == "htpasswd" else "token")
    c.login(username="alice", password="s3cret-alice", hostname=host, config_path=str(tmp_path / "oras.json"))
    (tmp_path / "f.txt").write_text("with auth\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert c.push(target=f"{host}/auth/oras:v1", files=["f.txt"]).status_code == 201
    finally:
        os.chdir(cwd)
    assert c.get_tags(f"{host}/auth/oras") == ["v1"]
