"""Issue 7, runtime items: each test runs the attack (or the Docker case) against the real
CLI and asserts it fails (or gives Docker's result).

2 terminal injection, 4 exec and every container process get the container's whole profile,
6 networks lamina cannot provide, 7 --init, 8 --security-opt, 12 memory+swap, 16 signals.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
from conftest import REPO, cgroup_dir, need_tool
from containers_util import Pty, bb, image  # noqa: F401  (fixture)
from security_util import KEYRING_CALLER, host_python, host_python_cmd, host_python_home, run_as_caller

# The container types "echo INJECTED" into each of its fds with TIOCSTI (the word is built
# at run time, so only a successful injection, echoed by the caller's terminal, shows it).
TIOCSTI_ATTACK = r"""
import errno, fcntl, termios
word = "INJ" + "ECTED"
for fd in (0, 1, 2):
    try:
        for ch in ("echo " + word + "\n").encode():
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([ch]))
        res = "typed"
    except OSError as e:
        res = errno.errorcode[e.errno]
    print("fd%d %s" % (fd, res), flush=True)
"""
TTY_PROBE = "for fd in 0 1 2; do [ -t $fd ] && echo fd$fd=tty || echo fd$fd=not-tty; done; " \
            "readlink /proc/self/fd/1"


def _not_ttys(out: bytes) -> int:
    return len(re.findall(rb"^fd[012]=not-tty\r?$", out, re.M))


def _pty_run(bb, *args: str) -> tuple[int, bytes]:
    p = Pty(bb, *args)
    try:
        code = p.wait(60)
        while p._read(0.2):
            pass
        return code, p.buf
    finally:
        p.close()


# -- 2: terminal injection -----------------------------------------------------------------

@pytest.mark.parametrize("flags", [(), ("-i",), ("--rm",), ("--rm", "-i")])
def test_foreground_run_never_hands_over_the_callers_terminal(bb, flags):
    code, out = _pty_run(bb, "run", *flags, *host_python(TIOCSTI_ATTACK))
    assert code == 0, out
    assert b"INJECTED" not in out, out  # nothing was typed into the caller's terminal
    for fd in (0, 1, 2):
        assert re.search(rb"fd%d (ENOTTY|EINVAL)" % fd, out), out
    code, out = _pty_run(bb, "run", *flags, "busybox", "sh", "-c", TTY_PROBE)
    assert _not_ttys(out) == 3, out
    assert re.search(rb"pipe:\[\d+\]", out), out


def test_exec_never_hands_over_the_callers_terminal(bb):
    bb("run", "-d", "--name", "c", *host_python("import time; time.sleep(1000)"))
    for flags in ((), ("-i",)):
        code, out = _pty_run(bb, "exec", *flags, "-e", host_python_home(), "c",
                             *host_python_cmd(TIOCSTI_ATTACK))
        assert code == 0, out
        assert b"INJECTED" not in out and b"typed" not in out, out
        code, out = _pty_run(bb, "exec", *flags, "c", "sh", "-c", TTY_PROBE)
        assert _not_ttys(out) == 3, out


def test_start_attach_and_build_never_hand_over_the_terminal(bb, tmp_path):
    bb("create", "--name", "s", "busybox", "sh", "-c", TTY_PROBE)
    code, out = _pty_run(bb, "start", "-a", "s")
    assert code == 0 and _not_ttys(out) == 3, out
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN {TTY_PROBE}\n")
    code, out = _pty_run(bb, "build", "--no-cache", str(ctx))
    assert code == 0 and _not_ttys(out) == 3, out


def test_foreground_run_never_gets_the_callers_files(bb, tmp_path):
    # stdout redirected to a host file: the container must not be able to reopen that file
    # through /proc/self/fd/1 (it gets a pipe; the caller copies into the file)
    secret = tmp_path / "host-file"
    secret.write_text("host-secret\n")
    with open(secret, "a") as out:
        r = subprocess.run([sys.executable, "-m", "lamina", "run", "--rm", "busybox", "sh", "-c",
                            'x=$(readlink /proc/$$/fd/1); echo "$x" >&2; echo appended'],
                           stdout=out, stderr=subprocess.PIPE, env=bb.env, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"pipe:\[\d+\]\n", r.stderr), r.stderr
    assert secret.read_text() == "host-secret\nappended\n"


# -- 4: every container process gets the container's profile, nothing of the caller ----------

def _status(text: str) -> dict:
    return dict((k, v.strip()) for k, _, v in (ln.partition(":") for ln in text.splitlines()))


def test_exec_has_the_containers_seccomp_caps_and_limits(bb):
    bb("run", "-d", "--name", "c", "busybox", "sleep", "1000")
    init = _status(bb("exec", "c", "cat", "/proc/1/status").out)
    ex = _status(bb("exec", "c", "cat", "/proc/self/status").out)
    assert ex["Seccomp"] == "2" == init["Seccomp"]  # the container's filter (was 0)
    for k in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb", "NoNewPrivs"):
        assert ex[k] == init[k], k
    # without the filter, a new user namespace gave the exec'd process every capability
    r = bb("exec", "c", "unshare", "-Urm", "true", check=False)
    assert r.rc != 0 and "Operation not permitted" in r.err, (r.rc, r.err)
    # rlimits: the container's, not the caller's (here a caller with a soft nofile of 64)
    lim = bb("exec", "c", "sh", "-c", "grep 'open files' /proc/1/limits").out.split()[3:5]
    env = dict(bb.env)
    r = subprocess.run(["sh", "-c", 'ulimit -S -n 64; exec "$@"', "sh", sys.executable, "-m",
                        "lamina", "exec", "c", "sh", "-c", "ulimit -n; ulimit -Hn"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == lim, (r.stdout, lim)
    # cgroups: the container's (inside its cgroup namespace, every line is the root)
    assert all(ln.endswith(":/") for ln in bb("exec", "c", "cat", "/proc/self/cgroup").out.split())


def test_no_umask_env_or_fds_of_the_caller(bb, tmp_path):
    bb("run", "-d", "--name", "c", "busybox", "sleep", "1000")
    extra = os.open(tmp_path, os.O_RDONLY)  # an inheritable fd of the caller (a host dir)
    os.set_inheritable(extra, True)
    env = dict(bb.env, LAMINA_TEST_TOKEN="host-token-1234")
    probe = "umask; env | grep -c LAMINA_TEST_TOKEN; ls /proc/self/fd | tr '\\n' ' '; echo; " \
            "mkdir -p /w/new; stat -c %a /w/new; cat /proc/self/personality"
    need_tool("setarch")
    try:
        for args in (("run", "--rm", "busybox", "sh", "-c", probe),
                     ("exec", "c", "sh", "-c", probe)):
            # a caller with umask 077, an extra fd, a token in its env and ASLR turned off
            r = subprocess.run(["setarch", os.uname().machine, "-R", "sh", "-c",
                                'umask 077; exec "$@"', "sh", sys.executable, "-m", "lamina",
                                *args], capture_output=True, text=True, env=env,
                               cwd=REPO, timeout=60, pass_fds=(extra,))
            lines = r.stdout.splitlines()
            assert lines[0] == "0022", (args[0], r.stdout, r.stderr)   # runc's umask
            assert lines[1] == "0", (args[0], r.stdout)                # env: the container's only
            assert lines[2].split() == ["0", "1", "2", "3"], (args[0], r.stdout)  # 3: ls' own
            assert lines[3] == "755", (args[0], r.stdout)
            assert lines[4] == "00000000", (args[0], r.stdout)        # ASLR back on
        # a WORKDIR the runtime creates is 0755 whatever the caller's umask
        r = subprocess.run(["sh", "-c", 'umask 077; exec "$@"', "sh", sys.executable, "-m",
                            "lamina", "run", "--rm", "-w", "/made/by/runtime", "busybox", "stat",
                            "-c", "%a", "/made", "/made/by/runtime"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
        assert r.stdout.split() == ["755", "755"], (r.stdout, r.stderr)
    finally:
        os.close(extra)


def test_new_session_keyring_for_run_and_exec(bb):
    # the caller holds a key only its possessor may view; a privileged container (no masked
    # /proc/keys, no seccomp) must not possess the caller's session keyring
    r = run_as_caller(bb, KEYRING_CALLER, "run", "--rm", "--privileged", "busybox", "cat",
                      "/proc/keys")
    assert r.returncode == 0, r.stderr
    assert b"lamina-host-secret" not in r.stdout and b"keyring" in r.stdout, r.stdout
    bb("run", "-d", "--name", "p", "--privileged", "busybox", "sleep", "1000")
    r = run_as_caller(bb, KEYRING_CALLER, "exec", "p", "cat", "/proc/keys")
    assert r.returncode == 0, r.stderr
    assert b"lamina-host-secret" not in r.stdout and b"keyring" in r.stdout, r.stdout


# -- 6: networks ---------------------------------------------------------------------------------

def test_unknown_networks_are_errors_never_the_host(bb):
    for verb in ("run", "create"):
        r = bb(verb, *(["--rm"] if verb == "run" else []), "--network", "nosuch", "busybox", "true",
               check=False)
        # run: 125 as docker run; create: 1, the engine's refusal (dockerd itself checks at start)
        assert r.rc == (125 if verb == "run" else 1) and "network nosuch not found" in r.err, (verb, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert bb("ps", "-a", "-q").out == ""  # nothing was created


def test_default_network_is_a_bridge_that_cannot_reach_host_loopback(bb):
    """Issue 12 made ``bridge`` the default (issue 7 item 6 made ``none`` the default until
    then): a namespace of its own with lo and eth0; 127.0.0.1 there is the container's own."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    accepted = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            accepted.append(1)
            c.sendall(b"host-service\n")
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        probe = f"ls /sys/class/net | tr '\\n' ' '; echo; nc -w 2 127.0.0.1 {port} </dev/null || echo unreachable"
        for net in ((), ("--network", "bridge"), ("--network", "default")):
            out = bb("run", "--rm", *net, "busybox", "sh", "-c", probe).out.splitlines()
            assert out[0].split() == ["eth0", "lo"] and out[-1] == "unreachable", (net, out)
        assert not accepted
        assert bb("inspect", "-f", "{{.HostConfig.NetworkMode}}",
                  bb("create", "busybox", "true").out.strip()).out == "default\n"
        out = bb("run", "--rm", "--network", "none", "busybox", "sh", "-c", probe).out.splitlines()
        assert out[0].split() == ["lo"] and out[-1] == "unreachable"
        # --network host stays an explicit choice: the host's loopback is reachable
        out = bb("run", "--rm", "--network", "host", "busybox", "sh", "-c", probe).out
        assert "host-service" in out and accepted, out
    finally:
        srv.close()
    assert "bridge (the default)" in bb("run", "--help").out
    build_help = bb("build", "--help").out
    assert "host's network" in build_help


