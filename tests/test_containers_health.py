"""Health checks through the real CLI: the --health-* flags and an image's HEALTHCHECK, run by
the container's monitor (or a foreground ``run``) through the exec path; ``ps`` STATUS,
``inspect`` .State.Health, ``ps --filter health=`` and the ``health_status`` events; the
same container side by side with dockerd."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid

import pytest
from conftest import mkctx, need_tool
from containers_util import bb, until  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _status(lamina, name: str) -> str:
    return lamina("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").out.strip()


def _health(lamina, name: str):
    return json.loads(lamina("inspect", "-f", "{{json .State.Health}}", name).out)


def test_health_flags_status_inspect_filter_and_events(bb):
    bb("run", "-d", "--name", "h", "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms",
       "--health-retries", "2", "busybox", "sleep", "300")
    assert re.fullmatch(r"Up .* \(health: starting\)", _status(bb, "h"))
    assert _health(bb, "h")["Status"] == "starting"
    until(lambda: _status(bb, "h").endswith("(unhealthy)"), what="unhealthy")
    h = _health(bb, "h")
    assert h["Status"] == "unhealthy" and h["FailingStreak"] >= 2
    assert bb("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").out == "h\n"
    assert bb("ps", "--filter", "health=healthy", "-q").out == ""
    bb("exec", "h", "touch", "/tmp/ok")
    until(lambda: _status(bb, "h").endswith("(healthy)"), what="healthy")
    until(lambda: len(_health(bb, "h")["Log"]) == 5, what="five probes logged")
    bb("exec", "h", "true")  # more probes: the log keeps the last five
    until(lambda: _health(bb, "h")["Log"][-1]["ExitCode"] == 0 and _health(bb, "h")["Log"][0]["ExitCode"] == 0,
          what="log of healthy probes only")
    h = _health(bb, "h")
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0 and len(h["Log"]) == 5
    assert all(sorted(e) == ["End", "ExitCode", "Output", "Start"] for e in h["Log"])
    assert bb("ps", "--filter", "health=healthy", "--format", "{{.Names}}").out == "h\n"
    r = bb("ps", "--filter", "health=bogus", check=False)
    assert r.rc != 0 and "Unrecognised filter value for health: bogus" in r.err
    ev = bb("events", "--since", "1h", "--until", f"{time.time():.9f}", "--filter", "container=h", "--format",
            "{{.Action}}").out.splitlines()
    assert ev.index("health_status: unhealthy") < ev.index("health_status: healthy")
    assert "exec_create: /bin/sh -c test -e /tmp/ok" in ev


def test_probe_runs_with_the_containers_whole_profile(bb):
    # the probe is a process in the container with its env, caps, seccomp, cgroup and user:
    # exactly what `exec` gets, nothing of the monitor's
    probe = ("echo $FOO; id; grep -E '^(CapEff|Seccomp|NoNewPrivs)' /proc/self/status; cat /proc/self/cgroup; "
             "for n in pid mnt net; do readlink /proc/self/ns/$n; done")
    bb("run", "-d", "--name", "p", "-e", "FOO=bar", "-u", "65534", "--cap-drop", "ALL", "--security-opt",
       "no-new-privileges", "--health-cmd", probe, "--health-interval", "200ms", "busybox", "sleep", "300")
    until(lambda: (_health(bb, "p") or {}).get("Log"), what="a probe")
    got = _health(bb, "p")["Log"][0]
    want = bb("exec", "p", "sh", "-c", probe).out
    assert got["ExitCode"] == 0 and got["Output"] == want
    assert want.startswith("bar\nuid=65534") and "CapEff:\t0000000000000000" in want and "Seccomp:\t2" in want
    host = subprocess.run(["readlink", "/proc/self/ns/pid"], capture_output=True, text=True).stdout
    assert host not in want


def test_probe_timeout_and_start_period(bb):
    bb("run", "-d", "--name", "t", "--health-cmd", "sleep 30", "--health-timeout", "300ms",
       "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "300")
    until(lambda: _status(bb, "t").endswith("(unhealthy)"), what="unhealthy by timeout")
    e = _health(bb, "t")["Log"][0]
    assert e["ExitCode"] == -1 and e["Output"] == "Health check exceeded timeout (300ms)"
    # the timed-out probe was killed, not left behind in the container
    until(lambda: "sleep 30" not in bb("top", "t").out or len(_health(bb, "t")["Log"]) < 5, what="probe killed")
    # within the start period a failure does not count: the container stays "starting"
    bb("run", "-d", "--name", "s", "--health-cmd", "false", "--health-interval", "200ms", "--health-retries", "1",
       "--health-start-period", "1h", "busybox", "sleep", "300")
    until(lambda: len(_health(bb, "s")["Log"]) >= 3, what="three probes")
    h = _health(bb, "s")
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    r = bb("run", "-d", "--health-interval", "10", "busybox", "true", check=False)
    assert r.rc == 125 and 'time: missing unit in duration "10"' in r.err


def test_image_healthcheck_no_healthcheck_and_foreground_run(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD test -e /etc/passwd\n")
    bb("build", "-q", "-t", "hc", ctx)
    bb("run", "-d", "--name", "img", "hc", "sleep", "300")
    until(lambda: _status(bb, "img").endswith("(healthy)"), what="image HEALTHCHECK healthy")
    bb("run", "-d", "--name", "off", "--no-healthcheck", "hc", "sleep", "300")
    assert bb("inspect", "-f", "{{json .State.Health}}", "off").out == "null\n"
    assert re.fullmatch(r"Up [^()]*", _status(bb, "off"))
    # a foreground run is its own monitor: it runs the probes too
    p = bb.popen("run", "--name", "fg", "hc", "sleep", "300", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: bb("ps", "--filter", "name=fg", "--filter", "health=healthy", "-q").out.strip(),
              timeout=20, what="foreground container healthy")
    finally:
        bb("rm", "-f", "fg")
        p.wait(timeout=30)


def test_health_side_by_side_with_docker(bb, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-health-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)
    flags = ["--health-cmd", "echo probing; exit 3", "--health-interval", "200ms", "--health-retries", "2"]
    dname = f"{tag}-c"
    try:
        subprocess.run([docker, "run", "-d", "--name", dname, *flags, tag, "sleep", "300"], check=True,
                       capture_output=True)
        bb("run", "-d", "--name", "h", *flags, "busybox", "sleep", "300")

        def dstatus():
            return subprocess.run([docker, "ps", "-a", "--filter", f"name={dname}", "--format", "{{.Status}}"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        until(lambda: dstatus().endswith("(unhealthy)"), what="docker: unhealthy")
        until(lambda: _status(bb, "h").endswith("(unhealthy)"), what="lamina: unhealthy")
        assert re.sub(r"\d+ seconds?|Less than a second", "N", dstatus()) == \
            re.sub(r"\d+ seconds?|Less than a second", "N", _status(bb, "h"))
        dh = json.loads(subprocess.run([docker, "inspect", "-f", "{{json .State.Health}}", dname],
                                       capture_output=True, text=True, check=True).stdout)
        lh = _health(bb, "h")
        # (key order: lamina's inspect templates see the record as a map, sorted, today)
        assert sorted(dh) == sorted(lh) and dh["Status"] == lh["Status"] == "unhealthy"
        de, le = dh["Log"][0], lh["Log"][0]
        assert sorted(de) == sorted(le) and (de["ExitCode"], de["Output"]) == (le["ExitCode"], le["Output"]) == \
            (3, "probing\n")
        fmt = "{{.Type}} {{.Action}}"
        now = f"{time.time():.9f}"  # ("0s" is now in whole seconds, as Docker's client sends it)
        dev = subprocess.run([docker, "events", "--since", "5m", "--until", now, "--filter", f"container={dname}",
                              "--filter", "event=health_status", "--format", fmt],
                             capture_output=True, text=True, check=True).stdout
        lev = bb("events", "--since", "5m", "--until", now, "--filter", "container=h", "--filter",
                 "event=health_status", "--format", fmt).out
        assert dev == lev == "container health_status: unhealthy\n"
    finally:
        subprocess.run([docker, "rm", "-f", dname], capture_output=True)
        subprocess.run([docker, "rmi", tag], capture_output=True)
