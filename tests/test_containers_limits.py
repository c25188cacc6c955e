"""Resource limits and security options that this host supports (cgroup v1 controllers,
no CAP_SYS_RESOURCE), checked from inside and from the host."""

from __future__ import annotations

import os

from conftest import cgroup_dir
from containers_util import bb  # noqa: F401  (fixture)


def _status(out: str) -> dict:
    return dict((l.split(":", 1)[0], l.split(":", 1)[1].strip()) for l in out.splitlines() if ":" in l)


def test_cgroup_limits_and_ulimits(bb):
    cid = bb("run", "-d", "--name", "l", "-m", "64m", "--pids-limit", "20", "--cpus", "0.5",
             "--ulimit", "nofile=1024:1024", "busybox", "sleep", "100").out.strip()
    host = os.path.join(cgroup_dir("memory", cid), "memory.limit_in_bytes")
    assert open(host).read().strip() == str(64 << 20)
    assert open(os.path.join(cgroup_dir("pids", cid), "pids.max")).read().strip() == "20"
    out = bb("exec", "l", "sh", "-c",
             "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
             "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
             "ulimit -n; ulimit -Hn").out.split()
    assert out == [str(64 << 20), "20", "50000", "100000", "1024", "1024"]
    hc = bb("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}", "l").out
    assert hc.split() == [str(64 << 20), "20", "500000000"]
    # the pids limit bites: busybox sh gives up at its first refused fork (exit 2), and the
    # host's pids cgroup counted exactly that one refusal
    events = os.path.join(cgroup_dir("pids", cid), "pids.events")
    assert open(events).read() == "max 0\n"
    r = bb("exec", "l", "sh", "-c", "for i in $(seq 40); do sleep 30 & done", check=False)
    assert (r.rc, r.err) == (2, "sh: can't fork: Resource temporarily unavailable\n")
    assert open(events).read() == "max 1\n"
    bb("rm", "-f", "l")
    assert not os.path.exists(cgroup_dir("memory", cid))
    r = bb("run", "--rm", "--ulimit", "nofile=2048:1024", "busybox", "true", check=False)
    assert r.rc == 125 and "soft limit" in r.err


def test_capabilities_and_security(bb):
    st = _status(bb("run", "--rm", "busybox", "cat", "/proc/self/status").out)
    assert st["CapEff"] == "00000000a80425fb" and st["NoNewPrivs"] == "0"   # Docker's default set
    st = _status(bb("run", "--rm", "--cap-drop", "ALL", "busybox", "cat", "/proc/self/status").out)
    assert st["CapEff"] == st["CapBnd"] == "0000000000000000"
    st = _status(bb("run", "--rm", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "cap_net_admin",
                    "busybox", "cat", "/proc/self/status").out)
    assert int(st["CapEff"], 16) == (1 << 0) | (1 << 12)
    r = bb("run", "--rm", "--cap-drop", "ALL", "busybox", "chown", "nobody", "/tmp", check=False)
    assert r.rc == 1 and "Operation not permitted" in r.err
    st = _status(bb("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "cat", "/proc/self/status").out)
    assert int(st["CapEff"], 16) & (1 << 21)
    host_bnd = int(_status(open("/proc/self/status").read())["CapBnd"], 16)
    st = _status(bb("run", "--rm", "--privileged", "busybox", "cat", "/proc/self/status").out)
    assert int(st["CapEff"], 16) == host_bnd
    out = bb("run", "--rm", "--privileged", "busybox", "sh", "-c", "ls /dev | wc -l; mkdir -p /mnt; mount -t tmpfs t /mnt && echo mounted").out
    # (Docker's --privileged also shows every host device in /dev; lamina's spec does not yet)
    assert out.split()[1] == "mounted"
    st = _status(bb("run", "--rm", "--security-opt", "no-new-privileges", "busybox", "cat", "/proc/self/status").out)
    assert st["NoNewPrivs"] == "1"
    st = _status(bb("run", "--rm", "--security-opt", "no-new-privileges:true", "busybox", "cat", "/proc/self/status").out)
    assert st["NoNewPrivs"] == "1"
    # default seccomp profile: unshare of a user namespace... needs CAP_SYS_ADMIN, so use a blocked syscall
    assert st["Seccomp"] == "2"


def test_network_and_init(bb):
    assert bb("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").out == "lo\n"
    assert "inet 127.0.0.1" in bb("run", "--rm", "--network", "none", "busybox", "ip", "addr").out
    assert bb("run", "--rm", "busybox", "ls", "/sys/class/net").out == "eth0\nlo\n"  # bridge: the default
    ifaces = bb("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net").out.split()
    assert "lo" in ifaces and len(ifaces) > 1 and set(ifaces) & set(os.listdir("/sys/class/net")) - {"lo"}
    r = bb("run", "--rm", "--network", "nosuch", "busybox", "true", check=False)
    assert r.rc == 125 and "nosuch" in r.err
    # --init: PID 1 is the reaper, the command is its child, signals reach the command
    out = bb("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/comm; echo $$; echo $PPID").out.split()
    assert out == ["docker-init", "2", "1"]  # Debian's tini, as Docker's docker-init
    # the reaper collects orphans: no zombie remains after a grandchild dies
    out = bb("run", "--rm", "--init", "busybox", "sh", "-c",
             "(sleep 0.1 &) ; sleep 0.4; ps -o stat,comm | grep -c '^Z' || true").out
    assert out.strip() == "0"
    assert bb("inspect", "-f", "{{.HostConfig.Init}}",
              bb("create", "--init", "busybox", "true").out.strip()).out == "true\n"