# -- 7: --init ------------------------------------------------------------------------------------

def test_init_is_tini_with_only_the_containers_environment(bb):
    need_tool("tini-static")
    env = dict(bb.env, LAMINA_TEST_TOKEN="host-token-5678")
    r = subprocess.run([sys.executable, "-m", "lamina", "run", "--rm", "--init", "-e", "A=1",
                        "busybox", "sh", "-c",
                        "tr '\\0' '\\n' < /proc/1/environ; echo --; cat /proc/1/comm; "
                        "tr '\\0' ' ' < /proc/1/cmdline; echo; grep ' /sbin/docker-init ' /proc/self/mountinfo"],
                       capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    environ, rest = r.stdout.split("--\n")
    names = sorted(line.split("=")[0] for line in environ.split())
    assert names == ["A", "HOME", "HOSTNAME", "PATH"], environ  # the container's, no more
    assert "host-token" not in r.stdout and "LAMINA_ROOT" not in r.stdout
    comm, cmdline, mount = rest.splitlines()
    assert comm == "docker-init" and cmdline.startswith("/sbin/docker-init -- sh -c")
    assert " ro," in mount or mount.split()[5].startswith("ro"), mount  # bound read-only
    assert os.path.realpath(need_tool("tini-static")).endswith(mount.split()[3].rsplit("/", 1)[-1])
    # exit codes come through tini as Docker's: the command's, 128+N, 127 for a missing one
    assert bb("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7", check=False).rc == 7
    assert bb("run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$", check=False).rc == 137
    r = bb("run", "--rm", "--init", "busybox", "nosuch", check=False)
    assert r.rc == 127 and "nosuch" in r.err


# -- 8: --security-opt ----------------------------------------------------------------------------

@pytest.mark.parametrize("opt,err", [
    ("bogus-opt", 'invalid --security-opt 1: "bogus-opt"'),
    ("mask=/proc/x", 'invalid --security-opt 2: "mask=/proc/x"'),
    ("systempaths=foo", 'invalid --security-opt 2: "systempaths=foo"'),
    ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ("seccomp=/nonexistent.json",
     "opening seccomp profile (/nonexistent.json) failed: open /nonexistent.json: "
     "no such file or directory"),
])
def test_security_opt_refused(bb, opt, err):
    for verb in ("run", "create"):
        r = bb(verb, "--security-opt", opt, "busybox", "true", check=False)
        assert r.rc == 125 and err in r.err, (verb, r.rc, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert bb("ps", "-a", "-q").out == ""


def test_security_opt_accepted_like_docker(bb, tmp_path):
    def status(*opts):
        out = bb("run", "--rm", *[x for o in opts for x in ("--security-opt", o)], "busybox",
                 "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                             "grep -c -E ' /proc/(keys|timer_list) ' /proc/self/mountinfo || true").out
        return out.split()

    assert status() == ["NoNewPrivs:", "0", "Seccomp:", "2", "2"]
    assert status("seccomp=unconfined") == ["NoNewPrivs:", "0", "Seccomp:", "0", "2"]
    assert status("seccomp:unconfined")[3] == "0"
    assert status("no-new-privileges")[1] == "1"
    assert status("no-new-privileges=true")[1] == "1"
    assert status("no-new-privileges=false")[1] == "0"
    assert status("systempaths=unconfined")[-1] == "0"  # /proc/keys, /proc/timer_list unmasked
    # AppArmor and SELinux options on a host that has neither: accepted, as dockerd does
    assert not os.path.exists("/sys/fs/selinux/enforce")
    for opt in ("apparmor=foo", "apparmor:unconfined", "label=disable", "label=type:foo_t",
                "label:level:s0"):
        assert status(opt)[3] == "2", opt


def test_custom_seccomp_profile(bb, tmp_path):
    prof = tmp_path / "p.json"
    # Docker's format: deny-list with an errno, an arch list, a capability-conditioned rule
    prof.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        ]}, indent=2))
    r = bb("run", "--rm", "--security-opt", f"seccomp={prof}", "busybox", "sh", "-c",
           "mkdir /x; echo mkdir=$?; ln -s a /tmp/l; echo ln=$?", check=False)
    assert "mkdir: can't create directory '/x': Permission denied" in r.err, r.err
    assert "mkdir=1" in r.out and "ln=0" in r.out, (r.out, r.err)
    r = bb("run", "--rm", "--cap-add", "SYS_ADMIN", "--security-opt", f"seccomp={prof}",
           "busybox", "sh", "-c", "ln -s a /tmp/l; echo ln=$?", check=False)
    assert "ln=1" in r.out and "Permission denied" in r.err, (r.out, r.err)  # only with SYS_ADMIN
    # kept inline, as Docker: the file can go away, inspect shows the profile
    cid = bb("create", "--name", "k", "--security-opt", f"seccomp={prof}", "busybox", "sh", "-c",
             "mkdir /y").out.strip()
    prof.unlink()
    opts = json.loads(bb("inspect", "-f", "{{json .HostConfig.SecurityOpt}}", cid).out)
    assert len(opts) == 1 and opts[0].startswith('seccomp={"defaultAction":"SCMP_ACT_ALLOW"')
    r = bb("start", "-a", "k", check=False)
    assert r.rc == 1 and "Permission denied" in r.err
    # malformed profiles: one line naming the problem, 125, nothing created
    bad = tmp_path / "bad.json"
    for text, msg in (("{", "Decoding seccomp profile failed"),
                      ('{"defaultAction": "SCMP_ACT_NOPE"}', 'defaultAction: unknown action "SCMP_ACT_NOPE"'),
                      ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], '
                       '"action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
                       "syscalls[0].args[0].index"),
                      ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}',
                       'unknown architecture "SCMP_ARCH_Z80"'),
                      ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], '
                       '"action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4"}}]}',
                       "minKernel")):
        bad.write_text(text)
        r = bb("run", "--rm", "--security-opt", f"seccomp={bad}", "busybox", "true", check=False)
        assert r.rc == 125 and msg in r.err and len(r.err.strip().splitlines()) == 1, (text, r.err)
    assert bb("ps", "-a", "-q").out.split() == [cid[:12]]


