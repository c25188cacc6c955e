"""Container lifecycle through the real CLI: run -d, ps, stop/kill/rm/restart/wait/rename,
pause, logs, top, inspect, restart policies and --rm."""

from __future__ import annotations

import json
import os
import re
import time

from containers_util import bb, state, until  # noqa: F401  (fixture)
from test_build_cache_stale import Pause

HEX64 = re.compile(r"[0-9a-f]{64}")


def _ready(bb, name: str) -> None:
    """Wait until the container's script printed "ready" (its traps are set)."""
    until(lambda: "ready" in bb("logs", name).out, what=f"{name} to set its traps")


def _monitor_done(bb, name: str) -> None:
    """Wait until the container's monitor (which runs its restart loop) is done: it clears
    MonitorPid as its last act, after deciding on every restart."""
    until(lambda: bb("inspect", "-f", "{{.State.MonitorPid}}", name).out == "0\n",
          what=f"the monitor of {name} to finish")


def _holds_pidfd(pid: int) -> bool:
    """True once process ``pid`` has a pidfd open (lamina wait blocks on one)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return "anon_inode:[pidfd]" in links


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_run_detached_ps_and_inspect(bb):
    r = bb("run", "-d", "--name", "web", "-l", "app=x", "busybox", "sleep", "100")
    cid = r.out.strip()
    assert HEX64.fullmatch(cid) and r.out == cid + "\n"
    bb("create", "--name", "fresh", "busybox", "true")
    bb("run", "--name", "done", "busybox", "sh", "-c", "exit 3", check=False)
    gen = bb("run", "-d", "busybox", "true").out.strip()
    until(lambda: state(bb, gen) == "exited", what="generated container to exit")
    ps = bb("ps").out.splitlines()
    assert re.split(r"\s{2,}", ps[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(ps) == 2 and ps[1].startswith(cid[:12] + "   busybox   \"sleep 100\"")
    assert re.search(r"\s{2}Up (Less than a second|\d+ seconds?)\s", ps[1]) and ps[1].endswith("web")
    table = bb("ps", "-a").out
    assert re.search(r"Exited \(3\) (Less than a second|\d+ seconds?) ago", table)
    assert re.search(r"\bCreated\s+fresh\b", table)
    names = bb("ps", "-a", "--format", "{{.Names}}").out.split()
    gname = [n for n in names if n not in ("web", "fresh", "done")][0]
    assert re.fullmatch(r"[a-z]+_[a-z]+\d?", gname)
    assert bb("ps", "-q").out == cid[:12] + "\n"
    assert bb("ps", "-q", "--no-trunc").out == cid + "\n"
    assert len(bb("ps", "-a", "-q").out.split()) == 4
    assert bb("ps", "-l", "--format", "{{.Names}}").out == gname + "\n"
    assert bb("ps", "-n", "2", "--format", "{{.Names}}").out.split() == [gname, "done"]
    assert sorted(bb("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").out.split()) == sorted([gname, "done"])
    assert bb("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}").out == "fresh\n"
    assert bb("ps", "-a", "--filter", "name=fre", "--format", "{{.Names}}").out == "fresh\n"
    assert bb("ps", "-a", "--filter", "exited=3", "-q").out.strip() != ""
    assert bb("ps", "-a", "--filter", "label=app=x", "--format", "{{.Names}}").out == "web\n"
    assert bb("ps", "--no-trunc", "--format", "{{.Command}}").out == '"sleep 100"\n'
    # inspect, Docker-shaped
    doc = json.loads(bb("inspect", "web").out)[0]
    assert doc["Id"] == cid and doc["Name"] == "/web" and doc["Path"] == "sleep" and doc["Args"] == ["100"]
    assert doc["State"]["Status"] == "running" and doc["State"]["Running"] and doc["State"]["Pid"] > 0
    assert doc["Config"]["Image"] == "busybox" and doc["Config"]["Cmd"] == ["sleep", "100"]
    assert doc["Config"]["Hostname"] == cid[:12] and doc["Config"]["Labels"] == {"app": "x"}
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert doc["Mounts"] == [] and doc["Image"].startswith("sha256:")
    assert bb("inspect", "--format", "{{.State.ExitCode}}", "done").out == "3\n"
    assert bb("container", "inspect", "--format", "{{.Name}}", "fresh").out == "/fresh\n"
    assert bb("inspect", "--type", "container", "-f", "{{.State.Status}}", cid[:5]).out == "running\n"
    # name conflicts
    r = bb("run", "--name", "web", "busybox", "true", check=False)
    assert r.rc == 125 and 'The container name "/web" is already in use by container' in r.err and cid in r.err
    r = bb("rename", "fresh", "web", check=False)
    assert r.rc != 0 and "already in use" in r.err
    bb("rename", "fresh", "fresh2")
    assert bb("inspect", "-f", "{{.Name}}", "fresh2").out == "/fresh2\n"
    assert bb("inspect", "fresh", check=False).rc != 0
    # rm refuses a running container; -f kills it
    r = bb("rm", "web", check=False)
    assert r.rc == 1 and "You cannot remove a running container" in r.err and "force" in r.err
    pid = doc["State"]["Pid"]
    assert bb("rm", "-f", "web").out == "web\n"  # (its speed is measured in bench/: lifecycle)
    assert bb("ps", "-a", "--filter", "name=web", "-q").out == ""
    assert not _alive(pid)
    r = bb("rm", "nosuch", check=False)
    assert r.rc == 1 and "No such container: nosuch" in r.err


def test_stop_timeout_signal_kill_wait(bb):
    # PID 1 (sh) ignores SIGTERM: stop waits -t seconds, then SIGKILL -> 137
    bb("run", "-d", "--name", "s", "busybox", "sh", "-c", "sleep 100")
    t0 = time.monotonic()
    assert bb("stop", "-t", "1", "s").out == "s\n"
    assert time.monotonic() - t0 >= 1.0  # it waited the timeout before SIGKILL
    assert bb("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "s").out == "137 exited\n"
    assert re.search(r"Exited \(137\)", bb("ps", "-a", "--filter", "name=s").out)
    # a trap for the stop signal: stop is quick and the code is the script's
    bb("run", "-d", "--name", "t", "busybox", "sh", "-c",
       "trap 'echo got-usr1; exit 7' USR1; trap 'echo got-term; exit 9' TERM; echo ready; "
       "while :; do sleep 0.1; done")
    _ready(bb, "t")
    bb("stop", "-s", "USR1", "-t", "5", "t")
    assert bb("wait", "t").out == "7\n"  # the trap's code: the signal, not the SIGKILL, ended it
    assert "got-usr1" in bb("logs", "t").out
    # STOPSIGNAL via --stop-signal; kill -s delivers signals
    bb("run", "-d", "--name", "u", "--stop-signal", "USR2", "busybox", "sh", "-c",
       "trap 'echo usr1' USR1; trap 'exit 12' USR2; echo ready; while :; do sleep 0.1; done")
    assert bb("inspect", "-f", "{{.Config.StopSignal}}", "u").out == "USR2\n"
    _ready(bb, "u")
    bb("kill", "-s", "USR1", "u")
    until(lambda: "usr1" in bb("logs", "u").out, what="USR1 trap output")
    assert state(bb, "u") == "running"
    bb("stop", "u")
    assert bb("inspect", "-f", "{{.State.ExitCode}}", "u").out == "12\n"
    # STOPSIGNAL from the image
    bb("commit", "-c", "STOPSIGNAL SIGUSR1", "u", "stopsig")
    bb("run", "-d", "--name", "v", "stopsig", "sh", "-c",
       "trap 'exit 21' USR1; echo ready; while :; do sleep 0.1; done")
    assert bb("inspect", "-f", "{{.Config.StopSignal}}", "v").out == "SIGUSR1\n"
    _ready(bb, "v")
    bb("stop", "v")
    assert bb("inspect", "-f", "{{.State.ExitCode}}", "v").out == "21\n"
    # wait blocks until exit and prints the code; kill defaults to SIGKILL
    bb("run", "-d", "--name", "w", "busybox", "sleep", "100")
    p = bb.popen("wait", "w", stdout=__import__("subprocess").PIPE)
    until(lambda: _holds_pidfd(p.pid), what="wait to watch the container's process")
    assert p.poll() is None
    bb("kill", "w")
    assert p.communicate(timeout=10)[0] == b"137\n" and p.returncode == 0
    r = bb("kill", "w", check=False)
    assert r.rc == 1 and "is not running" in r.err
    r = bb("kill", "-s", "NOPE", "s", check=False)
    assert r.rc != 0 and "Invalid signal" in r.err


def test_restart_and_start(bb):
    cid = bb("run", "-d", "--name", "r", "busybox", "sh", "-c", "echo start; exec sleep 100").out.strip()
    pid1 = int(bb("inspect", "-f", "{{.State.Pid}}", "r").out)
    bb("restart", "-t", "1", "r")
    pid2 = int(bb("inspect", "-f", "{{.State.Pid}}", "r").out)
    assert pid2 != pid1 and state(bb, "r") == "running"
    until(lambda: bb("logs", "r").out == "start\nstart\n", what="second start in logs")
    bb("stop", "-t", "0", "r")
    assert bb("start", "r").out == "r\n"
    assert state(bb, cid) == "running"
    bb("kill", "r")
    # start -a of a stopped container streams its output and returns its code
    bb("create", "--name", "c", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
    r = bb("start", "-a", "c", check=False)
    assert r.rc == 4 and r.out == "out\n" and r.err == "err\n"
    r = bb("start", "nosuch", check=False)
    assert r.rc == 1 and "No such container" in r.err


def test_pause_unpause(bb):
    bb("run", "-d", "--name", "p", "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done")
    n = lambda: int(bb("exec", "p", "cat", "/tmp/n").out or 0) if state(bb, "p") == "running" else None  # noqa: E731
    until(lambda: n() and n() > 2, what="counter")
    bb("pause", "p")
    assert state(bb, "p") == "paused"
    assert re.search(r"Up .* \(Paused\)", bb("ps").out)
    assert bb("ps", "--filter", "status=paused", "-q").out.strip()
    r = bb("exec", "p", "true", check=False)
    assert r.rc != 0 and "paused" in r.err
    upper = os.path.join(bb.root, "containers", bb("inspect", "-f", "{{.Id}}", "p").out.strip(), "upper", "tmp", "n")
    a = open(upper).read()
    time.sleep(0.4)
    assert open(upper).read() == a  # frozen: the counter does not move
    r = bb("pause", "p", check=False)
    assert r.rc == 1 and "already paused" in r.err
    bb("unpause", "p")
    assert state(bb, "p") == "running"
    until(lambda: open(upper).read() != a, what="counter to move again")
    r = bb("unpause", "p", check=False)
    assert r.rc == 1 and "not paused" in r.err
    bb("pause", "p")
    bb("stop", "-t", "1", "p")  # stop of a paused container works; SIGKILL'd, as dockerd does
    assert bb("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "p").out == "137 exited\n"


def test_logs(bb):
    cid = bb("run", "--name", "l", "busybox", "sh", "-c", "echo one; echo two >&2; echo three; printf four").out
    path = os.path.join(bb.root, "containers", bb("inspect", "-f", "{{.Id}}", "l").out.strip())
    cid = os.path.basename(path)
    assert bb("inspect", "-f", "{{.LogPath}}", "l").out.strip() == os.path.join(path, f"{cid}-json.log")
    lines = [json.loads(l) for l in open(os.path.join(path, f"{cid}-json.log"))]
    assert [(e["log"], e["stream"]) for e in sorted(lines, key=lambda e: e["stream"])][-1][1] == "stdout"
    assert {(e["log"], e["stream"]) for e in lines} == {("one\n", "stdout"), ("two\n", "stderr"),
                                                        ("three\n", "stdout"), ("four", "stdout")}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in lines)
    r = bb("logs", "l")
    assert r.out == "one\nthree\nfour" and r.err == "two\n"
    assert bb("logs", "--tail", "1", "l").out == "four"
    r = bb("logs", "-n", "2", "l")  # the last two entries of both streams together
    assert r.out.endswith("four") and len((r.out + "\n" + r.err).split()) == 2
    ts = bb("logs", "-t", "l").out.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z one", ts[0])
    assert bb("logs", "--since", "1h", "l").out == "one\nthree\nfour"
    assert bb("logs", "--since", "2099-01-01T00:00:00Z", "l").out == ""
    assert bb("logs", "--until", "2000-01-01T00:00:00Z", "l").out == ""
    # -f follows until the container exits
    bb("run", "-d", "--name", "f", "busybox", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    t0 = time.monotonic()
    r = bb("logs", "-f", "f", timeout=15)
    assert r.out == "line1\nline2\nline3\n" and time.monotonic() - t0 > 0.3
    # -d output goes to the log too (no --rm)
    assert bb("logs", "f").out == "line1\nline2\nline3\n"


def test_top_and_exec_basics(bb):
    bb("run", "-d", "--name", "t", "busybox", "sh", "-c", "sleep 100 & sleep 200")
    until(lambda: "sleep 200" in bb("top", "t").out, what="top to list sleep 200")
    out = bb("top", "t").out.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any("sleep 100" in l for l in out) and len(out) == 3
    r = bb("top", "t", "-o", "pid,comm")
    assert r.out.splitlines()[0].split() == ["PID", "COMMAND"]
    bb("rm", "-f", "t")


def test_auto_remove_and_restart_policies(bb):
    assert bb("run", "--rm", "--name", "x", "busybox", "true").rc == 0
    assert bb("ps", "-a", "-q").out == ""
    bb("run", "-d", "--rm", "--name", "y", "busybox", "sh", "-c", "sleep 0.2")
    until(lambda: bb("ps", "-a", "-q").out == "", what="--rm -d container to go")
    r = bb("run", "-d", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert r.rc == 125 and "conflicting options" in r.err
    # on-failure:2 -> two restarts, then it stays exited
    bb("run", "-d", "--name", "f", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 5")
    until(lambda: bb("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "f").out == "exited 2\n",
          timeout=15, what="two restarts")
    _monitor_done(bb, "f")  # no restart can follow: its monitor has exited
    assert bb("inspect", "-f", "{{.State.ExitCode}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", "f").out \
        == "5 2 on-failure\n"
    assert bb("logs", "f").out == "run\nrun\nrun\n"
    # on-failure does not restart on success
    bb("run", "-d", "--name", "ok", "--restart", "on-failure", "busybox", "true")
    until(lambda: state(bb, "ok") == "exited", what="ok to exit")
    _monitor_done(bb, "ok")
    assert bb("inspect", "-f", "{{.RestartCount}}", "ok").out == "0\n"
    # always: restarts until stop
    bb("run", "-d", "--name", "a", "--restart", "always", "busybox", "sh", "-c", "sleep 0.1")
    until(lambda: int(bb("inspect", "-f", "{{.RestartCount}}", "a").out) >= 2, timeout=15, what="restarts")
    bb("stop", "-t", "1", "a")
    _monitor_done(bb, "a")
    st = bb("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "a").out.split()
    assert st[0] == "exited"


def test_refresh_keeps_the_exit_its_monitor_recorded(bb, tmp_path):
    """A command that read a record as running just before the container died must not take
    the container for lost (255) once its monitor is gone: the monitor recorded the real exit
    (137 after a SIGKILL) meanwhile, and that stored state wins (compare-and-set)."""
    bb("run", "-d", "--name", "r", "busybox", "sleep", "100")
    monitor = int(bb("inspect", "-f", "{{.State.MonitorPid}}", "r").out)
    assert monitor > 0 and _alive(monitor)
    p = Pause(tmp_path, "refresh-active")
    p.run(bb, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "r")  # holds "running"
    bb("kill", "r")
    until(lambda: not _alive(monitor), what="the monitor to exit")
    assert p.resume() == "exited 137\n"
    assert bb("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "r").out == "exited 137\n"
