"""The registry client against real registries on loopback (Debian's docker-registry, i.e.
distribution's registry:2, started by these tests), with no auth, htpasswd Basic auth, and a
Bearer token gate written for the tests; faults injected by a forwarding front."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
from conftest import tar_bytes
from registry_util import DockerRegistry, Front, free_port, kill_group


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-open")))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-basic")), users={"alice": "s3cret"})
    yield r
    r.stop()


@pytest.fixture
def docker_config(tmp_path, lamina):
    d = tmp_path / "docker-config"
    d.mkdir()
    lamina.env["DOCKER_CONFIG"] = str(d)
    return d


def repo() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def unique_image(lamina, base_tar: str, name: str, *, files: int = 1, size: int = 4096) -> str:
    """Import busybox plus a unique layer on top, tagged ``name``; returns the image ID."""
    base = f"base-{uuid.uuid4().hex[:8]}"
    lamina("import", "-c", 'CMD ["sh"]', base_tar, base)
    ctx = os.path.join(lamina.root + "-ctx-" + uuid.uuid4().hex[:6])
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(f"FROM {base}\nCOPY data /data\n")
    os.makedirs(os.path.join(ctx, "data"))
    for i in range(files):
        with open(os.path.join(ctx, "data", f"f{i}"), "wb") as f:
            f.write(os.urandom(size))
    lamina("build", "-q", "-t", name, ctx)
    return json.loads(lamina("inspect", name).out)[0]["Id"]


def fresh(lamina, tmp_path, name="other"):
    from conftest import Lamina
    o = Lamina(str(tmp_path / name))
    o.env.update({k: v for k, v in lamina.env.items() if k == "DOCKER_CONFIG"})
    return o


def store_files(l) -> dict:
    return l.snapshot_of_store()


# -- round trips -------------------------------------------------------------------------
def test_push_then_pull_into_another_store_runs(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/{repo()}/app:v1"
    iid = unique_image(lamina, busybox_tar, name)
    out = lamina("push", name).out
    assert f"The push refers to repository [{name.rsplit(':', 1)[0]}]" in out
    assert ": Pushed" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("v1: digest: sha256:") and " size: " in last
    pushed = last.split()[2]
    # a second push finds everything there
    again = lamina("push", name).out
    assert "Layer already exists" in again and "Pushed" not in again
    other = fresh(lamina, tmp_path)
    r = other("pull", name)
    lines = r.out.strip().splitlines()
    assert lines[0] == "v1: Pulling from " + name.split("/", 1)[1].rsplit(":", 1)[0]
    assert any(l.endswith(": Pull complete") for l in lines)
    assert f"Digest: {pushed}" in lines
    assert f"Status: Downloaded newer image for {name}" in lines
    assert lines[-1] == name
    assert json.loads(other("inspect", name).out)[0]["Id"] == iid
    assert other("run", "--rm", name, "sh", "-c", "ls /data | wc -l").out.strip() == "1"
    # up to date the second time, and NAME@digest resolves to it
    r2 = other("pull", name).out
    assert f"Status: Image is up to date for {name}" in r2 and "Pull complete" not in r2
    ref_digest = name.rsplit(":", 1)[0] + "@" + pushed
    assert json.loads(other("inspect", ref_digest).out)[0]["Id"] == iid
    assert pushed in other("images", "--digests").out
    assert json.loads(other("inspect", name).out)[0]["RepoDigests"] == [ref_digest]


def test_pull_by_digest_records_repo_digest_without_tag(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/{repo()}/app"
    unique_image(lamina, busybox_tar, f"{name}:v1")
    digest = lamina("push", f"{name}:v1").out.strip().splitlines()[-1].split()[2]
    other = fresh(lamina, tmp_path)
    out = other("pull", f"{name}@{digest}").out
    assert f"Status: Downloaded newer image for {name}@{digest}" in out
    rows = other("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").out.split("\n")
    assert f"{name} <none> {digest}" in rows
    # named by its digest: not dangling, so neither listed as such nor pruned
    assert other("images", "-q", "--filter", "dangling=true").out == ""
    other("image", "prune", "-f")
    other("run", "--rm", f"{name}@{digest}", "true")


def test_pull_without_tag_uses_latest_and_quiet_prints_only_the_name(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/{repo()}/app"
    unique_image(lamina, busybox_tar, f"{name}:latest")
    out = lamina("push", name).out
    assert out.startswith("Using default tag: latest\n")
    other = fresh(lamina, tmp_path)
    out = other("pull", name).out.splitlines()
    assert out[0] == "Using default tag: latest"
    assert out[-1] == f"{name}:latest"
    third = fresh(lamina, tmp_path, "third")
    assert third("pull", "-q", name).out == f"{name}:latest\n"


def test_push_all_tags_and_pull_all_tags(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/{repo()}/app"
    unique_image(lamina, busybox_tar, f"{name}:a")
    lamina("tag", f"{name}:a", f"{name}:b")
    out = lamina("push", "-a", name).out
    assert out.count("The push refers to repository") == 1
    assert "a: digest: sha256:" in out and "b: digest: sha256:" in out
    other = fresh(lamina, tmp_path)
    out = other("pull", "-a", name).out
    assert "a: Pulling from" in out and "b: Pulling from" in out
    assert out.strip().splitlines()[-1] == name
    tags = other("images", "--format", "{{.Tag}}", name).out.split()
    assert sorted(tags) == ["a", "b"]


def test_cross_repository_mount_when_the_blob_came_from_another_repo(lamina, busybox_tar, registry, tmp_path):
    first = f"{registry.host}/{repo()}/one:v1"
    second = f"{registry.host}/{repo()}/two:v1"
    unique_image(lamina, busybox_tar, first)
    lamina("push", first)
    lamina("tag", first, second)
    out = lamina("push", second).out
    src_path = first.split("/", 1)[1].rsplit(":", 1)[0]
    assert f"Mounted from {src_path}" in out
    assert "Pushed" not in out
    # pulled blobs are sources too: a store that pulled 'one' mounts into a third repo
    other = fresh(lamina, tmp_path)
    other("pull", first)
    third = f"{registry.host}/{repo()}/three:v1"
    other("tag", first, third)
    assert f"Mounted from {src_path}" in other("push", third).out


# -- uncompressed layers: compressed once, kept -------------------------------------------
def _docker_save_archive(path: str, layer_tar: str, tag: str) -> None:
    """A ``docker save``-style archive: its one layer stored uncompressed."""
    import hashlib
    import io
    import tarfile
    data = open(layer_tar, "rb").read()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(data).hexdigest()]},
                         "history": [{"created_by": "test"}]}).encode()
    with tarfile.open(path, "w") as tf:
        for n, b in (("layer.tar", data), ("config.json", config),
                     ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                                    "Layers": ["layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(n)
            ti.size = len(b)
            tf.addfile(ti, io.BytesIO(b))


def test_push_of_uncompressed_layers_compresses_once(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/{repo()}/plain"
    archive = str(tmp_path / "plain.tar")
    _docker_save_archive(archive, busybox_tar, f"{name}:v1")
    lamina("load", "-i", archive)
    iid = json.loads(lamina("inspect", f"{name}:v1").out)[0]["Id"]
    first = lamina("push", f"{name}:v1").out
    digest = first.strip().splitlines()[-1].split()[2]
    blobs = os.path.join(lamina.root, "content", "blobs", "sha256")
    before = {n: os.stat(os.path.join(blobs, n)).st_mtime_ns for n in os.listdir(blobs)}
    second_name = f"{registry.host}/{repo()}/plain2:v1"
    lamina("tag", f"{name}:v1", second_name)
    second = lamina("push", second_name).out
    after = {n: os.stat(os.path.join(blobs, n)).st_mtime_ns for n in os.listdir(blobs)}
    assert after == before, "the second push wrote blobs (compressed again?)"
    assert second.strip().splitlines()[-1].split()[2] == digest
    # what the registry holds is gzip, and the image pulled back is the same image
    other = fresh(lamina, tmp_path)
    other("pull", f"{name}:v1")
    assert json.loads(other("inspect", f"{name}:v1").out)[0]["Id"] == iid
    pulled = json.loads(open(os.path.join(other.root, "content", "blobs", "sha256", digest[7:])).read())
    assert [l["mediaType"] for l in pulled["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    other("run", "--rm", f"{name}:v1", "true")
    # the push's manifest is the image's repo digest and resolves locally
    assert json.loads(lamina("inspect", f"{name}@{digest}").out)[0]["Id"] == iid
    # GC (run by rmi of another image) keeps the compressed copy and the pushed manifest
    lamina("import", busybox_tar, "throwaway")
    lamina("rmi", "throwaway")
    assert set(os.listdir(blobs)) >= set(before)
    # ... until the image goes
    lamina("rmi", "-f", iid)
    assert os.listdir(blobs) == []


# -- auth ----------------------------------------------------------------------------------
def test_basic_auth_login_push_pull_logout(lamina, busybox_tar, basic_registry, docker_config, tmp_path):
    host = basic_registry.host
    name = f"{host}/{repo()}/private:v1"
    unique_image(lamina, busybox_tar, name)
    r = lamina("push", name, check=False)
    assert r.rc == 1 and r.err.strip().splitlines()[-1].endswith("no basic auth credentials")
    bad = lamina("login", "-u", "alice", "-p", "wrong", host, check=False)
    assert bad.rc == 1
    errs = [l for l in bad.err.splitlines() if l.startswith("Error")]
    assert errs == [f"Error: login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"]
    assert "WARNING! Using --password via the CLI is insecure" in bad.err
    assert not (docker_config / "config.json").exists()
    ok = lamina("login", "-u", "alice", "--password-stdin", host, input=b"s3cret\n")
    assert ok.out.strip() == "Login Succeeded"
    assert "s3cret" not in ok.out + ok.err
    cfg = docker_config / "config.json"
    assert oct(cfg.stat().st_mode & 0o777) == "0o600"
    assert json.loads(cfg.read_text())["auths"][host]["auth"] == "YWxpY2U6czNjcmV0"
    lamina("push", name)
    other = fresh(lamina, tmp_path)
    other("pull", name)
    other("run", "--rm", name, "true")
    assert lamina("logout", host).out.strip() == f"Removing login credentials for {host}"
    assert host not in json.loads(cfg.read_text())["auths"]
    assert lamina("logout", host).out.strip() == f"Not logged in to {host}"
    third = fresh(lamina, tmp_path, "third")
    r = third("pull", name, check=False)
    assert r.rc == 1 and len(r.err.strip().splitlines()) == 1
    assert "no basic auth credentials" in r.err
    assert third.snapshot_of_store()["blobs"] == []


def test_docker_login_then_lamina_pull_private_repo(lamina, busybox_tar, basic_registry, docker_config, tmp_path):
    from conftest import need_tool
    need_tool("docker")
    host = basic_registry.host
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config)}
    p = subprocess.run(["docker", "login", "-u", "alice", "--password-stdin", host], input=b"s3cret",
                       capture_output=True, env=env)
    assert p.returncode == 0, p.stderr
    name = f"{host}/{repo()}/fromdocker:v1"
    unique_image(lamina, busybox_tar, name)
    lamina("push", name)          # lamina uses the credentials docker stored
    other = fresh(lamina, tmp_path)
    other("pull", name)
    assert other("run", "--rm", name, "sh", "-c", "ls /data").out.strip() == "f0"


def test_credential_helper_store_get_erase(lamina, busybox_tar, basic_registry, docker_config, tmp_path):
    """credsStore: the secret goes through docker-credential-<name>, never into config.json."""
    host = basic_registry.host
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-laminatest"
    helper.write_text(f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "store":
    d = json.loads(data); db[d["ServerURL"]] = d
elif action == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(db[data.strip()]))
elif action == "erase":
    if data.strip() not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data.strip()]
json.dump(db, open(path, "w"))
""")
    helper.chmod(0o755)
    lamina.env["PATH"] = f"{bindir}:{os.environ['PATH']}"
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "laminatest", "psFormat": "x"}))
    out = lamina("login", "-u", "alice", "--password-stdin", host, input=b"s3cret")
    assert "stored unencrypted" not in out.err
    cfg = json.loads((docker_config / "config.json").read_text())
    assert cfg["psFormat"] == "x" and cfg["auths"][host] == {}
    assert json.loads(store.read_text())[host]["Secret"] == "s3cret"
    name = f"{host}/{repo()}/helper:v1"
    unique_image(lamina, busybox_tar, name)
    lamina("push", name)
    lamina("logout", host)
    assert host not in json.loads(store.read_text())


