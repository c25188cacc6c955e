"""``--cgroup-parent`` (Docker's flag) and ``$LAMINA_CGROUP_PARENT`` (what dockerd's option of
the same name is to Docker): where a container's cgroups live on the host.

Docker (cgroupfs driver, checked with dockerd 20.10 here): ``--cgroup-parent P`` puts the
container in ``/P/<id>`` of every hierarchy, relative or absolute alike, ``inspect`` shows P
as given (``""`` by default), the parent stays after the container is removed."""

from __future__ import annotations

import json
import os
import uuid

from conftest import CGROUP_PARENT, Lamina
from containers_util import bb, until  # noqa: F401  (fixture)


def _host_cgroups(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return [line.rstrip("\n").split(":", 2)[2] for line in f]


def _parent_dirs(parent: str) -> list[str]:
    return [os.path.join("/sys/fs/cgroup", ctl, parent) for ctl in os.listdir("/sys/fs/cgroup")
            if os.path.isdir(os.path.join("/sys/fs/cgroup", ctl, parent))]


def test_cgroup_parent_flag(bb):
    parent = f"{CGROUP_PARENT}/flag-{uuid.uuid4().hex[:8]}"
    try:
        cid = bb("run", "-d", "--name", "c", "--cgroup-parent", "/" + parent, "-m", "32m",
                 "busybox", "sleep", "300").out.strip()
        doc = json.loads(bb("inspect", "c").out)[0]
        assert doc["HostConfig"]["CgroupParent"] == "/" + parent  # as given, like Docker
        pid = doc["State"]["Pid"]
        paths = _host_cgroups(pid)
        assert paths and all(p == f"/{parent}/{cid}" for p in paths), paths
        with open(f"/sys/fs/cgroup/memory/{parent}/{cid}/memory.limit_in_bytes") as f:
            assert f.read() == f"{32 << 20}\n"
        # inside, its own cgroup namespace: the container is the root
        assert set(bb("exec", "c", "cut", "-d:", "-f3", "/proc/self/cgroup").out.split()) == {"/"}
        # pause, top, rm find it there
        bb("pause", "c")
        with open(f"/sys/fs/cgroup/freezer/{parent}/{cid}/freezer.state") as f:
            assert f.read() == "FROZEN\n"
        bb("unpause", "c")
        assert f"{pid} " in bb("top", "c", "-o", "pid,comm").out.replace("\n", " ") + " "
        bb("rm", "-f", "c")
        assert not any(os.path.exists(os.path.join(d, cid)) for d in _parent_dirs(parent))
        assert _parent_dirs(parent)  # the parent itself stays, as with Docker
    finally:
        for d in _parent_dirs(parent):
            os.rmdir(d)


def test_cgroup_parent_default_from_the_environment(lamina, busybox_tar):
    """Without the flag: $LAMINA_CGROUP_PARENT (this test run's own parent), else lamina."""
    lamina("import", busybox_tar, "busybox")
    cid = lamina("run", "-d", "busybox", "sleep", "300").out.strip()
    try:
        assert lamina("inspect", "-f", "{{json .HostConfig.CgroupParent}}", cid).out == '""\n'
        pid = int(lamina("inspect", "-f", "{{.State.Pid}}", cid).out)
        assert set(_host_cgroups(pid)) == {f"/{CGROUP_PARENT}/{cid}"}
    finally:
        lamina("rm", "-f", cid)
    other = Lamina(lamina.root)
    other.env.pop("LAMINA_CGROUP_PARENT")
    cid = other("run", "-d", "busybox", "sleep", "300").out.strip()
    try:
        pid = int(other("inspect", "-f", "{{.State.Pid}}", cid).out)
        assert set(_host_cgroups(pid)) == {f"/lamina/{cid}"}
        # the parent is the container's for life: commands run with another default find it
        lamina("pause", cid)
        with open(f"/sys/fs/cgroup/freezer/lamina/{cid}/freezer.state") as f:  # the default parent
            assert f.read() == "FROZEN\n"
        lamina("unpause", cid)
    finally:
        lamina("rm", "-f", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/pids/lamina/{cid}")


def test_builds_run_under_the_default_parent(bb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN cut -d: -f3 /proc/1/cgroup | sort -u > /cg; "
                                    "cat /proc/self/mountinfo > /dev/null\n")
    bb("build", "-q", "-t", "cg", str(ctx))
    assert bb("run", "--rm", "cg", "cat", "/cg").out == "/\n"


def test_bad_cgroup_parent(bb):
    for bad in ("../escape", "a/../../b", "a//b", "./x"):
        r = bb("run", "--rm", "--cgroup-parent", bad, "busybox", "true", check=False)
        assert (r.rc, r.err) == (125, f"Error: invalid --cgroup-parent {bad!r}: want a cgroup path such "
                                      "as lamina or /ci/run-1 (no empty, . or .. parts)\n")
    assert bb("ps", "-a", "-q").out == ""
