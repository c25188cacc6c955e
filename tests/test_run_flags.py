"""The ``run``/``create`` flags people use, each checked inside the real container (/proc,
cgroup files, id, /dev ...) and, where the output is the same on both, side by side with
``docker run`` on the same busybox."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from conftest import need_tool
from containers_util import bb, until  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# (flags, command): the output must be the same in lamina and Docker
SAME = [
    (["--group-add", "123", "--group-add", "nogroup"], ["id"]),
    (["--uts", "host"], ["hostname"]),
    (["--ipc", "host"], ["readlink", "/proc/self/ns/ipc"]),
    (["--pid", "host"], ["readlink", "/proc/self/ns/pid"]),
    (["--ipc", "none"], ["sh", "-c", "ls /dev/shm 2>&1; true"]),
    (["--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.msgmax=12345"],
     ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax"]),
    (["--device", "/dev/fuse"], ["ls", "-l", "/dev/fuse"]),
    (["--device", "/dev/null:/dev/mynull:r"], ["sh", "-c", "ls -l /dev/mynull | cut -c1-10; echo x > /dev/mynull"]),
    (["--cpu-shares", "300", "--cpuset-cpus", "0", "-m", "64m", "--memory-reservation", "32m", "--oom-kill-disable"],
     ["cat", "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/cpuset/cpuset.cpus",
      "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]),
    (["-m", "64m", "--memory-swap", "96m"], ["cat", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"]),
    (["-a", "stdout"], ["sh", "-c", "echo out; echo err >&2"]),
]

# (flags): both refuse, with the same message
REFUSED = [
    ["--sysctl", "kernel.hostname=x"],
    ["--uts", "host", "-h", "x"],
    ["--pid", "container:nonexist"],
    ["--ipc", "bogus"],
    ["-a", "bogus"],
    ["--log-driver", "nosuch"],
    ["--log-opt", "max-size=1k"],  # (json-file takes it: this one runs in both)
    ["--device", "/dev/fuse:rel"],
]


@pytest.fixture
def dimage(busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-flags-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)
    yield docker, tag
    subprocess.run([docker, "rmi", tag], capture_output=True)


def _err(text: str) -> str:
    for prefix in ("docker: Error response from daemon: ", "Error response from daemon: ", "docker: ", "Error: "):
        text = text.removeprefix(prefix)
    return text.strip().splitlines()[0].rstrip(".") if text.strip() else ""


def test_flags_inside_the_container_same_as_docker(bb, dimage):
    docker, tag = dimage
    for flags, cmd in SAME:
        d = subprocess.run([docker, "run", "--rm", *flags, tag, *cmd], capture_output=True, text=True)
        l = bb("run", "--rm", *flags, "busybox", *cmd, check=False)
        assert (l.rc, l.out) == (d.returncode, d.stdout), flags
        if "-a" in flags:
            assert d.stderr == l.err == ""  # stderr not attached


def test_refusals_same_as_docker(bb, dimage):
    docker, tag = dimage
    for flags in REFUSED:
        d = subprocess.run([docker, "run", "--rm", *flags, tag, "true"], capture_output=True, text=True)
        l = bb("run", "--rm", *flags, "busybox", "true", check=False)
        assert l.rc == d.returncode, (flags, d.stderr, l.err)
        if d.returncode:
            assert _err(l.err) == _err(d.stderr), flags


def test_namespace_joins_cidfile_label_file_volumes_from(bb, tmp_path):
    bb("run", "-d", "--name", "a", "--ipc", "shareable", "-v", "/data", "busybox", "sh", "-c",
       "echo hi > /data/f; sleep 300")
    ns = {n: bb("exec", "a", "readlink", f"/proc/self/ns/{n}").out for n in ("pid", "ipc")}
    assert bb("run", "--rm", "--pid", "container:a", "busybox", "readlink", "/proc/self/ns/pid").out == ns["pid"]
    assert bb("run", "--rm", "--ipc", "container:a", "busybox", "readlink", "/proc/self/ns/ipc").out == ns["ipc"]
    r = bb("run", "--rm", "--volumes-from", "a:ro", "busybox", "sh", "-c", "cat /data/f; touch /data/g", check=False)
    assert r.out == "hi\n" and r.rc == 1 and "Read-only file system" in r.err
    assert bb("run", "--rm", "--volumes-from", "a", "busybox", "sh", "-c", "touch /data/g && echo ok").out == "ok\n"
    cid = tmp_path / "cid"
    out = bb("run", "-d", "--cidfile", str(cid), "busybox", "true").out.strip()
    assert cid.read_text() == out
    r = bb("run", "--cidfile", str(cid), "busybox", "true", check=False)
    assert r.rc == 125 and "Container ID file found" in r.err
    lf = tmp_path / "labels"
    lf.write_text("a=1\n# comment\n\nb\n")
    bb("create", "--name", "l", "--label-file", str(lf), "-l", "a=2", "busybox", "true")
    assert json.loads(bb("inspect", "-f", "{{json .Config.Labels}}", "l").out) == {"a": "2", "b": ""}
    r = bb("run", "--rm", "--platform", "linux/arm64", "busybox", "true", check=False)
    assert r.rc == 125 and "linux/arm64" in r.err
    r = bb("run", "--rm", "--userns", "private", "busybox", "true", check=False)
    assert r.rc == 125 and "--userns" in r.err
    bb("run", "--rm", "--userns", "host", "--platform", "linux", "busybox", "true")
    bb("create", "--name", "e", "--expose", "8080", "--expose", "9000-9001/udp", "busybox", "true")
    assert sorted(json.loads(bb("inspect", "-f", "{{json .Config.ExposedPorts}}", "e").out)) == \
        ["8080/tcp", "9000/udp", "9001/udp"]


def test_init_path_and_log_driver_rotation(bb, tmp_path):
    tini = need_tool("tini-static")
    r = bb("run", "--rm", "--init", "--init-path", str(tmp_path / "none"), "busybox", "true", check=False)
    assert r.rc == 125 and str(tmp_path / "none") in r.err
    assert bb("run", "--rm", "--init", "--init-path", tini, "busybox", "cat", "/proc/1/cmdline").out.startswith(
        "/sbin/docker-init")
    # json-file with max-size/max-file: the monitor's writer rotates, logs reads what is kept
    bb("run", "--name", "lg", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done")
    d = os.path.join(bb.root, "containers", bb("inspect", "-f", "{{.Id}}", "lg").out.strip())
    logs = sorted(f for f in os.listdir(d) if "-json.log" in f)
    assert len(logs) == 3 and all(os.path.getsize(os.path.join(d, f)) <= 1024 + 64 for f in logs)
    lines = bb("logs", "lg").out.splitlines()
    assert lines[-1] == "line299" and lines == [f"line{i}" for i in range(300 - len(lines), 300)]
    # more than one 1k file holds (~80 bytes a record): the rotated ones are read too
    assert len(lines) > 1024 // 80
    bb("run", "--name", "ln", "--log-driver", "none", "busybox", "echo", "hi")
    r = bb("logs", "ln", check=False)
    assert r.rc != 0 and "configured logging driver does not support reading" in r.err
    assert json.loads(bb("inspect", "-f", "{{json .HostConfig.LogConfig}}", "ln").out) == \
        {"Type": "none", "Config": {}}