@pytest.fixture
def bearer(registry):
    f = Front(registry.port, bearer_users={"bob": "tokpw"}, acl={"bob": {r".*"}},
              anonymous_pull={r"public/.*"})
    yield f
    f.stop()


def test_bearer_tokens_scopes_cache_and_refresh(lamina, busybox_tar, bearer, docker_config, tmp_path):
    name = f"{bearer.host}/private/{repo()}:v1"
    unique_image(lamina, busybox_tar, name)
    r = lamina("push", name, check=False)
    assert r.rc == 1 and len(r.err.strip().splitlines()) == 1
    lamina("login", "-u", "bob", "--password-stdin", bearer.host, input=b"tokpw")
    bearer.token_requests.clear()
    lamina("push", name)
    # one token per scope set, reused for every blob
    scopes = [tuple(s) for _, s in bearer.token_requests]
    assert len(scopes) == len(set(scopes)), scopes
    assert (f"repository:{name.split('/', 1)[1].rsplit(':', 1)[0]}:pull,push",) in scopes
    # anonymous pull of a private repo: Docker's words
    anon = fresh(lamina, tmp_path, "anon")
    anon.env["DOCKER_CONFIG"] = str(tmp_path / "empty-config")
    r = anon("pull", name, check=False)
    assert r.rc == 1
    assert r.err.strip() == (f"Error: pull access denied for {name.rsplit(':', 1)[0]}, repository does not "
                             "exist or may require 'lamina login': denied: requested access to the resource is denied")
    # a token revoked mid-way is replaced on the 401
    other = fresh(lamina, tmp_path)
    bearer.revoke_tokens()
    other("pull", name)
    other("run", "--rm", name, "true")
    # anonymous pulls work where the token issuer allows them
    pub = f"{bearer.host}/public/{repo()}:v1"
    lamina("tag", name, pub)
    lamina("push", pub)
    anon("pull", pub)


