"""Registry GC (offline verb and online, while serving), the import of a registry:2 storage
directory (written by Debian's docker-registry itself), and htpasswd files that
registry:2 reads."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time

from conftest import Lamina, need_tool
from registry_server_util import OCI_INDEX, OCI_MANIFEST, REPO, Registry, add_query, digest, store_files


def gc(root: str, *args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "lamina", "registry", "gc", "--root", root, *args],
                       capture_output=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def blob_files(root: str) -> set[str]:
    return {"sha256:" + os.path.basename(f) for f in store_files(root, "blobs/sha256")}


def test_gc_keeps_what_is_referenced_and_removes_the_rest(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    try:
        keep, keep_data, keep_blobs = reg.push_image("gc/app", "v1", layers=2)
        shared = keep_blobs[1]
        # an untagged manifest sharing a layer with the tagged one
        m = json.loads(keep_data)
        m["layers"] = [m["layers"][0]]
        m["annotations"] = {"v": "2"}
        untagged = json.dumps(m).encode()
        reg.push_manifest("gc/app", digest(untagged), untagged)
        # a referrer of the tagged image, untagged too
        reg.push_blob("gc/app", b"{}")
        sig = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sig",
                          "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(b"{}"),
                                     "size": 2}, "layers": [],
                          "subject": {"mediaType": OCI_MANIFEST, "digest": keep, "size": len(keep_data)}}).encode()
        reg.push_manifest("gc/app", digest(sig), sig)
        orphan = reg.push_blob("gc/app", os.urandom(1000))
        gone_dg, _, gone_blobs = reg.push_image("gc/gone", "x", seed=b"gone")
        assert reg.request("DELETE", f"/v2/gc/gone/manifests/{gone_dg}").status == 202
        # a session in progress and a blob just uploaded, both inside the grace period
        loc = reg.request("POST", "/v2/gc/app/blobs/uploads/").h("location")
        reg.request("PATCH", loc, b"in flight")
        fresh = reg.push_blob("gc/app", b"fresh, unreferenced")

        before = blob_files(root)
        out = gc(root, "--dry-run", "--grace", "0s")
        assert "blob eligible for deletion: " + orphan in out
        assert blob_files(root) == before                       # dry run: nothing removed
        out = gc(root, "--grace", "1h")
        assert blob_files(root) == before                       # everything is young
        out = gc(root, "--grace", "0s")
        after = blob_files(root)
        referenced = {keep, digest(untagged), digest(sig), digest(b"{}"), *keep_blobs}
        assert referenced <= after
        assert orphan not in after and fresh not in after and gone_dg not in after
        assert not set(gone_blobs) & after
        assert reg.request("GET", f"/v2/gc/app/blobs/{orphan}").status == 404   # dangling link removed
        assert not os.path.exists(os.path.join(root, "repositories", "gc/app", "_blobs", "sha256", orphan[7:]))
        # everything kept is still served whole, by the running server
        assert reg.request("GET", "/v2/gc/app/manifests/v1").body == keep_data
        for b in keep_blobs:
            r = reg.request("GET", f"/v2/gc/app/blobs/{b}")
            assert r.status == 200 and digest(r.body) == b
        assert reg.request("GET", loc).status == 204     # the upload session survives
        # untagged manifests go with -m, but not the image's referrer nor shared layers;
        # (a manifest linked within RESCAN_SLACK of the mark's start counts as new: let the
        # clock pass that)
        from lamina.registry.server.gc import RESCAN_SLACK
        linked = os.stat(os.path.join(root, "repositories", "gc/app", "_manifests", "sha256",
                                      digest(untagged)[7:])).st_ctime
        while time.time() < linked + 2 * RESCAN_SLACK:
            time.sleep(0.01)
        gc(root, "--grace", "0s", "--delete-untagged")
        after = blob_files(root)
        assert digest(untagged) not in after
        assert {keep, digest(sig), shared, *keep_blobs} <= after
        assert reg.request("GET", f"/v2/gc/app/manifests/{digest(untagged)}").status == 404
        refs = reg.request("GET", f"/v2/gc/app/referrers/{keep}").json()["manifests"]
        assert [d["digest"] for d in refs] == [digest(sig)]
    finally:
        reg.stop()


def test_online_gc_while_serving(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--gc-interval", "1s", "--gc-grace", "0s", "--log-level", "warn")
    try:
        dg, data, blobs = reg.push_image("online/app", "v1")
        orphan = reg.push_blob("online/app", os.urandom(64))
        deadline = time.monotonic() + 60
        while orphan in blob_files(root):
            assert time.monotonic() < deadline, "online GC did not remove the orphan blob"
            time.sleep(0.05)
        assert reg.request("GET", "/v2/online/app/manifests/v1").body == data
        assert {dg, *blobs} <= blob_files(root)
    finally:
        reg.stop()


def test_gc_refuses_a_directory_that_is_not_a_store(tmp_path):
    lam = Lamina(str(tmp_path / "root"))
    r = lam("registry", "gc", "--root", str(tmp_path), check=False)
    assert r.rc == 125 and "not a lamina registry store" in r.err


# -- registry:2 ---------------------------------------------------------------------------------

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Registry2:
    """Debian's docker-registry (registry:2) on a free loopback port."""

    def __init__(self, d, *, htpasswd: str | None = None) -> None:
        need_tool("docker-registry")
        self.port = free_port()
        self.data = str(d / "data")
        auth = f"auth: {{htpasswd: {{realm: basic-realm, path: {htpasswd}}}}}\n" if htpasswd else ""
        (d / "config.yml").write_text(
            "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.data}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: \"127.0.0.1:{self.port}\"}}\n" + auth)
        self.proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")],
                                     stdout=subprocess.DEVNULL, stderr=open(d / "log", "wb"))
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, (d / "log").read_text()
                time.sleep(0.05)

    def request(self, method, path, body=None, headers=None):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def push_blob(self, name, data):
        dg = digest(data)
        st, h, _ = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert st == 202
        st, _, b = self.request("PUT", add_query(h["location"], digest=dg), data)
        assert st == 201, b
        return dg

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def test_import_registry2_storage(tmp_path):
    r2 = Registry2(tmp_path)
    try:
        images = {}
        for name, tag in (("lib/alpha", "1"), ("lib/alpha", "2"), ("team/beta", "latest")):
            cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": name + tag}).encode()
            layer = os.urandom(3000)
            c, l = r2.push_blob(name, cfg), r2.push_blob(name, layer)
            m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c,
                                       "size": len(cfg)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                        "digest": l, "size": len(layer)}]}, indent=1).encode()
            st, _, b = r2.request("PUT", f"/v2/{name}/manifests/{tag}", m, {"Content-Type": OCI_MANIFEST})
            assert st == 201, b
            images[(name, tag)] = (m, layer, l)
        idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest(images[("lib/alpha", "1")][0]),
             "size": len(images[("lib/alpha", "1")][0])}]}).encode()
        st, _, b = r2.request("PUT", "/v2/lib/alpha/manifests/multi", idx, {"Content-Type": OCI_INDEX})
        assert st == 201, b
    finally:
        r2.stop()
    # damage one layer in the source, and plant a symlink that must not be followed
    m, layer, l = images[("team/beta", "latest")]
    v2 = os.path.join(r2.data, "docker", "registry", "v2")
    with open(os.path.join(v2, "blobs", "sha256", l[7:9], l[7:], "data"), "r+b") as f:
        f.write(b"corrupt")
    secret = tmp_path / "secret"
    secret.write_bytes(b"host file")
    evil = digest(b"host file")[7:]
    os.makedirs(os.path.join(v2, "blobs", "sha256", evil[:2], evil))
    os.symlink(str(secret), os.path.join(v2, "blobs", "sha256", evil[:2], evil, "data"))

    lam = Lamina(str(tmp_path / "lroot"))
    root = str(tmp_path / "store")
    r = lam("registry", "import", "--root", root, r2.data)
    assert "imported" in r.out
    assert f"not sha256:{l[7:]}" in r.err or l in r.err
    assert "sha256:" + evil not in blob_files(root)
    assert f"{evil}/data: Too many levels of symbolic links, skipped" in r.err
    reg = Registry(root, "--log-level", "warn")
    try:
        for (name, tag), (m, layer, ldg) in images.items():
            got = reg.request("GET", f"/v2/{name}/manifests/{tag}")
            assert got.status == 200 and got.body == m
            assert got.h("content-type") == OCI_MANIFEST
            b = reg.request("GET", f"/v2/{name}/blobs/{ldg}")
            if name == "team/beta":
                assert b.status == 404       # the corrupt layer was left out
            else:
                assert b.body == layer
        assert reg.request("GET", "/v2/lib/alpha/manifests/multi").body == idx
        assert reg.request("GET", "/v2/lib/alpha/tags/list").json()["tags"] == ["1", "2", "multi"]
        assert reg.request("GET", "/v2/_catalog").json()["repositories"] == ["lib/alpha", "team/beta"]
    finally:
        reg.stop()
    # importing again changes nothing
    lam("registry", "import", "--root", root, r2.data)


