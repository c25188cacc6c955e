"""``build --add-host --shm-size --ulimit``: what every RUN step's container gets, read
inside the step (/etc/hosts, /dev/shm, ulimit) and kept in the image's layer, side by side
with ``docker build`` on the same Dockerfile; --security-opt refused as dockerd refuses it."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from conftest import mkctx, need_tool
from containers_util import bb  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

FLAGS = ["--add-host", "db.example:10.1.2.3", "--add-host", "cache:10.1.2.4", "--shm-size", "96m",
         "--ulimit", "nofile=1234:2345"]
PROBE = ("grep -E 'db.example|cache' /etc/hosts > /out; df -k /dev/shm | tail -1 | awk '{print $2}' >> /out; "
         "ulimit -n >> /out; ulimit -Hn >> /out")


def test_build_step_flags_beside_docker(bb, tmp_path, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-bflags-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)
    bb("tag", "busybox", tag)
    ctx = mkctx(tmp_path, f"FROM {tag}\nRUN {PROBE}\n")
    try:
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        subprocess.run([docker, "build", "-q", *FLAGS, "-t", tag + "-out", str(ctx)], check=True,
                       capture_output=True, env=env)
        want = subprocess.run([docker, "run", "--rm", tag + "-out", "cat", "/out"], check=True,
                              capture_output=True, text=True).stdout
        bb("build", "-q", *FLAGS, "-t", "out", str(ctx))
        got = bb("run", "--rm", "out", "cat", "/out").out
        assert got == want
        assert got.splitlines() == ["10.1.2.3\tdb.example", "10.1.2.4\tcache", "98304", "1234", "2345"]
    finally:
        subprocess.run([docker, "rmi", "-f", tag + "-out", tag], capture_output=True)


def test_build_step_flags_refused_in_one_line(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nRUN true\n")
    for flags, msg in ((["--add-host", "nohost"], 'bad format for add-host: "nohost"'),
                       (["--ulimit", "nofile=2:1"], "ulimit soft limit must be less than or equal to hard limit"),
                       (["--shm-size", "lots"], 'invalid argument "lots" for "--shm-size" flag'),
                       (["--security-opt", "no-new-privileges"],
                        "The daemon on this platform does not support setting security options on build")):
        r = bb("build", *flags, str(ctx), check=False)
        assert r.rc == 125 and msg in r.err and len(r.err.strip().splitlines()) == 1, (flags, r.err)
    # a replayed (fully cached) build checks them too
    bb("build", "-q", "-t", "x", str(ctx))
    r = bb("build", "-q", "-t", "x", "--ulimit", "nofile=2:1", str(ctx), check=False)
    assert r.rc == 125 and "ulimit soft limit" in r.err