def test_bearer_wrong_password_login(lamina, bearer, docker_config):
    r = lamina("login", "-u", "bob", "-p", "nope", bearer.host, check=False)
    assert r.rc == 1
    assert [l for l in r.err.splitlines() if l.startswith("Error")] == [
        f'Error: Get "http://{bearer.host}/v2/": unauthorized: incorrect username or password']


# -- failures: one clear line, nothing stored ----------------------------------------------
def test_unknown_repository_and_tag(lamina, busybox_tar, registry):
    r = lamina("pull", f"{registry.host}/nosuch/{repo()}:v1", check=False)
    assert r.rc == 1
    assert r.err.strip().splitlines() == [r.err.strip()]
    assert "not found" in r.err and "unknown" in r.err
    name = f"{registry.host}/{repo()}/app"
    unique_image(lamina, busybox_tar, f"{name}:v1")
    lamina("push", f"{name}:v1")
    r = lamina("pull", f"{name}:nope", check=False)
    assert r.rc == 1
    assert r.err.strip() == f"Error: manifest for {name}:nope not found: manifest unknown: manifest unknown"


def test_registry_down(lamina):
    port = free_port()
    r = lamina("pull", f"127.0.0.1:{port}/x/y:v1", check=False)
    assert r.rc == 1
    assert r.err.strip() == (f'Error: Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: '
                             "connect: connection refused")
    lamina("import", "-", "127.0.0.1:%d/x/y:v1" % port, input=tar_bytes([("f", "file", "x")]))
    r = lamina("push", f"127.0.0.1:{port}/x/y:v1", check=False)
    assert r.rc == 1 and "connection refused" in r.err.strip().splitlines()[-1]