def test_htpasswd_lines_work_in_registry2_and_here(tmp_path):
    lam = Lamina(str(tmp_path / "lroot"))
    path = str(tmp_path / "htpasswd")
    lam("registry", "htpasswd", "--cost", "5", "-f", path, "alice", input=b"first\n")
    lam("registry", "htpasswd", "--cost", "5", "-f", path, "bob", input=b"bobpw\n")
    lam("registry", "htpasswd", "--cost", "5", "-f", path, "alice", input=b"second\n")   # replaces
    lines = open(path).read().splitlines()
    assert [l.split(":")[0] for l in lines] == ["bob", "alice"]
    assert all(l.split(":", 1)[1].startswith("$2y$05$") for l in lines)
    out = lam("registry", "htpasswd", "--cost", "5", "carol", input=b"pw\n").out
    assert out.startswith("carol:$2y$05$") and out.count("\n") == 1
    ok = {"Authorization": "Basic " + base64.b64encode(b"alice:second").decode()}
    old = {"Authorization": "Basic " + base64.b64encode(b"alice:first").decode()}
    r2 = Registry2(tmp_path, htpasswd=path)
    try:
        assert r2.request("GET", "/v2/", headers=ok)[0] == 200
        assert r2.request("GET", "/v2/", headers=old)[0] == 401
    finally:
        r2.stop()
    reg = Registry(str(tmp_path / "s"), "--htpasswd", path, "--log-level", "warn")
    try:
        assert reg.request("GET", "/v2/", headers=ok).status == 200
        assert reg.request("GET", "/v2/", headers=old).status == 401
        # the file is re-read when it changes
        lam("registry", "htpasswd", "--cost", "5", "-f", path, "alice", input=b"third\n")
        new = {"Authorization": "Basic " + base64.b64encode(b"alice:third").decode()}
        assert reg.request("GET", "/v2/", headers=new).status == 200
        assert reg.request("GET", "/v2/", headers=ok).status == 401
    finally:
        reg.stop()


