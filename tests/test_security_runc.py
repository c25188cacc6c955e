"""Issue 7, item 5: a ``--runtime runc`` container is the container, never the host.

lamina records the container's own init (runc's ``state`` pid) and drives runc's verbs, so
exec, cp, export, top, pause, stop and rm -f act on the container.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

from conftest import need_tool
from containers_util import Pty, bb, state, until  # noqa: F401  (fixture)


def _runc_state(cid: str) -> dict | None:
    p = subprocess.run([need_tool("runc"), "state", cid], capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else None


def test_runc_container_pid_exec_cp_export_top(bb, tmp_path):
    need_tool("runc")
    cid = bb("run", "-d", "--runtime", "runc", "--name", "r", "busybox", "sh", "-c",
             "echo in-container > /marker; exec sleep 1000").out.strip()
    pid = int(bb("inspect", "-f", "{{.State.Pid}}", "r").out)
    st = _runc_state(cid)
    assert st is not None and st["status"] == "running" and st["pid"] == pid
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")  # not runc
    # exec: in the container (its root, its pid namespace, its seccomp filter)
    until(lambda: bb("exec", "r", "cat", "/marker", check=False).out == "in-container\n",
          what="the container's marker")
    out = bb("exec", "r", "sh", "-c", "ls /; echo --; ps -o pid,comm; grep Seccomp: /proc/self/status").out
    root, rest = out.split("--\n")
    assert set(root.split()) <= set(os.listdir("/") + ["marker"]) and "marker" in root.split()
    assert "work" not in root.split()  # the host's /work is not in the container
    assert any(line.split() == ["1", "sleep"] for line in rest.splitlines()), rest
    assert "Seccomp:\t2" in rest
    # cp: both ways act on the container's files
    assert bb("cp", "r:/marker", "-").outb and b"in-container" in bb("cp", "r:/marker", "-").outb
    src = tmp_path / "to-container"
    src.write_text("copied in\n")
    bb("cp", str(src), "r:/tmp/copied")
    assert bb("exec", "r", "cat", "/tmp/copied").out == "copied in\n"
    assert not os.path.exists("/tmp/copied")
    # export: the container's filesystem
    tar = tarfile.open(fileobj=io.BytesIO(bb("export", "r").outb))
    names = set(tar.getnames())
    assert "marker" in names and "bin/busybox" in names and "work" not in names
    # top: the container's processes
    top = bb("top", "r").out
    assert str(pid) in top and "sleep 1000" in top
    # pause / unpause through runc
    bb("pause", "r")
    assert _runc_state(cid)["status"] == "paused" and state(bb, "r") == "paused"
    bb("unpause", "r")
    assert _runc_state(cid)["status"] == "running"
    # stop: runc kill, then the runtime's state is deleted
    bb("stop", "-t", "1", "r")
    assert state(bb, "r") == "exited"
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert _runc_state(cid) is None
    # start again (a new init), then rm -f kills and deletes it under runc
    bb("start", "r")
    pid2 = int(bb("inspect", "-f", "{{.State.Pid}}", "r").out)
    assert pid2 != pid and _runc_state(cid)["pid"] == pid2
    bb("rm", "-f", "r")
    until(lambda: not os.path.exists(f"/proc/{pid2}"), what="the runc container to die")
    assert _runc_state(cid) is None


def test_runc_foreground_exit_codes_and_terminal(bb):
    need_tool("runc")
    assert bb("run", "--rm", "--runtime", "runc", "busybox", "echo", "hi").out == "hi\n"
    assert bb("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "exit 3", check=False).rc == 3
    assert bb("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "sh -c 'kill -9 $$'; exit $?",
              check=False).rc == 137
    r = bb("run", "--rm", "--runtime", "runc", "busybox", "nosuch", check=False)
    assert r.rc == 127 and "executable file not found" in r.err
    # a foreground runc container gets pipes, not the caller's fds
    links = bb("run", "--rm", "--runtime", "runc", "busybox", "sh", "-c",
               "x=$(readlink /proc/$$/fd/0); y=$(readlink /proc/$$/fd/2); echo $x $y").out.split()
    assert links[0] == "/dev/null" and links[1].startswith("pipe:"), links
    # -t: runc makes the pty in the container and hands it to the monitor
    p = Pty(bb, "run", "-t", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "tty; stty size")
    try:
        assert p.wait(60) == 0
        while p._read(0.2):
            pass
    finally:
        p.close()
    assert b"/dev/pts/0" in p.buf and b"24 80" in p.buf, p.buf