def test_push_of_missing_tag(lamina, registry):
    r = lamina("push", f"{registry.host}/nosuch/thing:v1", check=False)
    assert r.rc == 1
    assert r.err.strip() == f"Error: An image does not exist locally with the tag: {registry.host}/nosuch/thing"


@pytest.fixture
def front(registry):
    f = Front(registry.port)
    yield f
    f.stop()


def _big_layer_image(lamina, busybox_tar, name: str, mb: int = 8) -> tuple[str, str, int]:
    """Image with one incompressible layer of ``mb`` MB; returns (pushed digest, layer digest, size)."""
    unique_image(lamina, busybox_tar, name, files=mb, size=1 << 20)
    digest = lamina("push", name).out.strip().splitlines()[-1].split()[2]
    m = json.loads(open(os.path.join(lamina.root, "content", "blobs", "sha256", digest[7:])).read())
    top = m["layers"][-1]
    return digest, top["digest"], top["size"]


def test_corrupt_blob_is_detected_and_nothing_is_stored(lamina, busybox_tar, front, tmp_path):
    name = f"{front.host}/{repo()}/corrupt:v1"
    _, layer, _ = _big_layer_image(lamina, busybox_tar, name, mb=2)
    front.corrupt.add(layer)
    other = fresh(lamina, tmp_path)
    other("images")
    before = other.snapshot_of_store()
    r = other("pull", name, check=False)
    assert r.rc == 1
    assert r.err.strip() == f"Error: filesystem layer verification failed for digest {layer}"
    after = other.snapshot_of_store()
    assert after["blobs"] == before["blobs"] and after["ingest"] == [] and after["index"] == before["index"]
    assert other("images", "-q").out == ""
    # the bytes are not kept for a resume: a clean pull fetches the whole blob again
    front.corrupt.clear()
    front.served.clear()
    other("pull", name)
    assert front.served[layer] == os.path.getsize(os.path.join(lamina.root, "content", "blobs", "sha256", layer[7:]))


