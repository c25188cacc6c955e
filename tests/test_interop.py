"""Interop with the real peers: skopeo and umoci read images straight out of lamina's content
store; dockerd loads what lamina saves and lamina loads what dockerd saves."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from conftest import need_tool


def run(*args, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=180, **kw)
    assert p.returncode == 0, f"{' '.join(args)} failed: {p.stderr}{p.stdout}"
    return p


def test_skopeo_reads_content_store(lamina, busybox_tar, tmp_path):
    need_tool("skopeo")
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    ours = json.loads(lamina("inspect", "busybox").out)[0]
    layout = os.path.join(lamina.root, "content")
    info = json.loads(run("skopeo", "inspect", f"oci:{layout}:docker.io/library/busybox:latest").stdout)
    assert info["Digest"] == ours["Descriptor"]["digest"]
    cfg = json.loads(run("skopeo", "inspect", "--config", f"oci:{layout}:docker.io/library/busybox:latest").stdout)
    assert cfg["rootfs"]["diff_ids"] == ours["RootFS"]["Layers"]
    # a full copy re-verifies every blob digest
    run("skopeo", "copy", "-q", f"oci:{layout}:docker.io/library/busybox:latest", f"oci:{tmp_path}/copy:bb")
    assert os.path.exists(tmp_path / "copy" / "blobs" / "sha256" / iid[7:])


def test_umoci_unpacks_from_content_store(lamina, busybox_tar, tmp_path):
    need_tool("umoci")
    lamina("import", busybox_tar, "busybox")
    lamina("tag", "busybox", "localhost:5000/me/bb:v1")
    layout = os.path.join(lamina.root, "content")
    names = run("umoci", "ls", "--layout", layout).stdout.split()
    assert sorted(names) == ["docker.io/library/busybox:latest", "localhost:5000/me/bb:v1"]
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{layout}:docker.io/library/busybox:latest", str(bundle))
    assert os.path.islink(bundle / "rootfs" / "bin" / "sh")
    assert os.path.isfile(bundle / "rootfs" / "bin" / "busybox")


@pytest.fixture
def docker():
    need_tool("docker")
    p = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"dockerd is not running (scripts/test.sh starts it): {p.stderr.strip()}")
    created: list[str] = []
    yield created
    for name in created:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True)


def test_docker_loads_lamina_save(lamina, busybox_tar, tmp_path, docker):
    name = f"lamina-interop-{uuid.uuid4().hex[:8]}:v1"
    docker.append(name)
    iid = lamina("import", "-c", 'CMD ["/bin/echo", "hello from lamina"]', busybox_tar, name).out.strip()
    archive = str(tmp_path / "out.tar")
    lamina("save", "-o", archive, name)
    out = run("docker", "load", "-i", archive).stdout
    assert f"Loaded image: {name}" in out
    assert run("docker", "inspect", "--format", "{{.Id}}", name).stdout.strip() == iid
    assert run("docker", "run", "--rm", "--network", "none", name).stdout.strip() == "hello from lamina"


def test_lamina_loads_docker_save(lamina, busybox_tar, tmp_path, docker):
    name = f"lamina-interop-{uuid.uuid4().hex[:8]}:v2"
    docker.append(name)
    run("docker", "import", "--change", "ENV FOO=bar", busybox_tar, name)
    docker_id = run("docker", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    archive = str(tmp_path / "docker.tar")
    run("docker", "save", "-o", archive, name)
    out = lamina("load", "-i", archive).out
    assert out.strip() == f"Loaded image: {name}"
    ours = json.loads(lamina("inspect", name).out)[0]
    assert ours["Id"] == docker_id
    assert ours["Config"]["Env"] == ["FOO=bar"]
    assert ours["RootFS"]["Layers"] == json.loads(run("docker", "inspect", name).stdout)[0]["RootFS"]["Layers"]
    # and from a pipe
    lamina("rmi", name)
    with open(archive, "rb") as f:
        assert lamina("load", input=f.read()).out.strip() == f"Loaded image: {name}"


def test_lamina_loads_skopeo_archives(lamina, busybox_tar, tmp_path):
    """oci-archive and docker-archive written by skopeo (from lamina's own content store)."""
    need_tool("skopeo")
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    layout = os.path.join(lamina.root, "content")
    oci_tar, docker_tar = str(tmp_path / "oci.tar"), str(tmp_path / "docker.tar")
    run("skopeo", "copy", "-q", f"oci:{layout}:docker.io/library/busybox:latest", f"oci-archive:{oci_tar}:example.com/bb:oci")
    run("skopeo", "copy", "-q", f"oci:{layout}:docker.io/library/busybox:latest", f"docker-archive:{docker_tar}:example.com/bb:dock")
    lamina("rmi", "busybox")
    assert lamina("load", "-i", oci_tar).out.strip() == "Loaded image: example.com/bb:oci"
    assert lamina("load", "-i", docker_tar).out.strip() == "Loaded image: example.com/bb:dock"
    ids = lamina("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").out.splitlines()
    assert sorted(ids) == [f"example.com/bb:dock {iid}", f"example.com/bb:oci {iid}"]
