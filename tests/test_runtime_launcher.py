"""Real containers from a busybox rootfs: lamina.runtime.spec + lamina.runtime.launcher.

Needs root, /bin/busybox (busybox-static), runc for the differential test.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import uuid

import pytest
from conftest import CGROUP_PARENT, cgroup_dir, need_tool, wait_for

from lamina.errors import InvalidArgument, LaminaError, Unavailable
from lamina.runtime import launcher
from lamina.runtime.launcher import launch, spawn
from lamina.runtime.spec import ALL_CAPS, DEFAULT_CAPS, MountSpec, RunOptions, build_spec, resolve_user

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MASK = sum(1 << ALL_CAPS.index(c) for c in DEFAULT_CAPS)


def make_rootfs(d: str) -> None:
    os.makedirs(d + "/bin")
    os.makedirs(d + "/etc")
    shutil.copy("/bin/busybox", d + "/bin/busybox")
    names = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    for n in names:
        if n != "busybox":
            os.symlink("busybox", f"{d}/bin/{n}")
    with open(d + "/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                "app:x:1000:1000:app:/home/app:/bin/sh\n")
    with open(d + "/etc/group", "w") as f:
        f.write("root:x:0:\nwheel:x:10:root\napp:x:1000:\nextra:x:2000:app\n"
                "nogroup:x:65534:\n")
    with open(d + "/etc/marker", "w") as f:
        f.write("marker-in-image\n")
    with open(d + "/notexec", "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(d + "/notexec", 0o644)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("rt"))
    make_rootfs(d + "/rootfs")
    return d


class Box:
    """One bundle dir sharing the module's rootfs (bind-mounted inside the container)."""

    def __init__(self, base: str, tmp: str) -> None:
        self.base = base
        self.rootfs_src = base + "/rootfs"
        self.tmp = tmp

    def bundle(self, opts: RunOptions) -> str:
        b = tempfile.mkdtemp(dir=self.tmp)
        os.mkdir(b + "/rootfs")
        with open(b + "/config.json", "w") as f:
            json.dump(build_spec(opts, root_path="rootfs"), f)
        return b

    def mounts(self):
        from lamina.mount import Mount
        return [Mount("bind", self.rootfs_src, ("rbind",))]

    def run(self, *args: str, sh: str | None = None, runtime: str = "builtin",
            bundle: str | None = None, **kw):
        if sh is not None:
            args = ("sh", "-c", sh)
        opts = RunOptions(args=tuple(args), **kw)
        b = bundle or self.bundle(opts)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            code = launcher.run(b, container_id="t" + uuid.uuid4().hex[:12],
                                rootfs_mounts=self.mounts(),
                                stdio=(os.open("/dev/null", os.O_RDONLY), out.fileno(),
                                       err.fileno()), runtime=runtime)
            out.seek(0)
            err.seek(0)
            return code, out.read().decode(), err.read().decode()


@pytest.fixture
def box(base, tmp_path):
    return Box(base, str(tmp_path))


def status_field(text: str, name: str) -> str:
    m = re.search(rf"^{name}:\s*(\S+)", text, re.M)
    assert m, text
    return m.group(1)


# -- spec (pure) --------------------------------------------------------------------------------

def test_resolve_user_variants(base):
    r = base + "/rootfs"
    assert resolve_user(r, "") == resolve_user(r, "root")
    assert resolve_user(r, "").uid == 0 and resolve_user(r, "").additional_gids == (10,)
    assert resolve_user(r, "app").additional_gids == (2000,)
    assert resolve_user(r, "app").home == "/home/app"
    assert resolve_user(r, "1000:2000") == resolve_user(r, "app:extra")
    assert resolve_user(r, "1000:2000").additional_gids == ()
    u = resolve_user(r, "4242")
    assert (u.uid, u.gid, u.home) == (4242, 0, "/")
    with pytest.raises(InvalidArgument, match="unable to find user foo: no matching entries "
                                              "in passwd file"):
        resolve_user(r, "foo")
    with pytest.raises(InvalidArgument, match="unable to find group nope"):
        resolve_user(r, "app:nope")


