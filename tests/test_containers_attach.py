"""``attach`` proxies signals to the container (``--sig-proxy``, the default) when it has
no raw tty: a signal sent to the attach client reaches the container's process."""

from __future__ import annotations

import signal
import subprocess
import time


def test_attach_forwards_signals(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    lamina("run", "-d", "--name", "trap", "busybox", "sh", "-c",
           "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done")
    deadline = time.time() + 10
    while "ready" not in lamina("logs", "trap").out and time.time() < deadline:
        time.sleep(0.05)
    p = lamina.popen("attach", "--no-stdin", "trap", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # connected
        p.send_signal(signal.SIGUSR1)
        deadline = time.time() + 10
        while "got-usr1" not in lamina("logs", "trap").out and time.time() < deadline:
            time.sleep(0.05)
        assert "got-usr1" in lamina("logs", "trap").out
    finally:
        lamina("rm", "-f", "trap")
        p.wait(10)


def test_rm_f_stops_a_restart_policy_container(lamina, busybox_tar):
    """`rm -f` of a --restart always container must not leave it restarting without a record."""
    import os
    lamina("import", busybox_tar, "busybox")
    lamina("run", "-d", "--restart", "always", "--name", "again", "busybox", "sleep", "100")
    monitor = int(lamina("inspect", "-f", "{{.State.MonitorPid}}", "again").out)
    assert os.path.exists(f"/proc/{monitor}")
    lamina("rm", "-f", "again")
    deadline = time.time() + 10
    while os.path.exists(f"/proc/{monitor}") and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{monitor}"), "the monitor kept restarting a removed container"
    assert lamina("ps", "-a", "-q").out.strip() == ""
