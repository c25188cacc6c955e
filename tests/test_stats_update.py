"""``stats`` and ``update`` through the real CLI: readings from the container's cgroups and
netns beside ``docker stats --no-stream`` on the same workload; limits written through to
the running container's cgroup files (read inside it) and to its record, kept over a
restart; Docker's refusals, side by side."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid

import pytest
from conftest import need_tool
from containers_util import bb, until  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

WORK = "sleep 300 & sleep 300 & while :; do :; done"
SIZE = r"\d+(\.\d+)?(B|kB|MB|GB|KiB|MiB|GiB)"


def _cols(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_stats_beside_docker(bb, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-stats-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)
    dname = tag + "-c"
    try:
        subprocess.run([docker, "run", "-d", "--name", dname, "-m", "64m", tag, "sh", "-c", WORK],
                       check=True, capture_output=True)
        bb("run", "-d", "--name", "s", "-m", "64m", "busybox", "sh", "-c", WORK)
        bb("run", "-d", "--name", "idle", "busybox", "sleep", "300")
        bb("create", "--name", "off", "busybox", "true")
        dout = subprocess.run([docker, "stats", "--no-stream", dname], capture_output=True, text=True,
                              check=True).stdout.splitlines()
        lout = bb("stats", "--no-stream", "s").out.splitlines()
        assert _cols(lout[0]) == _cols(dout[0])  # the same header
        assert lout[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                   "NET", "I/O", "BLOCK", "I/O", "PIDS"]
        d, l = _cols(dout[1]), _cols(lout[1])
        assert len(d) == len(l) == 8 and l[1] == "s"
        for got in (d, l):
            assert float(got[2].rstrip("%")) > 10  # a busy loop
            assert re.fullmatch(SIZE + " / 64MiB", got[3])
            assert 0 < float(got[4].rstrip("%")) < 100
            assert re.fullmatch(SIZE + " / " + SIZE, got[5]) and re.fullmatch(SIZE + " / " + SIZE, got[6])
            assert got[7] == "3"  # sh (the loop) and its two sleeps
        # all running ones by default, -a adds the stopped one with Docker's zeros; --format, --no-trunc
        names = bb("stats", "--no-stream", "--format", "{{.Name}}").out.split()
        assert sorted(names) == ["idle", "s"]
        rows = bb("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}").out
        assert "off 0.00% 0B / 0B 0\n" in rows
        cid = bb("inspect", "-f", "{{.Id}}", "idle").out.strip()
        assert bb("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}}", "idle").out == cid + "\n"
        assert bb("stats", "--no-stream", "--format", "{{json .}}", "idle").out.startswith('{"BlockIO":')
        r = bb("stats", "--no-stream", "nosuch", check=False)
        assert r.rc == 1 and "No such container: nosuch" in r.err
    finally:
        subprocess.run([docker, "rm", "-f", dname], capture_output=True)
        subprocess.run([docker, "rmi", tag], capture_output=True)


def _inside(lamina, name: str, *files: str) -> list[str]:
    return lamina("exec", name, "cat", *files).out.split()


def test_update_running_and_stopped_containers(bb):
    bb("run", "-d", "--name", "u", "busybox", "sleep", "300")
    bb("update", "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5", "-c", "512", "--pids-limit", "50",
       "--memory-reservation", "32m", "--restart", "on-failure:3", "u")
    assert _inside(bb, "u", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                   "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
                   "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                   "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/pids/pids.max") == \
        [str(64 << 20), str(128 << 20), str(32 << 20), "50000", "512", "50"]
    hc = json.loads(bb("inspect", "-f", "{{json .HostConfig}}", "u").out)
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"], hc["NanoCpus"], hc["CpuShares"],
            hc["PidsLimit"]) == (64 << 20, 128 << 20, 32 << 20, 500_000_000, 512, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # the record keeps them: a restart applies them again
    bb("restart", "-t", "0", "u")
    assert _inside(bb, "u", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max") == \
        [str(64 << 20), "50"]
    # a stopped container: its record changes, its next start uses it
    bb("create", "--name", "c", "busybox", "sleep", "300")
    r = bb("update", "--pids-limit", "20", "-m", "32m", "c", check=False)  # Docker's rule: swap too
    assert r.rc == 1 and "Memory limit should be smaller than already set memoryswap limit" in r.err
    bb("update", "--pids-limit", "20", "-m", "32m", "--memory-swap", "64m", "c")
    bb("start", "c")
    assert _inside(bb, "c", "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes") == \
        ["20", str(32 << 20)]
    assert "update" in bb("events", "--since", "1h", "--until", f"{time.time():.9f}", "--filter", "container=c", "--format",
                          "{{.Action}}").out.split()


def test_update_refusals_match_docker(bb, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-upd-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)
    dname = tag + "-c"
    cases = [
        ["-m", "256m"],                       # above the memory+swap limit already set
        ["-m", "1m"],                         # under Docker's minimum
        ["--restart", "always:3"],            # a count only on-failure takes
        [],                                   # no flag
    ]
    try:
        subprocess.run([docker, "run", "-d", "--name", dname, "-m", "64m", "--memory-swap", "128m", tag,
                        "sleep", "300"], check=True, capture_output=True)
        bb("run", "-d", "--name", "u", "-m", "64m", "--memory-swap", "128m", "busybox", "sleep", "300")
        for flags in cases:
            d = subprocess.run([docker, "update", *flags, dname], capture_output=True, text=True)
            l = bb("update", *flags, "u", check=False)
            dmsg = d.stderr.strip().splitlines()[0].removeprefix("Error response from daemon: ")
            lmsg = l.err.strip().splitlines()[0].removeprefix("Error: ")
            assert (l.rc != 0) == (d.returncode != 0), flags
            assert re.sub("[0-9a-f]{64}", "ID", lmsg) == re.sub("[0-9a-f]{64}", "ID", dmsg), flags
        # below the memory limit: dockerd passes runc's cgroup write error on; lamina says why
        r = bb("update", "--memory-swap", "32m", "u", check=False)
        assert r.rc == 1 and "Minimum memoryswap limit should be larger than memory limit" in r.err
        # below the memory limit: dockerd passes runc's cgroup write error on; lamina says why
        r = bb("update", "--memory-swap", "32m", "u", check=False)
        assert r.rc == 1 and "Minimum memoryswap limit should be larger than memory limit" in r.err
    finally:
        subprocess.run([docker, "rm", "-f", dname], capture_output=True)
        subprocess.run([docker, "rmi", tag], capture_output=True)
