"""Round trips through a real registry:2 on loopback between lamina and the peers:
lamina -> registry -> skopeo, podman, dockerd; dockerd / skopeo -> registry -> lamina; each
pulled image run. Also a multi-platform index (made with skopeo --all), zstd and
uncompressed layers (skopeo's --dest-compress-format / --dest-decompress)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from conftest import Lamina, need_tool
from registry_util import DockerRegistry


def run(*args, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, f"{' '.join(args)} failed: {p.stderr}{p.stdout}"
    return p


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-interop")))
    yield r
    r.stop()


@pytest.fixture
def docker_images():
    need_tool("docker")
    if subprocess.run(["docker", "version"], capture_output=True).returncode != 0:
        pytest.fail("dockerd is not running (scripts/test.sh starts it)")
    made: list[str] = []
    yield made
    for n in made:
        subprocess.run(["docker", "rmi", "-f", n], capture_output=True)


def _name(registry, what: str) -> str:
    return f"{registry.host}/interop/{what}-{uuid.uuid4().hex[:8]}:v1"


def _image(lamina, busybox_tar, name: str, msg: str) -> str:
    lamina("import", "-c", f'CMD ["echo", "{msg}"]', busybox_tar, name)
    return json.loads(lamina("inspect", name).out)[0]["Id"]


def test_lamina_push_then_skopeo_podman_docker_pull_and_run(lamina, busybox_tar, registry, tmp_path, docker_images):
    need_tool("skopeo")
    name = _name(registry, "tothem")
    iid = _image(lamina, busybox_tar, name, "hello from lamina")
    digest = lamina("push", name).out.strip().splitlines()[-1].split()[2]
    # skopeo fetches and verifies every blob
    run("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}", f"oci:{tmp_path}/copy:x")
    info = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{name}").stdout)
    assert info["Digest"] == digest
    # dockerd
    docker_images.append(name)
    run("docker", "pull", name)
    assert run("docker", "inspect", "--format", "{{.Id}}", name).stdout.strip() == iid
    assert run("docker", "run", "--rm", "--network", "none", name).stdout.strip() == "hello from lamina"
    # podman
    need_tool("podman")
    try:
        run("podman", "pull", "-q", "--tls-verify=false", name)
        assert run("podman", "run", "--rm", "--network", "none", name).stdout.strip() == "hello from lamina"
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def test_docker_push_then_lamina_pull_and_run(lamina, busybox_tar, registry, docker_images):
    name = _name(registry, "fromdocker")
    docker_images.append(name)
    run("docker", "import", "-c", 'CMD ["sh"]', busybox_tar, name)
    out = run("docker", "push", name).stdout
    digest = [l for l in out.splitlines() if "digest:" in l][0].split()[2]
    r = lamina("pull", name)
    assert f"Digest: {digest}" in r.out
    assert json.loads(lamina("inspect", name).out)[0]["Id"] == \
        run("docker", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    assert lamina("run", "--rm", name, "echo", "ran").out.strip() == "ran"


@pytest.mark.parametrize("how", ["gzip", "zstd", "uncompressed"])
def test_skopeo_push_then_lamina_pull_and_run(lamina, busybox_tar, registry, tmp_path, how):
    need_tool("skopeo")
    src = Lamina(str(tmp_path / "src"))
    # a layer no registry has seen, so skopeo cannot reuse a blob it knows in another form
    tar = str(tmp_path / "unique.tar")
    shutil.copyfile(busybox_tar, tar)
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "unique").write_text(uuid.uuid4().hex)
    run("tar", "-rf", tar, "-C", str(tmp_path / "u"), "unique")
    _image(src, tar, "docker.io/library/srcimg:v1", "hello from skopeo")
    layout = os.path.join(src.root, "content")
    name = _name(registry, f"skopeo-{how}")
    extra = {"gzip": [], "zstd": ["--dest-compress-format", "zstd", "--dest-compress"],
             "uncompressed": ["--dest-decompress"]}[how]
    run("skopeo", "copy", "-q", "--dest-tls-verify=false", *extra,
        f"oci:{layout}:docker.io/library/srcimg:v1", f"docker://{name}")
    lamina("pull", name)
    digest = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{name}").stdout)["Digest"]
    m = json.loads(open(os.path.join(lamina.root, "content", "blobs", "sha256", digest[7:])).read())
    mt = m["layers"][0]["mediaType"]
    assert {"gzip": "gzip", "zstd": "zstd", "uncompressed": ".tar"}[how] in mt
    assert lamina("run", "--rm", name).out.strip() == "hello from skopeo"


def _layout_with_index(tmp_path, lamina, busybox_tar) -> tuple[str, dict]:
    """An OCI layout whose index holds an amd64 and an arm64 image (different layers)."""
    import hashlib
    lamina("import", "--platform", "linux/amd64", "-c", 'CMD ["echo", "amd64 image"]', busybox_tar, "plat:amd64")
    other = tmp_path / "armfs"
    other.mkdir()
    (other / "arch").write_text("arm64\n")
    tar = str(tmp_path / "arm.tar")
    run("tar", "-C", str(other), "-cf", tar, ".")
    lamina("import", "--platform", "linux/arm64/v8", tar, "plat:arm64")
    content = os.path.join(lamina.root, "content")
    layout = str(tmp_path / "layout")
    shutil.copytree(content, layout, ignore=shutil.ignore_patterns("ingest", "index.json"))
    entries = []
    descs = {}
    for tag, plat in (("amd64", {"architecture": "amd64", "os": "linux"}),
                      ("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"})):
        d = json.loads(lamina("inspect", f"plat:{tag}").out)[0]["Descriptor"]
        descs[tag] = d["digest"]
        entries.append({**d, "platform": plat})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    ih = hashlib.sha256(index).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", ih), "wb") as f:
        f.write(index)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                                                       "digest": f"sha256:{ih}", "size": len(index),
                                                       "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}, f)
    descs["index"] = f"sha256:{ih}"
    return layout, descs


def test_multi_platform_index_pull(lamina, busybox_tar, registry, tmp_path):
    need_tool("skopeo")
    src = Lamina(str(tmp_path / "src"))
    layout, descs = _layout_with_index(tmp_path, src, busybox_tar)
    name = _name(registry, "multi")
    run("skopeo", "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{name}")
    out = lamina("pull", name).out
    assert f"Digest: {descs['index']}" in out
    insp = json.loads(lamina("inspect", name).out)[0]
    assert insp["Architecture"] == "amd64"
    assert insp["Descriptor"]["digest"] == descs["amd64"]
    repo = name.rsplit(":", 1)[0]
    assert insp["RepoDigests"] == [f"{repo}@{descs['index']}"]
    assert lamina("run", "--rm", f"{repo}@{descs['index']}").out.strip() == "amd64 image"
    assert descs["index"] in lamina("images", "--digests").out
    # GC keeps the index while the image is there
    lamina("import", busybox_tar, "throwaway")
    lamina("rmi", "throwaway")
    assert os.path.exists(os.path.join(lamina.root, "content", "blobs", "sha256", descs["index"][7:]))
    # --platform picks the other entry
    other = Lamina(str(tmp_path / "arm"))
    other("pull", "--platform", "linux/arm64", name)
    a = json.loads(other("inspect", name).out)[0]
    assert (a["Architecture"], a["Descriptor"]["digest"]) == ("arm64", descs["arm64"])
    r = other("pull", "--platform", "linux/s390x", f"{repo}:v1", check=False)
    assert r.rc == 1 and r.err.strip() == "Error: no matching manifest for linux/s390x in the manifest list entries"