# -- 12: memory + swap ------------------------------------------------------------------------------

def test_memory_swap_is_twice_memory_like_docker(bb):
    memsw = os.path.join(cgroup_dir("memory"), "{}", "memory.memsw.limit_in_bytes")
    assert os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"), \
        "this host has no swap accounting (cgroup v1 memsw)"
    cases = ((("-m", "64m"), 128 << 20, 128 << 20),
             (("-m", "64m", "--memory-swap", "100m"), 100 << 20, 100 << 20),
             (("-m", "64m", "--memory-swap", "64m"), 64 << 20, 64 << 20),
             (("-m", "64m", "--memory-swap", "-1"), None, -1))
    for flags, limit, shown in cases:
        cid = bb("run", "-d", *flags, "busybox", "sleep", "100").out.strip()
        try:
            value = int(open(memsw.format(cid)).read())
            if limit is None:
                assert value >= 1 << 62, (flags, value)  # unlimited
            else:
                assert value == limit, (flags, value)
            assert bb("inspect", "-f", "{{.HostConfig.MemorySwap}}", cid).out.strip() == str(shown)
        finally:
            bb("rm", "-f", cid)
    assert bb("inspect", "-f", "{{.HostConfig.MemorySwap}}",
              bb("create", "busybox", "true").out.strip()).out.strip() == "0"
    r = bb("run", "--rm", "-m", "64m", "--memory-swap", "32m", "busybox", "true", check=False)
    assert r.rc == 125 and "Minimum memoryswap limit should be larger than memory limit" in r.err
    r = bb("run", "--rm", "--memory-swap", "32m", "busybox", "true", check=False)
    assert r.rc == 125 and "You should always set the Memory limit when using Memoryswap limit" in r.err


# -- 16: signals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGBOGUS", "BOGUS", "0", "65", "999", "-1", "SIG_IGN", "RTMIN+40"])
def test_invalid_stop_signal(bb, sig):
    for verb in ("run", "create"):
        r = bb(verb, "--stop-signal", sig, "busybox", "true", check=False)
        assert r.rc == 125 and f"Invalid signal: {sig}" in r.err, (verb, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert bb("ps", "-a", "-q").out == ""


def test_stop_signal_spellings_and_image_stopsignal(bb, busybox_tar):
    for sig in ("SIGUSR1", "usr1", "10", "64", "SIGRTMIN+3", "RTMAX-1"):
        cid = bb("create", "--stop-signal", sig, "busybox", "true").out.strip()
        assert bb("inspect", "-f", "{{.Config.StopSignal}}", cid).out.strip() == sig
    image(bb, busybox_tar, "badstop", "STOPSIGNAL SIGBOGUS")
    r = bb("run", "--rm", "badstop", "true", check=False)
    assert r.rc == 125 and "Invalid signal: SIGBOGUS" in r.err
    r = bb("run", "--rm", "--stop-signal", "TERM", "badstop", "true", check=False)
    assert r.rc == 0, r.err  # the flag overrides the image's
