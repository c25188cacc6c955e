"""``lamina run``: Docker's CMD/ENTRYPOINT table, exit codes, environment, users and the
/etc files of a container. Real containers through the real CLI, one store per test."""

from __future__ import annotations

import re

from containers_util import bb, image  # noqa: F401  (fixture)


# -- CMD / ENTRYPOINT (the table in Docker's Dockerfile reference) -------------------------
def test_cmd_entrypoint_table(lamina, busybox_tar):
    mk = lambda name, *c: image(lamina, busybox_tar, name, *c)  # noqa: E731
    mk("none")
    mk("cmd-exec", 'CMD ["echo", "exec_cmd", "p1_cmd"]')
    mk("cmd-shell", "CMD echo shell_cmd $HOSTNAME")
    mk("ep-exec", 'ENTRYPOINT ["echo", "exec_entry", "p1_entry"]')
    mk("ep-exec-cmd-exec", 'ENTRYPOINT ["echo", "exec_entry"]', 'CMD ["exec_cmd", "p1_cmd"]')
    mk("ep-exec-cmd-shell", 'ENTRYPOINT ["echo", "exec_entry"]', "CMD exec_cmd p1_cmd")
    mk("ep-shell", 'ENTRYPOINT echo shell_entry "[$0]"')
    mk("ep-shell-cmd", 'ENTRYPOINT echo shell_entry "[$0]" "[$1]"', 'CMD ["exec_cmd", "p1_cmd"]')

    def run(*a):
        return lamina("run", "--rm", *a, check=False)

    r = run("none")
    assert r.rc == 125 and "no command specified" in r.err
    r = lamina("create", "none", check=False)
    assert r.rc == 125 and "no command specified" in r.err
    assert run("cmd-exec").out == "exec_cmd p1_cmd\n"
    assert run("cmd-exec", "echo", "args").out == "args\n"              # args replace CMD
    out = run("cmd-shell").out                                        # /bin/sh -c (expands)
    assert re.fullmatch(r"shell_cmd [0-9a-f]{12}\n", out)
    assert run("ep-exec").out == "exec_entry p1_entry\n"
    assert run("ep-exec", "a1", "a2").out == "exec_entry p1_entry a1 a2\n"   # args appended
    assert run("ep-exec-cmd-exec").out == "exec_entry exec_cmd p1_cmd\n"
    assert run("ep-exec-cmd-exec", "x").out == "exec_entry x\n"
    assert run("ep-exec-cmd-shell").out == "exec_entry /bin/sh -c exec_cmd p1_cmd\n"
    # shell-form ENTRYPOINT: CMD and args do not reach the command line; Docker still passes
    # them to `sh -c` as positional parameters, so CMD's first word is $0
    assert run("ep-shell").out == "shell_entry [/bin/sh]\n"  # as dockerd 20.10 prints
    assert run("ep-shell-cmd").out == "shell_entry [exec_cmd] [p1_cmd]\n"
    assert run("ep-shell-cmd", "a1").out == "shell_entry [a1] []\n"
    # --entrypoint replaces ENTRYPOINT and clears the image's CMD
    assert run("--entrypoint", "echo", "ep-exec-cmd-exec").out == "\n"
    assert run("--entrypoint", "echo", "ep-exec-cmd-exec", "z").out == "z\n"
    r = run("--entrypoint", "", "ep-exec-cmd-exec")
    assert r.rc == 125 and "no command specified" in r.err
    doc = lamina("inspect", "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
                 lamina("create", "ep-exec-cmd-exec", "q").out.strip()).out
    assert doc.strip() == '["echo","exec_entry"] ["q"]'


