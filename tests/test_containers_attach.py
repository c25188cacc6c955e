"""``attach`` proxies signals to the container (``--sig-proxy``, the default) when it has
no raw tty: a signal sent to the attach client reaches the container's process."""

from __future__ import annotations

import signal
import subprocess

from containers_util import until


def _catches(pid: int, sig: int) -> bool:
    """True once process ``pid`` has a handler for ``sig`` (SigCgt in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(l.split()[1], 16) for l in f if l.startswith("SigCgt:"))
    return bool(caught >> (sig - 1) & 1)


def test_attach_forwards_signals(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    lamina("run", "-d", "--name", "trap", "busybox", "sh", "-c",
           "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done")
    until(lambda: "ready" in lamina("logs", "trap").out, what="the container's trap")
    p = lamina.popen("attach", "--no-stdin", "trap", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # the client proxies signals once it is connected and its handlers are set
        until(lambda: _catches(p.pid, signal.SIGUSR1), what="attach to set its signal proxy")
        p.send_signal(signal.SIGUSR1)
        until(lambda: "got-usr1" in lamina("logs", "trap").out, what="the forwarded USR1")
    finally:
        lamina("rm", "-f", "trap")
        p.wait(30)


def test_rm_f_stops_a_restart_policy_container(lamina, busybox_tar):
    """`rm -f` of a --restart always container must not leave it restarting without a record."""
    import os
    lamina("import", busybox_tar, "busybox")
    lamina("run", "-d", "--restart", "always", "--name", "again", "busybox", "sleep", "100")
    monitor = int(lamina("inspect", "-f", "{{.State.MonitorPid}}", "again").out)
    assert os.path.exists(f"/proc/{monitor}")
    lamina("rm", "-f", "again")
    until(lambda: not os.path.exists(f"/proc/{monitor}"),
          what="the monitor to stop restarting a removed container")
    assert lamina("ps", "-a", "-q").out.strip() == ""