def test_resolve_user_never_leaves_rootfs(tmp_path):
    r = tmp_path / "r"
    (r / "etc").mkdir(parents=True)
    (tmp_path / "evil").write_text("root:x:0:0::/:/bin/sh\nhost:x:7:7::/:/bin/sh\n")
    os.symlink("/../../evil", r / "etc" / "passwd")  # absolute + dotdot: stays in r
    with pytest.raises(InvalidArgument):
        resolve_user(str(r), "host")


def _allowed(spec: dict) -> set:
    return {n for r in spec["linux"]["seccomp"]["syscalls"]
            if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def test_spec_defaults_and_seccomp():
    s = build_spec(RunOptions(args=("true",)), root_path="rootfs")
    assert s["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPS)
    assert "inheritable" not in s["process"]["capabilities"]
    assert {n["type"] for n in s["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount",
                                                              "network", "cgroup"}
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"  # an allow-list
    allowed = _allowed(s)
    for n in ("mount", "keyctl", "unshare", "setns", "reboot", "bpf"):
        assert n not in allowed
    s2 = build_spec(RunOptions(args=("true",), cap_add=("sys_ptrace", "CAP_SYS_ADMIN"),
                               network="host"), root_path="r")
    allowed2 = _allowed(s2)
    assert "process_vm_readv" in allowed2 and "mount" in allowed2 and "keyctl" not in allowed2
    assert {"type": "network"} not in s2["linux"]["namespaces"]
    p = build_spec(RunOptions(args=("true",), privileged=True), root_path="r")
    assert "seccomp" not in p["linux"] and "maskedPaths" not in p["linux"]
    with pytest.raises(InvalidArgument, match="unknown capability"):
        build_spec(RunOptions(args=("true",), cap_add=("NOPE",)), root_path="r")


# -- the container's view --------------------------------------------------------------------

def test_hostname_env_cwd(box):
    code, out, err = box.run(sh="hostname; echo $FOO; pwd; echo $HOME", hostname="h1",
                             env=("FOO=bar baz",), cwd="/work/new/dir")
    assert (code, out.split("\n")[:4]) == (0, ["h1", "bar baz", "/work/new/dir", "/root"]), err


@pytest.mark.parametrize("user,expect", [
    ("", "uid=0(root) gid=0(root) groups=10(wheel)"),
    ("nobody", "uid=65534(nobody) gid=65534(nogroup)"),
    ("1000:2000", "uid=1000(app) gid=2000(extra)"),
    ("app", "uid=1000(app) gid=1000(app) groups=2000(extra)"),
])
def test_users(box, user, expect):
    code, out, err = box.run("id", user=resolve_user(box.rootfs_src, user))
    assert code == 0, err
    # exactly: the launcher sets the groups the spec lists (the CLI adds the primary group,
    # as Docker does: see test_containers_run)
    assert out == expect + "\n", out


def test_default_caps(box):
    code, out, _ = box.run("cat", "/proc/self/status")
    assert int(status_field(out, "CapEff"), 16) == DEFAULT_MASK
    assert int(status_field(out, "CapBnd"), 16) == DEFAULT_MASK
    assert int(status_field(out, "CapPrm"), 16) == DEFAULT_MASK
    assert int(status_field(out, "CapInh"), 16) == 0
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Seccomp") == "2"


def test_cap_add_drop_all_privileged(box):
    # "all" is every capability this host grants (CAP_SYS_RESOURCE is missing here)
    full = int(status_field(open("/proc/self/status").read(), "CapBnd"), 16)
    sysadmin, chown = 1 << 21, 1 << 0
    _, out, _ = box.run("cat", "/proc/self/status", cap_add=("SYS_ADMIN",), cap_drop=("chown",))
    assert int(status_field(out, "CapBnd"), 16) == (DEFAULT_MASK | sysadmin) & ~chown
    _, out, _ = box.run("cat", "/proc/self/status", cap_add=("ALL",))
    assert int(status_field(out, "CapEff"), 16) == full
    _, out, _ = box.run("cat", "/proc/self/status", cap_drop=("ALL",), cap_add=("KILL",))
    assert int(status_field(out, "CapBnd"), 16) == 1 << 5
    _, out, _ = box.run("cat", "/proc/self/status", privileged=True)
    assert int(status_field(out, "CapBnd"), 16) == full
    assert status_field(out, "Seccomp") == "0"


def test_nnp_and_seccomp_blocks(box):
    code, out, _ = box.run("cat", "/proc/self/status", no_new_privileges=True)
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "2"
    code, out, err = box.run("unshare", "-u", "true")
    assert code != 0 and "Operation not permitted" in err
    # CAP_SYS_ADMIN lifts both the capability check and the seccomp block
    code, out, err = box.run("unshare", "-u", "true", cap_add=("SYS_ADMIN",))
    assert code == 0, err
    # seccomp alone blocks it: all capabilities but the default profile without SYS_ADMIN
    opts = RunOptions(args=("unshare", "-u", "true"), cap_add=("SYS_ADMIN",))
    b = box.bundle(opts)
    spec = json.load(open(b + "/config.json"))
    spec["linux"]["seccomp"] = build_spec(RunOptions(args=("x",)), root_path="r")["linux"][
        "seccomp"]
    json.dump(spec, open(b + "/config.json", "w"))
    code, out, err = box.run(bundle=b)
    assert code != 0 and "Operation not permitted" in err


def test_masked_and_readonly_paths(box):
    code, out, err = box.run(sh="cat /proc/kcore | wc -c; ls /proc/acpi | wc -l; "
                                "echo 1 > /proc/sys/vm/drop_caches; echo rc=$?")
    assert out.split()[:2] == ["0", "0"], (out, err)
    assert "rc=1" in out and "Read-only file system" in err


def test_readonly_rootfs(box):
    code, out, err = box.run(sh="touch /newfile; echo rc=$?; touch /dev/shm/ok && echo shm-ok",
                             readonly_rootfs=True)
    assert "rc=1" in out and "shm-ok" in out and "Read-only file system" in err


def test_network_none_and_host(box):
    code, out, _ = box.run("cat", "/proc/net/dev", network="none")
    ifaces = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    assert ifaces == {"lo"}
    code, out, _ = box.run("ip", "link", "show", "lo", network="none")
    assert "UP" in out
    code, out, _ = box.run("cat", "/proc/net/dev", network="host")
    host = {line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]}
    assert {line.split(":")[0].strip() for line in out.splitlines()[2:]} == host


def test_dev_contents_and_shm_size(box):
    code, out, _ = box.run(sh="ls /dev; grep ' /dev/shm ' /proc/self/mountinfo",
                           shm_size=8 << 20)
    names = set(out.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
            "fd", "stdin", "stdout", "stderr", "ptmx"} <= names
    assert "size=8192k" in out


def test_bind_and_tmpfs_mounts(box, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("from-host\n")
    code, out, err = box.run(
        sh="cat /data/f; touch /data/x; echo rc=$?; touch /ro/y; echo rc=$?; "
           "echo t > /scratch/t && cat /scratch/t; grep ' /scratch ' /proc/self/mountinfo",
        mounts=(MountSpec("bind", str(src), "/data"), MountSpec("bind", str(src), "/ro", ("ro",)),
                MountSpec("tmpfs", "tmpfs", "/scratch", ("size=1m",))))
    lines = out.splitlines()
    assert lines[0] == "from-host" and lines[1] == "rc=0" and lines[2] == "rc=1", (out, err)
    assert lines[3] == "t" and "size=1024k" in lines[4]
    assert (src / "x").exists()


@pytest.mark.parametrize("kw,expect", [
    (dict(sh="exit 0"), 0),
    (dict(sh="exit 3"), 3),
    (dict(sh="kill -9 $$", init=True), 137),
    (dict(sh="kill $$", init=True), 143),
    (dict(sh="sh -c 'kill -9 $$'; exit $?"), 137),  # not PID 1: the signal is not ignored
])
def test_exit_codes(box, kw, expect):
    code, out, err = box.run(**kw)
    assert code == expect, (out, err)


def test_exec_errors(box):
    code, out, err = box.run("nosuchcmd")
    assert code == 127 and 'exec: "nosuchcmd": executable file not found in $PATH' in err
    code, out, err = box.run("/no/such")
    assert code == 127 and "no such file or directory" in err
    code, out, err = box.run("/notexec")
    assert code == 126 and "permission denied" in err


def test_resource_limits(box):
    code, out, err = box.run(
        sh="cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
           "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        pids_limit=20, memory=64 << 20, cpus=0.5)
    assert out.split() == ["20", str(64 << 20), "50000", "100000"], err
    code, out, err = box.run(sh="i=0; while [ $i -lt 15 ]; do sleep 0.3 & i=$((i+1)); done; wait",
                             pids_limit=10)
    # busybox sh gives up at its first refused fork
    assert (code, err) == (2, "sh: can't fork: Resource temporarily unavailable\n"), (out, err)


def test_ulimits(box):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code, out, err = box.run(sh="ulimit -n; ulimit -Hn", ulimits=(("nofile", 100, 200),))
    assert out.split() == ["100", "200"], err
    with pytest.raises(Unavailable, match="RLIMIT_NOFILE.*Operation not permitted.*"
                                          "CAP_SYS_RESOURCE"):
        box.run("true", ulimits=(("nofile", hard + 1, hard + 1),))


def test_init_reaps_zombies(box):
    code, out, err = box.run(
        sh="(sleep 0 &); sleep 0.3; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
           "cat /proc/[0-9]*/stat", init=True)
    assert code == 0, err
    first, *stats = out.splitlines()
    assert first.startswith("/sbin/docker-init -- sh -c"), first  # tini, as Docker's --init
    states = [re.sub(r"^\d+ \(.*\) ", "", s).split()[0] for s in stats if s]
    assert "Z" not in states, out


@pytest.mark.parametrize("runtime", ["builtin", "runc"])
def test_terminal(box, runtime):
    need_tool("runc")
    opts = RunOptions(args=("sh", "-c", "tty; stty size"), terminal=True)
    b = box.bundle(opts)
    for _attempt in range(3):
        if runtime == "runc":  # runc makes the pty in the container: it comes as on_console
            code, text, _ = _run_on_console(box, opts, runtime="runc", console_size=(33, 99))
        else:
            master, slave = os.openpty()
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))
            try:
                code = launcher.run(b, container_id="t" + uuid.uuid4().hex[:12],
                                    runtime=runtime, rootfs_mounts=box.mounts(), console=slave)
                os.close(slave)
                data = _read_pty(master)
            finally:
                os.close(master)
            text = data.decode()
        # runc 1.1.5 sometimes hands its pty over while a child is still being reaped:
        # busybox stty then fails with ECHILD ("No child processes"); that is runc's race
        if not (runtime == "runc" and "No child processes" in text):
            break
    assert code == 0, text
    # a caller-given host pty slave is bound on /dev/console (invisible in the new devpts)
    tty = "/dev/console" if runtime == "builtin" else r"/dev/pts/\d+"
    assert "not a tty" not in text and re.search(rf"^{tty}\r$", text, re.M), text
    assert "33 99" in text


def _read_pty(master: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _run_on_console(box, opts, *, threaded: bool = False, **kw):
    """launcher.run with on_console: (code, terminal output, [masters received])."""
    b = box.bundle(opts)
    got: list[int] = []
    res: dict = {}

    def go():
        try:
            res["code"] = launcher.run(b, container_id="t" + uuid.uuid4().hex[:12],
                                       rootfs_mounts=box.mounts(), on_console=got.append, **kw)
        except BaseException as e:  # noqa: BLE001
            res["err"] = e

    if threaded:  # a caller with threads: P2 comes through P1
        t = threading.Thread(target=go)
        t.start()
        t.join(30)
    else:
        go()
    try:
        data = b"".join(_read_pty(m) for m in got)
    finally:
        for m in got:
            os.close(m)
    if "err" in res:
        raise res["err"]
    return res["code"], data.decode(), got


@pytest.mark.parametrize("threaded", [False, True])
def test_terminal_in_container_devpts(box, threaded):
    # as runc: the pty comes from the container's own devpts, /dev/console is its slave
    opts = RunOptions(args=("sh", "-c", "tty; stty size; ps -o pid,tty,comm; "
                                       "[ /dev/console -ef /dev/pts/0 ] && echo same; "
                                       "ls /dev/pts; stat -c %U /dev/pts/0"), terminal=True)
    code, text, got = _run_on_console(box, opts, threaded=threaded, console_size=(33, 99))
    assert code == 0, text
    assert len(got) == 1
    assert re.search(r"^/dev/pts/0\r$", text, re.M), text
    assert "33 99\r\n" in text
    assert re.search(r"^ +1 (pts/0|136,0) +sh\r$", text, re.M), text  # busybox: major,minor
    assert "same\r\n" in text
    assert re.search(r"^0 +ptmx\r$", text, re.M), text  # one pty in its devpts
    assert text.endswith("root\r\n"), text


def test_terminal_in_container_devpts_user_size_and_errors(box):
    # the spec's consoleSize when the caller gives none; a non-root user owns its tty
    opts = RunOptions(args=("sh", "-c", "stty size; stat -c %U $(tty); id -u"), terminal=True,
                      user=resolve_user(box.rootfs_src, "app"))
    b = box.bundle(opts)
    with open(b + "/config.json") as f:
        spec = json.load(f)
    spec["process"]["consoleSize"] = {"height": 12, "width": 34}
    with open(b + "/config.json", "w") as f:
        json.dump(spec, f)
    fds = set(os.listdir("/proc/self/fd"))
    got: list[int] = []
    code = launcher.run(b, container_id="t" + uuid.uuid4().hex[:12],
                        rootfs_mounts=box.mounts(), on_console=got.append)
    assert not os.get_inheritable(got[0])
    text = _read_pty(got[0]).decode()
    os.close(got[0])
    assert code == 0 and text == "12 34\r\napp\r\n1000\r\n", text
    # exec errors reach the terminal; setup errors (here after the pty was made) raise
    code, text, _ = _run_on_console(box, RunOptions(args=("nosuch",), terminal=True))
    assert code == 127 and 'exec: "nosuch": executable file not found in $PATH' in text, text
    bad = RunOptions(args=("true",), terminal=True, cwd="/etc/marker/x")
    with pytest.raises(LaminaError, match="cwd"):
        _run_on_console(box, bad)
    with pytest.raises(InvalidArgument, match="no console"):
        launcher.run(box.bundle(RunOptions(args=("true",), terminal=True)),
                     container_id="t" + uuid.uuid4().hex[:12], rootfs_mounts=box.mounts())
    assert set(os.listdir("/proc/self/fd")) == fds  # nothing leaked, errors included


def _start_background(box, opts, started):
    b = box.bundle(opts)
    cid = "t" + uuid.uuid4().hex[:12]
    res = {}

    def go():
        res["code"] = launcher.run(b, container_id=cid, rootfs_mounts=box.mounts(),
                                   stdio=(0, os.open("/dev/null", os.O_WRONLY), 2),
                                   on_start=lambda pid: (res.setdefault("pid", pid),
                                                         started.set()))
    t = threading.Thread(target=go, daemon=True)
    t.start()
    assert started.wait(10)
    return cid, res, t


def test_exec_in_freeze_pids(box):
    started = threading.Event()
    cid, res, t = _start_background(box, RunOptions(args=("sleep", "30"), hostname="exec-me"),
                                    started)
    pid = res["pid"]
    try:
        spec = build_spec(RunOptions(args=("sh", "-c", "hostname; cat /etc/marker; ps; id -u"),
                                     user=resolve_user(box.rootfs_src, "app")),
                          root_path="rootfs")
        with tempfile.TemporaryFile() as out:
            code = launcher.exec_in(pid, spec["process"], stdio=(0, out.fileno(), out.fileno()),
                                    seccomp=spec["linux"]["seccomp"])
            out.seek(0)
            text = out.read().decode()
        lines = text.splitlines()
        assert code == 0 and lines[0] == "exec-me" and lines[1] == "marker-in-image", text
        assert re.search(r"^\s*1 .*sleep 30", text, re.M), text
        assert lines[-1] == "1000"
        assert pid in launcher.pids(cid)
        launcher.freeze(cid)
        st = open(f"/proc/{pid}/status").read()
        assert "FROZEN" in open(os.path.join(cgroup_dir("freezer", cid), "freezer.state")).read()
        launcher.thaw(cid)
        del st
        code = launcher.exec_in(pid, {**spec["process"], "args": ["nosuch"]},
                                stdio=(0, os.open("/dev/null", os.O_WRONLY),
                                       os.open("/dev/null", os.O_WRONLY)))
        assert code == 127
    finally:
        os.kill(pid, signal.SIGKILL)
        t.join(10)
    assert res["code"] == 137
    assert not os.path.exists(cgroup_dir("pids", cid))


def test_sigkill_leaves_no_mount(box, tmp_path):
    bundle = box.bundle(RunOptions(args=("sleep", "30")))
    marker = tmp_path / "started"
    cid = "kill" + uuid.uuid4().hex[:8]
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {REPO!r})
        from lamina.runtime import launcher
        from lamina.mount import Mount
        launcher.run({bundle!r}, container_id={cid!r},
                     rootfs_mounts=[Mount("bind", {box.rootfs_src!r}, ("rbind",))],
                     on_start=lambda pid: open({str(marker)!r}, "w").write(str(pid)))
    """)
    p = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    cpid = int(wait_for(lambda: marker.exists() and marker.read_text(), what="the container to start"))
    assert os.readlink(f"/proc/{cpid}/exe").endswith("busybox")
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    wait_for(lambda: not os.path.exists(f"/proc/{cpid}"), what="the container to die with its runner")
    assert not any(bundle in line for line in open("/proc/self/mountinfo"))
    launcher.remove_cgroups(cid)  # what `lamina rm` does for a container whose monitor died
    assert not os.path.exists(cgroup_dir("pids", cid))


def _view(out: str) -> dict:
    parts = out.split("--mounts--\n")
    head, mounts = parts[0], parts[1]
    v = {k: status_field(head, k) for k in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs",
                                                "Seccomp")}
    lines = head.splitlines()
    v["hostname"], v["id"] = lines[0], lines[1]
    v["mounts"] = sorted({line.split()[4] for line in mounts.splitlines() if line})
    return v


@pytest.mark.parametrize("kw", [dict(), dict(user="app", no_new_privileges=True,
                                             readonly_rootfs=True, network="none")])
def test_builtin_vs_runc(box, kw):
    need_tool("runc")
    if "user" in kw:
        kw = {**kw, "user": resolve_user(box.rootfs_src, kw["user"])}
    cmd = "hostname; id; cat /proc/self/status; echo --mounts--; cat /proc/self/mountinfo"
    views = []
    for rt in ("builtin", "runc"):
        code, out, err = box.run(sh=cmd, runtime=rt, hostname="diff", **kw)
        assert code == 0, (rt, err)
        views.append(_view(out))
    assert views[0] == views[1]


def test_setup_error_names_the_mount(box, tmp_path):
    with pytest.raises(LaminaError, match=r"mount /data on .*/data failed"):
        box.run("true", mounts=(MountSpec("bind", str(tmp_path / "missing"), "/data"),))


def test_init_forwards_signals(box):
    started = threading.Event()
    cid, res, t = _start_background(box, RunOptions(args=("sleep", "30"), init=True), started)
    comm = open(f"/proc/{res['pid']}/comm").read().strip()
    assert comm == "docker-init"
    # tini blocks and forwards signals from before it forks the command: wait for that child
    # (earlier, a SIGTERM from outside the pid namespace meets PID 1 without handlers)
    children = f"/proc/{res['pid']}/task/{res['pid']}/children"
    wait_for(lambda: open(children).read().split(), what="tini to fork the command")
    os.kill(res["pid"], signal.SIGTERM)  # the reaper forwards it to sleep, which dies of it
    t.join(10)
    assert res["code"] == 143


def test_overlay_rootfs_and_no_fd_leak(box, tmp_path):
    from lamina.mount import overlay
    upper, work, top = tmp_path / "upper", tmp_path / "work", tmp_path / "top"
    for d in (upper, work, top):
        d.mkdir()
    opts = RunOptions(args=("sh", "-c", "echo new > /created; rm /etc/marker; ls /etc"))
    b = box.bundle(opts)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with tempfile.TemporaryFile() as out:
            code = launcher.run(b, container_id="t" + uuid.uuid4().hex[:12],
                                rootfs_mounts=[overlay([str(top), box.rootfs_src],
                                                       upper=str(upper), work=str(work))],
                                stdio=(0, out.fileno(), out.fileno()))
            out.seek(0)
            assert code == 0, out.read()
    assert len(os.listdir("/proc/self/fd")) == before
    assert (upper / "created").read_text() == "new\n"
    assert os.path.exists(box.rootfs_src + "/etc/marker")  # the whiteout is in upper only
    assert not any(b in line for line in open("/proc/self/mountinfo"))


def test_failing_on_start_kills_the_container(box):
    b = box.bundle(RunOptions(args=("sleep", "30")))
    seen = []

    def boom(pid):
        seen.append(pid)
        raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError):
        launcher.run(b, container_id="t" + uuid.uuid4().hex[:12], rootfs_mounts=box.mounts(),
                     on_start=boom)
    assert seen and not os.path.exists(f"/proc/{seen[0]}")


@pytest.mark.parametrize("path", ["direct", "p1-clone3", "p1-fork"])
def test_start_paths_join_every_cgroup(box, monkeypatch, path):
    """P2 is cloned by a single-threaded caller (direct) or by P1 (threaded caller), born in
    the v2 / hybrid unified cgroup by clone3 or forked and moved there (no clone3): in each
    case every hierarchy holds it under /lamina/<id> before its cgroup namespace exists."""
    if path == "direct":
        if not spawn._single_threaded():
            # earlier tests in this process left threads (thread pools, ISA-L workers): the
            # direct path is only taken by a single-threaded caller, so check it in a fresh one
            assert not os.environ.get("LAMINA_TEST_FRESH"), "a fresh pytest process has threads"
            import subprocess
            import sys
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                f"{__file__}::test_start_paths_join_every_cgroup[direct]"],
                               env={**os.environ, "LAMINA_TEST_FRESH": "1"}, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
            return
    else:
        monkeypatch.setattr(launch, "_single_threaded", lambda: False)
    if path == "p1-fork":
        def no_clone3(*a):
            raise OSError(38, "ENOSYS")
        monkeypatch.setattr(spawn, "_clone", no_clone3)
    b = box.bundle(RunOptions(args=("sh", "-c", "cat /proc/self/cgroup; sleep 0.3")))
    cid = "t" + uuid.uuid4().hex[:12]
    seen = {}

    def on_start(pid):
        seen["pid"] = pid
        with open(f"/proc/{pid}/cgroup") as f:
            seen["host"] = f.read().splitlines()
        seen["ppid"] = int(status_field(open(f"/proc/{pid}/status").read(), "PPid"))

    with tempfile.TemporaryFile() as out:
        code = launcher.run(b, container_id=cid, rootfs_mounts=box.mounts(),
                            stdio=(0, out.fileno(), 2), on_start=on_start)
        out.seek(0)
        inside = out.read().decode().splitlines()
    assert code == 0
    assert inside and all(line.endswith(":/") for line in inside), inside
    assert seen["host"] and all(line.endswith(f":/{CGROUP_PARENT}/{cid}") for line in seen["host"]), \
        seen["host"]
    assert (seen["ppid"] == os.getpid()) == (path == "direct")
    assert not os.path.exists(cgroup_dir("pids", cid))