def test_pushes_during_continuous_online_gc_lose_nothing(tmp_path):
    """GC with no grace period running back to back while images are pushed: a manifest
    the registry accepted (201) always keeps every blob it references; a push whose blob
    GC took first is refused (MANIFEST_BLOB_UNKNOWN), never accepted with a hole."""
    root = str(tmp_path / "s")
    reg = Registry(root, "--gc-interval", "100ms", "--gc-grace", "0s", "--log-level", "warn")
    accepted, refused = [], 0
    try:
        # push until GC has visibly run (an orphan blob gone) and at least 40 images: the
        # pushes overlap GC runs
        orphan = reg.push_blob("race/app", os.urandom(100))
        deadline = time.monotonic() + 120
        i = -1
        while i < 39 or orphan in blob_files(root):
            i += 1
            assert time.monotonic() < deadline, "online GC never ran"
            cfg = json.dumps({"n": i}).encode()
            layer = os.urandom(20000)
            c, l = reg.push_blob("race/app", cfg), reg.push_blob("race/app", layer)
            m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c,
                                       "size": len(cfg)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l,
                                        "size": len(layer)}]}).encode()
            r = reg.request("PUT", f"/v2/race/app/manifests/t{i}", m, {"Content-Type": OCI_MANIFEST})
            if r.status == 201:
                accepted.append((f"t{i}", m, c, l))
            else:
                assert r.status == 404 and r.codes() == ["MANIFEST_BLOB_UNKNOWN"], r
                refused += 1
        assert accepted
        for tag, m, c, l in accepted:
            assert reg.request("GET", f"/v2/race/app/manifests/{tag}").body == m
            for b in (c, l):
                got = reg.request("GET", f"/v2/race/app/blobs/{b}")
                assert got.status == 200 and digest(got.body) == b, (tag, b)
    finally:
        reg.stop()
    gc(root, "--grace", "0s")
    have = blob_files(root)
    for _tag, m, c, l in accepted:
        assert {digest(m), c, l} <= have