# -- exit codes ------------------------------------------------------------------------------------
def test_exit_codes(bb):
    assert bb("run", "--rm", "busybox", "true").rc == 0
    assert bb("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).rc == 3
    r = bb("run", "--rm", "busybox", "nosuchcmd", check=False)
    assert r.rc == 127 and 'exec: "nosuchcmd": executable file not found in $PATH' in r.err
    r = bb("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert r.rc == 126 and "permission denied" in r.err
    # killed by a signal: 128+N. (PID 1 of a pid namespace is immune to SIGKILL from inside,
    # so `sh -c 'kill -9 $$'` as PID 1 exits 0 under Docker too; a child shows 137.)
    assert bb("run", "--rm", "busybox", "sh", "-c", "sh -c 'kill -9 $$'; exit $?", check=False).rc == 137
    assert bb("run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$", check=False).rc == 137
    assert bb("run", "--rm", "busybox", "sh", "-c", "kill -9 $$", check=False).rc == 0
    assert bb("run", "--rm", "busybox", "sh", "-c", "sh -c 'kill -TERM $$'; exit $?", check=False).rc == 143
    # engine errors
    r = bb("run", "--rm", "--pull", "never", "nosuchimage", check=False)  # never: no Docker Hub
    assert r.rc == 125 and "No such image" in r.err
    r = bb("run", "--rm", "-m", "lots", "busybox", "true", check=False)
    assert r.rc == 125 and 'invalid argument "lots" for "-m, --memory" flag' in r.err
    r = bb("run", "--rm", "--pids-limit", "x", "busybox", "true", check=False)
    assert r.rc == 125
    r = bb("run", "--rm", "--nosuchflag", "busybox", "true", check=False)
    assert r.rc == 125
    r = bb("run", "--rm", "--restart", "sometimes", "busybox", "true", check=False)
    assert r.rc == 125
    # a failed run leaves no container behind with --rm
    assert bb("ps", "-a", "-q").out == ""


# -- environment --------------------------------------------------------------------------------------
def _env(out: str) -> dict:
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def test_environment_defaults(bb):
    out = bb("run", "--name", "e", "busybox", "sh", "-c", "env; echo HN=$(hostname)").out
    env = _env(out)
    cid = bb("inspect", "--format", "{{.Id}}", "e").out.strip()
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOSTNAME"] == cid[:12] and env["HN"] == cid[:12]
    assert env["HOME"] == "/root"
    assert "TERM" not in env
    out = bb("run", "--rm", "-t", "busybox", "env").out
    assert _env(out.replace("\r", ""))["TERM"] == "xterm"
    out = bb("run", "--rm", "-u", "nobody", "busybox", "env").out
    assert _env(out)["HOME"] == "/nonexistent"
    out = bb("run", "--rm", "-u", "1000:1000", "busybox", "env").out
    assert _env(out)["HOME"] == "/"
    out = bb("run", "--rm", "-e", "HOME=/h", "-h", "myhost", "busybox", "sh", "-c", "env; hostname").out
    assert _env(out)["HOME"] == "/h" and _env(out)["HOSTNAME"] == "myhost" and out.endswith("myhost\n")


def test_env_flags(bb, tmp_path):
    bb.env["FROM_HOST"] = "hostval"
    bb.env.pop("UNSET_VAR", None)
    ef = tmp_path / "env.list"
    ef.write_text("# a comment\n\nFILE_A=1\nFILE_B=two words\nFROM_HOST\n")
    out = bb("run", "--rm", "-e", "A=1", "-e", "B=x=y", "-e", "FROM_HOST", "-e", "UNSET_VAR",
             "--env-file", str(ef), "busybox", "env").out
    env = _env(out)
    assert env["A"] == "1" and env["B"] == "x=y" and env["FROM_HOST"] == "hostval"
    assert env["FILE_A"] == "1" and env["FILE_B"] == "two words"
    assert "UNSET_VAR" not in env
    bad = tmp_path / "bad.list"
    bad.write_text("# comment\nOK=1\nBAD NAME=2\n")
    r = bb("run", "--rm", "--env-file", str(bad), "busybox", "true", check=False)
    assert r.rc == 125
    assert f"{bad}:3" in r.err and "BAD NAME" in r.err and "whitespace" in r.err
    r = bb("run", "--rm", "--env-file", str(tmp_path / "missing"), "busybox", "true", check=False)
    assert r.rc == 125 and "missing" in r.err


def test_workdir_and_users(bb):
    assert bb("run", "--rm", "-w", "/new/dir", "busybox", "pwd").out == "/new/dir\n"
    assert bb("run", "--rm", "busybox", "pwd").out == "/\n"
    assert bb("run", "--rm", "busybox", "id").out == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert bb("run", "--rm", "-u", "nobody", "busybox", "id").out == \
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    assert bb("run", "--rm", "-u", "1000:1000", "busybox", "id").out == "uid=1000 gid=1000 groups=1000\n"
    assert bb("run", "--rm", "-u", "0:65534", "busybox", "id", "-g").out == "65534\n"
    r = bb("run", "--rm", "-u", "nosuchuser", "busybox", "id", check=False)
    assert r.rc != 0 and "nosuchuser" in r.err
    # supplementary groups from /etc/group of the image (made with commit)
    bb("run", "--name", "g", "busybox", "sh", "-c",
       "echo staff:x:50:nobody,root >> /etc/group && echo audio:x:29:nobody >> /etc/group")
    bb("commit", "g", "grp")
    assert bb("run", "--rm", "-u", "nobody", "grp", "id").out == \
        "uid=65534(nobody) gid=65534(nogroup) groups=29(audio),50(staff),65534(nogroup)\n"
    assert bb("run", "--rm", "grp", "id").out == "uid=0(root) gid=0(root) groups=0(root),50(staff)\n"


def test_etc_files(bb):
    out = bb("run", "--name", "n", "--network", "host", "busybox", "sh", "-c",
             "cat /etc/hostname; echo --; cat /etc/hosts; echo --; cat /etc/resolv.conf; echo --; "
             "grep -E ' /etc/(hosts|hostname|resolv.conf) ' /proc/mounts | wc -l").out
    cid = bb("inspect", "--format", "{{.Id}}", "n").out.strip()
    hostname, hosts, resolv, n = out.split("--\n")
    assert hostname == cid[:12] + "\n"
    assert "127.0.0.1\tlocalhost" in hosts and f"\t{cid[:12]}" in hosts
    assert resolv == open("/etc/resolv.conf").read()
    assert n.strip() == "3"
    # with --network none the host's resolv.conf is not copied in
    out = bb("run", "--rm", "--network", "none", "busybox", "cat", "/etc/hostname").out
    assert re.fullmatch(r"[0-9a-f]{12}\n", out)
