"""``inspect`` of containers and images side by side with dockerd on the same inputs: the
record's Config as Docker keeps it (attached streams per verb, Env without the defaults the
process gets, no StopSignal unless set), the process environment, the JSON a template prints
(Go's omitempty fields left out, struct order), and the plain JSON's keys in Docker's order."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from conftest import need_tool
from containers_util import bb  # noqa: F401  (fixture)


@pytest.fixture
def pair(bb, busybox_tar):
    """(docker, lamina, image, prefix): the same busybox tar imported into both, with a CMD,
    every container and the image removed from dockerd at the end."""
    docker = need_tool("docker")
    tag = f"lamina-insp-{uuid.uuid4().hex[:8]}"

    def dk(*args, check=True):
        p = subprocess.run([docker, *args], capture_output=True, text=True)
        if check and p.returncode:
            raise AssertionError(f"docker {' '.join(args)}: {p.stderr}")
        return p
    dk("import", "-c", 'CMD ["sh"]', busybox_tar, tag + ":v1")
    bb("import", "-c", 'CMD ["sh"]', busybox_tar, tag + ":v1")
    yield dk, bb, tag + ":v1", tag
    ids = dk("ps", "-aq", "--filter", f"name={tag}").stdout.split()
    if ids:
        dk("rm", "-f", *ids, check=False)
    dk("rmi", "-f", tag + ":v1", check=False)


def _config(cli, name: str) -> dict:
    out = cli("inspect", "-f", "{{json .Config}}", name)
    cfg = json.loads(getattr(out, "stdout", None) or out.out)
    cfg.pop("Hostname")
    cfg.pop("Image")
    return cfg


@pytest.mark.parametrize("args", [
    ("run", "-d"), ("run", "-d", "-i"), ("create",), ("create", "-i"), ("create", "-a", "stdout"),
    ("create", "-t", "-e", "A=1", "--stop-signal", "USR1", "-l", "k=v"),
])
def test_container_config_is_recorded_like_docker(pair, args):
    dk, lam, image, tag = pair
    name = f"{tag}-c"
    for cli in (dk, lam):
        cli(*args, "--name", name, "--network", "none", image, "sleep", "30")
    assert _config(lam, name) == _config(dk, name)
    st = [json.loads(getattr(o, "stdout", None) or o.out) for o in
          (dk("inspect", "-f", "{{json .State}}", name), lam("inspect", "-f", "{{json .State}}", name))]
    assert list(st[1]) == list(st[0])  # no Health key without a health check, Docker's order
    host = [f"{{{{.HostConfig.{k}}}}}|{{{{json .HostConfig.{k}}}}}" for k in (
        "Binds", "Links", "ExtraHosts", "GroupAdd", "CapAdd", "CapDrop", "SecurityOpt", "VolumesFrom", "Ulimits",
        "Tmpfs", "Sysctls", "ConsoleSize", "Mounts", "DeviceRequests", "BlkioWeightDevice", "StorageOpt")]
    for tmpl in ("{{.State.Health}}", "{{if .State.Health}}y{{else}}n{{end}}", "{{json .SizeRw}}", *host):
        assert lam("inspect", "-f", tmpl, name).out == dk("inspect", "-f", tmpl, name).stdout, tmpl
    dkeys = list(json.loads(dk("inspect", name).stdout)[0])
    lkeys = list(json.loads(lam("inspect", name).out)[0])
    assert lkeys[:len(dkeys)] == dkeys  # Docker's keys in Docker's order (lamina's own after them)
    assert list(json.loads(lam("inspect", name).out)[0]["State"]) == list(st[0])


@pytest.mark.parametrize("flags", [(), ("-t",), ("-e", "A=1", "-e", "PATH=/x:/bin"), ("-e", "HOME=/h", "-u", "1:1"),
                                   ("-e", "HOSTNAME=mine", "-t", "-e", "TERM=dumb")])
def test_process_environment_is_dockers(pair, flags):
    dk, lam, image, _ = pair
    want = dk("run", "--rm", "--network", "none", *flags, image, "env").stdout
    got = lam("run", "--rm", "--network", "none", *flags, image, "env").out

    def norm(text: str) -> list[str]:
        return [line if not line.startswith("HOSTNAME=") or line == "HOSTNAME=mine" else "HOSTNAME=<id>"
                for line in text.replace("\r", "").splitlines()]
    assert norm(got) == norm(want)


def test_image_templates_print_what_dockers_client_prints(pair, busybox_tar):
    dk, lam, image, tag = pair
    plain = f"{tag}-plain:v1"
    dk("import", busybox_tar, plain)
    lam("import", busybox_tar, plain)
    try:
        for name in (image, plain):
            for tmpl in ("{{json .Config}}", "{{json .RootFS}}", "{{.Config.Cmd}}", "{{.Variant}}|{{.Container}}",
                         "{{json .ContainerConfig.Cmd}}", "{{.Config.Hostname}}"):
                assert lam("inspect", "-f", tmpl, name).out == dk("inspect", "-f", tmpl, name).stdout, (name, tmpl)
    finally:
        dk("rmi", plain, check=False)


def test_commit_keeps_the_containers_config_like_docker(pair):
    dk, lam, image, tag = pair
    name, new = f"{tag}-cm", f"{tag}-committed:v1"
    try:
        for cli in (dk, lam):
            cli("run", "--name", name, "--network", "none", "-e", "X=1", image, "sh", "-c", "echo x > /x")
            cli("commit", "-c", "ENV A=b", "-c", 'LABEL k="v"', name, new)
        for tmpl in ("{{json .Config}}", "{{json .ContainerConfig.Cmd}}", "{{.ContainerConfig.AttachStdout}}",
                     "{{json .Config.Env}}"):
            assert lam("inspect", "-f", tmpl, new).out == dk("inspect", "-f", tmpl, new).stdout, tmpl
        docs = [json.loads(dk("inspect", new).stdout)[0], json.loads(lam("inspect", new).out)[0]]
        for d, cli in zip(docs, (dk, lam)):
            base = cli("inspect", "-f", "{{.Id}}", image)
            assert d["Parent"] == (getattr(base, "stdout", None) or base.out).strip()
            for key in ("Config", "ContainerConfig"):
                d[key].pop("Hostname")
                d[key].pop("Image")
        assert docs[1]["Config"] == docs[0]["Config"] and docs[1]["ContainerConfig"] == docs[0]["ContainerConfig"]
    finally:
        dk("rmi", new, check=False)
