"""Terminals and exec: ``run -it`` on a real pty, detach keys, ``attach``, ``exec`` (also
``-it`` on a pty)."""

from __future__ import annotations

import re

from containers_util import Pty, bb, state, until  # noqa: F401  (fixture)


def test_run_it_detach_and_reattach(bb):
    p = Pty(bb, "run", "-it", "--name", "c", "busybox", "sh")
    try:
        p.expect(b"# ")
        p.send(b"echo h$((1+0))i; tty\r")
        # the pty is made in the container's own devpts, as runc does: /dev/pts/0
        p.expect_re(rb"h1i\r\n/dev/pts/0\r\n")
        p.send(b"ps -o pid,tty,comm; [ /dev/console -ef /dev/pts/0 ] && echo s$((1+1))me\r")
        p.expect_re(rb"\n +1 (pts/0|136,0) +sh\r\n")  # busybox ps: major,minor of pts/0
        p.expect(b"s2me\r\n")  # /dev/console is bound to the pty slave, as with runc
        p.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert p.wait() == 0
    finally:
        p.close()
    assert state(bb, "c") == "running"
    assert re.search(r"Up .*\bc$", bb("ps").out.strip())
    a = Pty(bb, "attach", "c")
    try:
        a.send(b"\r")
        a.expect(b"# ")  # output flows: the client is attached and its terminal is raw
        a.send(b"echo b$((1+1))ck\r")
        a.expect(b"b2ck\r\n")
        a.send(b"exit\r")
        assert a.wait() == 0
    finally:
        a.close()
    assert state(bb, "c") == "exited"
    assert re.search(r"Exited \(0\)", bb("ps", "-a").out)


def test_run_it_exit_code_ctrl_d_and_detach_keys(bb):
    p = Pty(bb, "run", "-it", "--rm", "busybox", "sh")
    try:
        p.expect(b"# ")
        p.send(b"exit 5\r")
        assert p.wait() == 5
    finally:
        p.close()
    p = Pty(bb, "run", "-it", "--name", "d", "busybox", "sh")
    try:
        p.expect(b"# ")
        p.send(b"\x04")  # ctrl-d: EOF to the shell
        assert p.wait() == 0
    finally:
        p.close()
    assert state(bb, "d") == "exited"
    p = Pty(bb, "run", "-it", "--name", "k", "--detach-keys", "ctrl-x,x", "busybox", "sh")
    try:
        p.expect(b"# ")
        p.send(b"\x10\x11echo st$((1+1))ll\r")  # the default keys are plain input now
        p.expect(b"st2ll\r\n")
        p.send(b"\x18x")
        assert p.wait() == 0
    finally:
        p.close()
    assert state(bb, "k") == "running"
    # the container's detach keys are remembered for attach
    a = Pty(bb, "attach", "k")
    try:
        a.send(b"\r")
        a.expect(b"# ")
        a.send(b"echo ag$((1+1))in\r")
        a.expect(b"ag2in\r\n")
        a.send(b"\x18x")
        assert a.wait() == 0
    finally:
        a.close()
    assert state(bb, "k") == "running"
    r = bb("run", "--rm", "--detach-keys", "ctrl-", "busybox", "true", check=False)
    assert r.rc == 125 and "detach keys" in r.err
    bb("rm", "-f", "k")
    # a window size reaches the container's terminal
    p = Pty(bb, "run", "-it", "--rm", "busybox", "stty", "size", cols=123, rows=45)
    try:
        p.expect(b"45 123")
        assert p.wait() == 0
    finally:
        p.close()


def test_run_i_pipes_stdin(bb):
    assert bb("run", "--rm", "-i", "busybox", "cat", input=b"piped\n").out == "piped\n"
    assert bb("run", "--rm", "busybox", "cat", input=b"not read\n").out == ""


def test_exec(bb):
    bb("run", "-d", "--name", "c", "busybox", "sh", "-c", "echo $$ > /tmp/pid; exec sleep 100")
    hostname = bb("inspect", "-f", "{{.Config.Hostname}}", "c").out.strip()
    assert bb("exec", "c", "cat", "/etc/hostname").out == hostname + "\n"
    assert bb("exec", "c", "hostname").out == hostname + "\n"
    ps = bb("exec", "c", "ps").out.splitlines()
    assert re.match(r"\s*1\s+root\s+sleep 100", ps[1])
    assert bb("exec", "-e", "A=1", "c", "sh", "-c", "echo $A $HOME").out == "1 /root\n"
    assert bb("exec", "-u", "nobody", "c", "id", "-u").out == "65534\n"
    assert bb("exec", "-u", "nobody", "c", "id").out == \
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    assert bb("exec", "-w", "/tmp", "c", "pwd").out == "/tmp\n"
    assert bb("exec", "c", "sh", "-c", "exit 3", check=False).rc == 3
    r = bb("exec", "c", "nosuch", check=False)
    assert r.rc == 127 and "executable file not found" in r.err
    assert bb("exec", "-i", "c", "cat", input=b"in\n").out == "in\n"
    assert bb("exec", "-d", "c", "sh", "-c", "sleep 0.2; echo done > /tmp/d").out == ""
    until(lambda: bb("exec", "c", "cat", "/tmp/d", check=False).out == "done\n", what="exec -d to finish")
    # exec -it on a real pty
    p = Pty(bb, "exec", "-it", "c", "sh")
    try:
        p.expect(b"# ")
        p.send(b"tty; echo $TERM; stat -c %U $(tty)\r")
        p.expect(b"xterm\r\n")
        assert re.search(rb"\n/dev/pts/\d+\r\nxterm\r\n", p.buf)
        p.send(b"exit 2\r")
        assert p.wait() == 2
    finally:
        p.close()
    assert state(bb, "c") == "running"
    bb("stop", "-t", "0", "c")
    r = bb("exec", "c", "true", check=False)
    assert r.rc != 0 and "is not running" in r.err
