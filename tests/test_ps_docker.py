"""``ps`` side by side with ``docker ps`` on the same containers: IMAGE once the tag moved,
-s/SIZE, ``{{json .}}`` (CreatedAt), health filters, ``container ps``; and ``run --rm`` whose
start fails leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
from conftest import need_tool
from containers_util import bb, mounts_under  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

AGO = re.compile(r"Less than a second|About a minute|\d+ (seconds?|minutes?)")


def _norm(s: str) -> str:
    return AGO.sub("T", re.sub(r"\b[0-9a-f]{12}\b", "ID", s))


def test_ps_matches_docker(bb, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-ps-{uuid.uuid4().hex[:8]}"
    first = subprocess.run([docker, "import", busybox_tar, tag + ":a"], check=True, capture_output=True,
                           text=True).stdout.strip()  # the image the tag leaves: removed at the end too
    bb("import", busybox_tar, tag + ":a")

    def dk(*args):
        return subprocess.run([docker, *args], check=True, capture_output=True, text=True).stdout
    names = [f"{tag}-{n}" for n in ("w", "m", "x")]
    try:
        for cli in (dk, bb):
            cli("run", "-d", "--name", names[0], tag + ":a", "sh", "-c",
                "head -c 1000000 /dev/zero > /big; sleep 300")
            cli("run", "-d", "--name", names[1], tag + ":a", "sleep", "300")
            cli("run", "--name", names[2], tag + ":a", "sh", "-c", "echo x > /f")
        # the tag moves to another image: the containers made from it show their image's ID
        dk("commit", names[2], tag + ":a")
        bb("commit", names[2], tag + ":a")
        for cli in (dk, bb):
            cli("exec", names[0], "test", "-s", "/big")
        fmt = "{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.Size}}"
        flt = ["--filter", f"name={tag}"]
        d = dk("ps", "-a", "-s", *flt, "--format", fmt)
        lout = bb("ps", "-a", "-s", *flt, "--format", fmt).out
        assert _norm(lout) == _norm(d)
        assert "1MB (virtual" in lout  # (and so in Docker's)
        dimg = dk("inspect", "-f", "{{.Image}}", names[1])[7:19]
        limg = bb("inspect", "-f", "{{.Image}}", names[1]).out[7:19]
        assert f"{names[1]}|{limg}|" in lout and f"{names[1]}|{dimg}|" in d
        # the table: same header and columns
        dt = dk("container", "ps", "-s", *flt).splitlines()
        lt = bb("container", "ps", "-s", *flt).out.splitlines()
        assert re.split(r"\s{2,}", dt[0]) == re.split(r"\s{2,}", lt[0])
        assert [_norm(re.sub(r"\s+", " ", l)) for l in lt[1:]] == [_norm(re.sub(r"\s+", " ", l)) for l in dt[1:]]
        # {{json .}}: Docker's keys, its CreatedAt text
        dj = json.loads(dk("ps", "-a", "--filter", f"name={names[2]}", "--format", "{{json .}}"))
        lj = json.loads(bb("ps", "-a", "--filter", f"name={names[2]}", "--format", "{{json .}}").out)
        assert sorted(lj) == sorted(dj)
        stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} [A-Z]+")
        assert stamp.fullmatch(dj["CreatedAt"]) and stamp.fullmatch(lj["CreatedAt"])
        assert {k: lj[k] for k in ("Command", "State", "Labels", "Ports", "Networks", "LocalVolumes")} == \
            {k: dj[k] for k in ("Command", "State", "Labels", "Ports", "Networks", "LocalVolumes")}
    finally:
        subprocess.run([docker, "rm", "-f", *names], capture_output=True)
        subprocess.run([docker, "rmi", tag + ":a", first], capture_output=True)


def test_run_rm_whose_start_fails_leaves_nothing(bb):
    before = set(os.listdir(os.path.join(bb.root, "containers"))) if os.path.isdir(
        os.path.join(bb.root, "containers")) else set()
    r = bb("run", "--rm", "busybox", "/nonexistent-binary", check=False)
    assert r.rc == 127 and "nonexistent-binary" in r.err
    r = bb("run", "--rm", "-d", "busybox", "/nonexistent-binary", check=False)
    assert r.rc == 127 and 'exec: "/nonexistent-binary": stat /nonexistent-binary: no such file' in r.err
    assert bb("ps", "-a", "-q").out == ""
    assert set(os.listdir(os.path.join(bb.root, "containers"))) == before
    assert mounts_under(bb.root) == []
    cg = [p for p in ("/sys/fs/cgroup/memory/lamina", "/sys/fs/cgroup/pids/lamina") if os.path.isdir(p)]
    for p in cg:
        left = [c for c in os.listdir(p) if re.fullmatch(r"[0-9a-f]{64}", c)]
        ids = set(bb("ps", "-a", "-q", "--no-trunc").out.split())
        assert not [c for c in left if c not in ids and os.path.isdir(os.path.join(bb.root, "containers", c))]