def test_connection_cut_mid_blob_resumes_with_range(lamina, busybox_tar, front, tmp_path):
    name = f"{front.host}/{repo()}/cut:v1"
    _, layer, size = _big_layer_image(lamina, busybox_tar, name, mb=4)
    front.drop_after[layer] = size // 2
    other = fresh(lamina, tmp_path)
    other("pull", name)
    ranges = [rg for m, p, rg in front.log if p.endswith(layer) and m == "GET"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    start = int(ranges[1][6:].rstrip("-"))
    assert start >= size // 2 - (1 << 20) and start > 0
    other("run", "--rm", name, "true")


def test_killed_pull_resumes_where_it_stopped(lamina, busybox_tar, front, tmp_path):
    name = f"{front.host}/{repo()}/killed:v1"
    _, layer, size = _big_layer_image(lamina, busybox_tar, name, mb=6)
    half = size // 2
    front.hold_after[layer] = half
    other = fresh(lamina, tmp_path)
    p = other.popen("pull", name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert front.held.wait(120), "the download never reached the hold point"
        data = os.path.join(other.root, "content", "ingest", f"pull-sha256-{layer[7:]}", "data")
        deadline = time.monotonic() + 60
        # every byte that arrived reaches the disk, even though the download is stuck
        while not (os.path.exists(data) and os.path.getsize(data) >= half):
            assert time.monotonic() < deadline, "the partial layer never reached the disk"
            time.sleep(0.02)
    finally:
        kill_group(p)
        p.wait()
    partial = os.path.getsize(data)
    assert partial == half
    del front.hold_after[layer]
    front.served.clear()
    front.log.clear()
    out = other("pull", name).out
    assert "Pull complete" in out
    ranges = [rg for m, pth, rg in front.log if pth.endswith(layer) and m == "GET"]
    assert ranges == [f"bytes={partial}-"]
    assert front.served[layer] == size - partial
    other("run", "--rm", name, "true")
    assert os.listdir(os.path.join(other.root, "content", "ingest")) == []


def test_layers_download_three_at_a_time(lamina, busybox_tar, front, tmp_path):
    """Five missing layers: never more than three blob downloads at once, and three do overlap."""
    base = f"{front.host}/{repo()}/many"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    lines = ["FROM manybase"]
    for i in range(5):
        (ctx / f"f{i}").write_bytes(os.urandom(3 << 20))
        lines.append(f"COPY f{i} /f{i}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    lamina("import", busybox_tar, "manybase")
    lamina("build", "-q", "-t", f"{base}:v1", str(ctx))
    lamina("push", f"{base}:v1")
    m = json.loads(lamina("inspect", f"{base}:v1").out)[0]
    other = fresh(lamina, tmp_path)
    # every blob is held after 1 MB until released, so that the downloads overlap for certain
    digests = [l["digest"] for l in json.loads(open(os.path.join(
        lamina.root, "content", "blobs", "sha256", m["Descriptor"]["digest"][7:])).read())["layers"]]
    front.max_active = 0
    for d in digests:
        front.hold_after[d] = 1 << 20
    p = other.popen("pull", f"{base}:v1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while front.active < 3:
        assert time.monotonic() < deadline and p.poll() is None, "three downloads never ran at once"
        time.sleep(0.02)
    front.hold_after.clear()
    front.release.set()
    out, err = p.communicate(timeout=300)
    # the held connections were cut: those layers resumed with Range
    assert p.returncode == 0, err
    assert front.max_active == 3
    assert out.decode().count("Waiting") == len(digests) - 3


def test_lamina_help_ps_images_do_not_import_the_http_stack(lamina, busybox_tar, tmp_path):
    lamina("import", busybox_tar, "bb")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM bb\nRUN echo hi > /hi\n")
    lamina("build", "-q", "-t", "cached", str(ctx))
    for args in (["--help"], ["ps"], ["images"], ["run", "--rm", "bb", "true"],
                 ["build", "-q", "-t", "cached", str(ctx)]):
        # main(), not `python -m lamina`: after `run` the command ends with os._exit
        # (cli.main.entry) and would not come back here to list its modules
        code = ("import sys; sys.argv=['lamina', *%r]\nfrom lamina.cli.main import main\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                "bad = [m for m in sys.modules if m.split('.')[0] in ('urllib3', 'http', 'ssl', 'email') "
                "or m.startswith('lamina.registry.client')]\n"
                "sys.stderr.write('IMPORTED ' + ' '.join(sorted(bad)) + '\\n')\n" % (args,))
        import sys as _sys
        p = subprocess.run([_sys.executable, "-c", code], env=lamina.env, capture_output=True, text=True)
        line = [l for l in p.stderr.splitlines() if l.startswith("IMPORTED")][-1]
        assert line == "IMPORTED ", (args, line)


def test_schema1_manifest_is_a_clear_unsupported_error(lamina, front):
    name = f"{front.host}/old/schema1:v1"
    doc = {"schemaVersion": 1, "name": "old/schema1", "tag": "v1", "architecture": "amd64",
           "fsLayers": [{"blobSum": "sha256:" + "a" * 64}], "history": [{"v1Compatibility": "{}"}]}
    front.manifests["/v2/old/schema1/manifests/v1"] = (
        "application/vnd.docker.distribution.manifest.v1+prettyjws", json.dumps(doc).encode())
    r = lamina("pull", name, check=False)
    assert r.rc == 1
    assert r.err.strip().splitlines() == [
        f"Error: {name}: Docker Image Format v1 and Docker Image manifest version 2, schema 1 are not "
        "supported: the image must be pushed again with a current tool (schema 2 or OCI)"]


def test_a_long_pull_does_not_block_rmi(lamina, busybox_tar, front, tmp_path):
    """While a pull is stuck mid-download, rmi of another image (which runs GC) completes."""
    name = f"{front.host}/{repo()}/slow:v1"
    _, layer, size = _big_layer_image(lamina, busybox_tar, name, mb=3)
    other = fresh(lamina, tmp_path)
    other("import", busybox_tar, "victim")
    front.hold_after[layer] = size // 3
    p = other.popen("pull", name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert front.held.wait(120), "the download never reached the hold point"
        r = other("rmi", "victim", timeout=60)
        assert "Deleted: sha256:" in r.out
        assert p.poll() is None, "the pull ended while it should be held"
    finally:
        del front.hold_after[layer]
        front.release.set()
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    other("run", "--rm", name, "true")


def test_progress_bars_on_a_terminal(lamina, busybox_tar, front, tmp_path):
    """On a wide terminal each layer's line is redrawn in place with Docker's bar."""
    import fcntl
    import pty
    import struct
    import termios
    name = f"{front.host}/{repo()}/tty:v1"
    _big_layer_image(lamina, busybox_tar, name, mb=4)
    other = fresh(lamina, tmp_path)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    p = other.popen("pull", name, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    p.wait(120)
    os.close(master)
    text = b"".join(chunks).decode()
    assert p.returncode == 0, text
    assert "\x1b[2K\r" in text and "\x1b[1A" in text
    assert ": Downloading [" in text and "=>" in text and "MB/" in text
    assert ": Pull complete" in text
    assert f"Status: Downloaded newer image for {name}" in text


def test_retries_on_503_and_connections_are_reused(lamina, busybox_tar, front, tmp_path):
    name = f"{front.host}/{repo()}/flaky:v1"
    _, layer, _ = _big_layer_image(lamina, busybox_tar, name, mb=1)
    other = fresh(lamina, tmp_path)
    front.fail_next.update({"/manifests/v1": 2, f"/blobs/{layer}": 2})
    front.log.clear()
    front.connections = 0
    out = other("pull", name).out
    assert "Pull complete" in out
    gets = [p for m, p, _ in front.log if m == "GET"]
    assert sum(1 for p in gets if p.endswith("/manifests/v1")) == 3
    assert sum(1 for p in gets if p.endswith(layer)) == 3
    # keep-alive: one connection for the manifests and config, one per layer worker; the
    # retries reuse theirs
    assert len(front.log) == 9 and front.connections <= 3, (front.log, front.connections)
    # pull does not unpack: snapshots are made by the first run
    assert os.listdir(os.path.join(other.root, "snapshots")) == []
    other("run", "--rm", name, "true")
    assert os.listdir(os.path.join(other.root, "snapshots")) != []


def test_push_sends_small_blobs_whole_and_large_ones_in_chunks(lamina, busybox_tar, front):
    name = f"{front.host}/{repo()}/chunks:v1"
    unique_image(lamina, busybox_tar, name, files=40, size=1 << 20)  # a ~40 MB incompressible layer
    front.uploads.clear()
    lamina("push", name)
    patches = [u for u in front.uploads if u[0] == "PATCH"]
    puts = [u for u in front.uploads if u[0] == "PUT"]
    assert len(patches) >= 2 and all(cr and "-" in cr for _, cr, _ in patches)
    assert patches[0][1] == f"0-{patches[0][2] - 1}"
    # the busybox layer and the config went up in one PUT each (with their bytes), the big
    # layer's closing PUT carries none
    assert sorted(n > 0 for _, _, n in puts) == [False, True, True]
