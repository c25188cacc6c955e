"""Crash safety: a SIGKILLed monitor or foreground ``lamina run`` leaves a store that ps,
rm -f and image prune handle, with no mount under the root and no stray container dir.

Decision (documented in lamina.runtime.lifecycle): a container dies with its monitor (the
launcher sets PR_SET_PDEATHSIG), so a killed monitor shows as ``Exited (255)`` with an Error
that says why; nothing keeps running unobserved."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from containers_util import bb, mounts_under, until  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_killed_monitor(bb):
    bb("run", "-d", "--name", "m", "-m", "32m", "busybox", "sleep", "100")
    doc = json.loads(bb("inspect", "m").out)[0]
    mon, pid, cid = doc["State"]["MonitorPid"], doc["State"]["Pid"], doc["Id"]
    assert mon and pid and mon != pid
    os.kill(mon, signal.SIGKILL)
    until(lambda: not _alive(pid), what="the container to die with its monitor")
    ps = bb("ps", "-a", "--format", "{{.Names}} {{.Status}}").out
    assert ps.startswith("m Exited (255)")
    st = json.loads(bb("inspect", "-f", "{{json .State}}", "m").out)
    assert st["Status"] == "exited" and st["ExitCode"] == 255 and "monitor" in st["Error"]
    assert bb("ps", "-q").out == ""
    bb("start", "m")  # a dead monitor does not make the container unusable
    assert bb("inspect", "-f", "{{.State.Status}}", "m").out == "running\n"
    doc = json.loads(bb("inspect", "m").out)[0]
    os.kill(doc["State"]["MonitorPid"], signal.SIGKILL)
    until(lambda: not _alive(doc["State"]["Pid"]), what="the container to die")
    bb("rm", "-f", "m")
    assert bb("ps", "-a", "-q").out == ""
    assert mounts_under(bb.root) == []
    assert os.listdir(os.path.join(bb.root, "containers")) == []
    assert not os.path.exists(f"/sys/fs/cgroup/memory/lamina/{cid}")


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6])
def test_killed_foreground_run(bb, delay):
    p = bb.popen("run", "--name", "f", "-v", "vol:/data", "busybox", "sh", "-c", "sleep 100",
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.kill()
    p.wait()
    # the container dies with its parent (PR_SET_PDEATHSIG), a moment later on a loaded machine
    deadline = time.time() + 10
    while True:
        ps = bb("ps", "-a", "--format", "{{.Names}} {{.Status}}").out
        if not ps.startswith("f Up") or time.time() > deadline:
            break
        time.sleep(0.05)
    assert ps in ("", "f Created\n") or ps.startswith("f Exited (255)"), ps
    ids = bb("ps", "-a", "-q", "--no-trunc").out.split()
    bb("rm", "-f", "f", check=False)
    assert bb("ps", "-a", "-q").out == ""
    # no process of it survives (the container dies with the killed `lamina run`)
    for pid in subprocess.run(["pgrep", "-x", "sleep"], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                cg = f.read()
            assert not (any(i in cg for i in ids) and _alive(int(pid))), \
                f"process {pid} of a removed container survives"
        except FileNotFoundError:
            pass
    r = bb("image", "prune", "-a", "-f")
    assert r.rc == 0
    assert bb("images", "-q").out == ""
    assert mounts_under(bb.root) == []
    assert os.listdir(os.path.join(bb.root, "containers")) == []
