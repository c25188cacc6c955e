"""Crash safety: a SIGKILLed monitor or foreground ``lamina run`` leaves a store that ps,
rm -f and image prune handle, with no mount under the root and no stray container dir.

Decision (documented in lamina.runtime.lifecycle): a container dies with its monitor (the
launcher sets PR_SET_PDEATHSIG), so a killed monitor shows as ``Exited (255)`` with an Error
that says why; nothing keeps running unobserved."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
from conftest import cgroup_dir
from containers_util import bb, mounts_under, until  # noqa: F401  (fixture)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[1].split()[0] != "Z"


def test_killed_monitor(bb):
    bb("run", "-d", "--name", "m", "-m", "32m", "busybox", "sleep", "100")
    mon, pid, cid = bb("inspect", "-f", "{{.State.MonitorPid}} {{.State.Pid}} {{.Id}}", "m").out.split()
    mon, pid = int(mon), int(pid)
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
    mon, pid = map(int, bb("inspect", "-f", "{{.State.MonitorPid}} {{.State.Pid}}", "m").out.split())
    os.kill(mon, signal.SIGKILL)
    until(lambda: not _alive(pid), what="the container to die")
    bb("rm", "-f", "m")
    assert bb("ps", "-a", "-q").out == ""
    assert mounts_under(bb.root) == []
    assert os.listdir(os.path.join(bb.root, "containers")) == []
    assert not os.path.exists(cgroup_dir("memory", cid))


def _marked(marker: str) -> list[int]:
    """Live processes running ``sleep <marker>`` (a number unique to the test)."""
    out = subprocess.run(["pgrep", "-x", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split() if _alive(int(p))]


def _after_the_kill_everything_is_cleaned(bb, marker: str) -> None:
    bb("rm", "-f", "f", check=False)
    assert bb("ps", "-a", "-q").out == ""
    until(lambda: _marked(marker) == [], what="the killed run's container process to be gone")
    r = bb("image", "prune", "-a", "-f")
    assert r.rc == 0
    assert bb("images", "-q").out == ""
    assert mounts_under(bb.root) == []
    assert os.listdir(os.path.join(bb.root, "containers")) == []


def test_killed_foreground_run_while_its_container_runs(bb):
    """`lamina run` (the container's monitor) killed while the container runs: the container
    dies with it (PR_SET_PDEATHSIG) and shows as Exited (255)."""
    marker = str(100000 + int.from_bytes(os.urandom(3), "big"))
    p = bb.popen("run", "--name", "f", "-v", "vol:/data", "busybox", "sleep", marker,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pids = until(lambda: _marked(marker), what="the container's process")
        assert len(pids) == 1
        until(lambda: bb("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "f", check=False).out
              == f"running {pids[0]}\n", what="the record to show the running container")
    finally:
        p.kill()
        p.wait()
    until(lambda: not _alive(pids[0]), what="the container to die with its monitor")
    ps = bb("ps", "-a", "--format", "{{.Names}} {{.Status}}").out
    assert re.fullmatch(r"f Exited \(255\) (Less than a second|\d+ seconds?) ago\n", ps), ps
    _after_the_kill_everything_is_cleaned(bb, marker)


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.6])
def test_killed_foreground_run_at_any_moment(bb, delay):
    """Killed at an arbitrary moment of create/start/run: whatever state the record reached
    is a consistent one, and rm -f / image prune clean everything up; no process of the
    container survives (checked by its unique command line, whether or not it started)."""
    marker = str(100000 + int.from_bytes(os.urandom(3), "big"))
    p = bb.popen("run", "--name", "f", "-v", "vol:/data", "busybox", "sleep", marker,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)  # an arbitrary moment, on purpose: every moment must be safe
    p.kill()
    p.wait()
    # the container dies with its parent (PR_SET_PDEATHSIG), a moment later on a loaded
    # machine (maybe before it ever exec'd its command): until then ps may show it Up
    def settled():
        out = bb("ps", "-a", "--format", "{{.Names}} {{.Status}}").out
        return None if out.startswith("f Up") else [out]
    ps = until(settled, what="the killed run's container to stop")[0]
    assert _marked(marker) == []
    assert ps in ("", "f Created\n") or re.fullmatch(
        r"f Exited \(255\) (Less than a second|\d+ seconds?) ago\n", ps), ps
    _after_the_kill_everything_is_cleaned(bb, marker)
